//! Device plumbing shared by every op: the same-device check that ops on
//! several tensors run first. Dispatch to a device is `crate::backend::of`.

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
