//! The reference's weight transforms (upstream-catalogue §1.17), one function each, on row-major
//! f32 buffers. Shapes are `[rows, cols]` as stored (Linear weights are `(out, in)`).

use crate::rng::GaussianRng;

/// Embedding rows through the vocabulary map: `out[new] = source[new_to_old[new]]`.
/// `source` is `[rows, cols]`; an old id outside it is an error (use
/// [`crate::hf::HfCheckpoint::rows`] to read only the kept rows of a large matrix).
pub fn extract_embeddings(source: &[f32], cols: usize, new_to_old: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(new_to_old.len() * cols);
    for &old in new_to_old {
        let o = old as usize * cols;
        out.extend_from_slice(&source[o..o + cols]);
    }
    out
}

/// An RMSNorm weight widened to `target`: the source values first, then ones (the identity
/// scale), so the padded channels are left unscaled. `target` must be ≥ the source width.
pub fn pad_rms_norm(w: &[f32], target: usize) -> Vec<f32> {
    assert!(target >= w.len(), "pad_rms_norm: target width {target} < source width {}", w.len());
    let mut out = vec![1.0f32; target];
    out[..w.len()].copy_from_slice(w);
    out
}

/// The top-left `[min(r, rows), min(c, cols)]` block of a `[r, c]` matrix in a zero `[rows, cols]`
/// matrix: truncation and zero-padding at once.
pub fn fit_matrix(src: &[f32], (r, c): (usize, usize), (rows, cols): (usize, usize)) -> Vec<f32> {
    assert_eq!(src.len(), r * c, "fit_matrix: buffer of {} values for shape [{r}, {c}]", src.len());
    let mut out = vec![0.0f32; rows * cols];
    let (rr, cc) = (r.min(rows), c.min(cols));
    for i in 0..rr {
        out[i * cols..i * cols + cc].copy_from_slice(&src[i * c..i * c + cc]);
    }
    out
}

/// The source MLP projected into the shared expert (intermediate `inter`, hidden `hidden`):
/// `gate'[:I, :Ds] = gate[:I, :]`, `up'` likewise, `down'[:Ds, :I] = down[:, :I]`, zeros
/// elsewhere (the first `I` of the source's intermediate channels). Source shapes: `gate`/`up`
/// `[Is, Ds]`, `down` `[Ds, Is]`. Returns `(gate' [I, H], up' [I, H], down' [H, I])`.
pub fn project_mlp_to_shared_expert(
    gate: &[f32],
    up: &[f32],
    down: &[f32],
    (src_inter, d_src): (usize, usize),
    (inter, hidden): (usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        fit_matrix(gate, (src_inter, d_src), (inter, hidden)),
        fit_matrix(up, (src_inter, d_src), (inter, hidden)),
        fit_matrix(down, (d_src, src_inter), (hidden, inter)),
    )
}

/// `experts` stacked copies of `w`: expert 0 exact, experts 1.. with `N(0, std²)` noise added to
/// every entry (from `rng`, expert by expert, in row-major order).
pub fn init_routed_experts(w: &[f32], experts: usize, std: f32, rng: &mut GaussianRng) -> Vec<f32> {
    let mut out = Vec::with_capacity(w.len() * experts);
    out.extend_from_slice(w);
    for _ in 1..experts {
        out.extend(w.iter().map(|&v| v + std * rng.normal() as f32));
    }
    out
}

/// `(L2 norm, mean, std)` of a buffer, in f64.
pub fn stats(v: &[f32]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let n = v.len() as f64;
    let (mut s, mut s2) = (0.0f64, 0.0f64);
    for &x in v {
        s += x as f64;
        s2 += (x as f64) * (x as f64);
    }
    let mean = s / n;
    (s2.sqrt(), mean, (s2 / n - mean * mean).max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_follow_the_map() {
        // 4 rows of 2: row k = [k, 10k].
        let src = [0.0, 0.0, 1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
        assert_eq!(extract_embeddings(&src, 2, &[3, 0, 2]), vec![3.0, 30.0, 0.0, 0.0, 2.0, 20.0]);
    }

    #[test]
    fn norms_pad_with_ones() {
        assert_eq!(pad_rms_norm(&[0.5, 2.0], 4), vec![0.5, 2.0, 1.0, 1.0]);
        assert_eq!(pad_rms_norm(&[0.5, 2.0], 2), vec![0.5, 2.0]);
    }

    #[test]
    #[should_panic(expected = "target width 1 < source width 2")]
    fn norms_cannot_shrink() {
        pad_rms_norm(&[0.5, 2.0], 1);
    }

    #[test]
    fn mlp_projection_matches_the_reference_slices() {
        // Source: Is = 3, Ds = 2; target: I = 2, H = 4.
        let gate: Vec<f32> = (1..=6).map(|v| v as f32).collect(); // [[1,2],[3,4],[5,6]]
        let up: Vec<f32> = gate.iter().map(|v| -v).collect();
        let down: Vec<f32> = (1..=6).map(|v| 10.0 * v as f32).collect(); // [[10,20,30],[40,50,60]]
        let (g, u, d) = project_mlp_to_shared_expert(&gate, &up, &down, (3, 2), (2, 4));
        assert_eq!(g, vec![1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!(u, vec![-1.0, -2.0, 0.0, 0.0, -3.0, -4.0, 0.0, 0.0]);
        // down' [H=4, I=2]: first Ds=2 rows hold down[:, :2].
        assert_eq!(d, vec![10.0, 20.0, 40.0, 50.0, 0.0, 0.0, 0.0, 0.0]);
        // A target intermediate wider than the source pads with zeros instead.
        let (g, _, d) = project_mlp_to_shared_expert(&gate, &up, &down, (3, 2), (4, 2));
        assert_eq!(g, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0]);
        assert_eq!(d, vec![10.0, 20.0, 30.0, 0.0, 40.0, 50.0, 60.0, 0.0]);
    }

    #[test]
    fn routed_experts_copy_then_perturb() {
        let w: Vec<f32> = (0..1000).map(|i| i as f32 * 1e-3).collect();
        let out = init_routed_experts(&w, 3, 0.02, &mut GaussianRng::new(1));
        assert_eq!(out.len(), 3000);
        assert_eq!(&out[..1000], &w[..]);
        for e in 1..3 {
            let d: Vec<f32> = out[e * 1000..(e + 1) * 1000].iter().zip(&w).map(|(a, b)| a - b).collect();
            let (_, mean, std) = stats(&d);
            // 1000 samples: the standard error of the std is ≈ 0.02/sqrt(2000) ≈ 4.5e-4.
            assert!(mean.abs() < 0.003 && (std - 0.02).abs() < 0.002, "expert {e}: mean {mean} std {std}");
        }
        assert_ne!(&out[1000..2000], &out[2000..3000]);
        assert_eq!(out, init_routed_experts(&w, 3, 0.02, &mut GaussianRng::new(1)));
    }
}
