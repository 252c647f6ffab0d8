use burn::nn::LinearConfig;

use super::projection::Projection;
use super::segments::Segments;
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::checkpoint::{Loader, Saver};
use crate::error;

/// Configuration of [`SlidingWindowAttention`].
#[derive(Config, Debug)]
pub struct SlidingWindowAttentionConfig {
    /// Model width `H`.
    pub d_model: usize,
    /// Heads; `H / heads` is the head size.
    pub num_heads: usize,
    /// Window `W`: a query sees itself and the `W - 1` previous tokens.
    pub window: usize,
    /// Queries processed per block; bounds the score matrix at `block × (block + W)`.
    #[config(default = 256)]
    pub query_block: usize,
}

/// Smallest ring a cache allocates (see [`KvCache`]).
pub const KV_MIN_CAPACITY: usize = 16;

/// Keys and values of the last `W` tokens of an attention layer, as a ring buffer: the key of
/// absolute position `p` sits in slot `p % capacity`.
///
/// GPU backends compile a kernel per tensor shape, and a cache growing by one position per
/// decode step recompiled them at every step until it reached the window. The capacity instead
/// doubles from [`KV_MIN_CAPACITY`] up to `W` (so at most `log2(W / 16) + 1` shapes, and a decode
/// step reads at most twice the valid keys); once it is `W` the shape never changes and the ring
/// wraps. Attention here has no positional encoding, so the order of keys in the buffer does not
/// matter, only which slots are valid.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// `[B, heads, capacity, head_dim]`
    pub k: Tensor<4>,
    /// `[B, heads, capacity, head_dim]`
    pub v: Tensor<4>,
    /// Tokens seen so far. Until the ring wraps (`seen ≤ capacity`), slots `0..seen` are valid;
    /// after, all are.
    pub seen: usize,
}

impl KvCache {
    /// Valid positions held.
    pub fn len(&self) -> usize {
        self.seen.min(self.capacity())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Slots allocated.
    pub fn capacity(&self) -> usize {
        self.k.dims()[2]
    }

    /// Builds the ring from the keys and values of the last `keep ≤ W` positions, oldest first,
    /// after `seen` tokens.
    fn from_ordered(k: Tensor<4>, v: Tensor<4>, seen: usize, window: usize) -> Self {
        let keep = k.dims()[2];
        let ring = |t: Tensor<4>| {
            if keep < window {
                // Only while `seen < W`: positions 0..seen in slots 0..seen, the rest free.
                let cap = keep.next_power_of_two().max(KV_MIN_CAPACITY).min(window);
                grow(t, cap)
            } else {
                // Slot of the oldest kept position, `(seen - W) % W`.
                let s0 = seen % window;
                if s0 == 0 {
                    t
                } else {
                    Tensor::cat(vec![t.clone().narrow(2, window - s0, s0), t.narrow(2, 0, window - s0)], 2)
                }
            }
        };
        Self { k: ring(k), v: ring(v), seen }
    }

    /// The valid keys and values, oldest first: `[B, heads, len, head_dim]` each.
    pub fn ordered(&self) -> (Tensor<4>, Tensor<4>) {
        let cap = self.capacity();
        let order = |t: Tensor<4>| {
            let s = self.seen % cap;
            if self.seen <= cap {
                t.narrow(2, 0, self.seen)
            } else if s == 0 {
                t
            } else {
                Tensor::cat(vec![t.clone().narrow(2, s, cap - s), t.narrow(2, 0, s)], 2)
            }
        };
        (order(self.k.clone()), order(self.v.clone()))
    }
}

/// `t [B, heads, n, hd]` padded with free slots to `[B, heads, cap, hd]`.
fn grow(t: Tensor<4>, cap: usize) -> Tensor<4> {
    let [b, nh, n, hd] = t.dims();
    if cap <= n {
        return t;
    }
    let pad = Tensor::zeros([b, nh, cap - n, hd], &t.device());
    Tensor::cat(vec![t, pad], 2)
}

/// Multi-head causal attention restricted to a sliding window, without positional encoding
/// (position comes from the SSM layers before it), as in the reference.
///
/// ```text
/// q, k, v = x·Wq, x·Wk, x·Wv                   x [B, L, H] → [B, heads, L, H/heads]
/// score(i, j) = q_i·k_j / √head_dim   visible iff j ≤ i and i - j < W
/// out = o_proj(softmax(score)·v)               [B, L, H]
/// ```
/// With a cache, the new tokens are positioned after the cached ones, so prefill, chunked
/// prefill and one-token decoding give the same result as one full forward.
#[derive(Module, Debug)]
pub struct SlidingWindowAttention {
    pub q_proj: Projection,
    pub k_proj: Projection,
    pub v_proj: Projection,
    pub o_proj: Projection,
    pub num_heads: usize,
    pub window: usize,
    pub query_block: usize,
}

impl SlidingWindowAttentionConfig {
    pub fn init(&self, device: &Device) -> SlidingWindowAttention {
        let lin = || LinearConfig::new(self.d_model, self.d_model).with_bias(false).init(device).into();
        self.build([lin(), lin(), lin(), lin()])
    }

    /// Loads `{q,k,v,o}_proj.weight` under `prefix`.
    pub fn load(&self, ld: &Loader, prefix: &str) -> error::Result<SlidingWindowAttention> {
        let h = self.d_model;
        let lin = |name: &str| ld.projection(&format!("{prefix}.{name}"), h, h);
        Ok(self.build([lin("q_proj")?, lin("k_proj")?, lin("v_proj")?, lin("o_proj")?]))
    }

    fn build(&self, [q_proj, k_proj, v_proj, o_proj]: [Projection; 4]) -> SlidingWindowAttention {
        SlidingWindowAttention {
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            num_heads: self.num_heads,
            window: self.window,
            query_block: self.query_block.max(1),
        }
    }
}

impl SlidingWindowAttention {
    /// `x [B, L, H]` and the cache of earlier tokens → `[B, L, H]` and the updated cache
    /// (the last `min(W, total)` positions).
    pub fn forward(&self, x: Tensor<3>, cache: Option<KvCache>) -> (Tensor<3>, KvCache) {
        self.forward_docs(x, cache, None)
    }

    /// [`SlidingWindowAttention::forward`] over packed rows: a query sees only keys of its own
    /// document in `docs` (positions of `docs` are those of `x`; use it without a cache).
    pub fn forward_docs(&self, x: Tensor<3>, cache: Option<KvCache>, docs: Option<&Segments>) -> (Tensor<3>, KvCache) {
        let [bsz, len, h] = x.dims();
        let (nh, hd) = (self.num_heads, h / self.num_heads);
        let heads = |t: Tensor<3>| t.reshape([bsz, len, nh, hd]).swap_dims(1, 2);
        let q = heads(self.q_proj.forward(x.clone()));
        let k = heads(self.k_proj.forward(x.clone()));
        let v = heads(self.v_proj.forward(x));
        let options = AttentionModuleOptions { scale: Some(1.0 / (hd as f64).sqrt()), softcap: None, is_causal: false };
        let cache = match cache {
            Some(c) if len == 1 && docs.is_none() && !c.is_empty() => {
                return self.decode_step(q, k, v, c, options);
            }
            other => other,
        };
        let (k, v, past) = match cache {
            Some(c) if !c.is_empty() => {
                let past = c.seen;
                let (pk, pv) = c.ordered();
                (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2), past)
            }
            _ => (k, v, 0),
        };
        // Keys held: absolute positions [past - held, past + len).
        let held = k.dims()[2] - len;
        let base = past - held;
        let total = past + len;
        let mut outs = Vec::with_capacity(len.div_ceil(self.query_block));
        let mut q0 = 0;
        while q0 < len {
            let q1 = (q0 + self.query_block).min(len);
            // Keys any query of this block can see: absolute positions [past+q0-W+1, past+q1).
            let k0 = (past + q0 + 1).saturating_sub(self.window).max(base);
            let k1 = past + q1;
            let mask = self.band_mask(past + q0, q1 - q0, k0, k1 - k0, &q.device());
            let mask = match docs {
                None => mask.unsqueeze::<4>().expand([bsz, nh, q1 - q0, k1 - k0]),
                Some(d) => {
                    assert_eq!(past, 0, "document masks apply to uncached forwards");
                    let cross = d.cross_mask(q0, q1 - q0, k0, k1 - k0, &q.device());
                    (cross.bool_or(mask.unsqueeze::<3>().expand([bsz, q1 - q0, k1 - k0])))
                        .unsqueeze_dim::<4>(1)
                        .expand([bsz, nh, q1 - q0, k1 - k0])
                }
            };
            outs.push(attention(
                q.clone().narrow(2, q0, q1 - q0),
                k.clone().narrow(2, k0 - base, k1 - k0),
                v.clone().narrow(2, k0 - base, k1 - k0),
                Some(mask),
                None,
                options,
            ));
            q0 = q1;
        }
        let out = Tensor::cat(outs, 2).swap_dims(1, 2).reshape([bsz, len, h]);
        let keep = self.window.min(total);
        let held = k.dims()[2];
        let cache =
            KvCache::from_ordered(k.narrow(2, held - keep, keep), v.narrow(2, held - keep, keep), total, self.window);
        (self.o_proj.forward(out), cache)
    }

    /// One token against a ring cache: the new key and value overwrite one slot in place (the
    /// next free one, or the oldest once the ring is full at `W`) and the query attends to every
    /// valid slot. Shapes change only when the ring doubles.
    fn decode_step(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        cache: KvCache,
        options: AttentionModuleOptions,
    ) -> (Tensor<3>, KvCache) {
        let [bsz, nh, _, hd] = q.dims();
        let KvCache { k: mut ks, v: mut vs, seen } = cache;
        let mut cap = ks.dims()[2];
        if seen >= cap && cap < self.window {
            cap = (2 * cap).min(self.window);
            ks = grow(ks, cap);
            vs = grow(vs, cap);
        }
        let slot = seen % cap;
        let seen = seen + 1;
        let ks = ks.slice_assign([0..bsz, 0..nh, slot..slot + 1, 0..hd], k);
        let vs = vs.slice_assign([0..bsz, 0..nh, slot..slot + 1, 0..hd], v);
        // Free slots (before the ring first fills) are masked.
        let mask = (seen < cap).then(|| {
            let free: Vec<bool> = (0..cap).map(|j| j >= seen).collect();
            Tensor::<1, Bool>::from_data(TensorData::new(free, [cap]), &q.device())
                .reshape([1, 1, 1, cap])
                .expand([bsz, nh, 1, cap])
        });
        let out = attention(q, ks.clone(), vs.clone(), mask, None, options);
        let out = out.swap_dims(1, 2).reshape([bsz, 1, nh * hd]);
        (self.o_proj.forward(out), KvCache { k: ks, v: vs, seen })
    }

    /// `true` where query `qs + i` must not see key `ks + j` (future, or `W` or more behind).
    fn band_mask(&self, qs: usize, nq: usize, ks: usize, nk: usize, device: &Device) -> Tensor<2, Bool> {
        let w = self.window;
        let mut data = Vec::with_capacity(nq * nk);
        for i in 0..nq {
            let qpos = qs + i;
            for j in 0..nk {
                let kpos = ks + j;
                data.push(kpos > qpos || qpos - kpos >= w);
            }
        }
        Tensor::from_data(TensorData::new(data, [nq, nk]), device)
    }

    pub fn save(&self, sv: &mut Saver, prefix: &str) {
        sv.projection(&format!("{prefix}.q_proj"), &self.q_proj);
        sv.projection(&format!("{prefix}.k_proj"), &self.k_proj);
        sv.projection(&format!("{prefix}.v_proj"), &self.v_proj);
        sv.projection(&format!("{prefix}.o_proj"), &self.o_proj);
    }
}
