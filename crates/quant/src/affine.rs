//! MLX affine int4 (`mx.quantize(w, group_size, bits=4)`), reproduced bit-exactly.
//!
//! Per group of `gs` consecutive input columns, all arithmetic in f32 (f16/bf16 weights are
//! widened first and the scales/biases rounded to the storage dtype afterwards, as MLX does):
//! ```text
//! s    = max((max - min) / 15, 1e-7)
//! edge = min, if |min| > |max|;  otherwise edge = max and s = -s      (scales can be negative)
//! q0   = round(edge / s);  if q0 ≠ 0 { s = edge / q0; bias = edge } else { bias = 0 }
//! q    = clip(round((w - bias) / s), 0, 15)        round = half to even
//! w'   = q · s + bias
//! ```
//! Choosing `bias = edge` with `s = edge / q0` makes the larger-magnitude extreme exact.

/// Codes, scales and biases of one quantized matrix (rows × cols, `cols % gs == 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct AffineGroups {
    /// `rows × cols` codes in `0..16`.
    pub codes: Vec<u8>,
    /// `rows × cols/gs`.
    pub scales: Vec<f32>,
    /// `rows × cols/gs`.
    pub biases: Vec<f32>,
}

const LEVELS: f32 = 15.0;
const EPS: f32 = 1e-7;

/// Quantizes `w` (row-major, any number of rows, `w.len() % gs == 0`) group by group.
pub fn quantize(w: &[f32], gs: usize) -> AffineGroups {
    assert!(gs > 0 && w.len() % gs == 0, "affine quantize: {} values is not a multiple of group {gs}", w.len());
    let groups = w.len() / gs;
    let mut out = AffineGroups {
        codes: Vec::with_capacity(w.len()),
        scales: Vec::with_capacity(groups),
        biases: Vec::with_capacity(groups),
    };
    for g in w.chunks_exact(gs) {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in g {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let mut s = ((hi - lo) / LEVELS).max(EPS);
        let edge = if lo.abs() > hi.abs() {
            lo
        } else {
            s = -s;
            hi
        };
        let q0 = (edge / s).round_ties_even();
        let bias = if q0 != 0.0 {
            s = edge / q0;
            edge
        } else {
            0.0
        };
        out.codes.extend(g.iter().map(|&v| ((v - bias) / s).round_ties_even().clamp(0.0, LEVELS) as u8));
        out.scales.push(s);
        out.biases.push(bias);
    }
    out
}

/// `q · scale + bias` for every element (row-major codes, groups of `gs`).
pub fn dequantize(codes: &[u8], scales: &[f32], biases: &[f32], gs: usize) -> Vec<f32> {
    codes.iter().enumerate().map(|(i, &q)| f32::from(q) * scales[i / gs] + biases[i / gs]).collect()
}
