//! Fused 4-bit dequantize-matmul kernels: GEMV (decode, batch 1) and tiled GEMM (prefill, 2048
//! tokens) at the default config's projection shapes, with achieved bandwidth against the device's
//! copy bandwidth and the speed-up over a dense f16 matmul of the same shape, all measured in the
//! same run. Also the plain-tensor path (dequantize then f32 matmul) and, for the GEMM, the
//! transposed product (QLoRA's input gradient). Each shape is checked against the plain path.
//! Every GEMV kernel ([`GemvKernel`]: `Lanes`, `Rows` (and at 4 outputs per cube), `Stream`, `Auto`
//! (the default, i.e. `Slices` with its automatic split) and `Slices` (and, for NF4, the `StreamWith`
//! sweep and the fixed `Slices` splits of `QBENCH_SLICES`)) is timed, each
//! in its own table row.
//!
//! ```sh
//! CUDARC_CUDA_VERSION=13000 cargo bench -p bit-axon-kernels --features cuda --bench quant
//! # small smoke run on wgpu/lavapipe (debug build of the bench; the deps are optimised):
//! QBENCH_SHAPES=256x384 QBENCH_TOKENS=64 QBENCH_COPY_LOG2=22 QBENCH_ITERS=50 QBENCH_BLOCKER=256 \
//!   XDG_RUNTIME_DIR=/tmp cargo test -p bit-axon-kernels --features wgpu --bench quant
//! ```
//! Knobs (env): `QBENCH_SHAPES` (`in x out` list, default
//! "2560x7680,2560x15360,7680x2560,2560x4096,4096x2560"; 2560x15360 is the gate and up projections
//! side by side, "2560×7680×2"), `QBENCH_TOKENS` (2048), `QBENCH_GS` (64), `QBENCH_ITERS` (GEMV
//! 500 calls for the wall time, GEMM 25 calls), `QBENCH_DEV_ITERS` (200 GEMV calls for the device
//! time), `QBENCH_BLOCKER` (4096: side of the blocker's f32 matmul), `QBENCH_COPY_LOG2` (30),
//! `QBENCH_ROTATE_MB` (256: the 4-bit GEMV calls cycle through copies of the weight adding up to at
//! least this much, so each call reads its weight from DRAM, not from the L2 the last call filled;
//! 1: one copy, as in runs 1-9), `QBENCH_SWEEP` (0: skip the `StreamWith` sweep), `QBENCH_SLICES`
//! (the fixed `Slices` splits timed, `lanesxrowsxdepth,…`), `QBENCH_HALF` (0: skip the NF4 rows with
//! f16 activations, which take the `f16x2` path on CUDA).
//!
//! Three figures per call:
//! - **wall**: `iters` calls launched back to back, their outputs kept, then one device sync; the
//!   mean per call (after two warm-up calls, which include JIT and autotune). When the host's
//!   per-call cost (Burn dispatch, fusion server thread, CubeCL launch) exceeds the kernel's, this
//!   is that host cost, not the kernel.
//! - **device**: the device's own clock (CubeCL's profiling window: CUDA events, wgpu timestamp
//!   queries) over `dev_iters` calls, with the "queue-ahead" trick so that host cost cannot show:
//!   first a *blocker* (a chain of f32 `[S,S]·[S,S]` matmuls, sized to run ≥ 2× the host time of
//!   the calls) is put on the stream in its own window, then the window of the calls is opened and
//!   the calls launched while the device is still busy with the blocker; the window's start mark
//!   sits behind the blocker, so it measures the calls alone, back to back on the device. The
//!   `queued` column says whether that held: every call (and the window's end mark) was on the
//!   stream before the blocker could have finished (host time since the blocker was launched <
//!   the blocker's device time). When it says `NO`, the device time includes host gaps, i.e. is
//!   an upper bound. (On a backend without a device clock the window falls back to wall time
//!   between two syncs; the header prints the timing method.)
//! - **host launch**: host seconds per call while launching those `dev_iters` calls (the device
//!   is busy with the blocker, so nothing waits on it): the per-call host cost alone.
//!
//! GB/s, % of copy and the speed-up vs dense f16 are given from the wall and device figures. The
//! per-call floor (the same GEMV on a 256×256 weight, whose 32 KB take ~10 ns at the copy
//! bandwidth) is printed all three ways too. GEMM calls and the copy are milliseconds long: wall time with a one-element
//! read-back after each call (see `time_probe`), device time from one window per call.
//! Bytes counted for the 4-bit kernels: packed codes `N·K/2`, scales `4·N·K/gs` (and biases for
//! affine), input and output (f32). Dense f16: weight `2·N·K`, input and output (f16).

use std::io::Write;
use std::time::Instant;

use bit_axon_kernels::quant::{GemvKernel, QuantWeight, quant_linear_t, quant_linear_with};
use bit_axon_quant::{QuantFormat, QuantLinear, QuantMatrix, QuantizedWeight};
use burn::prelude::*;
use burn::tensor::{DType, Distribution, ProfileDuration, ProfileOptions, TimingMethod};

fn env_str(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_one(name: &str, default: usize) -> usize {
    let s = env_str(name, &default.to_string());
    s.trim().parse().unwrap_or_else(|_| panic!("{name}: `{s}` is not a number"))
}

fn device() -> Device {
    #[cfg(feature = "cuda")]
    return Device::cuda(0);
    #[cfg(not(feature = "cuda"))]
    Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
}

/// Mean seconds per call: two warm-up calls, then `iters` calls back to back (outputs kept alive
/// until the sync, so none can be dropped unexecuted), then a device sync.
fn time<T>(dev: &Device, iters: usize, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..2 {
        drop(f());
    }
    dev.sync().expect("sync");
    let start = Instant::now();
    let outs: Vec<T> = (0..iters).map(|_| f()).collect();
    dev.sync().expect("sync");
    let t = start.elapsed().as_secs_f64() / iters as f64;
    drop(outs);
    t
}

/// Mean seconds per call for large outputs: each call's first element is read back before the
/// next call and the output dropped, so the memory pool reuses its buffers (allocation stays out of
/// the figure); the read-back latency is counted (small against a millisecond call).
fn time_probe(dev: &Device, iters: usize, mut f: impl FnMut() -> Tensor<2>) -> f64 {
    let probe = |t: Tensor<2>| drop(t.narrow(0, 0, 1).narrow(1, 0, 1).into_data());
    probe(f());
    dev.sync().expect("sync");
    let start = Instant::now();
    for _ in 0..iters {
        probe(f());
    }
    dev.sync().expect("sync");
    start.elapsed().as_secs_f64() / iters as f64
}

/// The GEMV kernels timed per shape (`Rows` and `Stream` pick their parameters themselves; the
/// fixed ones show what the choice is worth; the fixed `StreamWith` sweep runs on NF4 only).
const KERNELS: [GemvKernel; 6] = [
    GemvKernel::Lanes,
    GemvKernel::Rows,
    GemvKernel::RowsPerCube(4),
    GemvKernel::Stream,
    GemvKernel::Auto,
    GemvKernel::Slices { lanes: 0, rows: 0, depth: 0 },
];

/// Fixed `Slices` splits timed per NF4 shape: `QBENCH_SLICES`, a list of `lanesxrowsxdepth`
/// (default `16x4x1,16x2x2,32x2x2,32x1x4`, the automatic candidates; empty: none).
fn slice_sweep() -> Vec<GemvKernel> {
    let list = std::env::var("QBENCH_SLICES").unwrap_or_else(|_| "16x4x1,16x2x2,32x2x2,32x1x4".into());
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let v: Vec<usize> =
                s.split('x').map(|x| x.trim().parse().expect("QBENCH_SLICES: LANESxROWSxDEPTH,..")).collect();
            assert!(v.len() == 3, "QBENCH_SLICES: LANESxROWSxDEPTH,.. (got {s})");
            GemvKernel::Slices { lanes: v[0], rows: v[1], depth: v[2] }
        })
        .collect()
}

/// `StreamWith` rows per chunk × chunks per cube swept per NF4 shape (none with `QBENCH_SWEEP=0`).
fn stream_sweep() -> Vec<GemvKernel> {
    let mut v = Vec::new();
    if std::env::var("QBENCH_SWEEP").is_ok_and(|v| v == "0") {
        return v;
    }
    for rows in [4, 8, 16] {
        for chunks in [1, 2, 4, 8] {
            v.push(GemvKernel::StreamWith { rows, chunks });
        }
    }
    v
}

fn flush() -> ProfileOptions {
    ProfileOptions::default().flush()
}

/// Seconds of a profiling window, once the device has answered (`None`: nothing measured).
fn resolve(d: ProfileDuration) -> Option<f64> {
    cubecl::future::block_on(d.resolve()).map(|t| t.duration().as_secs_f64())
}

/// Device seconds per call of a millisecond-long call: one profiling window per call (each output
/// read back after its window, so buffers are reused), mean over `iters` after one warm-up.
fn device_probe(dev: &Device, iters: usize, f: impl Fn() -> Tensor<2> + Sync) -> Option<f64> {
    let probe = |t: Tensor<2>| drop(t.narrow(0, 0, 1).narrow(1, 0, 1).into_data());
    probe(f());
    let mut total = 0.0;
    for _ in 0..iters {
        let (out, d) = dev.profile_with(flush(), &f).expect("profile window");
        probe(out);
        total += resolve(d)?;
    }
    Some(total / iters as f64)
}

/// The queue-ahead blocker: `c·b·b·…` with `c, b` f32 `[S, S]` (`b` scaled by `1/√S`, so the
/// chain's values stay of order 1), each matmul `each` seconds of device time.
struct Blocker {
    c: Tensor<2>,
    b: Tensor<2>,
    each: f64,
}

impl Blocker {
    fn new(dev: &Device, side: usize) -> Self {
        let c = Tensor::<2>::random([side, side], Distribution::Normal(0.0, 1.0), dev);
        let b = Tensor::<2>::random([side, side], Distribution::Normal(0.0, 1.0 / (side as f64).sqrt()), dev);
        let mut blk = Blocker { c, b, each: 0.0 };
        drop(blk.run(2).into_data());
        let (out, d) = dev.profile_with(flush(), || blk.run(4)).expect("profile window");
        drop(out.into_data());
        blk.each = resolve(d).unwrap_or(1e-3) / 4.0;
        blk
    }

    fn run(&self, reps: usize) -> Tensor<2> {
        let mut c = self.c.clone();
        for _ in 0..reps {
            c = c.matmul(self.b.clone());
        }
        c
    }
}

/// Wall and device seconds per call (see the header).
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    /// Host seconds per call to launch the calls while the device is busy (launch rate).
    host: f64,
    device: Option<f64>,
    /// All calls were on the stream before the blocker could finish (device time is clean).
    queued: bool,
}

fn measure<T: Send + 'static>(
    dev: &Device,
    iters: usize,
    dev_iters: usize,
    blocker: &Blocker,
    mut f: impl FnMut() -> T + Send,
) -> Timing {
    let wall = time(dev, iters, &mut f);
    // The blocker runs at least twice as long as the host needs to launch the calls.
    let reps = ((2.0 * wall * dev_iters as f64 + 2e-3) / blocker.each).ceil().clamp(1.0, 2000.0) as usize;
    dev.sync().expect("sync");
    let t0 = Instant::now();
    let (blk, d_blk) = dev.profile_with(flush(), || blocker.run(reps)).expect("profile window");
    let t1 = Instant::now();
    let (outs, d) =
        dev.profile_with(flush(), || (0..dev_iters).map(|_| f()).collect::<Vec<T>>()).expect("profile window");
    let launched = t0.elapsed().as_secs_f64();
    let host = t1.elapsed().as_secs_f64() / dev_iters as f64;
    dev.sync().expect("sync");
    drop(outs);
    drop(blk);
    let (d_blk, d) = (resolve(d_blk), resolve(d));
    if std::env::var("QBENCH_VERBOSE").is_ok_and(|v| v == "1") {
        eprintln!(
            "  [measure: wall {:.2} µs/call; host {:.2} µs/call; blocker {reps} × {:.3} ms = {} ms device; {dev_iters} calls launched {:.3} ms after the blocker; their window {} ms]",
            wall * 1e6,
            host * 1e6,
            blocker.each * 1e3,
            d_blk.map_or("-".into(), |b| format!("{:.3}", b * 1e3)),
            launched * 1e3,
            d.map_or("-".into(), |b| format!("{:.3}", b * 1e3)),
        );
    }
    Timing { wall, host, device: d.map(|d| d / dev_iters as f64), queued: d_blk.is_some_and(|b| launched < b) }
}

fn us(t: Option<f64>) -> String {
    t.map_or("-".into(), |t| format!("{:.2}", t * 1e6))
}

fn rate(bytes: f64, t: Option<f64>) -> String {
    t.map_or("-".into(), |t| format!("{:.0}", bytes / t / 1e9))
}

fn pct(bytes: f64, t: Option<f64>, copy: Option<f64>) -> String {
    match (t, copy) {
        (Some(t), Some(c)) => format!("{:.0}%", 100.0 * bytes / t / 1e9 / c),
        _ => "-".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}×", a / b),
        _ => "-".into(),
    }
}

fn quant_weight(layer: &QuantLinear, gs: usize) -> QuantWeight {
    QuantWeight {
        packed: layer.packed.clone(),
        scales: layer.scales.clone(),
        biases: layer.biases.clone(),
        lut: layer.lut.clone(),
        group_size: gs,
    }
}

fn random_matrix(format: QuantFormat, n: usize, k: usize, gs: usize) -> QuantMatrix {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let w: Vec<f32> = (0..n * k)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.05
        })
        .collect();
    QuantMatrix::quantize("bench weight", format, &w, &[n, k], gs).expect("quantize")
}

fn max_rel_err(got: Tensor<2>, want: Tensor<2>) -> f32 {
    let scale = want.clone().abs().max().into_scalar::<f32>();
    let err = (got - want).abs().max().into_scalar::<f32>();
    err / scale.max(1e-30)
}

fn main() {
    let dev = device();
    dev.seed(1);
    let shapes: Vec<(usize, usize)> = env_str("QBENCH_SHAPES", "2560x7680,2560x15360,7680x2560,2560x4096,4096x2560")
        .split(',')
        .map(|s| {
            let v: Vec<usize> = s.split('x').map(|x| x.trim().parse().expect("QBENCH_SHAPES: INxOUT,..")).collect();
            (v[0], v[1])
        })
        .collect();
    let tokens = env_one("QBENCH_TOKENS", 2048);
    let gs = env_one("QBENCH_GS", 64);
    let gemv_iters = env_one("QBENCH_ITERS", 500);
    let dev_iters = env_one("QBENCH_DEV_ITERS", 200);
    let gemm_iters = (gemv_iters / 20).max(3);
    let rotate_mb = env_one("QBENCH_ROTATE_MB", 256) as f64;
    println!(
        "device: {dev:?}; group size {gs}; GEMM tokens {tokens}; iters GEMV {gemv_iters} (wall), {dev_iters} (device), GEMM {gemm_iters}; GEMV weights cycled through copies of ≥ {rotate_mb} MB in all (QBENCH_ROTATE_MB; H200 L2: 50 MB)"
    );

    let k = env_one("QBENCH_COPY_LOG2", 30);
    let big = Tensor::<2>::random([1, 1 << k], Distribution::Uniform(0.0, 1.0), &dev);
    let method = dev.profile(|| ()).expect("profile window").1.timing_method();
    println!(
        "device timing method: {method:?}{}",
        if method == TimingMethod::Device {
            ""
        } else {
            " (NOT the device clock: device figures are wall time between syncs)"
        }
    );
    let t = time_probe(&dev, 5, || big.clone().add_scalar(1.0));
    let t_dev = device_probe(&dev, 5, || big.clone().add_scalar(1.0));
    let bytes = 2.0 * 4.0 * (1u64 << k) as f64;
    let copy = bytes / t / 1e9;
    let copy_dev = t_dev.map(|t| bytes / t / 1e9);
    println!(
        "copy bandwidth (x+1 over 2^{k} f32, read + write): wall {copy:.0} GB/s, device {} GB/s (the % copy columns use the device figure)",
        rate(bytes, t_dev)
    );
    drop(big);
    let blocker = Blocker::new(&dev, env_one("QBENCH_BLOCKER", 4096));
    println!(
        "blocker: f32 matmul {0}×{0}·{0}×{0}, {1:.3} ms device time each",
        blocker.b.dims()[0],
        blocker.each * 1e3
    );
    // The per-call floor: the same GEMV on a 256×256 NF4 weight (its 32 KB take ~10 ns at the copy
    // bandwidth, so what is left is the cost of a call); the new kernels' floor comes in pass 2.
    let floor_m = random_matrix(QuantFormat::Nf4, 256, 256, gs);
    let floor_w = quant_weight(&QuantLinear::from_matrix(&floor_m, &dev), gs);
    let floor_x = Tensor::<2>::random([1, 256], Distribution::Uniform(-1.0, 1.0), &dev);
    let floor = |kernel: GemvKernel| {
        let t = measure(&dev, gemv_iters, dev_iters, &blocker, || quant_linear_with(floor_x.clone(), &floor_w, kernel));
        println!(
            "per-call floor (4-bit GEMV {kernel:?} on a 256×256 weight): wall {:.2} µs, host launch {:.2} µs, device {} µs (queued: {})",
            t.wall * 1e6,
            t.host * 1e6,
            us(t.device),
            if t.queued { "yes" } else { "NO" }
        );
    };
    floor(GemvKernel::Lanes);
    {
        let x16 = floor_x.clone().cast(DType::F16);
        let w16 = Tensor::<2>::random([256, 256], Distribution::Normal(0.0, 0.02), &dev).cast(DType::F16);
        let t = measure(&dev, gemv_iters, dev_iters, &blocker, || x16.clone().matmul(w16.clone()));
        println!(
            "per-call floor (dense f16 [1,256]·[256,256]): wall {:.2} µs, host launch {:.2} µs, device {} µs (queued: {})",
            t.wall * 1e6,
            t.host * 1e6,
            us(t.device),
            if t.queued { "yes" } else { "NO" }
        );
    }
    let header = || {
        println!(
            "| in | out | format | kernel | wall µs | host launch µs | device µs | GB/s (dev) | % copy (dev) | GB/s (wall) | dense f16 wall µs | dense f16 device µs | speed-up vs f16 (wall) | speed-up vs f16 (dev) | queued | plain µs | max rel err vs plain |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    };
    // One GEMV row: `kernel` on `c`, timed both ways and checked against the plain path.
    let gemv_row = |c: &Case, kernel: GemvKernel| {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let t = measure(&dev, gemv_iters, dev_iters, &blocker, || {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % c.copies.len();
            quant_linear_with(c.x.clone(), &c.copies[i], kernel)
        });
        // The plain path in f32 on the same (possibly f16-rounded) `x`.
        let got = quant_linear_with(c.x.clone(), &c.w, kernel).cast(DType::F32);
        let err = max_rel_err(got, c.layer.forward_plain(c.x.clone().cast(DType::F32)));
        println!(
            "| {} | {} | {:?} | {kernel:?} | {:.2} | {:.2} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {:.1} | {err:.1e} |",
            c.d_in,
            c.d_out,
            c.format,
            t.wall * 1e6,
            t.host * 1e6,
            us(t.device),
            rate(c.bytes, t.device),
            pct(c.bytes, t.device, copy_dev),
            rate(c.bytes, Some(t.wall)),
            c.dense.wall * 1e6,
            us(c.dense.device),
            ratio(Some(c.dense.wall), Some(t.wall)),
            ratio(c.dense.device, t.device),
            match (t.queued, c.dense.queued) {
                (true, true) => "yes",
                (true, false) => "NO (dense)",
                (false, true) => "NO (4-bit)",
                (false, false) => "NO",
            },
            c.t_plain * 1e6,
        );
        std::io::stdout().flush().ok();
    };

    // Pass 1: the `Lanes` kernel (the default in runs 1-3), the dense f16 matmul, the plain path
    // and the GEMM, for every shape.
    println!();
    println!("GEMV, batch 1 (x f32 for the 4-bit kernels, f16 for the dense matmul); µs per call, wall / device:");
    header();
    std::io::stdout().flush().ok();
    let mut cases = Vec::new();
    let mut gemm_rows = Vec::new();
    for &(d_in, d_out) in &shapes {
        let wf16 = Tensor::<2>::random([d_in, d_out], Distribution::Normal(0.0, 0.02), &dev).cast(DType::F16);
        let x16 = Tensor::<2>::random([1, d_in], Distribution::Uniform(-1.0, 1.0), &dev).cast(DType::F16);
        let dense = measure(&dev, gemv_iters, dev_iters, &blocker, || x16.clone().matmul(wf16.clone()));
        for format in [QuantFormat::Nf4, QuantFormat::Affine4] {
            let m = random_matrix(format, d_out, d_in, gs);
            let layer = QuantLinear::from_matrix(&m, &dev);
            let w = quant_weight(&layer, gs);
            let x = Tensor::<2>::random([1, d_in], Distribution::Uniform(-1.0, 1.0), &dev);
            let t_plain = time(&dev, gemv_iters.min(20), || layer.forward_plain(x.clone()));
            let groups = (d_out * d_in / gs) as f64 * if layer.biases.is_some() { 8.0 } else { 4.0 };
            let bytes = (d_out * d_in) as f64 / 2.0 + groups + 4.0 * (d_in + d_out) as f64;
            // Copies of the weight, cycled through call by call, so that the calls read DRAM rather
            // than the last call's weight in L2 (as a model's layers do).
            let n_copies = ((rotate_mb * 1e6) / bytes).ceil().max(1.0) as usize;
            let copies = (0..n_copies)
                .map(|i| if i == 0 { w.clone() } else { quant_weight(&QuantLinear::from_matrix(&m, &dev), gs) })
                .collect();
            let case = Case { d_in, d_out, format, layer, w, x, bytes, t_plain, dense, copies };
            gemv_row(&case, GemvKernel::Lanes);
            if format == QuantFormat::Nf4 {
                // GEMM at `tokens` rows (NF4 only), measured after the GEMV row.
                let (layer, w) = (&case.layer, &case.w);
                let xm = Tensor::<2>::random([tokens, d_in], Distribution::Uniform(-1.0, 1.0), &dev);
                let x16m = xm.clone().cast(DType::F16);
                let gm = Tensor::<2>::random([tokens, d_out], Distribution::Uniform(-1.0, 1.0), &dev);
                let fwd = || quant_linear_with(xm.clone(), w, GemvKernel::default());
                let bwd = || quant_linear_t(gm.clone(), w);
                let dense_m = || x16m.clone().matmul(wf16.clone());
                let t_gemm = time_probe(&dev, gemm_iters, fwd);
                let t_gemm_t = time_probe(&dev, gemm_iters, bwd);
                let t_dense_m = time_probe(&dev, gemm_iters, dense_m);
                let d_gemm = device_probe(&dev, gemm_iters, fwd);
                let d_gemm_t = device_probe(&dev, gemm_iters, bwd);
                let d_dense_m = device_probe(&dev, gemm_iters, dense_m);
                let err_m = max_rel_err(fwd(), layer.forward_plain(xm.clone()));
                let err_t = max_rel_err(bwd(), layer.backward_input_plain(gm.clone()));
                let flop = 2.0 * (tokens * d_in * d_out) as f64;
                let tf = |t: Option<f64>| t.map_or("-".into(), |t| format!("{:.1}", flop / t / 1e12));
                let ms = |t: Option<f64>| t.map_or("-".into(), |t| format!("{:.3}", t * 1e3));
                let row = format!(
                    "| {d_in} | {d_out} | {} / {} | {} | {} / {} | {} | {} / {} | {} | {} | {err_m:.1e} / {err_t:.1e} |",
                    ms(Some(t_gemm)),
                    ms(d_gemm),
                    tf(d_gemm),
                    ms(Some(t_gemm_t)),
                    ms(d_gemm_t),
                    tf(d_gemm_t),
                    ms(Some(t_dense_m)),
                    ms(d_dense_m),
                    tf(d_dense_m),
                    ratio(d_dense_m, d_gemm),
                );
                println!("GEMM row (table below): {row}");
                std::io::stdout().flush().ok();
                gemm_rows.push(row);
            }
            cases.push(case);
        }
    }
    println!();
    println!("GEMM, {tokens} tokens, NF4 (x f32; dense: f16 x and W); ms wall / device, TFLOP/s from device:");
    println!(
        "| in | out | 4-bit ms | TFLOP/s | transposed (g·W) ms | TFLOP/s | dense f16 ms | TFLOP/s | speed-up vs f16 (dev) | max rel err fwd / transposed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in gemm_rows {
        println!("{r}");
    }

    // Pass 2: the other GEMV kernels, each row on its own (a failure is printed, and the rest run).
    println!();
    let guarded = |what: String, f: &dyn Fn()| {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            println!("| {what} FAILED: {} |", msg.lines().take(6).collect::<Vec<_>>().join(" / "));
            std::io::stdout().flush().ok();
        }
    };
    guarded("floor Rows".into(), &|| floor(GemvKernel::Rows));
    guarded("floor Stream".into(), &|| floor(GemvKernel::Stream));
    guarded("floor Slices".into(), &|| floor(GemvKernel::Slices { lanes: 0, rows: 0, depth: 0 }));
    println!();
    println!("GEMV, batch 1, the other kernels (same columns):");
    header();
    for c in &cases {
        let sweep = if c.format == QuantFormat::Nf4 {
            stream_sweep().into_iter().chain(slice_sweep()).collect()
        } else {
            Vec::new()
        };
        for kernel in KERNELS.into_iter().filter(|&k| k != GemvKernel::Lanes).chain(sweep) {
            guarded(format!("{} | {} | {:?} | {kernel:?}", c.d_in, c.d_out, c.format), &|| gemv_row(c, kernel));
        }
    }

    // Pass 3: NF4 with f16 activations (a half-precision model's decode), where CUDA takes the
    // `f16x2` path of `Slices`; bytes with x and y in f16. `QBENCH_HALF=0` skips it.
    if env_one("QBENCH_HALF", 1) == 1 {
        println!();
        println!("GEMV, batch 1, NF4, x f16 (same columns; the dense f16 figures are those above):");
        header();
        for c in cases.iter().filter(|c| c.format == QuantFormat::Nf4) {
            let half = Case {
                x: c.x.clone().cast(DType::F16),
                bytes: c.bytes - 2.0 * (c.d_in + c.d_out) as f64,
                layer: c.layer.clone(),
                w: c.w.clone(),
                copies: c.copies.clone(),
                ..*c
            };
            for kernel in [GemvKernel::Auto].into_iter().chain(slice_sweep()) {
                guarded(format!("{} | {} | f16 | {kernel:?}", c.d_in, c.d_out), &|| gemv_row(&half, kernel));
            }
        }
    }
}

/// One GEMV shape and format of the bench, kept for the second pass.
struct Case {
    d_in: usize,
    d_out: usize,
    format: QuantFormat,
    layer: QuantLinear,
    w: QuantWeight,
    x: Tensor<2>,
    /// Bytes a call must move (see the header).
    bytes: f64,
    /// The weights the GEMV calls cycle through (`QBENCH_ROTATE_MB`).
    copies: Vec<QuantWeight>,
    t_plain: f64,
    dense: Timing,
}
