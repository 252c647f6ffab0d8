//! Document boundaries inside packed training rows.
//!
//! Packing puts several documents in one row; without care, attention looks across them and the
//! SSM carries state (and its causal convolution mixes inputs) from one into the next. A
//! [`Segments`] map gives every token its document index; the layers turn it into an attention
//! mask, convolution-tap masks and the scan's reset flags, so a packed row computes exactly what
//! its documents would alone.

use burn::prelude::*;

/// `ids[b·L + t]` = document index of token `t` in row `b` (non-decreasing along a row).
#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    pub ids: Vec<u32>,
    pub batch: usize,
    pub len: usize,
}

impl Segments {
    pub fn new(ids: Vec<u32>, batch: usize, len: usize) -> Self {
        assert_eq!(ids.len(), batch * len, "segment ids must be [batch, len]");
        Self { ids, batch, len }
    }

    fn at(&self, b: usize, t: usize) -> u32 {
        self.ids[b * self.len + t]
    }

    /// `[B, L]`: 1.0 at the first token of every document after the first, else 0.0.
    pub fn reset(&self, device: &Device) -> Tensor<2> {
        let mut v = vec![0.0f32; self.ids.len()];
        for b in 0..self.batch {
            for t in 1..self.len {
                if self.at(b, t) != self.at(b, t - 1) {
                    v[b * self.len + t] = 1.0;
                }
            }
        }
        Tensor::from_data(TensorData::new(v, [self.batch, self.len]), device)
    }

    /// `[B, L, 1]`: 1.0 where token `t - shift` exists and is in the same document as `t`.
    pub fn tap_mask(&self, shift: usize, device: &Device) -> Tensor<3> {
        let mut v = vec![0.0f32; self.ids.len()];
        for b in 0..self.batch {
            for t in shift..self.len {
                if self.at(b, t) == self.at(b, t - shift) {
                    v[b * self.len + t] = 1.0;
                }
            }
        }
        Tensor::from_data(TensorData::new(v, [self.batch, self.len, 1]), device)
    }

    /// `[B, nq, nk]`, `true` where query `qs + i` and key `ks + j` are in different documents.
    pub fn cross_mask(&self, qs: usize, nq: usize, ks: usize, nk: usize, device: &Device) -> Tensor<3, Bool> {
        let mut v = Vec::with_capacity(self.batch * nq * nk);
        for b in 0..self.batch {
            for i in 0..nq {
                for j in 0..nk {
                    v.push(self.at(b, qs + i) != self.at(b, ks + j));
                }
            }
        }
        Tensor::from_data(TensorData::new(v, [self.batch, nq, nk]), device)
    }
}
