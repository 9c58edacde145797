//! CPU kernels.
pub mod matmul;
