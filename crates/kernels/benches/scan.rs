//! Selective-scan kernels: forward and backward time at the default config's shape, achieved
//! bandwidth against the device's measured copy bandwidth, and speed-up over the plain-tensor
//! chunked scan measured in the same run.
//!
//! ```sh
//! CUDARC_CUDA_VERSION=13000 cargo bench -p bit-axon-kernels --features cuda --bench scan
//! # small smoke run on wgpu/lavapipe:
//! SCAN_BENCH_E=64 SCAN_BENCH_LENS=512 SCAN_BENCH_BATCHES=1 cargo bench -p bit-axon-kernels --features wgpu --bench scan
//! ```
//! Knobs (env): `SCAN_BENCH_E` (7680), `SCAN_BENCH_N` (16), `SCAN_BENCH_BATCHES` ("1,2,4,8"),
//! `SCAN_BENCH_LENS` ("512,1024,2048,4096,8192"), `SCAN_BENCH_ITERS` (5), `SCAN_BENCH_COPY_LOG2` (30), `SCAN_BENCH_BASELINE`
//! ("1,512;1,2048": the `B,L` shapes timed through the plain-tensor path as well), `SCAN_BENCH_SHAPES`
//! (`g x threads x tokens [x unrolled tokens] [p]` of the single-pass forward to time, `;`-separated,
//! e.g. "4x128x16;16x128x16x4;4x128x16p", `p`: plane sums; default: the launcher's default plan only), `SCAN_BENCH_ROUNDS`
//! (1; more: each shape's forward timed that many more times, round-robin across the shapes, with
//! median, min, max and spread per shape: runs on the H200 differ by up to 5 % between calls, so
//! close variants are compared within one call and over several rounds).
//!
//! Bytes counted as the minimum that must move (f32): forward reads `x, dt` and writes `y`
//! (`3·B·L·E`), reads `B, C` (`2·B·L·N`) and the states; backward reads `x, dt, dy, B, C` and
//! writes `dx, ddt, dB, dC` (`5·B·L·E + 4·B·L·N`). The copy roofline is `x + 1` over 4 GiB
//! (read + write).

use std::time::Instant;

use bit_axon::layers::scan::{ScanInput, scan_chunked};
use bit_axon_kernels::scan::{
    FusedShape, SelectiveScanBackend, auto_chunk, fused_plan, last_fused_plan, selective_scan, set_fused_shape,
};
use burn::backend::Dispatch;
use burn::prelude::*;
use burn::tensor::{Distribution, ProfileOptions};

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("{name}: `{s}` is not a number")))
        .collect()
}

fn env_one(name: &str, default: usize) -> usize {
    env_list(name, &default.to_string())[0]
}

fn device() -> Device {
    #[cfg(feature = "cuda")]
    return Device::cuda(0);
    #[cfg(not(feature = "cuda"))]
    Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
}

/// Something whose first element can be read back, forcing it (and, the device queue being in
/// order, everything launched before it) to be computed.
trait Probe {
    fn probe(&self);
}

impl<const D: usize> Probe for Tensor<D> {
    fn probe(&self) {
        let _ = self.clone().flatten::<1>(0, D - 1).narrow(0, 0, 1).into_data();
    }
}

impl<T: Probe> Probe for Vec<T> {
    fn probe(&self) {
        self.iter().for_each(Probe::probe);
    }
}

impl<T: Probe, U> Probe for (T, U) {
    fn probe(&self) {
        self.0.probe();
    }
}

/// Mean seconds per call of `f` over `iters` calls after one warm-up. Each call's output is read
/// back (one element) before the next call and then dropped, so the memory pool reuses its
/// buffers: allocation stays out of the figure, and nothing can be skipped as unused. The
/// read-back latency is counted (conservative for sub-millisecond calls).
fn time<T: Probe>(dev: &Device, iters: usize, mut f: impl FnMut() -> T) -> f64 {
    f().probe();
    dev.sync().expect("sync");
    let start = Instant::now();
    for _ in 0..iters {
        f().probe();
    }
    dev.sync().expect("sync");
    start.elapsed().as_secs_f64() / iters as f64
}

/// Device seconds per call (the device's own clock: CUDA events, wgpu timestamps), one profiling
/// window per call, mean over `iters` after one warm-up; `None` when the backend has no clock.
/// Unlike [`time`], no read-back latency is in it.
fn time_dev<T: Probe + Send + 'static>(dev: &Device, iters: usize, f: impl Fn() -> T + Sync) -> Option<f64> {
    f().probe();
    let mut total = 0.0;
    for _ in 0..iters {
        let (out, d) = dev.profile_with(ProfileOptions::default().flush(), &f).expect("profile window");
        out.probe();
        total += cubecl::future::block_on(d.resolve()).map(|t| t.duration().as_secs_f64())?;
    }
    Some(total / iters as f64)
}

fn inputs(b: usize, l: usize, e: usize, n: usize, dev: &Device) -> (ScanInput, Tensor<3>) {
    let u = |shape: [usize; 3], lo: f64, hi: f64| Tensor::<3>::random(shape, Distribution::Uniform(lo, hi), dev);
    let input = ScanInput {
        x: u([b, l, e], -1.0, 1.0),
        dt: u([b, l, e], 1e-3, 0.1),
        a: Tensor::<2>::random([e, n], Distribution::Uniform(-16.0, -1.0), dev),
        b: u([b, l, n], -1.0, 1.0),
        c: u([b, l, n], -1.0, 1.0),
        d: Tensor::<1>::ones([e], dev),
        reset: None,
    };
    (input, u([b, e, n], -1.0, 1.0))
}

/// The forward as `AxonSsm` runs it (`chunk = None`: the single-pass kernel when `N` is a multiple
/// of 4, up to 32), or the three-pass chunked kernels with `Some(chunk)`.
fn kernel_fwd_with(i: &ScanInput, h0: &Tensor<3>, chunk: Option<usize>) -> (Tensor<3>, Tensor<3>) {
    let i = i.clone();
    selective_scan(i.x, i.dt, i.a, i.b, i.c, i.d, h0.clone(), None, chunk)
}

fn kernel_fwd(i: &ScanInput, h0: &Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    kernel_fwd_with(i, h0, None)
}

fn kernel_bwd(i: &ScanInput, h0: &Tensor<3>, grad: &Tensor<3>) -> Vec<Tensor<3>> {
    let i = i.clone();
    let zeros = Tensor::<2>::zeros([i.x.dims()[0], i.x.dims()[1]], &i.x.device());
    let (dx, ddt, _da, _dbc, dh0) = <Dispatch as SelectiveScanBackend>::selective_scan_backward(
        i.x.into_dispatch(),
        i.dt.into_dispatch(),
        i.a.into_dispatch(),
        i.b.into_dispatch(),
        i.c.into_dispatch(),
        i.d.into_dispatch(),
        h0.clone().into_dispatch(),
        zeros.into_dispatch(),
        grad.clone().into_dispatch(),
    );
    vec![Tensor::from_dispatch(dx), Tensor::from_dispatch(ddt), Tensor::from_dispatch(dh0)]
}

/// The chunk the plain-tensor path picks (as `bit_axon::layers::scan::selective_scan`).
fn plain_chunk(b: usize, e: usize, n: usize) -> usize {
    (((1usize << 24) / (b * e * n)) as f64).sqrt().max(1.0).min(64.0) as usize
}

fn main() {
    let dev = device();
    dev.seed(1);
    let e = env_one("SCAN_BENCH_E", 7680);
    let n = env_one("SCAN_BENCH_N", 16);
    let iters = env_one("SCAN_BENCH_ITERS", 5);
    let batches = env_list("SCAN_BENCH_BATCHES", "1,2,4,8");
    let lens = env_list("SCAN_BENCH_LENS", "512,1024,2048,4096,8192");
    let baseline: Vec<(usize, usize)> = std::env::var("SCAN_BENCH_BASELINE")
        .unwrap_or_else(|_| "1,512;1,2048".into())
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let v: Vec<usize> = s.split(',').map(|x| x.trim().parse().expect("SCAN_BENCH_BASELINE: B,L;B,L")).collect();
            (v[0], v[1])
        })
        .collect();
    // `None`: the launcher's default plan.
    let shapes: Vec<Option<FusedShape>> = match std::env::var("SCAN_BENCH_SHAPES") {
        Ok(v) => v
            .split(';')
            .map(|s| s.parse().map(Some).unwrap_or_else(|e: String| panic!("SCAN_BENCH_SHAPES: {e}")))
            .collect(),
        Err(_) => vec![None],
    };
    for s in shapes.iter().flatten() {
        assert!(s.valid_for(n), "SCAN_BENCH_SHAPES: {s:?} does not fit N = {n}");
    }
    println!("device: {dev:?}; E={e} N={n} iters={iters}");

    // Copy roofline: read + write 2^k f32 (k = SCAN_BENCH_COPY_LOG2, default 30: 4 GiB, so the
    // read-back per call is small against the copy).
    let k = env_one("SCAN_BENCH_COPY_LOG2", 30);
    let big = Tensor::<1>::random([1 << k], Distribution::Uniform(0.0, 1.0), &dev);
    let t = time(&dev, iters, || big.clone().add_scalar(1.0));
    let copy_gbs = 2.0 * 4.0 * (1u64 << k) as f64 / t / 1e9;
    println!("copy bandwidth (x+1 over 2^{k} f32, read + write): {copy_gbs:.0} GB/s");
    drop(big);

    println!();
    {
        let (input, h0) = inputs(1, 8, 8, n, &dev);
        let before = bit_axon_kernels::scan::fused_launches();
        kernel_fwd(&input, &h0).probe();
        let fused = bit_axon_kernels::scan::fused_launches() > before;
        println!("forward kernel (fwd columns): {}", if fused { "single-pass scan_fused" } else { "three-pass" });
    }
    println!();
    // Device-clock figures (`dev`) exclude the read-back after each call that the wall figures
    // (`wall`) include; GB/s and % copy are from the device clock when there is one.
    let max_shared = env_one("SCAN_BENCH_MAX_SHARED", 48 * 1024);
    println!("timing: wall = read-back after each call; dev = device clock per call ({iters} calls)");
    println!(
        "| B | L | g | threads | tokens/block (unrolled) | fwd wall ms | fwd dev ms | fwd GB/s | fwd % copy | 3-pass chunk | 3-pass dev ms | 3-pass % copy | bwd dev ms | bwd GB/s | bwd % copy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let ms = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{:.3}", t * 1e3));
    let rounds = env_one("SCAN_BENCH_ROUNDS", 1);
    let mut repeats = Vec::new();
    for &b in &batches {
        for &l in &lens {
            let (input, h0) = inputs(b, l, e, n, &dev);
            let fwd_bytes = 4.0 * (3 * b * l * e + 2 * b * l * n + 2 * b * e * n) as f64;
            let chunk3 = auto_chunk(b, l, e);
            let fwd3 = time_dev(&dev, iters, || kernel_fwd_with(&input, &h0, Some(chunk3)))
                .unwrap_or_else(|| time(&dev, iters, || kernel_fwd_with(&input, &h0, Some(chunk3))));
            let grad = Tensor::<3>::random([b, l + n, e], Distribution::Uniform(-1.0, 1.0), &dev);
            let bwd = time_dev(&dev, iters, || kernel_bwd(&input, &h0, &grad))
                .unwrap_or_else(|| time(&dev, iters, || kernel_bwd(&input, &h0, &grad)));
            let bwd_bytes = 4.0 * (5 * b * l * e + 4 * b * l * n + 2 * b * e * n) as f64;
            let bg = bwd_bytes / bwd / 1e9;
            let fg3 = fwd_bytes / fwd3 / 1e9;
            for shape in &shapes {
                set_fused_shape(*shape);
                let wall = time(&dev, iters, || kernel_fwd(&input, &h0));
                // The plan that ran (after the launcher's adjustments to the device).
                let plan = last_fused_plan().unwrap_or_else(|| fused_plan(b, e, n, max_shared, None));
                let fdev = time_dev(&dev, iters, || kernel_fwd(&input, &h0));
                let fg = fwd_bytes / fdev.unwrap_or(wall) / 1e9;
                println!(
                    "| {b} | {l} | {}{} | {} | {} ({}) | {:.3} | {} | {fg:.0} | {:.0}% | {chunk3} | {:.3} | {:.0}% | {:.3} | {bg:.0} | {:.0}% |",
                    plan.shape.g,
                    if plan.shape.plane { " (plane sums)" } else { "" },
                    plan.shape.threads,
                    plan.shape.tb,
                    plan.unrolled(),
                    wall * 1e3,
                    ms(fdev),
                    100.0 * fg / copy_gbs,
                    fwd3 * 1e3,
                    100.0 * fg3 / copy_gbs,
                    bwd * 1e3,
                    100.0 * bg / copy_gbs
                );
            }
            // Round-robin repeats: every shape once per round, so that drift of the device over
            // the run falls on all shapes alike.
            if rounds > 1 {
                let mut times = vec![Vec::new(); shapes.len()];
                // The plan each shape ran, as the launcher recorded it after its calls.
                let mut plans = vec![None; shapes.len()];
                for _ in 0..rounds {
                    for (si, shape) in shapes.iter().enumerate() {
                        set_fused_shape(*shape);
                        let t = time_dev(&dev, iters, || kernel_fwd(&input, &h0))
                            .unwrap_or_else(|| time(&dev, iters, || kernel_fwd(&input, &h0)));
                        times[si].push(t);
                        plans[si] = last_fused_plan();
                    }
                }
                for (plan, t) in plans.into_iter().zip(times.iter_mut()) {
                    let plan = plan.unwrap_or_else(|| fused_plan(b, e, n, max_shared, None));
                    t.sort_by(f64::total_cmp);
                    let (lo, med, hi) = (t[0], t[t.len() / 2], t[t.len() - 1]);
                    repeats.push(format!(
                        "| {b} | {l} | {}x{}x{}x{}{} | {:.3} | {:.0}% | {:.3} | {:.3} | {:.1}% |",
                        plan.shape.g,
                        plan.shape.threads,
                        plan.shape.tb,
                        plan.unrolled(),
                        if plan.shape.plane { "p" } else { "" },
                        med * 1e3,
                        100.0 * fwd_bytes / med / 1e9 / copy_gbs,
                        lo * 1e3,
                        hi * 1e3,
                        100.0 * (hi - lo) / med
                    ));
                }
            }
            set_fused_shape(None);
        }
    }
    if !repeats.is_empty() {
        println!();
        println!(
            "forward, {rounds} round-robin rounds of {iters} calls per shape (device ms where there is a device clock):"
        );
        println!(
            "| B | L | shape (g x threads x tokens x unrolled) | median ms | median % copy | min ms | max ms | spread |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for r in &repeats {
            println!("{r}");
        }
    }

    println!();
    println!(
        "| B | L | plain chunk | plain fwd ms | kernel fwd ms | speed-up | plain fwd+bwd ms | kernel fwd+bwd ms | speed-up |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &(b, l) in &baseline {
        let (input, h0) = inputs(b, l, e, n, &dev);
        let chunk = plain_chunk(b, e, n);
        let plain = time(&dev, 1, || scan_chunked(input.clone(), h0.clone(), chunk));
        let kern = time(&dev, iters, || kernel_fwd(&input, &h0));
        // Forward + backward through autodiff (loss = Σ y), only at short lengths: the plain path
        // keeps O(B·E·N·chunk²) per chunk for its backward.
        let (pb, kb) = if l <= 1024 {
            let track = |t: &Tensor<3>| t.clone().autodiff().require_grad();
            let run = |use_kernel: bool| {
                let x = track(&input.x);
                let i = ScanInput {
                    x: x.clone(),
                    dt: track(&input.dt),
                    a: input.a.clone().autodiff().require_grad(),
                    b: track(&input.b),
                    c: track(&input.c),
                    d: input.d.clone().autodiff().require_grad(),
                    reset: None,
                };
                let h = track(&h0);
                let (y, _) = if use_kernel { kernel_fwd(&i, &h) } else { scan_chunked(i, h, chunk) };
                let g = y.sum().backward();
                vec![x.grad(&g).expect("grad x")]
            };
            (time(&dev, 1, || run(false)), time(&dev, iters, || run(true)))
        } else {
            (f64::NAN, f64::NAN)
        };
        println!(
            "| {b} | {l} | {chunk} | {:.2} | {:.3} | {:.0}× | {:.2} | {:.3} | {:.0}× |",
            plain * 1e3,
            kern * 1e3,
            plain / kern,
            pb * 1e3,
            kb * 1e3,
            pb / kb
        );
    }
}
