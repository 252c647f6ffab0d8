//! `bit-axon port` on the tiny Qwen2 fixture, then `forward` and `run` on the result; and
//! `download` / `upload` through the binary against the mock Hub, configured only by the
//! environment (HF_ENDPOINT, HF_HOME, HF_TOKEN).

#[path = "../../hub/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bit_axon::checkpoint::{OwnedTensor, TensorFiles, write_safetensors};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bit-axon"))
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("bit-axon-cli-port-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn qwen2_tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/qwen2-tiny")
}

fn ok(out: std::process::Output) -> (String, String) {
    let (so, se) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert!(out.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    (so, se)
}

#[test]
fn port_then_forward_and_run() {
    let out = tmp("ported");
    let (table, _) = ok(bin()
        .args(["port", "--preset", "small", "--seed", "3", "--from"])
        .arg(qwen2_tiny())
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap());
    assert!(table.contains("layer_1.moe.switch_mlp.gate_proj.weight") && table.contains("copy_perturb"), "{table}");
    assert!(table.contains("1024 tokens"), "{table}");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab_map.json",
        "port_report.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // forward
    let input = out.join("ids.safetensors");
    let ids = OwnedTensor::from_i32(&[1022, 5, 300, 1023, 17, 9], vec![1, 6]);
    write_safetensors(&input, &[("input_ids".to_string(), ids)], None).unwrap();
    let logits_path = out.join("logits.safetensors");
    ok(bin()
        .args(["forward", "--model"])
        .arg(&out)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&logits_path)
        .output()
        .unwrap());
    let f = TensorFiles::open(&logits_path, std::slice::from_ref(&logits_path)).unwrap();
    let logits = f.read_f32("logits", &[1, 6, 1024]).unwrap();
    assert!(logits.iter().all(|v| v.is_finite()));

    // run: the chat template goes through the truncated tokenizer (special tokens included).
    let (text, _) = ok(bin()
        .args(["run", "Hello there", "--temperature", "0", "--max-tokens", "4", "--print-ids", "--model"])
        .arg(&out)
        .output()
        .unwrap());
    let last = text.lines().last().unwrap_or_default();
    assert!(last.split(',').all(|t| t.trim().parse::<u32>().is_ok_and(|id| id < 1024)), "{text}");

    // Same seed, same checkpoint.
    let again = tmp("ported-again");
    ok(bin()
        .args(["port", "--preset", "small", "--seed", "3", "--json", "--from"])
        .arg(qwen2_tiny())
        .arg("--output")
        .arg(&again)
        .output()
        .unwrap());
    assert!(
        std::fs::read(out.join("model.safetensors")).unwrap().len()
            == std::fs::read(again.join("model.safetensors")).unwrap().len()
    );
    let (a, b) = (TensorFiles::open_dir(&out).unwrap(), TensorFiles::open_dir(&again).unwrap());
    let name = "layer_0.ssm.in_proj.weight";
    let shape = a.shape(name).unwrap().to_vec();
    assert!(a.read_f32(name, &shape).unwrap() == b.read_f32(name, &shape).unwrap());
    for d in [out, again] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn port_reports_incompatible_targets() {
    let out = tmp("bad");
    let o = bin()
        .args(["port", "--preset", "default", "--from"])
        .arg(qwen2_tiny())
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("hidden_size 128") && err.contains("d_source_model 2048"), "{err}");
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn download_and_upload_through_the_environment() {
    let weights: Vec<u8> = (0..20_000u32).flat_map(|i| (i * 7).to_le_bytes()).collect();
    let hub = common::MockHub::start(&[("config.json", b"{}".to_vec()), ("model.safetensors", weights.clone())], 1000);
    let home = tmp("hf-home");
    let local = tmp("local");
    let env = |c: &mut Command| {
        c.env("HF_ENDPOINT", &hub.url).env("HF_HOME", &home).env("HF_TOKEN", "hf_env").env_remove("HF_HUB_CACHE");
    };
    let mut c = bin();
    c.args(["download", "owner/tiny", "--local-dir"]).arg(&local);
    env(&mut c);
    let (stdout, stderr) = ok(c.output().unwrap());
    assert_eq!(stdout.trim(), local.display().to_string());
    assert!(stderr.contains("checked: sha256") && stderr.contains("checked: git-sha1"), "{stderr}");
    assert_eq!(std::fs::read(local.join("model.safetensors")).unwrap(), weights);
    assert!(home.join("hub/models--owner--tiny").is_dir(), "the cache lives under HF_HOME/hub");
    assert!(hub.state.lock().unwrap().requests.iter().all(|r| r.3.as_deref() == Some("Bearer hf_env")));

    std::fs::write(local.join("extra.txt"), b"new file").unwrap();
    let mut c = bin();
    c.args(["upload"]).arg(&local).args(["--repo-id", "owner/tiny", "-m", "add extra"]);
    env(&mut c);
    let (stdout, stderr) = ok(c.output().unwrap());
    assert!(stdout.contains("commit/feedbeef"), "{stdout}");
    assert!(stderr.contains("already on the server"), "the LFS weights were not sent again: {stderr}");
    let st = hub.state.lock().unwrap();
    assert_eq!(st.files["extra.txt"], b"new file");
    assert_eq!(st.commits[0][0]["value"]["summary"], "add extra");
    drop(st);
    for d in [home, local] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
