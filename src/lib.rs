//! kiln: PyTorch's programming model in Rust, with model shapes checked
//! while they compile.

pub use kiln_runtime::*;

/// The names most programs need, like `import torch`.
pub mod prelude {
    pub use kiln_runtime::autograd::{self, no_grad};
    pub use kiln_runtime::{DType, Device, Tensor, TensorOptions, manual_seed, tensor};
}
