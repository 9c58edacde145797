//! Tensor operations. Each file holds one family of ops; every
//! differentiable op's backward rule sits in the closure passed to
//! `Tensor::from_op` right next to its forward.

mod activation;
pub(crate) mod binary;
mod cast;
mod cast_shorthand;
pub(crate) mod device;
mod einsum;
pub(crate) mod erf;
mod index;
pub(crate) mod indexing;
pub(crate) mod inplace;
#[cfg(feature = "ndarray")]
mod interop;
pub(crate) mod join;
pub(crate) mod kernel;
mod math;
pub(crate) mod matmul;
pub(crate) mod reduce;
mod shape;
pub(crate) mod sort;
pub(crate) mod unary;

#[cfg(test)]
mod tests;
