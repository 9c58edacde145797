//! Raw compute kernels for kiln. Knows nothing of tensors or autograd.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;

/// Floating-point element types the kernels compute in.
pub trait Float:
    num_traits::Float + Copy + Send + Sync + Default + std::fmt::Debug + 'static
{
}
impl Float for f32 {}
impl Float for f64 {}
