//! `bit-axon merge` end to end: an adapter (LoRA and DoRA, PEFT layout) on the reference's tiny
//! checkpoint, merged by the binary into a checkpoint whose logits equal the adapter model's
//! within 1e-4; and a clear error for an adapter that does not fit the base.

use std::path::{Path, PathBuf};
use std::process::Command;

use bit_axon::BitAxonModel;
use bit_axon_train::adapters;
use bit_axon_train::config::AdapterSection;
use burn::prelude::*;
use burn::tensor::Distribution;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/upstream/tiny_windowed")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bit-axon-merge-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn logits(m: &BitAxonModel, dev: &Device) -> Vec<f32> {
    // Fixed ids, not `seed` + `random`: the flex RNG is shared by the tests running in parallel.
    let v: Vec<i64> = (0..48).map(|i| (i * 29 + 7) % 60).collect();
    let ids = Tensor::<2, Int>::from_data(burn::tensor::TensorData::new(v, [2, 24]), dev);
    m.forward(ids).into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn case(kind: &str) {
    let dev = Device::flex();
    let (_, base, _) = BitAxonModel::load(&fixture(), &dev).unwrap();
    let sec = AdapterSection { kind: kind.into(), rank: 4, alpha: 8.0, ..Default::default() };
    dev.seed(1);
    let (mut m, _) = adapters::apply(base, &sec, &dev).unwrap();
    m.visit_projections_mut(&mut |_, p| {
        if let Some(a) = &mut p.adapter {
            let b = Tensor::<2>::random(a.lora_b.dims(), Distribution::Normal(0.0, 0.1), &dev);
            a.lora_b = burn::module::Param::initialized(a.lora_b.id, b);
        }
    });
    let want = logits(&m, &dev);
    let adapter = tmp(&format!("{kind}-adapter"));
    adapters::save_peft(&m, &sec, None, &adapter).unwrap();
    let out = tmp(&format!("{kind}-merged"));
    let run = Command::new(env!("CARGO_BIN_EXE_bit-axon"))
        .args(["merge", "--base-model"])
        .arg(fixture())
        .arg("--adapter")
        .arg(&adapter)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let (_, merged, report) = BitAxonModel::load(&out, &dev).unwrap();
    assert!(report.unused.is_empty());
    let got = logits(&merged, &dev);
    let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("{kind}: merged checkpoint vs adapter model, max abs logit error {err:.3e}");
    assert!(err <= 1e-4);
}

#[test]
fn merged_lora_checkpoint_matches_the_adapter_model() {
    case("lora");
}

#[test]
fn merged_dora_checkpoint_matches_the_adapter_model() {
    case("dora");
}

#[test]
fn an_adapter_for_another_model_is_refused() {
    let dev = Device::flex();
    let (_, base, _) = BitAxonModel::load(&fixture(), &dev).unwrap();
    let (m, _) = adapters::apply(base, &AdapterSection { rank: 2, ..Default::default() }, &dev).unwrap();
    let adapter = tmp("bad-adapter");
    adapters::save_peft(&m, &AdapterSection { rank: 2, ..Default::default() }, None, &adapter).unwrap();
    // Corrupt the config: rank 3 does not match the stored factors.
    let p = adapter.join("adapter_config.json");
    let text = std::fs::read_to_string(&p).unwrap().replace("\"r\": 2", "\"r\": 3");
    std::fs::write(&p, text).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_bit-axon"))
        .args(["merge", "--base-model"])
        .arg(fixture())
        .arg("--adapter")
        .arg(&adapter)
        .arg("--output")
        .arg(tmp("bad-out"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    println!("{err}");
    assert!(err.contains("adapter_model.safetensors") && err.contains("lora_A"), "{err}");
}
