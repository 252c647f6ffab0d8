//! The `bit-axon` binary end to end: `info` on presets and checkpoints, `forward` writing logits
//! and hidden states that match the reference oracle, and clear errors on bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use bit_axon::checkpoint::{OwnedTensor, TensorFiles, write_safetensors};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bit-axon"))
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/upstream/tiny_windowed")
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bit-axon-cli-{}-{name}", std::process::id()))
}

#[test]
fn info_default_preset_prints_true_counts() {
    let out = bin().args(["info", "--preset", "default"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("5,766,778,880"), "{text}");
    assert!(text.contains("2,746,880,000"), "{text}");
    assert_eq!(text.matches("swa_moe").count(), 8);
}

#[test]
fn info_json_on_a_checkpoint() {
    let out = bin().args(["info", "--json", "--model"]).arg(fixture()).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["num_layers"], 6);
    assert_eq!(v["layers"][2]["kind"], "swa_moe");
    assert!(v["params"]["total"].as_u64().unwrap() > 0);
}

#[test]
fn forward_writes_reference_logits_and_hidden_states() {
    let out_path = tmp("fwd.safetensors");
    let io = fixture().join("io.safetensors");
    let status = bin()
        .args(["forward", "--hidden", "--model"])
        .arg(fixture())
        .arg("--input")
        .arg(&io)
        .arg("--output")
        .arg(&out_path)
        .status()
        .unwrap();
    assert!(status.success());
    let got = TensorFiles::open(&out_path, std::slice::from_ref(&out_path)).unwrap();
    let want = TensorFiles::open(&io, std::slice::from_ref(&io)).unwrap();
    for name in ["logits", "hidden.embed_proj", "hidden.layer_0", "hidden.layer_5", "hidden.output_proj"] {
        let shape = want.shape(name).unwrap().to_vec();
        let (a, b) = (got.read_f32(name, &shape).unwrap(), want.read_f32(name, &shape).unwrap());
        let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-4, "{name}: max abs err {err}");
    }
    std::fs::remove_file(out_path).unwrap();
}

#[test]
fn forward_rejects_out_of_vocab_ids_with_position() {
    let input = tmp("bad_ids.safetensors");
    let ids = OwnedTensor::from_i32(&[1, 2, 3, 500], vec![2, 2]);
    write_safetensors(&input, &[("input_ids".into(), ids)], None).unwrap();
    let out = bin()
        .args(["forward", "--model"])
        .arg(fixture())
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(tmp("never.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("500") && err.contains("batch 1, position 1") && err.contains("bad_ids"), "{err}");
    std::fs::remove_file(input).unwrap();
}

#[test]
fn unknown_device_and_missing_model_are_clear_errors() {
    let out = bin()
        .args(["forward", "--device", "tpu", "--model", "/nonexistent", "--input", "x", "--output", "y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("unknown device `tpu`"));
    let out = bin().args(["info", "--model", "/nonexistent/dir"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("/nonexistent/dir"));
}
