//! The thread-local switch that `no_grad` flips.

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// True unless inside [`no_grad`] (or a [`NoGradGuard`]) on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped.
#[must_use = "grad mode is restored when the guard is dropped"]
pub struct NoGradGuard {
    prev: bool,
}

impl NoGradGuard {
    /// Disables gradient recording on this thread until dropped, like
    /// `with torch.no_grad():`.
    pub fn new() -> Self {
        set_grad_enabled(false)
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// Sets grad mode on this thread; the returned guard restores the old mode.
pub fn set_grad_enabled(enabled: bool) -> NoGradGuard {
    let prev = GRAD_ENABLED.with(|g| g.replace(enabled));
    NoGradGuard { prev }
}

/// Runs `f` with gradient recording disabled: results created inside do not
/// require grad.
///
/// ```
/// use kiln_runtime::{Tensor, autograd::no_grad};
/// let x = Tensor::ones([2]).requires_grad_(true);
/// let y = no_grad(|| &x * 2.0);
/// assert!(!y.requires_grad());
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = set_grad_enabled(false);
    f()
}
