//! `Tensor::clone`: a copy, as PyTorch's `tensor.clone()` is.
//!
//! `Tensor` deliberately does not implement Rust's `Clone`: a PyTorch
//! user's `y = x.clone(); y.add_(1)` must not change `x`, and a trait
//! `clone` that shared storage would do exactly that. Sharing a handle is
//! [`Tensor::shallow_clone`]. This inherent method is the only `clone` a
//! `Tensor` has, kept in this one file on purpose (delete the file and
//! every `.clone()` on a tensor in the code base stops compiling, which is
//! how call sites are audited).

use crate::Tensor;

impl Tensor {
    /// A copy with its own contiguous storage (same dtype and device),
    /// like `tensor.clone()`. It is differentiable: autograd records
    /// `CloneBackward0`, which passes the gradient through, so it requires
    /// grad when `self` does (outside `no_grad`). In-place changes to the
    /// copy leave `self` alone; [`Tensor::shallow_clone`] shares instead.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let x = Tensor::ones([2]).requires_grad_(true);
    /// let y = x.clone();
    /// assert_eq!(y.grad_fn().unwrap().name(), "CloneBackward0");
    /// y.add_scalar_(1.0);
    /// assert_eq!(x.to_vec::<f32>(), vec![1.0, 1.0]);
    /// assert_eq!(y.to_vec::<f32>(), vec![2.0, 2.0]);
    /// y.sum().backward();
    /// assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![1.0, 1.0]);
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn clone(&self) -> Tensor {
        let out = self.deep_copy();
        Tensor::from_op(out, "CloneBackward0", &[self], |g, _| {
            vec![Some(g.shallow_clone())]
        })
    }
}
