//! [`Subset`] and [`random_split`], like `torch.utils.data.Subset` and
//! `torch.utils.data.random_split`.

use super::{DataError, Dataset};
use crate::rng::{Generator, with_generator};
use std::sync::Arc;

/// The samples of `dataset` at `indices`, in that order, like
/// `torch.utils.data.Subset`.
pub struct Subset<D: Dataset> {
    dataset: Arc<D>,
    indices: Vec<usize>,
}

impl<D: Dataset> Subset<D> {
    /// A view of `dataset` at `indices`.
    pub fn new(dataset: Arc<D>, indices: Vec<usize>) -> Subset<D> {
        Subset { dataset, indices }
    }

    /// The indices into the underlying data set.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn get(&self, index: usize) -> Result<D::Item, DataError> {
        match self.indices.get(index) {
            Some(&i) => self.dataset.get(i),
            None => Err(DataError::IndexOutOfRange {
                index,
                len: self.indices.len(),
            }),
        }
    }
}

/// Splits `dataset` into non-overlapping subsets of `lengths`, like
/// `torch.utils.data.random_split(dataset, lengths, generator)`: the
/// indices are `torch.randperm(len, generator=...)` cut in order, so with
/// the same seed the subsets hold the same samples as PyTorch's. `None`
/// draws from the default generator (PyTorch's default too). Panics when
/// the lengths do not add up to the data set's length.
///
/// ```
/// use kiln_runtime::data::{Dataset, TensorDataset, random_split};
/// use kiln_runtime::{Tensor, rng::Generator};
/// let ds = TensorDataset::new(vec![Tensor::arange(0.0, 10.0, 1.0)]);
/// let parts = random_split(ds, &[3, 7], Some(&mut Generator::new(42)));
/// assert_eq!((parts[0].len(), parts[1].len()), (3, 7));
/// ```
pub fn random_split<D: Dataset>(
    dataset: D,
    lengths: &[usize],
    generator: Option<&mut Generator>,
) -> Vec<Subset<D>> {
    let total: usize = lengths.iter().sum();
    assert!(
        total == dataset.len(),
        "random_split: sum of input lengths ({total}) does not equal the length of the input dataset ({})",
        dataset.len()
    );
    let perm = with_generator(generator, |g| g.permutation(total));
    let dataset = Arc::new(dataset);
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            let part = Subset::new(dataset.clone(), perm[start..start + len].to_vec());
            start += len;
            part
        })
        .collect()
}
