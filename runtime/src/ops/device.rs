//! Device plumbing shared by every op: the same-device check that ops on
//! several tensors run first, and the dispatch that sends CUDA tensors to
//! their backend path. Dispatch is one `is_cuda` test, compiled away
//! without the `cuda` feature, so the CPU paths are unchanged.

use crate::Tensor;

/// Panics naming `op` and both devices unless every tensor is on the
/// device of the first, like PyTorch's "Expected all tensors to be on the
/// same device".
pub(crate) fn same_device(op: &str, ts: &[&Tensor]) {
    let Some((first, rest)) = ts.split_first() else {
        return;
    };
    let d = first.device();
    if let Some(t) = rest.iter().find(|t| t.device() != d) {
        panic!(
            "{op}: expected all tensors to be on the same device, but found at least two devices, {d} and {}",
            t.device()
        );
    }
}

/// True when `t` lives on a CUDA device (a constant `false` without the
/// `cuda` feature).
#[inline]
pub(crate) fn is_cuda(t: &Tensor) -> bool {
    cfg!(feature = "cuda") && t.device().is_cuda()
}

/// `return $cuda;` from the enclosing function when the tensor `$t` lives
/// on a CUDA device; nothing at all without the `cuda` feature (`$cuda` is
/// then not compiled, so it may name `crate::backend::cuda`).
macro_rules! cuda_return {
    ($t:expr, $cuda:expr) => {
        #[cfg(feature = "cuda")]
        if $t.device().is_cuda() {
            return $cuda;
        }
    };
}
pub(crate) use cuda_return;

/// Panics with "`op`: not supported on cuda:N" when `t` lives on a CUDA
/// device: the ops that have no device kernel yet.
pub(crate) fn cpu_only(op: &str, t: &Tensor) {
    if is_cuda(t) {
        panic!(
            "{op}: not supported on {}; move the tensor to the CPU with .to(&Device::Cpu)",
            t.device()
        );
    }
}
