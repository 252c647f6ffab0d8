use std::path::PathBuf;

use anyhow::{Result, bail};
use bit_axon::BitAxonConfig;
use bit_axon::params::{TensorSpec, layer_tensors};
use bit_axon_quant::QuantFormat;
use clap::Args;

#[derive(Args)]
pub struct InfoArgs {
    /// A checkpoint directory (reads its config.json) or a config file (.json / .toml).
    #[arg(long, conflicts_with = "preset")]
    model: Option<PathBuf>,
    /// A built-in preset: small, medium or default.
    #[arg(long)]
    preset: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let (cfg, source) = match (&args.model, &args.preset) {
        (Some(path), _) => (BitAxonConfig::from_path(path)?, path.display().to_string()),
        (None, Some(name)) => (BitAxonConfig::preset(name)?, format!("preset `{name}`")),
        (None, None) => bail!("give --model DIR or --preset NAME (small, medium, default)"),
    };
    let counts = cfg.param_counts();
    let quant = |f, dq| {
        crate::quantize::Plan::new(f, 64, dq, bit_axon::checkpoint::FloatDtype::F16).map(|p| p.predicted_bytes(&cfg))
    };
    let (nf4_dq, nf4, affine4) =
        (quant(QuantFormat::Nf4, true)?, quant(QuantFormat::Nf4, false)?, quant(QuantFormat::Affine4, false)?);
    let mem = cfg.weight_memory();
    let layers: Vec<(usize, &str, usize)> = (0..cfg.num_layers)
        .map(|i| (i, cfg.layer_kind(i).name(), layer_tensors(&cfg, i).iter().map(TensorSpec::numel).sum()))
        .collect();
    if args.json {
        let v = serde_json::json!({
            "source": source,
            "config": cfg,
            "layers": layers.iter().map(|(i, k, n)| serde_json::json!({"index": i, "kind": k, "params": n})).collect::<Vec<_>>(),
            "params": {"total": counts.total, "active_per_token": counts.active_per_token, "routed_experts": counts.routed_experts},
            "weight_bytes": {"f32": mem.f32_bytes, "f16": mem.f16_bytes},
            "quantized_checkpoint_bytes": {"nf4_gs64_double_quant": nf4_dq, "nf4_gs64": nf4, "affine4_gs64": affine4},
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("Bit-Axon model ({source})");
    println!(
        "  vocab {}  hidden {}  layers {}  heads {} (head_dim {})  d_source {}",
        cfg.vocab_size,
        cfg.hidden_dim,
        cfg.num_layers,
        cfg.num_heads,
        cfg.head_dim(),
        cfg.d_source_model
    );
    println!(
        "  SSM: E {}  N {}  conv {}  scan chunk {} | SWA window {} | MoE {} experts, top-{}, inter {} + shared",
        cfg.ssm_intermediate_dim(),
        cfg.ssm_d_state,
        cfg.ssm_d_conv,
        cfg.ssm_scan_step,
        cfg.swa_window_size,
        cfg.moe_num_experts,
        cfg.moe_top_k,
        cfg.moe_intermediate_dim
    );
    println!("\nlayer  kind      params");
    for (i, kind, n) in &layers {
        println!("{i:>5}  {kind:<8} {:>14}", group(*n));
    }
    println!("\nparameters   total {:>16} ({})", group(counts.total), human(counts.total as f64, ""));
    println!(
        "             active/token {:>9} ({})",
        group(counts.active_per_token),
        human(counts.active_per_token as f64, "")
    );
    println!("weights      f32 {}   f16 {}", human(mem.f32_bytes, "B"), human(mem.f16_bytes, "B"));
    println!(
        "4-bit        (as `bit-axon quantize` writes: group 64; embedding, router, norms, SSM A/D/dt/conv in f16)\n             nf4 + double quant {}   nf4 {}   affine4 {}",
        human(nf4_dq, "B"),
        human(nf4, "B"),
        human(affine4, "B")
    );
    Ok(())
}

fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human(v: f64, unit: &str) -> String {
    let (div, suffix) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    format!("{:.2} {suffix}{unit}", v / div)
}
