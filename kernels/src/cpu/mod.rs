//! CPU kernels: rayon for parallelism, the `gemm` crate for matrix products.

pub mod alloc;
pub mod conv;
pub mod int_matmul;
pub mod isa;
pub mod matmul;
pub mod parallel;
pub mod pool;
pub mod softmax;

mod scratch;
mod winograd;
