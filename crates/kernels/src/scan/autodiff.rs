//! The scan's backward for Burn's autodiff backend. The forward saves only its inputs; the
//! backward kernel recomputes states chunk by chunk from recomputed chunk-start states.

use burn::backend::AutodiffBackend;
use burn::backend::{Backend, TensorMetadata, tensor::FloatTensor};
use burn::tensor::DType;
use burn::tensor::{Shape, Slice};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};

use super::SelectiveScanBackend;

#[derive(Debug)]
struct ScanBackward;

impl<B: Backend + SelectiveScanBackend> Backward<B, 7> for ScanBackward {
    /// `x, dt, A, B, C, D, h0, reset`.
    type State = [FloatTensor<B>; 8];

    fn backward(self, ops: Ops<Self::State, 7>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let [x, dt, a, b, c, d, h0, reset] = ops.state;
        let xs = x.shape();
        let (bsz, len, e, n) = (xs[0], xs[1], xs[2], a.shape()[1]);
        let dtype = x.dtype();
        let (dx, ddt, da, dbc, dh0) = B::selective_scan_backward(x.clone(), dt, a, b, c, d, h0, reset, grad.clone());
        let cast = |t: FloatTensor<B>| if dtype == DType::F32 { t } else { B::float_cast(t, dtype.into()) };
        // dA: [B, K, N, E] partials → [E, N].
        let da = B::float_swap_dims(B::float_reshape(B::float_sum_dims(da, &[0, 1]), Shape::new([n, e])), 0, 1);
        // dB | dC: [B, L, E/W, 2N] partials → [B, L, 2N].
        let dbc = B::float_reshape(B::float_sum_dim(dbc, 2), Shape::new([bsz, len, 2 * n]));
        let full = Slice::full();
        let db = B::float_slice(dbc.clone(), &[full, full, Slice::new(0, Some(n as isize), 1)]);
        let dc = B::float_slice(dbc, &[full, full, Slice::new(n as isize, Some(2 * n as isize), 1)]);
        // dD = Σ_{b,t} dy·x.
        let gy = B::float_slice(grad, &[full, Slice::new(0, Some(len as isize), 1), full]);
        let dd = B::float_reshape(B::float_sum_dims(B::float_mul(gy, x), &[0, 1]), Shape::new([e]));
        let all = [dx, ddt, cast(da), cast(db), cast(dc), dd, dh0];
        for (parent, g) in ops.parents.into_iter().zip(all) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: Backend + SelectiveScanBackend, C: CheckpointStrategy> SelectiveScanBackend for Autodiff<B, C> {
    fn selective_scan_packed(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        d: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reset: FloatTensor<Self>,
        chunk: usize,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), dt.node(), a.node(), b.node(), c.node(), d.node(), h0.node()];
        let prims = [x, dt, a, b, c, d, h0, reset].map(|t| t.into_primitive());
        let run = |p: [FloatTensor<B>; 8]| {
            let [x, dt, a, b, c, d, h0, r] = p;
            B::selective_scan_packed(x, dt, a, b, c, d, h0, r, chunk)
        };
        match ScanBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = run(prims.clone());
                prep.finish(prims, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(run(prims)),
        }
    }

    fn selective_scan_backward(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        d: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reset: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Second-order gradients are not supported: the results are constants.
        let [x, dt, a, b, c, d, h0, r, g] = [x, dt, a, b, c, d, h0, reset, grad].map(Self::inner);
        let (p, q, s, t, u) = B::selective_scan_backward(x, dt, a, b, c, d, h0, r, g);
        (Self::from_inner(p), Self::from_inner(q), Self::from_inner(s), Self::from_inner(t), Self::from_inner(u))
    }

    fn selective_scan_step(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        d: FloatTensor<Self>,
        h: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // Inference only (documented on `selective_scan_step`): the results are constants.
        let [x, dt, a, b, c, d, h] = [x, dt, a, b, c, d, h].map(Self::inner);
        let (y, h) = B::selective_scan_step(x, dt, a, b, c, d, h);
        (Self::from_inner(y), Self::from_inner(h))
    }

    fn conv_step(
        window: FloatTensor<Self>,
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // Inference only (documented on `conv_step`): the results are constants.
        let [window, x, weight, bias] = [window, x, weight, bias].map(Self::inner);
        let (out, window) = B::conv_step(window, x, weight, bias);
        (Self::from_inner(out), Self::from_inner(window))
    }
}
