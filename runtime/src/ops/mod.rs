//! Tensor operations. Each file holds one family of ops; every
//! differentiable op's backward rule sits in the closure passed to
//! `Tensor::from_op` right next to its forward.

mod activation;
pub(crate) mod binary;
mod cast;
#[cfg(feature = "cuda")]
mod cuda;
pub(crate) mod device;
mod einsum;
mod erf;
mod index;
mod inplace;
#[cfg(feature = "ndarray")]
mod interop;
mod join;
pub(crate) mod kernel;
mod math;
mod matmul;
pub(crate) mod reduce;
mod shape;
mod sort;
pub(crate) mod unary;

#[cfg(test)]
mod tests;
