//! `Dropout` and `Flatten`.

use crate::Tensor;
use crate::nn::module::py_float;
use crate::nn::{Forward, functional};

/// Zeroes elements with probability `p` in training mode and scales the
/// rest by `1/(1-p)`; the identity in eval mode. Like `nn.Dropout`.
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "dropout_extra_repr")]
pub struct Dropout {
    /// Probability of zeroing an element.
    #[module(skip)]
    pub p: f64,
    #[module(training)]
    training: bool,
}

impl Dropout {
    /// Dropout with probability `p` (panics outside `[0, 1]`).
    pub fn new(p: f64) -> Dropout {
        assert!(
            (0.0..=1.0).contains(&p),
            "Dropout: dropout probability has to be between 0 and 1, but got {p}"
        );
        Dropout { p, training: true }
    }
}

impl Forward for Dropout {
    fn forward(&self, x: &Tensor) -> Tensor {
        functional::dropout(x, self.p, self.training)
    }
}

/// What `print(model)` shows inside [`Dropout`]'s parentheses (PyTorch's
/// `extra_repr`).
fn dropout_extra_repr(s: &Dropout) -> String {
    format!("p={}, inplace=False", py_float(s.p))
}

/// Flattens dimensions `start_dim..=end_dim`, like `nn.Flatten` (default
/// 1 to -1: keeps the batch dimension).
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "flatten_extra_repr")]
pub struct Flatten {
    /// First dimension flattened.
    #[module(skip)]
    pub start_dim: isize,
    /// Last dimension flattened.
    #[module(skip)]
    pub end_dim: isize,
    #[module(training)]
    training: bool,
}

impl Flatten {
    /// `Flatten(start_dim=1, end_dim=-1)`.
    pub fn new() -> Flatten {
        Flatten::with_dims(1, -1)
    }

    /// Flattens `start_dim..=end_dim`.
    pub fn with_dims(start_dim: isize, end_dim: isize) -> Flatten {
        Flatten {
            start_dim,
            end_dim,
            training: true,
        }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new()
    }
}

impl Forward for Flatten {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.flatten(self.start_dim, self.end_dim)
    }
}

/// What `print(model)` shows inside [`Flatten`]'s parentheses (PyTorch's
/// `extra_repr`).
fn flatten_extra_repr(s: &Flatten) -> String {
    format!("start_dim={}, end_dim={}", s.start_dim, s.end_dim)
}
