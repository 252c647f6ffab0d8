//! The 4-bit matmul's backward for Burn's autodiff backend: the weight is frozen, so the only
//! gradient is `dx = dy·W`, computed by the transposed kernel; the forward saves only the weight.

use burn::backend::{AutodiffBackend, Backend, tensor::FloatTensor, tensor::IntTensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};

use super::{GemvKernel, QuantMatmulBackend};

#[derive(Debug)]
struct QuantMatmulBackward;

/// `packed, scales, biases, lut, group size, has_bias`.
type WeightState<B> = (IntTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, usize, bool);

impl<B: Backend + QuantMatmulBackend> Backward<B, 1> for QuantMatmulBackward {
    type State = WeightState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (packed, scales, biases, lut, gs, has_bias) = ops.state;
        let [parent] = ops.parents;
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::quant_matmul_t(grad, packed, scales, biases, lut, gs, has_bias));
        }
    }
}

#[derive(Debug)]
struct QuantMatmulTBackward;

impl<B: Backend + QuantMatmulBackend> Backward<B, 1> for QuantMatmulTBackward {
    type State = WeightState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (packed, scales, biases, lut, gs, has_bias) = ops.state;
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let gemv = GemvKernel::default().index();
            grads.register::<B>(node.id, B::quant_matmul(grad, packed, scales, biases, lut, gs, has_bias, gemv));
        }
    }
}

impl<B: Backend + QuantMatmulBackend, C: CheckpointStrategy> QuantMatmulBackend for Autodiff<B, C> {
    #[allow(clippy::too_many_arguments)]
    fn quant_matmul(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        biases: FloatTensor<Self>,
        lut: FloatTensor<Self>,
        group_size: usize,
        has_bias: bool,
        gemv: usize,
    ) -> FloatTensor<Self> {
        // The weight's tensors are constants (frozen base): no node, no gradient.
        let [s, b, l] = [scales, biases, lut].map(Self::inner);
        match QuantMatmulBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::quant_matmul(
                    x.into_primitive(),
                    packed.clone(),
                    s.clone(),
                    b.clone(),
                    l.clone(),
                    group_size,
                    has_bias,
                    gemv,
                );
                prep.finish((packed, s, b, l, group_size, has_bias), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::quant_matmul(x.into_primitive(), packed, s, b, l, group_size, has_bias, gemv))
            }
        }
    }

    fn quant_matmul_t(
        g: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        biases: FloatTensor<Self>,
        lut: FloatTensor<Self>,
        group_size: usize,
        has_bias: bool,
    ) -> FloatTensor<Self> {
        let [s, b, l] = [scales, biases, lut].map(Self::inner);
        match QuantMatmulTBackward.prepare::<C>([g.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::quant_matmul_t(
                    g.into_primitive(),
                    packed.clone(),
                    s.clone(),
                    b.clone(),
                    l.clone(),
                    group_size,
                    has_bias,
                );
                prep.finish((packed, s, b, l, group_size, has_bias), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::quant_matmul_t(g.into_primitive(), packed, s, b, l, group_size, has_bias))
            }
        }
    }
}
