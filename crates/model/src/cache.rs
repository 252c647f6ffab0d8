//! The hybrid decoding cache: one state per layer (SSM recurrent state or windowed KV).

use crate::layers::LayerState;

/// Everything a model needs to continue a batch of sequences token by token.
///
/// Memory is constant in the sequence length: `B·(K-1)·E + B·E·N` per SSM layer and at
/// `2·B·W·H` per attention layer (a fixed-shape ring of the last `W` keys and values).
#[derive(Debug, Clone)]
pub struct ModelCache {
    /// Per layer; `None` before the first call.
    pub layers: Vec<Option<LayerState>>,
    /// Tokens already consumed per sequence.
    pub position: usize,
}

impl ModelCache {
    pub fn new(num_layers: usize) -> Self {
        Self { layers: vec![None; num_layers], position: 0 }
    }

    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.position = 0;
    }
}
