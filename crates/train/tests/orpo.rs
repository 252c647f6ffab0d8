//! ORPO's loss pieces against the reference's oracle (`tests/fixtures/layers/losses.safetensors`,
//! copied from `../shared/fixtures/layers`) where the reference is right, and against float64
//! computations where it is not; and a gradient check through a tiny model.
//!
//! Where the reference is right: the shifted average log-probabilities (`chosen_logps`,
//! `rejected_logps`) and the odds-ratio term with β = 1 (`orpo_loss_beta1.0` = −mean log σ(log
//! odds ratio), which is TRL's L_OR). Where it is not: its `log1mexp` (branches swapped; −15.94
//! instead of −16.12 at x = −1e-7), its unshifted NLL (`ce_loss`), and β inside the sigmoid
//! (`orpo_loss_beta0.1`), which TRL applies outside as λ. Tolerance 1e-5 (the fixtures' README).

use bit_axon::BitAxonConfig;
use bit_axon::checkpoint::TensorFiles;
use bit_axon_train::adapters;
use bit_axon_train::config::AdapterSection;
use bit_axon_train::data::encode::Encoded;
use bit_axon_train::data::preference::{HostPairs, Pair};
use bit_axon_train::objective::{Objective, Report};
use bit_axon_train::orpo::{OrpoLm, log_odds_ratio, log1mexp, response_logps};
use burn::module::Module;
use burn::prelude::*;
use burn::train::InferenceStep;

fn fixture() -> TensorFiles {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/layers/losses.safetensors");
    TensorFiles::open(&p, std::slice::from_ref(&p)).unwrap()
}

fn f32s(f: &TensorFiles, name: &str) -> (Vec<f32>, Vec<usize>) {
    let shape = f.shape(name).unwrap().to_vec();
    (f.read_f32(name, &shape).unwrap(), shape)
}

fn labels(f: &TensorFiles, name: &str) -> (Vec<i64>, Vec<usize>) {
    f.read_i64(name).unwrap()
}

fn vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Shifted targets and weights from reference-style labels (−100 = ignored).
fn shifted(lab: &[i64], b: usize, l: usize, dev: &Device) -> (Tensor<2, Int>, Tensor<2>) {
    let (mut t, mut w) = (Vec::new(), Vec::new());
    for i in 0..b {
        for j in 0..l {
            let next = if j + 1 < l { lab[i * l + j + 1] } else { -100 };
            t.push(next.max(0));
            w.push(if next == -100 { 0.0f32 } else { 1.0 });
        }
    }
    (Tensor::from_data(TensorData::new(t, [b, l]), dev), Tensor::from_data(TensorData::new(w, [b, l]), dev))
}

fn avg_logps(f: &TensorFiles, logits: &str, labels_name: &str, dev: &Device) -> Vec<f32> {
    let (lg, s) = f32s(f, logits);
    let (lab, _) = labels(f, labels_name);
    let (b, l, v) = (s[0], s[1], s[2]);
    let (t, w) = shifted(&lab, b, l, dev);
    let (sum, count) = response_logps(Tensor::from_data(TensorData::new(lg, [b, l, v]), dev), t, w);
    vec(sum / count.clamp_min(1.0))
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("{what}: max abs err {err:.3e}");
    assert!(err <= tol, "{what}: {got:?} vs {want:?}");
}

#[test]
fn average_logps_match_the_reference() {
    let (f, dev) = (fixture(), Device::flex());
    close("chosen_logps", &avg_logps(&f, "logits", "labels_masked", &dev), &f32s(&f, "chosen_logps").0, 1e-5);
    close("rejected_logps", &avg_logps(&f, "rejected_logits", "labels", &dev), &f32s(&f, "rejected_logps").0, 1e-5);
}

#[test]
fn odds_ratio_term_matches_reference_at_beta_1() {
    let (f, dev) = (fixture(), Device::flex());
    let c = Tensor::<1>::from_data(TensorData::new(f32s(&f, "chosen_logps").0, [2]), &dev);
    let r = Tensor::<1>::from_data(TensorData::new(f32s(&f, "rejected_logps").0, [2]), &dev);
    let (ratio, _) = log_odds_ratio(c, r);
    let l_or = -vec(ratio.mean())[0];
    close("orpo_loss_beta1.0 (= TRL's L_OR)", &[l_or], &f32s(&f, "orpo_loss_beta1.0").0, 1e-5);
    let beta01 = f32s(&f, "orpo_loss_beta0.1").0[0];
    println!(
        "reference with beta inside the sigmoid: {beta01:.6}; this implementation's λ·L_OR at λ=0.1: {:.6}",
        0.1 * l_or
    );
    assert!((beta01 - 0.1 * l_or).abs() > 1e-3, "the two definitions should differ on this case");
}

/// Against float64 `log(−expm1(x))` over the whole range, including near 0 where the reference
/// is 0.18 off in f32.
#[test]
fn log1mexp_is_accurate_everywhere() {
    let (f, dev) = (fixture(), Device::flex());
    let (x, _) = f32s(&f, "log1mexp.x");
    let (y_ref, _) = f32s(&f, "log1mexp.y");
    let mut xs = x.clone();
    xs.extend([-1e-6, -1e-4, -0.01, -0.049, -0.051, -0.3, -0.69, -0.7, -1.0, -5.0, -20.0, -80.0]);
    let got = vec(log1mexp(Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &dev)));
    for (i, (&xv, &g)) in xs.iter().zip(&got).enumerate() {
        let exact = (-(xv as f64).exp_m1()).ln();
        let rel = ((g as f64 - exact) / exact.abs().max(1e-30)).abs();
        assert!(rel < 2e-6 || (g as f64 - exact).abs() < 1e-6, "x={xv}: {g} vs exact {exact}");
        if i < 6 {
            // Relative to max(1, |ref|) as for the other oracles (the reference's own f32 error is
            // 1e-5 at x = -1e-3).
            assert!((g - y_ref[i]).abs() <= 1e-5 * y_ref[i].abs().max(1.0), "x={xv}: {g} vs reference {}", y_ref[i]);
        }
    }
    let last = x.len() - 1;
    println!(
        "x={}: this {:.4}, exact {:.4}, reference {:.4}",
        x[last],
        got[last],
        (-(x[last] as f64).exp_m1()).ln(),
        y_ref[last]
    );
}

/// The NLL term is shifted (position t predicts token t+1): checked against float64 on the
/// oracle's logits; the reference's unshifted `ce_loss` differs.
#[test]
fn nll_is_shifted() {
    let (f, dev) = (fixture(), Device::flex());
    let (lg, s) = f32s(&f, "logits");
    let (lab, _) = labels(&f, "labels_masked");
    let (b, l, v) = (s[0], s[1], s[2]);
    let (mut sum, mut n) = (0.0f64, 0.0f64);
    for i in 0..b {
        for j in 0..l - 1 {
            let y = lab[i * l + j + 1];
            if y == -100 {
                continue;
            }
            let row = &lg[(i * l + j) * v..(i * l + j + 1) * v];
            let m = row.iter().fold(f32::MIN, |a, &x| a.max(x)) as f64;
            let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            sum += lse - row[y as usize] as f64;
            n += 1.0;
        }
    }
    let (t, w) = shifted(&lab, b, l, &dev);
    let (ls, cnt) = response_logps(Tensor::from_data(TensorData::new(lg, [b, l, v]), &dev), t, w);
    let nll = -vec(ls.sum())[0] / vec(cnt.sum())[0];
    close("shifted NLL vs float64", &[nll], &[(sum / n) as f32], 1e-5);
    let unshifted = f32s(&f, "ce_loss").0[0];
    println!("reference ce_loss (unshifted): {unshifted:.5}; shifted: {nll:.5}");
    assert!((unshifted - nll).abs() > 1e-3);
}

fn pair(prompt: &[u32], chosen: &[u32], rejected: &[u32]) -> Pair {
    let mk = |resp: &[u32]| {
        let mut e = Encoded { ids: prompt.to_vec(), train: vec![false; prompt.len()] };
        e.ids.extend_from_slice(resp);
        e.train.extend(std::iter::repeat_n(true, resp.len()));
        e
    };
    Pair { chosen: mk(chosen), rejected: mk(rejected) }
}

/// The ORPO loss's gradient through a tiny adapted model matches central finite differences.
#[test]
fn orpo_gradient_matches_finite_differences() {
    let dev = Device::flex();
    dev.seed(3);
    let cfg = BitAxonConfig {
        vocab_size: 32,
        hidden_dim: 16,
        num_layers: 3,
        num_heads: 2,
        d_source_model: 16,
        ssm_d_state: 4,
        moe_intermediate_dim: 16,
        swa_window_size: 8,
        ..BitAxonConfig::small()
    };
    let sec = AdapterSection { rank: 2, alpha: 4.0, ..Default::default() };
    let (mut m, _) = adapters::apply(cfg.init(&dev), &sec, &dev).unwrap();
    // Non-zero B so every adapter factor has a gradient.
    m.visit_projections_mut(&mut |_, p| {
        if let Some(a) = &mut p.adapter {
            let b = Tensor::<2>::random(a.lora_b.dims(), burn::tensor::Distribution::Normal(0.0, 0.3), &dev);
            a.lora_b = burn::module::Param::initialized(a.lora_b.id, b);
        }
    });
    let hp = HostPairs {
        pairs: vec![pair(&[1, 2, 3], &[4, 5, 6, 7], &[8, 9]), pair(&[10, 11], &[12, 13, 14], &[15, 16, 17, 18, 19])],
        step_pairs: 2,
        step_chosen_tokens: 0,
    };
    let hp = HostPairs { step_chosen_tokens: hp.chosen_tokens(), ..hp };
    let lambda = 0.5;
    let loss_of = |model: &OrpoLm| -> f64 {
        let out = InferenceStep::step(model, hp.to_batch(0, &dev));
        model.summarize(&out.sums()).0
    };
    let ad = dev.clone().autodiff();
    let lm = OrpoLm { model: m.clone(), lambda }.fork(&ad).train();
    let out = burn::train::TrainStep::step(&lm, hp.to_batch(0, &ad));
    let reported = lm.valid().summarize(&out.item.sums()).0;
    let base = loss_of(&OrpoLm { model: m.clone(), lambda });
    assert!((reported - base).abs() < 1e-6, "train and inference steps report the same loss");
    let grads = out.grads;
    let (path, a) = m
        .projections()
        .into_iter()
        .find(|(_, p)| p.adapter.is_some())
        .map(|(n, p)| (n, p.adapter.clone().unwrap()))
        .unwrap();
    let g_a = grads.get::<2>(a.lora_a.id).expect("grad of A");
    let g = vec(g_a);
    let a0 = vec(a.lora_a.val());
    let shape = a.lora_a.dims();
    let h = 1e-2f32;
    for idx in [0usize, 5, 17] {
        let eval = |d: f32| {
            let mut v = a0.clone();
            v[idx] += d;
            let mut mm = m.clone();
            mm.visit_projections_mut(&mut |p, proj| {
                if p == path
                    && let Some(ad_) = &mut proj.adapter
                {
                    ad_.lora_a = burn::module::Param::initialized(
                        ad_.lora_a.id,
                        Tensor::from_data(TensorData::new(v.clone(), shape), &dev),
                    );
                }
            });
            loss_of(&OrpoLm { model: mm, lambda })
        };
        let fd = (eval(h) - eval(-h)) / (2.0 * h as f64);
        println!("{path}.lora_A[{idx}]: autodiff {:.6e}, finite difference {fd:.6e}", g[idx]);
        assert!((g[idx] as f64 - fd).abs() <= 2e-2 * fd.abs().max(g[idx].abs() as f64).max(1e-3), "gradient mismatch");
    }
}
