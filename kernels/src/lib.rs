//! Raw compute kernels for kiln.
//!
//! This crate knows nothing of tensors, autograd or modules: every kernel
//! works on plain slices plus explicit shapes and strides (counted in
//! elements, never bytes). The tensor runtime (`kiln-runtime`) is the only
//! intended caller.
//!
//! # Layout of the crate
//!
//! * [`cpu::matmul`]: `gemm`, `batched_gemm` (generic over [`Float`]),
//!   `gemm_f16` and `gemm_bf16`, all with arbitrary strides so transposed
//!   operands never need a copy.
//! * [`cpu::conv`]: 2-D convolution (NCHW, PyTorch semantics) forward and
//!   the three backward passes, via im2col/col2im + gemm.
//! * [`cpu::pool`]: max / average / adaptive-average 2-D pooling, forward
//!   and backward, PyTorch semantics.
//! * [`cpu::softmax`]: numerically stable (log-)softmax forward/backward over
//!   the last dimension (`*_rows`) or a middle one (`*_dim`).
//! * [`cpu::parallel`]: the serial/rayon switch used everywhere, with its
//!   measured threshold.
//!
//! # Conventions
//!
//! * Shapes are `[n, c, h, w]` arrays; outputs are returned as freshly
//!   allocated contiguous `Vec`s.
//! * Misuse (a slice too short for its shape, strides that leave the slice,
//!   inconsistent shapes) panics with a message naming the kernel, like a
//!   PyTorch op raising. Nothing here returns `Result`.
//! * Work is split between the calling thread and rayon's global pool
//!   according to its size: small problems never pay for a thread hop.
//! * Results do not depend on the number of rayon threads: reductions across
//!   parallel chunks use a chunking fixed by the shapes alone.
//!
//! # Deviations from the original sketch
//!
//! * `batched_gemm` takes `accumulate` as its last argument (as sketched),
//!   while `gemm` takes it right after the destination strides.
//! * `avg_pool2d_forward`/`_backward` take an extra trailing
//!   `divisor_override: Option<usize>` (PyTorch's `divisor_override`).
//! * `gemm_bf16` converts to `f32`, multiplies there and rounds back once.

#![warn(missing_docs)]

pub mod cpu;

/// Element type of the generic kernels: `f32` and `f64`.
///
/// Matrix products use the `gemm` crate's SIMD kernels for `f32` and `f64`;
/// any other implementor falls back to a simple (slow) loop, so implementing
/// this trait for another type is possible but not recommended.
pub trait Float:
    num_traits::Float + Copy + Send + Sync + Default + std::fmt::Debug + 'static
{
    /// Converts from `f64` (rounding to nearest for `f32`).
    fn cast_f64(v: f64) -> Self;
    /// Converts to `f64` (exact for `f32` and `f64`).
    fn as_f64(self) -> f64;
    /// Converts from `usize` (rounding for large values).
    fn cast_usize(v: usize) -> Self {
        Self::cast_f64(v as f64)
    }
}

impl Float for f32 {
    #[inline(always)]
    fn cast_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    #[inline(always)]
    fn cast_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}
