//! The standard layers of `torch.nn`, one file per family.

mod activation;
mod conv;
mod dropout;
mod embedding;
mod linear;
mod norm;
mod pool;
mod sequential;

pub use activation::{GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh, Threshold};
pub use conv::{Conv2d, Conv2dOptions};
pub use dropout::{Dropout, Flatten};
pub use embedding::Embedding;
pub use linear::Linear;
pub use norm::{BatchNorm1d, BatchNorm2d, BatchNormOptions, LayerNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use sequential::Sequential;

/// A fresh parameter: `t` as a leaf that requires grad.
pub(crate) fn param(t: crate::Tensor) -> crate::Tensor {
    t.detach().requires_grad_(true)
}
