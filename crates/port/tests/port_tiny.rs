//! Porting the committed tiny Qwen2 checkpoint (`tests/fixtures/qwen2-tiny`, bf16, vocab 2048)
//! to the `small` preset: every transform checked against the source values, the output loads
//! and runs, sharded/f32 sources give the same result, and bad inputs fail with clear errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bit_axon::checkpoint::{FloatDtype, OwnedTensor, TensorFiles, write_safetensors};
use bit_axon::{BitAxonConfig, BitAxonModel};
use bit_axon_port::report::Action;
use bit_axon_port::{PortOptions, VocabSource, port};
use burn::prelude::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/qwen2-tiny")
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("bit-axon-port-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn open(dir: &Path) -> TensorFiles {
    TensorFiles::open_dir(dir).unwrap()
}

fn read(f: &TensorFiles, name: &str) -> Vec<f32> {
    let shape = f.shape(name).unwrap_or_else(|| panic!("missing {name}")).to_vec();
    f.read_f32(name, &shape).unwrap()
}

fn f16_round(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

#[test]
fn tiny_qwen2_to_small_preset() {
    let out = tmp("small");
    let report = port(&PortOptions::new(&fixture(), &out, BitAxonConfig::small())).unwrap();
    let (src, dst) = (open(&fixture()), open(&out));
    let cfg = BitAxonConfig::small();
    let (v, ds, h, inter, x) =
        (cfg.vocab_size, cfg.d_source_model, cfg.hidden_dim, cfg.moe_intermediate_dim, cfg.moe_num_experts);

    // Vocabulary: 1021 merge-closed regular tokens (ids in order), then the 3 chat tokens.
    let map: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("vocab_map.json")).unwrap()).unwrap();
    let new_to_old: Vec<usize> =
        map["new_to_old"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(new_to_old.len(), v);
    assert_eq!(&new_to_old[..1021], &(0..1021).collect::<Vec<_>>()[..]);
    assert_eq!(&new_to_old[1021..], &[2045, 2046, 2047]);
    assert_eq!(report.vocab.chat_special_tokens.iter().map(|s| s.new_id).collect::<Vec<_>>(), vec![1021, 1022, 1023]);

    // Embedding rows through the map (bf16 → f32 is exact, output f32), and the tied head.
    let (se, de) = (read(&src, "model.embed_tokens.weight"), read(&dst, "embed_tokens.weight"));
    for (new, &old) in new_to_old.iter().enumerate() {
        assert_eq!(&de[new * ds..(new + 1) * ds], &se[old * ds..(old + 1) * ds], "embedding row {new} ← {old}");
    }
    assert_eq!(read(&dst, "lm_head.weight"), de);

    for i in 0..cfg.num_layers {
        let q = format!("model.layers.{i}");
        // Norms: source values then ones.
        let n = read(&dst, &format!("layer_{i}.input_norm.weight"));
        assert_eq!(&n[..ds], &read(&src, &format!("{q}.input_layernorm.weight"))[..]);
        assert!(n[ds..h].iter().all(|&x| x == 1.0));
        let kind = cfg.layer_kind(i);
        if !kind.has_moe() {
            continue;
        }
        let post = if kind.has_ssm() { "post_ssm_norm" } else { "post_attention_norm" };
        let n = read(&dst, &format!("layer_{i}.{post}.weight"));
        assert_eq!(&n[..ds], &read(&src, &format!("{q}.post_attention_layernorm.weight"))[..]);
        // Shared expert: gate'[:I, :Ds] = gate[:I, :], zeros elsewhere; down'[:Ds, :I] = down[:, :I].
        let src_inter = 768;
        for p in ["gate_proj", "up_proj", "down_proj"] {
            let s = read(&src, &format!("{q}.mlp.{p}.weight"));
            let d = read(&dst, &format!("layer_{i}.moe.shared_expert.{p}.weight"));
            let (rows, cols, scols) = if p == "down_proj" { (h, inter, src_inter) } else { (inter, h, ds) };
            for r in 0..rows {
                for c in 0..cols {
                    let want = if p == "down_proj" {
                        if r < ds { s[r * scols + c] } else { 0.0 }
                    } else if c < ds {
                        s[r * scols + c]
                    } else {
                        0.0
                    };
                    assert_eq!(d[r * cols + c], want, "layer {i} {p} [{r}, {c}]");
                }
            }
            // Routed experts (f16): expert 0 = the shared expert, the others = it + N(0, 0.02²).
            let e = read(&dst, &format!("layer_{i}.moe.switch_mlp.{p}.weight"));
            assert_eq!(e.len(), x * d.len());
            assert!(
                e[..d.len()].iter().zip(&d).all(|(a, b)| *a == f16_round(*b)),
                "layer {i} {p}: expert 0 is not exact"
            );
            for k in 1..x {
                let diff: Vec<f64> =
                    e[k * d.len()..(k + 1) * d.len()].iter().zip(&d).map(|(a, b)| (*a - *b) as f64).collect();
                let std = (diff.iter().map(|v| v * v).sum::<f64>() / diff.len() as f64).sqrt();
                assert!((std - 0.02).abs() < 0.001, "layer {i} {p} expert {k}: noise std {std}");
            }
        }
    }

    // Report: every target tensor once; sources only where the reference maps one.
    let expected: Vec<String> = bit_axon::params::model_tensors(&cfg).into_iter().map(|t| t.name).collect();
    assert_eq!(report.tensors.len(), expected.len() + 1, "every tensor plus the tied lm_head copy");
    let by_name: HashMap<&str, _> = report.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    assert_eq!(by_name["layer_0.ssm.in_proj.weight"].action, Action::Initialised);
    assert_eq!(by_name["input_proj.weight"].action, Action::Initialised);
    assert_eq!(by_name["layer_1.moe.switch_mlp.up_proj.weight"].transform, "copy_perturb");
    assert_eq!(by_name["layer_1.moe.shared_expert.down_proj.weight"].source, "model.layers.1.mlp.down_proj.weight");
    let norm = by_name["embed_tokens.weight"].norm;
    let want: f64 = de.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    assert!((norm - want).abs() < 1e-9 * want.max(1.0));
    let table = std::fs::read_to_string(out.join("port_report.txt")).unwrap();
    assert!(table.contains("pad_rms_norm") && table.contains("initialised"), "{table}");

    // The result loads with the model crate and runs.
    let device = Device::flex();
    let (lcfg, model, load) = BitAxonModel::load(&out, &device).unwrap();
    assert_eq!(lcfg, cfg);
    assert!(load.unused.is_empty(), "{:?}", load.unused);
    let logits = model.forward(Tensor::<2, Int>::from_data([[1021i64, 5, 17, 1022]], &device));
    let vals: Vec<f32> = logits.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
    assert_eq!(vals.len(), 4 * v);
    assert!(vals.iter().all(|x| x.is_finite()));

    // The truncated tokenizer and its config are written and load.
    let tk = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    assert_eq!(tk.get_vocab_size(true), v);
    let enc = tk.encode("<|im_start|>user\nhi<|im_end|>", false).unwrap();
    assert_eq!(enc.get_ids()[0], 1022);
    assert_eq!(*enc.get_ids().last().unwrap(), 1023);
    let tcfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap()).unwrap();
    assert_eq!(tcfg["eos_token"], "<|im_end|>");
    assert_eq!(tcfg["added_tokens_decoder"]["1023"]["content"], "<|im_end|>");
    std::fs::remove_dir_all(&out).unwrap();
}

/// Writes the fixture as f32 in two shards with an index.
fn sharded_f32_copy(dir: &Path) {
    let src = open(&fixture());
    let mut names: Vec<String> = src.names().map(String::from).collect();
    names.sort();
    let mut shards: [Vec<(String, OwnedTensor)>; 2] = [Vec::new(), Vec::new()];
    let mut map = serde_json::Map::new();
    for (k, name) in names.iter().enumerate() {
        let shape = src.shape(name).unwrap().to_vec();
        let t = OwnedTensor::from_f32(&src.read_f32(name, &shape).unwrap(), shape, FloatDtype::F32);
        let s = k % 2;
        map.insert(name.clone(), serde_json::json!(format!("model-0000{}-of-00002.safetensors", s + 1)));
        shards[s].push((name.clone(), t));
    }
    for (s, tensors) in shards.iter().enumerate() {
        write_safetensors(&dir.join(format!("model-0000{}-of-00002.safetensors", s + 1)), tensors, None).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
    }
}

#[test]
fn sharded_f32_source_gives_the_same_checkpoint_and_seeds_matter() {
    let src = tmp("sharded-src");
    sharded_f32_copy(&src);
    let (a, b, c) = (tmp("seed-a"), tmp("seed-b"), tmp("seed-c"));
    port(&PortOptions::new(&fixture(), &a, BitAxonConfig::small())).unwrap();
    port(&PortOptions::new(&src, &b, BitAxonConfig::small())).unwrap();
    let mut opts = PortOptions::new(&src, &c, BitAxonConfig::small());
    opts.seed = 1;
    port(&opts).unwrap();
    let (fa, fb, fc) = (open(&a), open(&b), open(&c));
    let mut names: Vec<&str> = fa.names().collect();
    names.sort();
    assert_eq!(names.len(), fb.names().count());
    for name in names {
        assert_eq!(fa.dtype(name), fb.dtype(name), "{name}");
        // Compared as bits so a mismatch does not print megabytes.
        let (x, y) = (read(&fa, name), read(&fb, name));
        assert!(x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "{name} differs");
    }
    assert!(read(&fa, "embed_tokens.weight") == read(&fc, "embed_tokens.weight"));
    assert!(read(&fa, "layer_0.ssm.in_proj.weight") != read(&fc, "layer_0.ssm.in_proj.weight"));
    assert!(
        read(&fa, "layer_1.moe.switch_mlp.gate_proj.weight") != read(&fc, "layer_1.moe.switch_mlp.gate_proj.weight")
    );
    assert!(
        read(&fa, "layer_1.moe.shared_expert.gate_proj.weight")
            == read(&fc, "layer_1.moe.shared_expert.gate_proj.weight")
    );
    for d in [src, a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

fn err(opts: &PortOptions) -> String {
    port(opts).err().map(|e| e.to_string()).expect("the port should fail")
}

#[test]
fn clear_errors() {
    let src = tmp("bad-src");
    sharded_f32_copy(&src);
    let out = tmp("bad-out");
    let opts = PortOptions::new(&src, &out, BitAxonConfig::small());

    // Missing shard.
    std::fs::rename(src.join("model-00002-of-00002.safetensors"), src.join("moved")).unwrap();
    let e = err(&opts);
    assert!(e.contains("model-00002-of-00002.safetensors") && e.contains("does not exist"), "{e}");
    std::fs::rename(src.join("moved"), src.join("model-00002-of-00002.safetensors")).unwrap();

    // Target width that does not match the source.
    let e = err(&PortOptions::new(&src, &out, BitAxonConfig { d_source_model: 64, ..BitAxonConfig::small() }));
    assert!(e.contains("hidden_size 128") && e.contains("d_source_model 64"), "{e}");
    let e = err(&PortOptions::new(&src, &out, BitAxonConfig { num_layers: 6, ..BitAxonConfig::small() }));
    assert!(e.contains("source has 4 layers, the target needs 6"), "{e}");

    // A tensor with the wrong shape: the error names it, its file and both shapes.
    let target = "model.layers.0.input_layernorm.weight";
    let shard = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        .into_iter()
        .map(|f| src.join(f))
        .find(|p| TensorFiles::open(p, std::slice::from_ref(p)).unwrap().contains(target))
        .unwrap();
    let f = TensorFiles::open(&shard, std::slice::from_ref(&shard)).unwrap();
    let mut tensors = Vec::new();
    for name in f.names() {
        let shape = f.shape(name).unwrap().to_vec();
        let vals = f.read_f32(name, &shape).unwrap();
        let t = if name == target {
            OwnedTensor::from_f32(&vals[..64], vec![64], FloatDtype::F32)
        } else {
            OwnedTensor::from_f32(&vals, shape, FloatDtype::F32)
        };
        tensors.push((name.to_string(), t));
    }
    drop(f);
    write_safetensors(&shard, &tensors, None).unwrap();
    let e = err(&opts);
    assert!(e.contains(target) && e.contains("[64]") && e.contains("[128]") && e.contains(".safetensors"), "{e}");

    // Unsupported architecture.
    let cfg_path = src.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).unwrap().replace("Qwen2ForCausalLM", "LlamaForCausalLM");
    std::fs::write(&cfg_path, text).unwrap();
    let e = err(&opts);
    assert!(e.contains("unsupported architecture") && e.contains("LlamaForCausalLM"), "{e}");

    // A vocabulary larger than the tokenizer, and a corpus without a tokenizer.
    let e = err(&PortOptions::new(&fixture(), &out, BitAxonConfig { vocab_size: 4096, ..BitAxonConfig::small() }));
    assert!(e.contains("vocabulary size 4096 exceeds"), "{e}");
    let bare = tmp("bare");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture().join(f), bare.join(f)).unwrap();
    }
    let mut o = PortOptions::new(&bare, &out, BitAxonConfig::small());
    o.vocab = VocabSource::Corpus(fixture().join("config.json"));
    assert!(err(&o).contains("needs a tokenizer"));
    for d in [src, out, bare] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn without_a_tokenizer_the_map_is_first_n() {
    let bare = tmp("bare-first-n");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture().join(f), bare.join(f)).unwrap();
    }
    let out = tmp("bare-first-n-out");
    let report = port(&PortOptions::new(&bare, &out, BitAxonConfig::small())).unwrap();
    assert!(report.vocab.method.contains("no tokenizer"));
    assert!(!out.join("tokenizer.json").exists());
    let (src, dst) = (open(&bare), open(&out));
    let (se, de) = (read(&src, "model.embed_tokens.weight"), read(&dst, "embed_tokens.weight"));
    assert_eq!(&se[..1024 * 128], &de[..]);
    for d in [bare, out] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn untied_target_head_takes_the_source_rows() {
    let out = tmp("untied");
    let cfg = BitAxonConfig { weight_tying: false, ..BitAxonConfig::small() };
    let report = port(&PortOptions::new(&fixture(), &out, cfg.clone())).unwrap();
    let head = report.tensors.iter().find(|t| t.name == "lm_head.weight").unwrap();
    assert_eq!((head.action, head.source.as_str()), (Action::Transformed, "model.embed_tokens.weight"));
    let dst = open(&out);
    // The tied source head is its embedding: the untied target head gets the same kept rows.
    assert!(read(&dst, "lm_head.weight") == read(&dst, "embed_tokens.weight"));
    let (_, model, load) = BitAxonModel::load(&out, &Device::flex()).unwrap();
    assert!(load.unused.is_empty() && model.lm_head.is_some());
    std::fs::remove_dir_all(&out).unwrap();
}
