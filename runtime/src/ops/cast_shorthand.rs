//! PyTorch's dtype shorthands (`x.float()`, `x.long()`, ...): each is
//! [`Tensor::to_dtype`] with a fixed dtype, differentiable between
//! floating-point types as `to_dtype` is.

use crate::{DType, Tensor};

/// Declares one shorthand method per `(name, dtype, torch name)`; a new
/// dtype adds one line to the list below.
macro_rules! dtype_shorthands {
    ($($(#[$doc:meta])* $name:ident => $dtype:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Tensor {
                    self.to_dtype(DType::$dtype)
                }
            )*
        }
    };
}

dtype_shorthands! {
    /// Converts to float32, like `tensor.float()`.
    ///
    /// ```
    /// use kiln_runtime::{DType, Tensor};
    /// let x = Tensor::from([1i64, 2]).float();
    /// assert_eq!(x.dtype(), DType::F32);
    /// ```
    float => F32;
    /// Converts to float64, like `tensor.double()`.
    double => F64;
    /// Converts to float16, like `tensor.half()`.
    half => F16;
    /// Converts to bfloat16, like `tensor.bfloat16()`.
    bfloat16 => BF16;
    /// Converts to int64 (floats truncate toward zero), like `tensor.long()`.
    long => I64;
    /// Converts to int32 (floats truncate toward zero), like `tensor.int()`.
    ///
    /// ```
    /// use kiln_runtime::{DType, Tensor};
    /// let x = Tensor::from([1.7f32, -2.5]).int();
    /// assert_eq!((x.dtype(), x.to_vec::<i32>()), (DType::I32, vec![1, -2]));
    /// ```
    int => I32;
    /// Converts to int16 (wrapping like PyTorch's casts), like `tensor.short()`.
    short => I16;
    /// Converts to bool (non-zero is true), like `tensor.bool()`.
    bool => Bool;
    /// Converts to uint8, like `tensor.byte()`.
    byte => U8;
}
