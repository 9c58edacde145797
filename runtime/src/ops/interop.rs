//! Conversions to and from [`ndarray`] arrays (feature `ndarray`).
//!
//! Unlike NumPy's `torch.from_numpy`, the tensor and the array cannot share
//! one buffer that both sides keep writing to: Rust gives the buffer a
//! single owner. Moving an array in is zero-copy when it is in standard
//! (row-major) layout, because the tensor takes over the array's `Vec`;
//! reading out copies.

use crate::Tensor;
use crate::dtype::Element;
use ndarray::{Array, ArrayD, Dimension, IxDyn};

impl Tensor {
    /// Builds a tensor from an owned array, reusing its buffer without a
    /// copy when the array is in standard layout (else copying in logical
    /// order), like `torch.from_numpy` minus the shared memory.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let a = ndarray::Array2::<f32>::ones((2, 3));
    /// let t = Tensor::from_ndarray(a);
    /// assert_eq!(t.shape(), &[2, 3]);
    /// ```
    pub fn from_ndarray<T: Element, D: Dimension>(array: Array<T, D>) -> Tensor {
        let shape = array.shape().to_vec();
        let n = array.len();
        let data = if array.is_standard_layout() {
            let (mut v, offset) = array.into_raw_vec_and_offset();
            let start = offset.unwrap_or(0);
            if start == 0 && v.len() == n {
                v
            } else {
                v.truncate(start + n);
                v.drain(..start);
                v
            }
        } else {
            array.iter().copied().collect()
        };
        Tensor::from_vec(data, shape)
    }

    /// Copies the elements (converted to `T`) into an `ArrayD` of the same
    /// shape, like `tensor.numpy()` (a copy, not a view).
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let t = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]);
    /// let a = t.to_ndarray::<f32>();
    /// assert_eq!(a[[1, 0]], 3.0);
    /// ```
    pub fn to_ndarray<T: Element>(&self) -> ArrayD<T> {
        ArrayD::from_shape_vec(IxDyn(self.shape()), self.to_vec::<T>())
            .expect("to_vec yields exactly numel elements in row-major order")
    }
}

impl<T: Element, D: Dimension> From<Array<T, D>> for Tensor {
    fn from(array: Array<T, D>) -> Tensor {
        Tensor::from_ndarray(array)
    }
}
