//! dtype conversion.

use crate::{DType, Tensor};

impl Tensor {
    /// Converts to `dtype`, like `tensor.to(dtype)`. Differentiable between
    /// floating-point types.
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.shallow_clone();
        }
        let out = crate::backend::cast(self, dtype);
        if !dtype.is_float() || !self.dtype().is_float() {
            return out;
        }
        let src = self.dtype();
        Tensor::from_op(out, "ToCopyBackward0", &[self], move |g, _| {
            vec![Some(g.to_dtype(src))]
        })
    }
}
