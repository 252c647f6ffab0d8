//! `bit-axon quantize`: a float checkpoint → a 4-bit checkpoint the model loads directly.
//!
//! Which tensors are stored in 4 bits is `bit_axon::quantize`'s rule (projections, expert stacks,
//! the LM head; the rest in `--float-dtype`, f16 by default).
//!
//! NF4 stores `absmax` per group (f32, or 8-bit double-quantized with `--double-quant`); affine4
//! writes the reference's MLX layout (`scales`/`biases`, `biases_quant` for expert stacks).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bit_axon::BitAxonConfig;
use bit_axon::BitAxonModel;
use bit_axon::checkpoint::{FloatDtype, Saver, write_safetensors, write_text_atomic};
use bit_axon::device::parse_device;
use bit_axon::params::{TensorRole, TensorSpec, model_tensors};
use bit_axon::quantize::quantized_layout;
use bit_axon_quant::QuantFormat;
use clap::Args;

#[derive(Args)]
pub struct QuantizeArgs {
    /// Float checkpoint directory (config.json + *.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Output directory (created).
    #[arg(long)]
    output: PathBuf,
    /// nf4 (QLoRA NormalFloat) or affine4 (MLX / reference layout).
    #[arg(long, default_value = "nf4")]
    format: String,
    /// Weights per scale (a multiple of 8; 32, 64 or 128 in the reference).
    #[arg(long, default_value_t = 64)]
    group_size: usize,
    /// NF4 only: store the absmax values in 8 bits (blocks of 256).
    #[arg(long)]
    double_quant: bool,
    /// Precision of the tensors kept unquantized: f16, bf16 or f32.
    #[arg(long, default_value = "f16")]
    float_dtype: String,
}

/// What `quantize` does to a model; also drives the size prediction.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub format: QuantFormat,
    pub group_size: usize,
    pub double_quant: bool,
    pub float_dtype: FloatDtype,
}

impl Plan {
    pub fn new(format: QuantFormat, group_size: usize, double_quant: bool, float_dtype: FloatDtype) -> Result<Self> {
        if group_size == 0 || group_size % 8 != 0 {
            bail!("--group-size {group_size}: must be a positive multiple of 8");
        }
        if double_quant && format != QuantFormat::Nf4 {
            bail!("--double-quant applies to nf4 only");
        }
        Ok(Self { format, group_size, double_quant, float_dtype })
    }

    /// Every tensor the output checkpoint holds, with whether it is quantized.
    fn tensors(&self, cfg: &BitAxonConfig) -> Vec<(TensorSpec, bool)> {
        quantized_layout(cfg, self.group_size)
    }

    /// Tensor-data bytes of the checkpoint `quantize` writes for `cfg` (headers excluded).
    pub fn predicted_bytes(&self, cfg: &BitAxonConfig) -> f64 {
        self.tensors(cfg).iter().map(|(t, q)| t.numel() as f64 * self.bytes_per_element(t, *q)).sum()
    }

    /// Bytes per element of `t` as stored (codes plus their share of the group scales).
    pub fn bytes_per_element(&self, t: &TensorSpec, quantized: bool) -> f64 {
        let fbytes = match self.float_dtype {
            FloatDtype::F32 => 4.0,
            _ => 2.0,
        };
        if !quantized {
            return fbytes;
        }
        let g = self.group_size as f64;
        0.5 + match self.format {
            QuantFormat::Affine4 => {
                let b = if t.role == TensorRole::RoutedExperts { 2.0 } else { fbytes };
                2.0 * b / g
            }
            QuantFormat::Nf4 if self.double_quant => {
                let groups = t.numel() as f64 / g;
                (groups + 4.0 * (groups / 256.0).ceil() + 4.0) / t.numel() as f64
            }
            QuantFormat::Nf4 => 4.0 / g,
        }
    }

    /// Weight bytes one decoded token reads: every tensor it touches (the routed experts it is
    /// sent to, the whole LM head, one embedding row), at the size `quantize` stores it.
    pub fn bytes_per_token(&self, cfg: &BitAxonConfig) -> f64 {
        decode_bytes(cfg, self.tensors(cfg), |t, q| self.bytes_per_element(t, q))
    }
}

/// [`Plan::bytes_per_token`] for a float model whose every tensor takes `float_bytes`.
pub fn float_bytes_per_token(cfg: &BitAxonConfig, float_bytes: f64) -> f64 {
    let tensors = model_tensors(cfg).into_iter().map(|t| (t, false)).collect();
    decode_bytes(cfg, tensors, |_, _| float_bytes)
}

fn decode_bytes(
    cfg: &BitAxonConfig,
    tensors: Vec<(TensorSpec, bool)>,
    bytes: impl Fn(&TensorSpec, bool) -> f64,
) -> f64 {
    let has_head = tensors.iter().any(|(t, _)| t.role == TensorRole::LmHead);
    tensors
        .iter()
        .map(|(t, q)| {
            let n = t.numel() as f64;
            let read = match t.role {
                // A tied embedding is also the head, read whole; otherwise one row.
                TensorRole::Embedding if has_head => n / t.shape[0] as f64,
                TensorRole::RoutedExperts => n * cfg.moe_top_k as f64 / cfg.moe_num_experts as f64,
                _ => n,
            };
            read * bytes(t, *q)
        })
        .sum()
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    let format = QuantFormat::parse(&args.format)?;
    let plan = Plan::new(format, args.group_size, args.double_quant, FloatDtype::parse(&args.float_dtype)?)?;
    let device = parse_device("flex")?;
    let (cfg, model, _) =
        BitAxonModel::load(&args.model, &device).with_context(|| format!("loading {}", args.model.display()))?;
    let model = quantize_model(model, &cfg, plan)?;
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let mut sv = Saver::new(plan.float_dtype, plan.float_dtype);
    sv.double_quant = plan.double_quant;
    model.export(&mut sv);
    if cfg.weight_tying && model.lm_head.is_none() {
        // The tied head stays the embedding: drop the copy `export` writes.
        sv.tensors.retain(|(n, _)| n != "lm_head.weight");
    }
    let meta = HashMap::from([
        ("format".to_string(), "mlx".to_string()),
        (
            "quantization".to_string(),
            format!("{format:?}, group {}, double_quant {}", plan.group_size, plan.double_quant),
        ),
    ]);
    let path = args.output.join("model.safetensors");
    write_safetensors(&path, &sv.tensors, Some(meta))?;
    write_text_atomic(&args.output.join("config.json"), &cfg.to_json())?;
    let size = std::fs::metadata(&path)?.len() as f64;
    let pred = plan.predicted_bytes(&cfg);
    println!(
        "wrote {} ({:.2} MB; predicted tensor data {:.2} MB, {:+.2}%)",
        path.display(),
        size / 1e6,
        pred / 1e6,
        100.0 * (size - pred) / pred
    );
    Ok(())
}

/// Replaces the planned float projections and expert stacks of `model` by 4-bit ones.
pub fn quantize_model(model: BitAxonModel, cfg: &BitAxonConfig, plan: Plan) -> Result<BitAxonModel> {
    Ok(model.quantize_weights(cfg, plan.format, plan.group_size)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bit_axon::checkpoint::TensorFiles;
    use bit_axon::layers::Projection;
    use burn::prelude::*;
    use std::path::Path;

    /// Decode reads every active parameter; a tied embedding is read whole as the head, an
    /// untied one a row per token.
    #[test]
    fn float_bytes_per_token_follow_the_active_parameters() {
        let tied = BitAxonConfig::small();
        assert!(tied.weight_tying);
        let active = tied.param_counts().active_per_token as f64;
        assert_eq!(float_bytes_per_token(&tied, 4.0), 4.0 * active);
        let untied = BitAxonConfig { weight_tying: false, ..BitAxonConfig::small() };
        let (v, ds) = (untied.vocab_size as f64, untied.d_source_model as f64);
        let active = untied.param_counts().active_per_token as f64;
        assert_eq!(float_bytes_per_token(&untied, 2.0), 2.0 * (active - v * ds + ds));
    }

    /// NF4 g64 stores 0.5 + 4/64 bytes per quantized weight; the rest stays at the float size.
    #[test]
    fn nf4_bytes_per_token_count_codes_and_scales() {
        let cfg = BitAxonConfig::medium();
        let plan = Plan::new(QuantFormat::Nf4, 64, false, FloatDtype::F16).unwrap();
        let float = float_bytes_per_token(&cfg, 2.0);
        let q = plan.bytes_per_token(&cfg);
        // Everything but the embedding, router, gates, norms and SSM dynamics is quantized, and the
        // tied head becomes its own quantized tensor while the embedding is read one row a token.
        let small: f64 = model_tensors(&cfg)
            .iter()
            .filter(|t| matches!(t.role, TensorRole::Router | TensorRole::Small))
            .map(|t| t.numel() as f64)
            .sum();
        let ds = cfg.d_source_model as f64;
        let quantized_elems = (float - 2.0 * small) / 2.0; // tied: head read once, as a float tensor
        let want = 2.0 * (small + ds) + quantized_elems * (0.5 + 4.0 / 64.0);
        assert!((q - want).abs() < 1.0, "{q} vs {want}");
    }

    /// A quantized model written and read back gives bit-identical logits (double quantization,
    /// applied when writing, moves them by much less than the 4-bit error).
    #[test]
    fn save_load_round_trip_is_exact() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/upstream/tiny_windowed");
        let device = Device::flex();
        let p = fixture.join("io.safetensors");
        let (ids, shape) = TensorFiles::open(&p, &[p.clone()]).unwrap().read_i64("input_ids").unwrap();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [shape[0], shape[1]]), &device);
        for (format, dq) in [(QuantFormat::Nf4, false), (QuantFormat::Nf4, true), (QuantFormat::Affine4, false)] {
            let plan = Plan::new(format, 32, dq, FloatDtype::F32).unwrap();
            let (cfg, model, _) = BitAxonModel::load(&fixture, &device).unwrap();
            let model = quantize_model(model, &cfg, plan).unwrap();
            assert!(model.input_proj.is_quantized() && model.lm_head.as_ref().is_some_and(Projection::is_quantized));
            let before: Vec<f32> = model.forward(ids.clone()).into_data().try_to_vec().unwrap();
            let dir = std::env::temp_dir().join(format!("bit-axon-q-unit-{}-{format:?}-{dq}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut sv = Saver::new(FloatDtype::F32, FloatDtype::F32);
            sv.double_quant = dq;
            model.export(&mut sv);
            write_safetensors(&dir.join("model.safetensors"), &sv.tensors, None).unwrap();
            write_text_atomic(&dir.join("config.json"), &cfg.to_json()).unwrap();
            let (_, loaded, report) = BitAxonModel::load(&dir, &device).unwrap();
            assert!(report.unused.is_empty(), "{:?}", report.unused);
            let after: Vec<f32> = loaded.forward(ids.clone()).into_data().try_to_vec().unwrap();
            if dq {
                let err = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(err > 0.0 && err < 5e-3, "double quant moved logits by {err}");
            } else {
                assert_eq!(before, after, "{format:?}");
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
