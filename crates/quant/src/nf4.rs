//! NF4, the 4-bit NormalFloat data type of QLoRA (Dettmers et al. 2023) as in bitsandbytes.
//!
//! **Codebook.** 16 values in `[-1, 1]`: quantiles of N(0, 1) with an exact zero, 8 positive and
//! 7 negative levels, normalised by the largest (the `nf4` table of bitsandbytes
//! `functional.get_4bit_type`), see [`CODEBOOK`].
//!
//! **Blocks.** Each block of `gs` consecutive input columns (64 by default) is scaled by its absmax:
//! `q = nearest(w / absmax)`, `w' = CODEBOOK[q] · absmax`. The nearest level is chosen with the
//! midpoints between neighbours and ties go down (`x > mid` picks the upper level), which is the
//! decision tree of bitsandbytes' `dQuantizeNF4`. An all-zero block has absmax 0 and decodes to 0.
//!
//! **Packing.** Codes are packed as in [`crate::pack`] (8 per `u32`, LSB first), which is
//! MLX's order; bitsandbytes stores two codes per byte with the *first* in the high nibble, so
//! a bitsandbytes byte stream must be nibble-swapped to be read here.
//!
//! **Double quantization** ([`DoubleQuant`]): the f32 absmax values of a tensor are centred on
//! their mean and quantized to 8 bits in blocks of 256, with one f32 scale per block. This
//! follows QLoRA's scheme (8-bit, blocks of 256, mean subtracted); the 8-bit code is a
//! symmetric linear int8 instead of bitsandbytes' dynamic 8-bit float map (same storage cost).

/// The NF4 levels, in code order (bitsandbytes `get_4bit_type("nf4")`).
pub const CODEBOOK: [f32; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_433_208_465_58,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];

/// Decision thresholds between consecutive levels: the midpoints, as the f32 constants of
/// bitsandbytes' `dQuantizeNF4` (computing `(a + b) / 2` in f32 differs from them by one ulp for
/// some pairs, which would change the code of values sitting exactly on a threshold).
#[allow(clippy::excessive_precision)]
pub const THRESHOLDS: [f32; 15] = [
    -0.8480964004993439,
    -0.6106329262256622,
    -0.4599952697753906,
    -0.33967943489551544,
    -0.23460740596055984,
    -0.13791173323988914,
    -0.045525018125772476,
    0.03979014977812767,
    0.1202552504837513,
    0.2035212516784668,
    0.2920137718319893,
    0.3893125355243683,
    0.5016634166240692,
    0.6427869200706482,
    0.8614784181118011,
];

/// Block size of the second quantization (QLoRA: 256).
pub const DQ_BLOCK: usize = 256;

/// Code of the level nearest to `x` (normalised to `[-1, 1]`); ties go to the lower level.
pub fn encode(x: f32) -> u8 {
    // Count thresholds strictly below x: a branch-free form of the bitsandbytes decision tree.
    THRESHOLDS.iter().filter(|&&t| x > t).count() as u8
}

/// Codes and per-block absmax of `w` (row-major, `w.len() % gs == 0`).
pub fn quantize(w: &[f32], gs: usize) -> (Vec<u8>, Vec<f32>) {
    assert!(gs > 0 && w.len() % gs == 0, "nf4 quantize: {} values is not a multiple of block {gs}", w.len());
    let mut codes = Vec::with_capacity(w.len());
    let mut absmax = Vec::with_capacity(w.len() / gs);
    for block in w.chunks_exact(gs) {
        let m = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let inv = if m > 0.0 { 1.0 / m } else { 0.0 };
        codes.extend(block.iter().map(|&v| encode(v * inv)));
        absmax.push(m);
    }
    (codes, absmax)
}

/// `CODEBOOK[q] · absmax` for every element.
pub fn dequantize(codes: &[u8], absmax: &[f32], gs: usize) -> Vec<f32> {
    codes.iter().enumerate().map(|(i, &q)| CODEBOOK[q as usize] * absmax[i / gs]).collect()
}

/// Absmax values stored in 8 bits: `absmax ≈ code · block_scale + mean`.
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleQuant {
    /// One signed 8-bit code per absmax value.
    pub codes: Vec<i8>,
    /// One f32 scale per block of [`DQ_BLOCK`] codes.
    pub block_scales: Vec<f32>,
    /// Mean of the absmax values, subtracted before quantizing.
    pub mean: f32,
}

impl DoubleQuant {
    pub fn encode(absmax: &[f32]) -> Self {
        let mean = if absmax.is_empty() {
            0.0
        } else {
            (absmax.iter().map(|&v| f64::from(v)).sum::<f64>() / absmax.len() as f64) as f32
        };
        let mut codes = Vec::with_capacity(absmax.len());
        let mut block_scales = Vec::with_capacity(absmax.len().div_ceil(DQ_BLOCK));
        for block in absmax.chunks(DQ_BLOCK) {
            let m = block.iter().fold(0.0f32, |m, &v| m.max((v - mean).abs()));
            let s = m / 127.0;
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            codes.extend(block.iter().map(|&v| ((v - mean) * inv).round_ties_even().clamp(-127.0, 127.0) as i8));
            block_scales.push(s);
        }
        Self { codes, block_scales, mean }
    }

    /// The absmax values as stored (what dequantization uses).
    pub fn decode(&self) -> Vec<f32> {
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &c)| f32::from(c) * self.block_scales[i / DQ_BLOCK] + self.mean)
            .collect()
    }
}
