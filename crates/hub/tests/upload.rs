//! Upload against the mock Hub: repo creation, preupload, LFS batch + PUT + verify for large
//! files, regular files inline in the NDJSON commit; an unchanged LFS object is not sent again;
//! the uploaded repository downloads back identical.

mod common;

use std::path::PathBuf;

use bit_axon_hub::{HubConfig, UploadOptions, download, upload};
use common::{MockHub, sha256};

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("bit-axon-hub-up-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn upload_then_download_round_trip() {
    let hub = MockHub::start(&[], 1000);
    let dir = tmp("src");
    let weights: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(dir.join("model.safetensors"), &weights).unwrap();
    std::fs::write(dir.join("config.json"), br#"{"vocab_size": 1024}"#).unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/notes.txt"), b"hello").unwrap();
    std::fs::write(dir.join("model.safetensors.tmp"), b"partial").unwrap();
    std::fs::write(dir.join(".hidden"), b"x").unwrap();
    let cache = tmp("cache");
    let cfg = HubConfig {
        endpoint: hub.url.clone(),
        cache_dir: cache.clone(),
        token: Some("hf_w".into()),
        progress: false,
        retries: 0,
    };

    let mut opts = UploadOptions::new("me/ported");
    opts.private = true;
    let r = upload(&cfg, &dir, &opts).unwrap();
    assert_eq!(r.commit.as_deref(), Some("feedbeef"));
    let mut paths: Vec<_> = r.files.iter().map(|f| (f.0.as_str(), f.2.as_str(), f.3)).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![("config.json", "regular", true), ("model.safetensors", "lfs", true), ("sub/notes.txt", "regular", true)]
    );
    {
        let st = hub.state.lock().unwrap();
        assert_eq!(st.created[0]["name"], "ported");
        assert_eq!(st.created[0]["organization"], "me");
        assert_eq!(st.created[0]["private"], true);
        assert_eq!(st.lfs_objects[&sha256(&weights)], weights);
        assert_eq!(st.verified, vec![sha256(&weights)]);
        assert_eq!(st.commits[0][0]["value"]["summary"], "Upload Bit-Axon checkpoint");
        assert_eq!(st.files.len(), 3);
        assert!(
            st.requests
                .iter()
                .filter(|r| !r.1.starts_with("/lfs-upload"))
                .all(|r| r.3.as_deref() == Some("Bearer hf_w"))
        );
    }

    // Same content again: the LFS object is already there, so only the commit is sent.
    let r = upload(&cfg, &dir, &opts).unwrap();
    assert!(r.files.iter().any(|f| f.0 == "model.safetensors" && !f.3));
    assert_eq!(hub.requests_for(&format!("/lfs-upload/{}", sha256(&weights))).len(), 1);

    // And it downloads back identical.
    let back = tmp("back");
    download(&cfg, "me/ported", "main", &[], Some(&back)).unwrap();
    for f in ["model.safetensors", "config.json", "sub/notes.txt"] {
        assert_eq!(std::fs::read(back.join(f)).unwrap(), std::fs::read(dir.join(f)).unwrap(), "{f}");
    }
    assert!(!back.join("model.safetensors.tmp").exists());

    // Without a token it refuses before any request.
    let e = upload(&HubConfig { token: None, ..cfg }, &dir, &opts).unwrap_err();
    assert!(e.to_string().contains("HF_TOKEN"), "{e}");
    for d in [dir, cache, back] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
