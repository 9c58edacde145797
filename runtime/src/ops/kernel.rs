//! Shared CPU helpers for the elementwise, activation, indexing and joining
//! ops: rayon-parallel maps over contiguous slices, float-dtype dispatch
//! (half types are computed in f32), and the "multiply the gradient by a
//! piecewise-constant factor" backward that ReLU, abs, clamp and friends
//! share.

use crate::backend::{self, UnaryOp};
use crate::dtype::DType;
use crate::storage::CpuStorage;
use crate::{Tensor, autograd};
use kiln_kernels::cpu::parallel::should_parallelize;
use rayon::prelude::*;

/// Element count from which elementwise loops run on the rayon pool: the
/// kernels crate's measured break-even for a cheap elementwise op (see
/// `kiln_kernels::cpu::parallel::PAR_THRESHOLD`), so both layers agree.
pub(crate) const PAR_MIN: usize = kiln_kernels::cpu::parallel::PAR_THRESHOLD;

/// `f` over every element, in parallel for large slices.
pub(crate) fn par_map<T: Copy + Send + Sync, U: Send>(
    src: &[T],
    f: impl Fn(T) -> U + Send + Sync,
) -> Vec<U> {
    if should_parallelize(src.len(), 1) {
        let mut out = Vec::with_capacity(src.len());
        src.par_iter()
            .with_min_len(PAR_MIN / 2)
            .map(|&x| f(x))
            .collect_into_vec(&mut out);
        out
    } else {
        src.iter().map(|&x| f(x)).collect()
    }
}

/// `f` over pairs of elements of equal-length slices, in parallel for large
/// slices.
pub(crate) fn par_zip<T: Copy + Send + Sync, U: Copy + Send + Sync, V: Send>(
    a: &[T],
    b: &[U],
    f: impl Fn(T, U) -> V + Send + Sync,
) -> Vec<V> {
    debug_assert_eq!(a.len(), b.len());
    if should_parallelize(a.len(), 1) {
        let mut out = Vec::with_capacity(a.len());
        a.par_iter()
            .zip(b.par_iter())
            .with_min_len(PAR_MIN / 2)
            .map(|(&x, &y)| f(x, y))
            .collect_into_vec(&mut out);
        out
    } else {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    }
}

/// The dtype a float kernel computes in for a tensor of `dtype`: f64 stays
/// f64, everything else is computed in f32.
fn compute_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// The dtype of a float op's result: floats keep their type, integers and
/// bool become float32 (PyTorch's promotion for `sqrt`, `sigmoid`, ...).
pub(crate) fn float_result_dtype(dtype: DType) -> DType {
    if dtype.is_float() { dtype } else { DType::F32 }
}

/// Runs a float kernel over `x`'s elements (row-major, contiguous) without
/// autograd: f32 and f64 natively, everything else through f32, with the
/// result in [`float_result_dtype`] and `x`'s shape.
pub(crate) fn float_kernel1(
    op: &str,
    x: &Tensor,
    k32: impl FnOnce(&[f32]) -> Vec<f32>,
    k64: impl FnOnce(&[f64]) -> Vec<f64>,
) -> Tensor {
    let out_dtype = float_result_dtype(x.dtype());
    let xc = autograd::no_grad(|| x.to_dtype(compute_dtype(x.dtype())));
    let out = match xc.dtype() {
        DType::F64 => CpuStorage::F64(xc.with_slice::<f64, _>(op, k64)),
        _ => CpuStorage::F32(xc.with_slice::<f32, _>(op, k32)),
    };
    let t = Tensor::from_cpu(out, x.shape());
    if t.dtype() == out_dtype {
        t
    } else {
        autograd::no_grad(|| t.to_dtype(out_dtype))
    }
}

/// Like [`float_kernel1`] for two same-shape tensors; `b` is converted to
/// `a`'s compute dtype.
pub(crate) fn float_kernel2(
    op: &str,
    a: &Tensor,
    b: &Tensor,
    k32: impl FnOnce(&[f32], &[f32]) -> Vec<f32>,
    k64: impl FnOnce(&[f64], &[f64]) -> Vec<f64>,
) -> Tensor {
    assert_eq!(
        a.shape(),
        b.shape(),
        "{op}: expected tensors of the same shape, got {:?} and {:?}",
        a.shape(),
        b.shape()
    );
    let out_dtype = float_result_dtype(a.dtype());
    let cd = compute_dtype(a.dtype());
    let (ac, bc) = autograd::no_grad(|| (a.to_dtype(cd), b.to_dtype(cd)));
    let out = match cd {
        DType::F64 => CpuStorage::F64(
            ac.with_slice::<f64, _>(op, |x| bc.with_slice::<f64, _>(op, |y| k64(x, y))),
        ),
        _ => CpuStorage::F32(
            ac.with_slice::<f32, _>(op, |x| bc.with_slice::<f32, _>(op, |y| k32(x, y))),
        ),
    };
    let t = Tensor::from_cpu(out, a.shape());
    if t.dtype() == out_dtype {
        t
    } else {
        autograd::no_grad(|| t.to_dtype(out_dtype))
    }
}

/// `op` over `x`'s elements (no autograd) with the float ops' dtype rule:
/// float tensors keep their dtype, everything else is computed in float32.
pub(crate) fn unary(op: impl Into<UnaryOp>, x: &Tensor) -> Tensor {
    let op = op.into();
    if x.dtype().is_float() {
        backend::of(x.device()).unary(op, x)
    } else {
        let xf = autograd::no_grad(|| x.to_dtype(DType::F32));
        backend::of(x.device()).unary(op, &xf)
    }
}

/// Like [`unary`], but int64 tensors stay int64 (the op has an integer form).
pub(crate) fn unary_int(op: impl Into<UnaryOp>, x: &Tensor) -> Tensor {
    let op = op.into();
    if x.dtype() == DType::I64 {
        return backend::of(x.device()).unary(op, x);
    }
    unary(op, x)
}

/// Elementwise float map of two same-shape tensors (no autograd).
pub(crate) fn zip2(
    op: &str,
    a: &Tensor,
    b: &Tensor,
    f32f: impl Fn(f32, f32) -> f32 + Send + Sync,
    f64f: impl Fn(f64, f64) -> f64 + Send + Sync,
) -> Tensor {
    float_kernel2(
        op,
        a,
        b,
        |x, y| par_zip(x, y, f32f),
        |x, y| par_zip(x, y, f64f),
    )
}

/// `g * s(x)` for the piecewise-constant derivative `s` of `op` (a mask
/// or a sign), the backward of ReLU, abs, clamp, threshold and leaky ReLU.
/// It is recorded as an op of `g` alone (its derivative in `x` is zero
/// almost everywhere), so double backward through these activations
/// works.
pub(crate) fn scaled_grad(name: &'static str, op: UnaryOp, g: &Tensor, x: &Tensor) -> Tensor {
    let out = backend::of(g.device()).scaled_grad(op, &g.detach(), x);
    let x = x.detach();
    Tensor::from_op_saved(out, name, &[g], &[x.shallow_clone()], move |gg, _| {
        vec![Some(scaled_grad(name, op, gg, &x))]
    })
}

/// Splits `shape` around `dim` into `(outer, size, inner)` element counts.
pub(crate) fn split_at_dim(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim],
        shape[dim + 1..].iter().product(),
    )
}
