//! Tensor operations. Each file holds one family of ops; every
//! differentiable op's backward rule sits in the closure passed to
//! `Tensor::from_op` right next to its forward.

pub(crate) mod binary;
mod cast;
mod inplace;
mod matmul;
pub(crate) mod reduce;
mod shape;
pub(crate) mod unary;
