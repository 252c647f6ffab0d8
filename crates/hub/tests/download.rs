//! Downloads against the mock Hub: fresh, cached, resumed (within a call and across calls),
//! corrupted files detected and evicted, include patterns, token sent.

mod common;

use std::path::{Path, PathBuf};

use bit_axon_hub::{Error, HubConfig, download};
use common::{COMMIT, MockHub};

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("bit-axon-hub-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn weights(n: usize) -> Vec<u8> {
    let mut x = 0x2545F4914F6CDD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("config.json", br#"{"vocab_size": 1024}"#.to_vec()),
        ("model.safetensors", weights(300_000)),
        ("docs/README.md", b"# tiny\n".to_vec()),
    ]
}

fn config(hub: &MockHub, cache: &Path, retries: usize) -> HubConfig {
    HubConfig {
        endpoint: hub.url.clone(),
        cache_dir: cache.to_path_buf(),
        token: Some("hf_test".into()),
        progress: false,
        retries,
    }
}

#[test]
fn fresh_download_then_cached() {
    let hub = MockHub::start(&files(), 1000);
    let (cache, local) = (tmp("fresh-cache"), tmp("fresh-local"));
    let cfg = config(&hub, &cache, 0);
    let r = download(&cfg, "owner/tiny", "main", &[], Some(&local)).unwrap();
    assert_eq!(r.commit, COMMIT);
    assert_eq!(r.files.len(), 3);
    for (path, content) in files() {
        assert_eq!(std::fs::read(local.join(path)).unwrap(), content, "{path}");
        let f = r.files.iter().find(|f| f.path == path).unwrap();
        assert!(!f.cached);
        assert_eq!(f.verified, if content.len() > 1000 { "sha256" } else { "git-sha1" });
    }
    // The cache layout is the Hub's: snapshots/{commit}/... pointing at blobs/.
    assert!(cache.join(format!("models--owner--tiny/snapshots/{COMMIT}/model.safetensors")).exists());
    // Every request carried the token.
    assert!(hub.state.lock().unwrap().requests.iter().all(|r| r.3.as_deref() == Some("Bearer hf_test")));

    // Second time: verified from the cache, no file transferred.
    let before = hub.requests_for("model.safetensors").len();
    let r = download(&cfg, "owner/tiny", "main", &["*.json".to_string()], None).unwrap();
    assert_eq!(r.files.len(), 1);
    assert!(r.files[0].cached && r.files[0].path == "config.json");
    let r = download(&cfg, "owner/tiny", "main", &[], None).unwrap();
    assert!(r.files.iter().all(|f| f.cached));
    assert_eq!(hub.requests_for("model.safetensors").len(), before);
    assert_eq!(r.dir, cache.join(format!("models--owner--tiny/snapshots/{COMMIT}")));
    for d in [cache, local] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The Range header of each body transfer (not the 1-byte metadata probe) of `file`.
fn body_ranges(hub: &MockHub, file: &str) -> Vec<String> {
    hub.requests_for(file).into_iter().filter_map(|(_, r)| r).filter(|r| r != "bytes=0-0").collect()
}

#[test]
fn interrupted_file_resumes_within_the_call() {
    let hub = MockHub::start(&files(), 1000);
    hub.state.lock().unwrap().drop_once.insert("model.safetensors".into());
    let cache = tmp("resume-retry");
    let r = download(&config(&hub, &cache, 2), "owner/tiny", "main", &["model.safetensors".into()], None).unwrap();
    assert_eq!(std::fs::read(&r.files[0].local).unwrap(), weights(300_000));
    assert_eq!(r.files[0].verified, "sha256");
    assert_eq!(body_ranges(&hub, "model.safetensors"), vec!["bytes=0-".to_string(), "bytes=150000-".to_string()]);
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn interrupted_file_resumes_on_the_next_call() {
    let hub = MockHub::start(&files(), 1000);
    hub.state.lock().unwrap().drop_once.insert("model.safetensors".into());
    let cache = tmp("resume-next");
    let cfg = config(&hub, &cache, 0);
    let e = download(&cfg, "owner/tiny", "main", &["model.safetensors".into()], None).unwrap_err();
    assert!(matches!(e, Error::Download { .. }), "{e}");
    let part = std::fs::read_dir(cache.join("models--owner--tiny/blobs"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "part"))
        .expect("a .part file is left");
    assert_eq!(part.metadata().unwrap().len(), 150_000);
    let r = download(&cfg, "owner/tiny", "main", &["model.safetensors".into()], None).unwrap();
    assert_eq!(std::fs::read(&r.files[0].local).unwrap(), weights(300_000));
    assert_eq!(body_ranges(&hub, "model.safetensors"), vec!["bytes=0-".to_string(), "bytes=150000-".to_string()]);
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn corrupted_files_are_detected_and_evicted() {
    let hub = MockHub::start(&files(), 1000);
    hub.state.lock().unwrap().corrupt.extend(["model.safetensors".to_string(), "config.json".to_string()]);
    let cache = tmp("corrupt");
    let cfg = config(&hub, &cache, 0);
    let e = download(&cfg, "owner/tiny", "main", &["model.safetensors".into()], None).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Corrupted { .. }) && msg.contains("model.safetensors") && msg.contains("sha256"),
        "{msg}"
    );
    assert!(!cache.join(format!("models--owner--tiny/snapshots/{COMMIT}/model.safetensors")).exists());
    let blobs: Vec<_> =
        std::fs::read_dir(cache.join("models--owner--tiny/blobs")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(blobs.iter().all(|p| p.extension().is_some_and(|x| x == "lock")), "only lock files left: {blobs:?}");
    let e = download(&cfg, "owner/tiny", "main", &["config.json".into()], None).unwrap_err();
    assert!(e.to_string().contains("git blob sha1"), "{e}");

    // Once the server is fixed, the same call succeeds.
    hub.state.lock().unwrap().corrupt.clear();
    let r = download(&cfg, "owner/tiny", "main", &[], None).unwrap();
    assert_eq!(
        std::fs::read(&r.files.iter().find(|f| f.path == "model.safetensors").unwrap().local).unwrap(),
        weights(300_000)
    );
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn errors_name_the_problem() {
    let hub = MockHub::start(&files(), 1000);
    let cache = tmp("errors");
    let cfg = config(&hub, &cache, 0);
    let e = download(&cfg, "owner/tiny", "main", &["*.bin".into()], None).unwrap_err();
    assert!(e.to_string().contains("no file of owner/tiny@main matches"), "{e}");
    let e = download(&cfg, "not a repo", "main", &[], None).unwrap_err();
    assert!(e.to_string().contains("not a repository id"), "{e}");
    let dead = HubConfig { endpoint: "http://127.0.0.1:9".into(), ..cfg };
    let e = download(&dead, "owner/tiny", "main", &[], None).unwrap_err();
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");
    std::fs::remove_dir_all(cache).unwrap();
}
