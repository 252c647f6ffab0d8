//! Uploading a directory as one commit to a Hub model repository (not offered by hf-hub; done
//! here over HTTP with the Hub's documented endpoints, see the crate documentation).

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::hash::hash_file;
use crate::{Error, HubConfig, Result, check_repo_id};

#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub repo: String,
    pub revision: String,
    pub commit_message: String,
    /// Create the repository if it does not exist.
    pub create: bool,
    pub private: bool,
}

impl UploadOptions {
    pub fn new(repo: &str) -> Self {
        Self {
            repo: repo.into(),
            revision: "main".into(),
            commit_message: "Upload Bit-Axon checkpoint".into(),
            create: true,
            private: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UploadReport {
    pub commit: Option<String>,
    pub commit_url: Option<String>,
    /// `(path in the repo, bytes, "lfs" | "regular", uploaded now (false: the server had it))`.
    pub files: Vec<(String, u64, String, bool)>,
}

struct Local {
    path: String,
    file: PathBuf,
    size: u64,
    sha256: String,
}

/// Files under `dir` (recursively), skipping hidden entries and temporary files.
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let e = e.map_err(|e| Error::io(&d, e))?;
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap_or(&p)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Uploads every file of `dir` in one commit; LFS files whose object the server already has
/// are not sent again.
pub fn upload(cfg: &HubConfig, dir: &Path, opts: &UploadOptions) -> Result<UploadReport> {
    check_repo_id(&opts.repo)?;
    let token = cfg
        .token
        .as_deref()
        .ok_or_else(|| Error::Input("uploading needs a token: set HF_TOKEN or run `huggingface-cli login`".into()))?;
    let agent = ureq::AgentBuilder::new().try_proxy_from_env(true).build();
    let auth = format!("Bearer {token}");
    let (ep, repo, rev) = (&cfg.endpoint, &opts.repo, &opts.revision);

    if opts.create {
        let url = format!("{ep}/api/repos/create");
        let (org, name) = match repo.split_once('/') {
            Some((o, n)) => (Some(o), n),
            None => (None, repo.as_str()),
        };
        let body = json!({"type": "model", "name": name, "organization": org, "private": opts.private});
        match agent.post(&url).set("Authorization", &auth).send_json(body) {
            Ok(_) | Err(ureq::Error::Status(409, _)) => {}
            Err(e) => return Err(Error::http(&url, e)),
        }
    }

    let mut files = Vec::new();
    for (path, file) in list(dir)? {
        let h = hash_file(&file)?;
        files.push(Local { path, file, size: h.size, sha256: h.sha256 });
    }
    if files.is_empty() {
        return Err(Error::Input(format!("{}: nothing to upload", dir.display())));
    }

    // Which files go through LFS.
    let url = format!("{ep}/api/models/{repo}/preupload/{rev}");
    let mut samples = Vec::new();
    for f in &files {
        let mut buf = vec![0u8; 512];
        let mut fh = std::fs::File::open(&f.file).map_err(|e| Error::io(&f.file, e))?;
        let n = fh.read(&mut buf).map_err(|e| Error::io(&f.file, e))?;
        samples.push(json!({"path": f.path, "size": f.size, "sample": B64.encode(&buf[..n])}));
    }
    let resp: Value = agent
        .post(&url)
        .set("Authorization", &auth)
        .send_json(json!({"files": samples}))
        .map_err(|e| Error::http(&url, e))?
        .into_json()
        .map_err(|e| Error::Protocol { url: url.clone(), reason: e.to_string() })?;
    let modes = resp["files"]
        .as_array()
        .ok_or_else(|| Error::Protocol { url: url.clone(), reason: "no `files` list".into() })?;
    let is_lfs = |p: &str| modes.iter().any(|m| m["path"] == p && m["uploadMode"] == "lfs");

    // LFS objects: batch request, then a PUT (and verify) for each the server asks for.
    let lfs: Vec<&Local> = files.iter().filter(|f| is_lfs(&f.path)).collect();
    let mut sent = std::collections::HashSet::new();
    if !lfs.is_empty() {
        let url = format!("{ep}/{repo}.git/info/lfs/objects/batch");
        let objects: Vec<Value> = lfs.iter().map(|f| json!({"oid": f.sha256, "size": f.size})).collect();
        let body = json!({"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256", "ref": {"name": rev}, "objects": objects});
        let resp: Value = agent
            .post(&url)
            .set("Authorization", &auth)
            .set("Accept", "application/vnd.git-lfs+json")
            .set("Content-Type", "application/vnd.git-lfs+json")
            .send_string(&body.to_string())
            .map_err(|e| Error::http(&url, e))?
            .into_json()
            .map_err(|e| Error::Protocol { url: url.clone(), reason: e.to_string() })?;
        for obj in resp["objects"].as_array().into_iter().flatten() {
            if let Some(err) = obj.get("error") {
                return Err(Error::Protocol { url: url.clone(), reason: format!("LFS object {}: {err}", obj["oid"]) });
            }
            let Some(up) = obj["actions"].get("upload") else { continue };
            let f = lfs.iter().find(|f| obj["oid"] == f.sha256.as_str()).ok_or_else(|| Error::Protocol {
                url: url.clone(),
                reason: format!("unknown LFS object {}", obj["oid"]),
            })?;
            if up["header"].get("chunk_size").is_some() {
                return Err(Error::Protocol {
                    url: url.clone(),
                    reason: "multipart LFS upload is not supported".into(),
                });
            }
            let href = up["href"]
                .as_str()
                .ok_or_else(|| Error::Protocol { url: url.clone(), reason: "upload action without href".into() })?;
            let mut req = agent.put(href).set("Content-Length", &f.size.to_string());
            for (k, v) in up["header"].as_object().into_iter().flatten() {
                req = req.set(k, v.as_str().unwrap_or_default());
            }
            let fh = std::fs::File::open(&f.file).map_err(|e| Error::io(&f.file, e))?;
            let bar = progress_bar(cfg.progress, f.size, &f.path);
            req.send(bar.wrap_read(fh)).map_err(|e| Error::http(href, e))?;
            bar.finish_and_clear();
            if let Some(v) = obj["actions"].get("verify") {
                let vurl = v["href"].as_str().unwrap_or_default();
                let mut req = agent.post(vurl).set("Authorization", &auth);
                for (k, val) in v["header"].as_object().into_iter().flatten() {
                    req = req.set(k, val.as_str().unwrap_or_default());
                }
                req.send_json(json!({"oid": f.sha256, "size": f.size})).map_err(|e| Error::http(vurl, e))?;
            }
            sent.insert(f.path.clone());
        }
    }

    // The commit: a header line, then one line per file (regular files inline, base64).
    let url = format!("{ep}/api/models/{repo}/commit/{rev}");
    let mut ndjson = json!({"key": "header", "value": {"summary": opts.commit_message, "description": ""}}).to_string();
    let mut report = Vec::new();
    for f in &files {
        let line = if is_lfs(&f.path) {
            report.push((f.path.clone(), f.size, "lfs".to_string(), sent.contains(&f.path)));
            json!({"key": "lfsFile", "value": {"path": f.path, "algo": "sha256", "oid": f.sha256, "size": f.size}})
        } else {
            let bytes = std::fs::read(&f.file).map_err(|e| Error::io(&f.file, e))?;
            report.push((f.path.clone(), f.size, "regular".to_string(), true));
            json!({"key": "file", "value": {"path": f.path, "encoding": "base64", "content": B64.encode(bytes)}})
        };
        ndjson.push('\n');
        ndjson.push_str(&line.to_string());
    }
    let resp: Value = agent
        .post(&url)
        .set("Authorization", &auth)
        .set("Content-Type", "application/x-ndjson")
        .send_string(&ndjson)
        .map_err(|e| Error::http(&url, e))?
        .into_json()
        .map_err(|e| Error::Protocol { url: url.clone(), reason: e.to_string() })?;
    Ok(UploadReport {
        commit: resp["commitOid"].as_str().map(String::from),
        commit_url: resp["commitUrl"].as_str().map(String::from),
        files: report,
    })
}

fn progress_bar(show: bool, size: u64, name: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(size);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style);
    }
    bar.set_message(format!("uploading {name}"));
    bar
}
