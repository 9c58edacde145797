//! Saved tensors' versions: PyTorch's `SavedVariable` check that a tensor
//! autograd kept for backward was not changed in place before backward
//! read it.

use crate::Tensor;
use crate::device::Device;
use crate::dtype::DType;
use crate::tensor::StorageCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Whose tensor a node saved.
enum Owner {
    /// The node's own output (it names the node in the error).
    Output,
    /// Another tensor; its grad_fn at check time names it in the error,
    /// as PyTorch's does ("which is output 0 of Add").
    Other(Tensor),
}

/// One tensor a backward reads: its storage's version counter, the
/// version when it was saved, and what the error message says about it.
pub(crate) struct SavedVersion {
    counter: Arc<StorageCell>,
    version: u64,
    shape: Vec<usize>,
    dtype: DType,
    device: Device,
    owner: Owner,
}

impl SavedVersion {
    /// Records `t`'s current version; `is_output` when `t` is (a handle or
    /// view of) the output of the node that saves it.
    pub(crate) fn new(t: &Tensor, is_output: bool) -> SavedVersion {
        SavedVersion {
            counter: t.storage_cell().clone(),
            version: t.version(),
            shape: t.shape().to_vec(),
            dtype: t.dtype(),
            device: t.device(),
            // A node holding its own output would keep itself alive.
            owner: if is_output {
                Owner::Output
            } else {
                Owner::Other(t.shallow_clone())
            },
        }
    }

    /// Panics with PyTorch's message when the tensor was changed in place
    /// since it was saved by `node` (a node named like `MulBackward0`).
    pub(crate) fn check(&self, node: &str) {
        let now = self.counter.version.load(Ordering::Acquire);
        if now == self.version {
            return;
        }
        let producer = match &self.owner {
            Owner::Output => Some(node),
            Owner::Other(t) => t.grad_fn_node().map(|n| n.name()),
        };
        let which = producer
            .map(|p| format!(", which is output 0 of {},", short_name(p)))
            .unwrap_or_default();
        panic!(
            "backward: one of the variables needed for gradient computation has been modified by an inplace operation: [{} {:?}]{which} is at version {now}; expected version {} instead. Hint: the backward of {node} reads it; an in-place op (add_, mul_, copy_, an optimizer step, ...) changed it, or a view of it, after it was used. Use the out-of-place op, or change a clone() of it.",
            legacy_type_name(self.dtype, self.device),
            self.shape,
            self.version
        );
    }
}

/// A node's name as PyTorch 2.15's message prints it: `MulBackward0` is
/// `Mul`; names without the suffix (`CopySlices`) stay.
fn short_name(node: &str) -> &str {
    let trimmed = node.trim_end_matches(|c: char| c.is_ascii_digit());
    trimmed.strip_suffix("Backward").unwrap_or(node)
}

/// PyTorch's legacy tensor type name (`torch.FloatTensor`,
/// `torch.cuda.HalfTensor`), which its in-place error message prints.
fn legacy_type_name(dtype: DType, device: Device) -> String {
    let name = match dtype {
        DType::F32 => "FloatTensor",
        DType::F64 => "DoubleTensor",
        DType::F16 => "HalfTensor",
        DType::BF16 => "BFloat16Tensor",
        DType::I64 => "LongTensor",
        DType::I32 => "IntTensor",
        DType::I16 => "ShortTensor",
        DType::U8 => "ByteTensor",
        DType::Bool => "BoolTensor",
    };
    match device {
        Device::Cpu | Device::Test(_) => format!("torch.{name}"),
        Device::Cuda(_) => format!("torch.cuda.{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_pytorch_prints_them() {
        assert_eq!(short_name("MulBackward0"), "Mul");
        assert_eq!(short_name("AddBackward1"), "Add");
        assert_eq!(short_name("CopySlices"), "CopySlices");
        assert_eq!(short_name("CopyBackwards"), "CopyBackwards");
        assert_eq!(
            legacy_type_name(DType::F32, Device::Cpu),
            "torch.FloatTensor"
        );
        assert_eq!(
            legacy_type_name(DType::F16, Device::Cuda(0)),
            "torch.cuda.HalfTensor"
        );
    }
}
