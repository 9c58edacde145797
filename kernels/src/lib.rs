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
//! # Deviations from / additions to the original sketch
//!
//! * `batched_gemm` takes `accumulate` as its last argument (as sketched),
//!   while `gemm` takes it right after the destination strides.
//! * `avg_pool2d_forward`/`_backward` take an extra trailing
//!   `divisor_override: Option<usize>` (PyTorch's `divisor_override`);
//!   pass `None` for the usual behaviour.
//! * `gemm_bf16` converts to `f32`, multiplies there and rounds back once.
//! * Added: `gemm_serial` (never spawns threads), `GEMM_PAR_THRESHOLD`,
//!   `pool2d_output_size`, `Conv2dParams::default()`, and on [`Float`] the
//!   conversions `cast_f64`, `as_f64`, `cast_usize` (named so as not to
//!   clash with `num_traits`' `NumCast`/`ToPrimitive`).
//!
//! # Public API at a glance
//!
//! ```text
//! cpu::matmul
//!   gemm<T: Float>(m, n, k, dst, dst_rs, dst_cs, accumulate,
//!                  lhs, lhs_rs, lhs_cs, rhs, rhs_rs, rhs_cs)
//!   gemm_serial<T: Float>(same arguments)
//!   gemm_f16(same, with &[half::f16]) / gemm_bf16(same, with &[half::bf16])
//!   batched_gemm<T: Float>(batch, m, n, k, dst, dst_bs, dst_rs, dst_cs,
//!                          lhs, lhs_bs, lhs_rs, lhs_cs,
//!                          rhs, rhs_bs, rhs_rs, rhs_cs, accumulate)
//! window
//!   output_size(in, kernel, stride, padding, dilation, ceil_mode) -> Option<usize>
//!   (the one copy of the conv/pool output-size rule; everything below uses it)
//! cpu::conv
//!   Conv2dParams { stride, padding, dilation: [usize; 2], groups }
//!   conv2d_output_size(in_hw, kernel, &p) -> Option<[usize; 2]>
//!   conv2d_forward(input, in_shape, weight, w_shape, bias, &p) -> Vec<T>
//!   conv2d_backward_input(grad_out, out_shape, weight, w_shape, in_shape, &p)
//!   conv2d_backward_weight(grad_out, out_shape, input, in_shape, w_shape, &p)
//!   conv2d_backward_bias(grad_out, out_shape) -> Vec<T>
//!   conv2d_backward_weight_and_bias(grad_out, out_shape, input, in_shape,
//!                                   w_shape, &p) -> (Vec<T>, Vec<T>)
//!   conv2d_backward(grad_out, out_shape, input, in_shape, weight, w_shape,
//!                   &p, need: [bool; 3]) -> ConvGrads<T>
//!   (also conv2d_backward_input_and_weight, and conv2d_forward_keeping /
//!   conv2d_backward_reusing for the Winograd route's kept transforms)
//! cpu::pool
//!   pool_output_size(in, kernel, stride, padding, dilation, ceil_mode)
//!   pool2d_output_size([h, w], kernel, stride, padding, dilation, ceil_mode)
//!   max_pool2d_forward(input, in_shape, kernel, stride, padding, dilation,
//!                      ceil_mode) -> (Vec<T>, Vec<u32>, [usize; 4])
//!   max_pool2d_backward(grad_out, out_shape, indices, in_shape) -> Vec<T>
//!   avg_pool2d_forward(input, in_shape, kernel, stride, padding, ceil_mode,
//!                      count_include_pad, divisor_override) -> (Vec<T>, [usize; 4])
//!   avg_pool2d_backward(grad_out, out_shape, in_shape, kernel, stride,
//!                       padding, ceil_mode, count_include_pad, divisor_override)
//!   adaptive_avg_pool2d_forward(input, in_shape, out_hw) -> Vec<T>
//!   adaptive_avg_pool2d_backward(grad_out, in_shape, out_hw) -> Vec<T>
//! cpu::softmax
//!   softmax_rows / log_softmax_rows(x, rows, cols) -> Vec<T>
//!   softmax_rows_backward / log_softmax_rows_backward(y, gy, rows, cols)
//!   softmax_dim / log_softmax_dim(x, outer, dim, inner) -> Vec<T>
//!   softmax_dim_backward / log_softmax_dim_backward(y, gy, outer, dim, inner)
//! cpu::parallel
//!   PAR_THRESHOLD, num_threads(), should_parallelize(elements, cost),
//!   par_chunks_mut_map(dst, f(offset, chunk)), par_chunks_mut_map_with(dst,
//!   cost, f), par_blocks_mut(dst, block, cost, f(first_block, chunk)),
//!   par_map(src, dst, f), par_zip_map(a, b, dst, f), par_ranges(n, cost, f)
//! ```

#![warn(missing_docs)]

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;

/// The output-size rule of every convolution and pooling window
/// ([`window::output_size`]), re-exported from the dependency-free
/// `kiln-window` crate that the `network!` shape checker also uses.
pub mod window {
    pub use kiln_window::output_size;
}

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
