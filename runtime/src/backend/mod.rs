//! Device backends beyond the CPU. Without the `cuda` feature this only
//! answers that no GPU is available.

/// Whether a CUDA device can be used right now.
pub fn cuda_is_available() -> bool {
    #[cfg(feature = "cuda")]
    {
        cuda::is_available()
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

#[cfg(feature = "cuda")]
pub mod cuda;
mod unary_op;
pub use unary_op::UnaryOp;

use crate::{DType, Device, Tensor};

/// Converts a tensor's elements to `dtype` (no autograd).
pub(crate) fn cast(t: &Tensor, dtype: DType) -> Tensor {
    // The device cast takes the storage lock itself: not held here.
    crate::ops::device::cuda_return!(t, cuda::cast(t, dtype));
    let guard = t.read_storage();
    Tensor::from_cpu(guard.cpu("to_dtype").cast(t.layout(), dtype), t.shape())
}

/// Copies a tensor to another device (no autograd).
pub(crate) fn transfer(t: &Tensor, device: Device) -> Tensor {
    #[cfg(feature = "cuda")]
    {
        cuda::transfer(t, device)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = t;
        panic!(
            "to: cannot move a tensor to {device}: kiln was built without the `cuda` feature (rebuild with --features cuda)"
        )
    }
}
