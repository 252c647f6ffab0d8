//! Config validation and parameter arithmetic; checkpoint save/load round trips and the errors a
//! user gets for missing, mis-shaped, truncated or corrupt files.

mod common;

use std::path::{Path, PathBuf};

use bit_axon::checkpoint::FloatDtype;
use bit_axon::{BitAxonConfig, BitAxonModel, Error, SaveOptions};
use burn::prelude::*;
use common::*;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bit-axon-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn presets_have_the_true_parameter_counts() {
    // Computed from the shapes; the reference README's "3.2B / 1.4B" is wrong for its own config.
    let d = BitAxonConfig::default_preset().param_counts();
    assert_eq!(d.total, 5_766_778_880);
    assert_eq!(d.active_per_token, 2_746_880_000);
    let m = BitAxonConfig::medium().param_counts();
    assert_eq!(m.total, 1_483_874_304);
    let s = BitAxonConfig::small().param_counts();
    assert_eq!(s.total, 7_571_456);
    // The shapes agree with an allocated model.
    let model = BitAxonConfig::small().init(&device());
    assert_eq!(model.num_params(), s.total);
}

#[test]
fn layer_layout_is_the_sandwich() {
    let kinds = |n| {
        let cfg = BitAxonConfig { num_layers: n, ..BitAxonConfig::small() };
        cfg.layer_kinds().iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
    };
    assert_eq!(kinds(4), "ssm,swa_moe,ssm_moe,ssm_moe");
    assert_eq!(kinds(6), "ssm,ssm,swa_moe,swa_moe,ssm_moe,ssm_moe");
    assert_eq!(kinds(24).matches("swa_moe").count(), 8);
}

#[test]
fn validation_names_the_field() {
    let bad = BitAxonConfig { num_heads: 3, ..BitAxonConfig::small() };
    let msg = bad.validate().unwrap_err().to_string();
    assert!(msg.contains("hidden_dim") && msg.contains("num_heads"), "{msg}");
    let bad = BitAxonConfig { moe_top_k: 5, ..BitAxonConfig::small() };
    assert!(bad.validate().unwrap_err().to_string().contains("moe_top_k"));
    let bad = BitAxonConfig { ssm_d_state: 0, ..BitAxonConfig::small() };
    assert!(bad.validate().unwrap_err().to_string().contains("ssm_d_state"));
}

#[test]
fn toml_configs_parse_and_match_presets() {
    for name in ["small", "medium", "default"] {
        let path = workspace().join(format!("configs/models/{name}.toml"));
        assert_eq!(BitAxonConfig::from_path(&path).unwrap(), BitAxonConfig::preset(name).unwrap(), "{name}");
    }
    let p = Path::new("x.toml");
    let cfg = BitAxonConfig::from_toml_str("preset = \"small\"\nnum_layers = 6\n", p).unwrap();
    assert_eq!((cfg.num_layers, cfg.hidden_dim), (6, 256));
    let err = BitAxonConfig::from_toml_str("preset = \"small\"\nnum_layer = 6\n", p).unwrap_err().to_string();
    assert!(err.contains("x.toml") && err.contains("num_layer"), "{err}");
    let err = BitAxonConfig::from_toml_str("preset = \"small\"\nnum_heads = 7\n", p).unwrap_err().to_string();
    assert!(err.contains("hidden_dim"), "{err}");
}

#[test]
fn reference_config_json_reads() {
    let cfg = BitAxonConfig::from_path(&fixtures().join("upstream/tiny_windowed")).unwrap();
    assert_eq!((cfg.vocab_size, cfg.num_layers, cfg.swa_window_size, cfg.ssm_scan_step), (128, 6, 8, 8));
}

#[test]
fn save_then_load_round_trips() {
    let dev = device();
    dev.seed(3);
    let cfg = BitAxonConfig {
        vocab_size: 50,
        hidden_dim: 32,
        d_source_model: 16,
        moe_intermediate_dim: 24,
        ..BitAxonConfig::small()
    };
    let model = cfg.init(&dev);
    let dir = tmpdir("roundtrip");
    let opts = SaveOptions { dtype: FloatDtype::F32, expert_dtype: FloatDtype::F32 };
    model.save(&cfg, &dir, opts).unwrap();
    let (cfg2, loaded, report) = BitAxonModel::load(&dir, &dev).unwrap();
    assert_eq!(cfg2, cfg);
    assert!(report.unused.is_empty());
    let ids = Tensor::<2, Int>::from_data([[1, 2, 3, 4, 5, 49]], &dev);
    let a = to_vec(model.forward(ids.clone()));
    let b = to_vec(loaded.forward(ids.clone()));
    assert_eq!(a, b, "f32 round trip must be exact");

    // The reference layout: f16 experts; other weights stay exact, so logits move only slightly.
    model.save(&cfg, &dir, SaveOptions::default()).unwrap();
    let files = bit_axon::checkpoint::TensorFiles::open_dir(&dir).unwrap();
    assert_eq!(files.dtype("layer_1.moe.switch_mlp.up_proj.weight"), Some(safetensors::Dtype::F16));
    assert_eq!(files.shape("layer_1.moe.switch_mlp.up_proj.weight"), Some(&[4, 24, 32][..]));
    assert_eq!(files.shape("layer_0.ssm.conv1d.weight"), Some(&[512 / 8, 2, 1][..]));
    assert!(files.contains("lm_head.weight"));
    let (_, half, _) = BitAxonModel::load(&dir, &dev).unwrap();
    assert_close("f16 experts", &to_vec(half.forward(ids)), &a, 1e-2);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn copy_case(name: &str) -> PathBuf {
    let src = fixtures().join("upstream/tiny_windowed");
    let dir = tmpdir(name);
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn truncated_or_corrupt_file_is_a_clear_error() {
    let dir = copy_case("truncated");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = BitAxonModel::load(&dir, &device()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors") && err.contains("truncated"), "{err}");
    std::fs::write(&path, b"garbage").unwrap();
    let err = BitAxonModel::load(&dir, &device()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_shape_and_missing_tensor_are_named() {
    let dir = copy_case("shape");
    // A config whose hidden size disagrees with the weights.
    let mut cfg = BitAxonConfig::from_path(&dir).unwrap();
    cfg.moe_intermediate_dim = 64;
    std::fs::write(dir.join("config.json"), cfg.to_json()).unwrap();
    let err = BitAxonModel::load(&dir, &device()).unwrap_err();
    match &err {
        Error::Shape { name, expected, found, .. } => {
            assert!(name.contains("moe"), "{name}");
            assert_ne!(expected, found);
        }
        other => panic!("expected a shape error, got {other}"),
    }
    assert!(err.to_string().contains("expected ["), "{err}");
    // More layers than the file has.
    cfg.moe_intermediate_dim = 128;
    cfg.num_layers = 9;
    std::fs::write(dir.join("config.json"), cfg.to_json()).unwrap();
    let err = BitAxonModel::load(&dir, &device()).unwrap_err();
    assert!(matches!(err, Error::MissingTensor { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_config_json_names_the_file() {
    let dir = copy_case("badjson");
    std::fs::write(dir.join("config.json"), "{ \"hidden_dim\": 64, ").unwrap();
    let err = BitAxonModel::load(&dir, &device()).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sharded_checkpoint_loads_like_a_single_file() {
    use bit_axon::checkpoint::{OwnedTensor, TensorFiles, write_safetensors};
    let src = fixtures().join("upstream/tiny_windowed");
    let files = TensorFiles::open_dir(&src).unwrap();
    let mut names: Vec<String> = files.names().map(String::from).collect();
    names.sort();
    let dir = tmpdir("sharded");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let half = names.len() / 2;
    for (i, part) in [&names[..half], &names[half..]].into_iter().enumerate() {
        let tensors: Vec<(String, OwnedTensor)> = part
            .iter()
            .map(|n| {
                let shape = files.shape(n).unwrap().to_vec();
                let (bytes, dtype) = files.bytes(n, &shape).unwrap();
                (n.clone(), OwnedTensor::from_raw(dtype, shape, bytes.to_vec()))
            })
            .collect();
        write_safetensors(&dir.join(format!("model-0000{}-of-00002.safetensors", i + 1)), &tensors, None).unwrap();
    }
    let dev = device();
    let ids = Tensor::<2, Int>::from_data([[3, 1, 4, 1, 5, 9, 2, 6]], &dev);
    let (_, a, _) = BitAxonModel::load(&src, &dev).unwrap();
    let (_, b, _) = BitAxonModel::load(&dir, &dev).unwrap();
    assert_eq!(to_vec(a.forward(ids.clone())), to_vec(b.forward(ids)));
    // The same tensor in two shards is refused, naming both files.
    std::fs::copy(dir.join("model-00001-of-00002.safetensors"), dir.join("model-00003-dup.safetensors")).unwrap();
    let err = BitAxonModel::load(&dir, &dev).unwrap_err().to_string();
    assert!(err.contains("also in"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
