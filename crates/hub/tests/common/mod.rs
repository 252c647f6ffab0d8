//! A mock Hugging Face Hub on a local port, serving the Hub's URL layout from memory:
//! repository listing, file resolution (ETag, X-Repo-Commit, Content-Length, Range), repo
//! creation, preupload, the LFS batch API (PUT + verify) and NDJSON commits. It can drop a
//! connection in the middle of a file once, and serve corrupted bytes.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Default)]
pub struct State {
    /// Repository files, path → content (what the listing describes).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Files served with one byte flipped (the listing keeps the true hashes).
    pub corrupt: HashSet<String>,
    /// Files whose next body transfer stops halfway and closes the connection.
    pub drop_once: HashSet<String>,
    /// Files above this size are LFS files.
    pub lfs_threshold: usize,
    /// `(method, path, range header, authorization header)` of every request.
    pub requests: Vec<(String, String, Option<String>, Option<String>)>,
    pub created: Vec<Value>,
    pub lfs_objects: HashMap<String, Vec<u8>>,
    pub verified: Vec<String>,
    pub commits: Vec<Vec<Value>>,
}

pub struct MockHub {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

pub fn git_sha1(b: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", b.len()).as_bytes());
    h.update(b);
    hex(&h.finalize())
}

impl MockHub {
    pub fn start(files: &[(&str, Vec<u8>)], lfs_threshold: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            files: files.iter().map(|(p, c)| (p.to_string(), c.clone())).collect(),
            lfs_threshold,
            ..Default::default()
        }));
        {
            // The Hub stores large files as LFS objects, which an upload of the same content reuses.
            let mut st = state.lock().unwrap();
            let objects: Vec<(String, Vec<u8>)> =
                st.files.values().filter(|c| c.len() > lfs_threshold).map(|c| (sha256(c), c.clone())).collect();
            st.lfs_objects.extend(objects);
        }
        let (st, base) = (state.clone(), url.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (st, base) = (st.clone(), base.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, &st, &base);
                });
            }
        });
        Self { url, state }
    }

    pub fn requests_for(&self, suffix: &str) -> Vec<(String, Option<String>)> {
        let s = self.state.lock().unwrap();
        s.requests.iter().filter(|r| r.1.ends_with(suffix)).map(|r| (r.0.clone(), r.2.clone())).collect()
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &mut BufReader<TcpStream>) -> std::io::Result<Request> {
    let mut line = String::new();
    stream.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        stream.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers.get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        stream.read_exact(&mut body)?;
    } else if headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            stream.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(Request { method, path, headers, body })
}

fn respond(s: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()
}

fn json_resp(s: &mut TcpStream, status: u16, v: Value) -> std::io::Result<()> {
    respond(s, status, &[("Content-Type", "application/json".into())], v.to_string().as_bytes())
}

fn handle(stream: TcpStream, state: &Mutex<State>, base: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let req = read_request(&mut reader)?;
    let mut s = stream;
    let mut st = state.lock().unwrap();
    st.requests.push((
        req.method.clone(),
        req.path.clone(),
        req.headers.get("range").cloned(),
        req.headers.get("authorization").cloned(),
    ));
    let path = req.path.split('?').next().unwrap_or_default().to_string();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    // GET /api/models/{owner}/{name}/revision/{rev}
    if req.method == "GET" && seg.len() >= 6 && seg[0] == "api" && seg[1] == "models" && seg[4] == "revision" {
        let siblings: Vec<Value> = st
            .files
            .iter()
            .map(|(p, c)| {
                let mut v = json!({"rfilename": p, "size": c.len(), "blobId": git_sha1(c)});
                if c.len() > st.lfs_threshold {
                    v["lfs"] = json!({"sha256": sha256(c), "size": c.len(), "pointerSize": 134});
                }
                v
            })
            .collect();
        return json_resp(
            &mut s,
            200,
            json!({"id": format!("{}/{}", seg[2], seg[3]), "sha": COMMIT, "siblings": siblings}),
        );
    }
    // GET /{owner}/{name}/resolve/{rev}/{file...}
    if req.method == "GET" && seg.len() >= 5 && seg[2] == "resolve" {
        let file = seg[4..].join("/");
        let Some(content) = st.files.get(&file).cloned() else {
            return respond(&mut s, 404, &[("X-Error-Code", "EntryNotFound".into())], b"not found");
        };
        let etag = if content.len() > st.lfs_threshold { sha256(&content) } else { git_sha1(&content) };
        let mut served = content.clone();
        if st.corrupt.contains(&file) {
            let mid = served.len() / 2;
            served[mid] ^= 0xff;
        }
        let total = served.len();
        let (start, end) = match req.headers.get("range").and_then(|r| r.strip_prefix("bytes=")) {
            Some(r) => {
                let (a, b) = r.split_once('-').unwrap_or((r, ""));
                let a: usize = a.parse().unwrap_or(0);
                let b: usize = if b.is_empty() { total - 1 } else { b.parse().unwrap_or(total - 1).min(total - 1) };
                (a, b)
            }
            None => (0, total - 1),
        };
        let mut headers = vec![
            ("ETag", format!("\"{etag}\"")),
            ("X-Repo-Commit", COMMIT.to_string()),
            ("Accept-Ranges", "bytes".into()),
        ];
        let status = if req.headers.contains_key("range") {
            headers.push(("Content-Range", format!("bytes {start}-{end}/{total}")));
            206
        } else {
            200
        };
        let body = if start < total { served[start..=end].to_vec() } else { Vec::new() };
        if body.len() > 1 && st.drop_once.remove(&file) {
            // Announce the whole range, send half, hang up.
            let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
            for (k, v) in &headers {
                head += &format!("{k}: {v}\r\n");
            }
            head += "\r\n";
            drop(st);
            s.write_all(head.as_bytes())?;
            s.write_all(&body[..body.len() / 2])?;
            s.flush()?;
            return s.shutdown(std::net::Shutdown::Both);
        }
        return respond(&mut s, status, &headers, &body);
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    // POST /api/repos/create
    if req.method == "POST" && path == "/api/repos/create" {
        st.created.push(body);
        return json_resp(&mut s, 200, json!({"url": format!("{base}/x")}));
    }
    // POST /api/models/{owner}/{name}/preupload/{rev}
    if req.method == "POST" && seg.len() >= 6 && seg[4] == "preupload" {
        let files: Vec<Value> = body["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let lfs = f["size"].as_u64().unwrap_or(0) as usize > st.lfs_threshold;
                json!({"path": f["path"], "uploadMode": if lfs { "lfs" } else { "regular" }, "shouldIgnore": false})
            })
            .collect();
        return json_resp(&mut s, 200, json!({"files": files}));
    }
    // POST /{owner}/{name}.git/info/lfs/objects/batch
    if req.method == "POST" && path.ends_with(".git/info/lfs/objects/batch") {
        let objects: Vec<Value> = body["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                let oid = o["oid"].as_str().unwrap_or_default();
                if st.lfs_objects.contains_key(oid) {
                    json!({"oid": oid, "size": o["size"]})
                } else {
                    json!({"oid": oid, "size": o["size"], "actions": {
                        "upload": {"href": format!("{base}/lfs-upload/{oid}"), "header": {"X-Upload-Token": "t0k"}},
                        "verify": {"href": format!("{base}/lfs-verify"), "header": {}}
                    }})
                }
            })
            .collect();
        return json_resp(&mut s, 200, json!({"transfer": "basic", "objects": objects}));
    }
    // PUT /lfs-upload/{oid}
    if req.method == "PUT" && seg.len() == 2 && seg[0] == "lfs-upload" {
        if req.headers.get("x-upload-token").map(String::as_str) != Some("t0k") || sha256(&req.body) != seg[1] {
            return respond(&mut s, 400, &[], b"bad upload");
        }
        st.lfs_objects.insert(seg[1].to_string(), req.body);
        return respond(&mut s, 200, &[], b"");
    }
    // POST /lfs-verify
    if req.method == "POST" && path == "/lfs-verify" {
        let oid = body["oid"].as_str().unwrap_or_default().to_string();
        let ok = st.lfs_objects.get(&oid).is_some_and(|b| Some(b.len() as u64) == body["size"].as_u64());
        st.verified.push(oid);
        return respond(&mut s, if ok { 200 } else { 404 }, &[], b"");
    }
    // POST /api/models/{owner}/{name}/commit/{rev}
    if req.method == "POST" && seg.len() >= 6 && seg[4] == "commit" {
        let lines: Vec<Value> = String::from_utf8_lossy(&req.body)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
            .collect();
        for l in &lines {
            let v = &l["value"];
            match l["key"].as_str() {
                Some("file") => {
                    let bytes =
                        base64::engine::general_purpose::STANDARD.decode(v["content"].as_str().unwrap_or("")).unwrap();
                    st.files.insert(v["path"].as_str().unwrap().to_string(), bytes);
                }
                Some("lfsFile") => {
                    let Some(bytes) = st.lfs_objects.get(v["oid"].as_str().unwrap_or("")).cloned() else {
                        return respond(&mut s, 422, &[], b"unknown LFS object");
                    };
                    st.files.insert(v["path"].as_str().unwrap().to_string(), bytes);
                }
                _ => {}
            }
        }
        st.commits.push(lines);
        return json_resp(
            &mut s,
            200,
            json!({"commitOid": "feedbeef", "commitUrl": format!("{base}/{}/{}/commit/feedbeef", seg[2], seg[3])}),
        );
    }
    respond(&mut s, 404, &[], b"no route")
}
