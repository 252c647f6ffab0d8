use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use bit_axon::checkpoint::FloatDtype;
use bit_axon::device::parse_device;
use bit_axon::{BitAxonConfig, BitAxonModel};
use bit_axon_quant::QuantFormat;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::FloatDType;
use clap::Args;

use crate::quantize::{Plan, float_bytes_per_token, quantize_model};

#[derive(Args)]
pub struct BenchmarkArgs {
    /// Checkpoint directory to benchmark.
    #[arg(long, conflicts_with = "preset")]
    model: Option<PathBuf>,
    /// Or a preset with random weights: small, medium, default.
    #[arg(long)]
    preset: Option<String>,
    /// Prompt tokens per sequence.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Tokens generated per sequence.
    #[arg(long, default_value_t = 64)]
    gen_len: usize,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// flex (CPU), wgpu or cuda[:N].
    #[arg(long, default_value = "flex")]
    device: String,
    /// Float precision of weights and activations: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Store the projections, expert stacks and LM head in 4 bits (nf4 or affine4, as
    /// `bit-axon quantize` does) before timing; activations stay in `--dtype`.
    #[arg(long)]
    quant: Option<String>,
    /// Group size of `--quant`.
    #[arg(long, default_value_t = 64)]
    group_size: usize,
    /// Peak memory bandwidth of the device in GB/s; measured (a sum over 1 GiB) when absent.
    #[arg(long)]
    peak_gbps: Option<f64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchmarkArgs) -> Result<()> {
    let mut device = parse_device(&args.device)?;
    if args.prompt_len == 0 || args.gen_len == 0 || args.batch == 0 {
        bail!("--prompt-len, --gen-len and --batch must be at least 1");
    }
    let (float_dtype, float_bytes) = match args.dtype.as_str() {
        "f32" => (FloatDType::F32, 4.0),
        "f16" => (FloatDType::F16, 2.0),
        "bf16" => (FloatDType::BF16, 2.0),
        other => bail!("--dtype `{other}`: expected f32, f16 or bf16"),
    };
    if float_dtype != FloatDType::F32 {
        // Before any tensor exists on the device: parameters and activations take this dtype.
        device
            .configure(float_dtype)
            .map_err(|e| anyhow::anyhow!("--dtype {} on {}: {e:?}", args.dtype, args.device))?;
    }
    let (cfg, model, source) = match (&args.model, &args.preset) {
        (Some(dir), _) => {
            let (cfg, model, _) = BitAxonModel::load(dir, &device)?;
            (cfg, model, dir.display().to_string())
        }
        (None, Some(p)) => {
            let cfg = BitAxonConfig::preset(p)?;
            device.seed(0);
            let model = cfg.init(&device);
            (cfg, model, format!("preset {p} (random weights)"))
        }
        (None, None) => bail!("give --model DIR or --preset NAME"),
    };
    let fd = if float_bytes == 4.0 { FloatDtype::F32 } else { FloatDtype::F16 };
    let (model, bytes_per_step, weights) = match &args.quant {
        Some(q) => {
            let plan = Plan::new(QuantFormat::parse(q)?, args.group_size, false, fd)?;
            let t = Instant::now();
            let model = quantize_model(model, &cfg, plan)?;
            eprintln!("quantized to {q} (group {}) in {:.1} s", args.group_size, t.elapsed().as_secs_f64());
            (model, plan.bytes_per_token(&cfg), format!("{q} g{} + {}", args.group_size, args.dtype))
        }
        None => (model, float_bytes_per_token(&cfg, float_bytes), args.dtype.clone()),
    };
    let (b, p, g) = (args.batch, args.prompt_len, args.gen_len);
    let ids = Tensor::<2>::random([b, p], Distribution::Uniform(0.0, cfg.vocab_size as f64), &device).int();
    eprintln!("model ready ({weights}); warming up");

    // Warm-up, not timed as throughput: the same prefill shape and two decode steps (one while
    // the attention ring is filling, one after), so GPU kernels are compiled before timing.
    let t = Instant::now();
    let mut warm = model.new_cache();
    let first = model.forward_cached(ids.clone(), &mut warm);
    let mut next = first.narrow(1, p - 1, 1).argmax(2).reshape([b, 1]);
    let _ = next.clone().into_data();
    // Progress on stderr: on a GPU the first calls compile every kernel, which can take minutes.
    eprintln!("warm-up: first prefill done after {:.1} s", t.elapsed().as_secs_f64());
    for i in 0..2 {
        next = model.forward_cached(next, &mut warm).argmax(2).reshape([b, 1]);
        let _ = next.clone().into_data();
        eprintln!("warm-up: decode step {} done after {:.1} s", i + 1, t.elapsed().as_secs_f64());
    }
    let warmup = t.elapsed().as_secs_f64();
    drop(warm);

    let mut cache = model.new_cache();
    let t0 = Instant::now();
    let logits = model.forward_cached(ids, &mut cache);
    let vocab = logits.dims()[2];
    let mut next = logits.narrow(1, p - 1, 1).reshape([b, vocab]).argmax(1).reshape([b, 1]);
    let _ = next.clone().into_data();
    let prefill = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for _ in 1..g {
        let logits = model.forward_cached(next, &mut cache);
        next = logits.reshape([b, vocab]).argmax(1).reshape([b, 1]);
        let _ = next.clone().into_data();
    }
    let decode = t1.elapsed().as_secs_f64();
    let steps = (g - 1).max(1) as f64;
    let step = decode / steps;

    // Weights one decode step must read (shared by the batch), at their stored size.
    let counts = cfg.param_counts();
    let achieved_gbps = bytes_per_step / step / 1e9;
    let (peak, peak_src) = match args.peak_gbps {
        Some(v) => (v, "given"),
        None => match measure_read_gbps(&device) {
            Ok(v) => (v, "measured read"),
            Err(e) => {
                eprintln!("warning: {e}");
                (f64::NAN, "probe failed")
            }
        },
    };
    let peak_rss = peak_rss_bytes();
    let r = serde_json::json!({
        "model": source, "device": args.device, "weights": weights, "batch": b, "prompt_len": p, "gen_len": g,
        "params_total": counts.total, "params_active_per_token": counts.active_per_token,
        "prefill_tokens_per_s": (b * p) as f64 / prefill,
        "time_to_first_token_ms": prefill * 1e3,
        "warmup_s": warmup,
        "weight_bytes_per_step": bytes_per_step,
        "decode_tokens_per_s": b as f64 * steps / decode,
        "decode_step_ms": step * 1e3,
        "weight_read_gbps": achieved_gbps,
        "peak_gbps": peak, "peak_gbps_source": peak_src,
        "fraction_of_peak_bandwidth": achieved_gbps / peak,
        "peak_rss_bytes": peak_rss,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("benchmark: {source}, weights {weights}, on {} — batch {b}, prompt {p}, generate {g}", args.device);
    println!("  warm-up          {warmup:>10.1} s (first prefill + 2 steps, includes kernel compilation)");
    println!("  prefill          {:>10.1} tokens/s", r["prefill_tokens_per_s"].as_f64().unwrap_or(0.0));
    println!("  time to 1st tok  {:>10.1} ms", prefill * 1e3);
    println!(
        "  decode           {:>10.1} tokens/s ({:.2} ms/step)",
        r["decode_tokens_per_s"].as_f64().unwrap_or(0.0),
        step * 1e3
    );
    println!(
        "  weight reads     {achieved_gbps:>10.2} GB/s = {:.3} of {peak:.1} GB/s ({peak_src}); {:.1} MB per step",
        achieved_gbps / peak,
        bytes_per_step / 1e6
    );
    match peak_rss {
        Some(v) => println!("  peak RSS         {:>10.1} MB", v as f64 / 1e6),
        None => println!("  peak RSS         unavailable on this OS"),
    }
    Ok(())
}

/// Device read bandwidth: a two-stage sum (rows of 1,024, then the row sums) over a vector of
/// ones uploaded from the host, best of 5, the scalar's read-back included. A reduction is used
/// because a fusing backend cannot skip its input the way it skips an elementwise result it sees
/// is never read (`x + 1` read back through a one-element slice reported 10-18 TB/s on a 4.8 TB/s
/// H200). The two stages are there because Burn's full `sum()` on CUDA ran at 96 GB/s over 1 GiB
/// where `sum_dim` reached 2.1 TB/s (`examples/read_probe.rs`, H200, 2026-12-02), so it measured the
/// reduction, not the memory. The sum must come out exactly `n`, or the figure is refused: a
/// previous probe (`random(..).sum()`) printed 5.6-14.4 TB/s on the H200, unexplained. Decoding is
/// weight *reads*, so this is its ceiling; a kernel that streams at the copy rate can beat it.
fn measure_read_gbps(device: &Device) -> Result<f64> {
    // 128 MiB on the CPU (a laptop's RAM), 1 GiB on a GPU (long against launch latency).
    let cpu = matches!(device.clone().inner().as_dispatch(), burn::backend::DispatchDevice::Flex(_));
    let n: usize = if cpu { 1 << 25 } else { 1 << 28 };
    let x =
        Tensor::<1>::from_data(burn::tensor::TensorData::new(vec![1.0f32; n], [n]), device).reshape([n / 1024, 1024]);
    let esz = x.dtype().size() as f64;
    // Row sums (1,024) are exact in every float type; the total (2^25 or 2^28) is exact in f32.
    let run = || -> Result<f32> {
        let s = x.clone().sum_dim(1).cast(burn::tensor::DType::F32).sum().into_data();
        Ok(s.convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?[0])
    };
    let got = run()?;
    if got != n as f32 {
        bail!("the read-bandwidth probe summed {n} ones to {got}: not using its timing (give --peak-gbps)");
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        run()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(n as f64 * esz / best / 1e9)
}

/// High-water mark of the process's resident memory (Linux `VmHWM`).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
