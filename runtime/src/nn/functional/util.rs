//! Shared plumbing for the fused NN functions: dtype dispatch, raw slice
//! access and building result tensors.

use crate::dtype::Element;
use crate::{DType, Device, Tensor};

/// Element types the fused CPU paths compute in (`f32`, `f64`).
pub(crate) trait Real: Element + kiln_kernels::Float {}
impl Real for f32 {}
impl Real for f64 {}

/// A contiguous tensor owning `data` with `shape`.
pub(crate) fn tensor_from<T: Element>(data: Vec<T>, shape: &[usize]) -> Tensor {
    Tensor::from_cpu(T::into_storage(data), shape)
}

/// Records `out`, computed from `x`, `weight` and an optional `bias`
/// (conv2d, linear), with `saved` (the tensors `backward` reads) checked
/// for in-place changes. `backward(g, need)` learns which of the three need
/// a gradient (never the bias without one) and returns `[dx, dw, db]`.
pub(crate) fn from_weighted_op(
    out: Tensor,
    name: &'static str,
    (x, weight, bias): (&Tensor, &Tensor, Option<&Tensor>),
    saved: [Tensor; 2],
    backward: impl Fn(&Tensor, [bool; 3]) -> [Option<Tensor>; 3] + Send + Sync + 'static,
) -> Tensor {
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    let has_bias = bias.is_some();
    Tensor::from_op_saved(out, name, &inputs, &saved, move |g, need| {
        let [dx, dw, db] = backward(g, [need[0], need[1], has_bias && need[2]]);
        let mut grads = vec![dx, dw];
        if has_bias {
            grads.push(db);
        }
        grads
    })
}

/// True for float16/bfloat16, which the fused paths compute in float32.
pub(crate) fn is_half(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16)
}

/// True when the fused CPU path can take `t` directly.
pub(crate) fn cpu_real(t: &Tensor) -> bool {
    t.device() == Device::Cpu && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// Panics naming `op` unless `t` holds floating-point values.
pub(crate) fn check_float(op: &str, what: &str, t: &Tensor) {
    if !t.dtype().is_float() {
        panic!(
            "{op}: expected {what} to be a floating-point tensor, but got {} (shape {:?})",
            t.dtype(),
            t.shape()
        );
    }
}

/// Panics naming `op` unless `t` has `dtype` (and is on `device`).
pub(crate) fn check_same(op: &str, what: &str, t: &Tensor, like: &Tensor) {
    if t.dtype() != like.dtype() {
        panic!(
            "{op}: expected {what} to have dtype {} like the input, but got {} (shape {:?})",
            like.dtype(),
            t.dtype(),
            t.shape()
        );
    }
    if t.device() != like.device() {
        panic!(
            "{op}: expected {what} on {} like the input, but it is on {}",
            like.device(),
            t.device()
        );
    }
}

/// Runs `f` on the raw storage of `t` from its offset, with its strides
/// (no copy even for transposed or broadcast views).
pub(crate) fn with_strided<T: Element, R>(
    t: &Tensor,
    op: &str,
    f: impl FnOnce(&[T], &[usize]) -> R,
) -> R {
    with_raw(op, t, |data: &[T]| {
        f(&data[t.layout().offset()..], t.layout().strides())
    })
}

/// Runs `f` on the whole raw storage slice of `t` (to be read through a
/// layout); panics naming `op` when `t` is not of dtype `T`.
pub(crate) fn with_raw<T: Element, R>(op: &str, t: &Tensor, f: impl FnOnce(&[T]) -> R) -> R {
    let guard = t.read_storage();
    let data = T::slice(guard.cpu(op)).unwrap_or_else(|| {
        panic!(
            "{op}: expected a tensor of dtype {} but got {}",
            T::DTYPE,
            t.dtype()
        )
    });
    f(data)
}
