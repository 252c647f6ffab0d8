use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bit_axon::BitAxonModel;
use bit_axon::checkpoint::{FloatDtype, OwnedTensor, TensorFiles, write_safetensors};
use bit_axon::device::parse_device;
use bit_axon::model::{check_token_ids, token_tensor};
use burn::prelude::*;
use clap::Args;

#[derive(Args)]
pub struct ForwardArgs {
    /// Checkpoint directory (config.json + *.safetensors, reference layout).
    #[arg(long)]
    model: PathBuf,
    /// Safetensors file with `input_ids` (int32 or int64, [batch, seq]).
    #[arg(long)]
    input: PathBuf,
    /// Where to write `logits` (f32, [batch, seq, vocab]).
    #[arg(long)]
    output: PathBuf,
    /// Also write `hidden.embed_proj`, `hidden.layer_{i}` (each block's output) and `hidden.output_proj`.
    #[arg(long)]
    hidden: bool,
    /// flex (CPU), wgpu or cuda[:N].
    #[arg(long, default_value = "flex")]
    device: String,
}

pub fn run(args: ForwardArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let inputs = TensorFiles::open(&args.input, std::slice::from_ref(&args.input))?;
    let (ids, shape) = inputs.read_i64("input_ids").with_context(|| format!("reading {}", args.input.display()))?;
    if shape.len() != 2 {
        bail!("{}: `input_ids` has shape {shape:?}, expected [batch, seq]", args.input.display());
    }
    let shape = [shape[0], shape[1]];
    let (cfg, model, report) = BitAxonModel::load(&args.model, &device)?;
    if !report.unused.is_empty() {
        eprintln!(
            "warning: {} tensor(s) in {} are not used: {:?}",
            report.unused.len(),
            args.model.display(),
            report.unused
        );
    }
    check_token_ids(&ids, shape, cfg.vocab_size).with_context(|| format!("in {}", args.input.display()))?;
    let ids = token_tensor(ids, shape, &device);
    let mut out: Vec<(String, OwnedTensor)> = Vec::new();
    let mut push = |name: String, t: Tensor<3>| -> Result<()> {
        let dims = t.dims().to_vec();
        let v: Vec<f32> = t.into_data().convert::<f32>().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        out.push((name, OwnedTensor::from_f32(&v, dims, FloatDtype::F32)));
        Ok(())
    };
    if args.hidden {
        let hs = model.forward_hidden(ids);
        push("logits".into(), hs.logits)?;
        push("hidden.embed_proj".into(), hs.embed_proj)?;
        for (i, h) in hs.layers.into_iter().enumerate() {
            push(format!("hidden.layer_{i}"), h)?;
        }
        push("hidden.output_proj".into(), hs.output_proj)?;
    } else {
        push("logits".into(), model.forward(ids))?;
    }
    let meta = HashMap::from([("producer".to_string(), format!("bit-axon {}", env!("CARGO_PKG_VERSION")))]);
    write_safetensors(&args.output, &out, Some(meta))?;
    eprintln!("wrote {} tensor(s) to {}", out.len(), args.output.display());
    Ok(())
}
