//! `bit-axon merge`: folds a LoRA/DoRA adapter (PEFT layout, as `train` writes it) into its base
//! model and writes a checkpoint that `forward`, `run` and `train` load.

use std::path::PathBuf;

use anyhow::{Result, bail};
use bit_axon::BitAxonModel;
use bit_axon::SaveOptions;
use bit_axon::checkpoint::FloatDtype;
use bit_axon::device::parse_device;
use bit_axon_quant::QuantFormat;
use bit_axon_train::adapters;
use clap::Args;

#[derive(Args)]
pub struct MergeArgs {
    /// Base checkpoint directory (float or 4-bit) the adapter was trained on.
    #[arg(long)]
    base_model: PathBuf,
    /// Adapter directory (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    adapter: PathBuf,
    /// Output checkpoint directory (created).
    #[arg(long)]
    output: PathBuf,
    /// For a 4-bit base: quantize the merged weights again (same format and group size) instead of
    /// writing them dequantized in float.
    #[arg(long)]
    requantize: bool,
    /// Precision of the float tensors written: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

pub fn run(args: MergeArgs) -> Result<()> {
    let device = parse_device("flex")?;
    let dtype = FloatDtype::parse(&args.dtype)?;
    let (cfg, base, _) = BitAxonModel::load(&args.base_model, &device)?;
    let quant = base.projections().into_iter().find_map(|(_, p)| p.as_quant().map(|q| (q.format(), q.group_size)));
    let (model, peft) = adapters::load_peft(base, &args.adapter, &device)?;
    let requantize: Option<(QuantFormat, usize)> = match (args.requantize, quant) {
        (true, Some(q)) => Some(q),
        (true, None) => bail!("--requantize: the base model {} is not 4-bit", args.base_model.display()),
        (false, _) => None,
    };
    let merged = adapters::merge(model, requantize)?;
    merged.save(&cfg, &args.output, SaveOptions { dtype, expert_dtype: dtype })?;
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        let src = args.base_model.join(f);
        if src.is_file() {
            std::fs::copy(&src, args.output.join(f))?;
        }
    }
    println!(
        "merged {} adapter (r={}, alpha={}) on {} projections into {}",
        if peft.use_dora { "DoRA" } else { "LoRA" },
        peft.r,
        peft.lora_alpha,
        peft.target_modules.len(),
        args.output.display()
    );
    Ok(())
}
