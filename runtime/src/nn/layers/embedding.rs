//! `Embedding`: a lookup table.

use super::param;
use crate::nn::{Forward, functional, init};
use crate::{Device, Tensor, TensorOptions};

/// A table of `num_embeddings` vectors of size `embedding_dim`, indexed by
/// int64 tensors, like `nn.Embedding`. Initialised `N(0, 1)`.
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "embedding_extra_repr")]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Tensor,
    /// Number of rows.
    #[module(skip)]
    pub num_embeddings: usize,
    /// Row size.
    #[module(skip)]
    pub embedding_dim: usize,
    #[module(training)]
    training: bool,
}

impl Embedding {
    /// A table on `device`.
    pub fn new(num_embeddings: usize, embedding_dim: usize, device: &Device) -> Embedding {
        let w = Tensor::zeros_opts(
            [num_embeddings, embedding_dim],
            TensorOptions::default().device(device),
        );
        init::normal_(&w, 0.0, 1.0);
        Embedding {
            weight: param(w),
            num_embeddings,
            embedding_dim,
            training: true,
        }
    }
}

impl Forward for Embedding {
    fn forward(&self, x: &Tensor) -> Tensor {
        functional::embedding(x, &self.weight)
    }
}

/// What `print(model)` shows inside [`Embedding`]'s parentheses (PyTorch's
/// `extra_repr`).
fn embedding_extra_repr(s: &Embedding) -> String {
    format!("{}, {}", s.num_embeddings, s.embedding_dim)
}
