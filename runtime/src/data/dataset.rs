//! The [`Dataset`] trait and [`TensorDataset`].

use super::DataError;
use crate::Tensor;
use std::sync::Arc;

/// A map-style data set: `len()` samples, each fetched by index, like
/// `torch.utils.data.Dataset`.
///
/// `get` takes `&self` and the trait requires `Send + Sync` so that a
/// [`DataLoader`](super::DataLoader) can call it from several worker
/// threads at once. Random augmentations inside `get` should draw from
/// [`with_transform_rng`](super::transforms::with_transform_rng), which the
/// loader seeds per sample, so results do not depend on the worker count.
///
/// A user-defined data set, like the tutorial's CSV of labels plus files:
///
/// ```
/// use kiln_runtime::data::{DataError, Dataset};
/// use kiln_runtime::Tensor;
///
/// struct Squares(usize);
///
/// impl Dataset for Squares {
///     type Item = (Tensor, i64);
///     fn len(&self) -> usize {
///         self.0
///     }
///     fn get(&self, index: usize) -> Result<Self::Item, DataError> {
///         if index >= self.0 {
///             return Err(DataError::IndexOutOfRange { index, len: self.0 });
///         }
///         let x = index as f32;
///         Ok((Tensor::from_vec(vec![x, x * x], [2]), (index % 2) as i64))
///     }
/// }
///
/// let (x, y) = Squares(10).get(3).unwrap();
/// assert_eq!((x.to_vec::<f32>(), y), (vec![3.0, 9.0], 1));
/// ```
pub trait Dataset: Send + Sync {
    /// One sample, e.g. `(image, label)` or `Vec<Tensor>`.
    type Item: Send;

    /// Number of samples.
    fn len(&self) -> usize;

    /// The sample at `index` (`0..len()`); an error for an index out of
    /// range or a sample that cannot be read.
    fn get(&self, index: usize) -> Result<Self::Item, DataError>;

    /// True when the data set holds no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A shared or boxed data set is the data set it points to.
macro_rules! forward_dataset {
    ($($ptr:ident),*) => {$(
        impl<D: Dataset + ?Sized> Dataset for $ptr<D> {
            type Item = D::Item;
            fn len(&self) -> usize {
                (**self).len()
            }
            fn get(&self, index: usize) -> Result<Self::Item, DataError> {
                (**self).get(index)
            }
        }
    )*};
}
forward_dataset!(Arc, Box);

/// Samples are row `i` of each of several tensors that share their first
/// dimension, like `torch.utils.data.TensorDataset(x, y)`.
///
/// ```
/// use kiln_runtime::data::{Dataset, TensorDataset};
/// use kiln_runtime::Tensor;
/// let x = Tensor::from_vec((0..6).map(|v| v as f32).collect::<Vec<_>>(), [3, 2]);
/// let y = Tensor::from_vec(vec![0i64, 1, 0], [3]);
/// let ds = TensorDataset::new(vec![x, y]);
/// let row = ds.get(1).unwrap();
/// assert_eq!(row[0].to_vec::<f32>(), vec![2.0, 3.0]);
/// assert_eq!(row[1].to_vec::<i64>(), vec![1]);
/// ```
pub struct TensorDataset {
    tensors: Vec<Tensor>,
    len: usize,
}

impl Clone for TensorDataset {
    /// A dataset over the same tensors (shared, not copied), as two
    /// references to one PyTorch `TensorDataset` would be.
    fn clone(&self) -> Self {
        TensorDataset {
            tensors: self.tensors.iter().map(Tensor::shallow_clone).collect(),
            len: self.len,
        }
    }
}

impl TensorDataset {
    /// Wraps `tensors`; panics (like PyTorch) when their first dimensions
    /// differ or one of them is 0-dimensional.
    pub fn new(tensors: Vec<Tensor>) -> TensorDataset {
        assert!(
            !tensors.is_empty(),
            "TensorDataset: at least one tensor is needed"
        );
        for t in &tensors {
            assert!(
                t.dim() > 0,
                "TensorDataset: tensors need a first dimension, got a 0-d tensor"
            );
        }
        let len = tensors[0].shape()[0];
        let shapes: Vec<&[usize]> = tensors.iter().map(|t| t.shape()).collect();
        assert!(
            tensors.iter().all(|t| t.shape()[0] == len),
            "TensorDataset: size mismatch between tensors: {shapes:?}"
        );
        TensorDataset { tensors, len }
    }

    /// The wrapped tensors.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }
}

impl std::fmt::Debug for TensorDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes: Vec<&[usize]> = self.tensors.iter().map(|t| t.shape()).collect();
        f.debug_struct("TensorDataset")
            .field("len", &self.len)
            .field("shapes", &shapes)
            .finish()
    }
}

impl Dataset for TensorDataset {
    type Item = Vec<Tensor>;

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, index: usize) -> Result<Vec<Tensor>, DataError> {
        DataError::check_index(index, self.len)?;
        Ok(self.tensors.iter().map(|t| t.select(0, index)).collect())
    }
}
