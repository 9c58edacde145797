//! [`Subset`] and [`random_split`], like `torch.utils.data`'s.

use super::{DataError, Dataset};
use crate::rng::{Generator, with_generator};
use std::sync::Arc;

/// The samples of `dataset` at `indices`, in that order, like
/// `torch.utils.data.Subset`. The data set is shared (an `Arc`), so the
/// parts of a split read one copy.
pub struct Subset<D: Dataset> {
    dataset: Arc<D>,
    indices: Vec<usize>,
}

impl<D: Dataset> Subset<D> {
    /// The samples of `dataset` at `indices`.
    pub fn new(dataset: Arc<D>, indices: Vec<usize>) -> Subset<D> {
        Subset { dataset, indices }
    }

    /// The indices into the underlying data set.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The underlying data set.
    pub fn dataset(&self) -> &Arc<D> {
        &self.dataset
    }
}

impl<D: Dataset> std::fmt::Debug for Subset<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subset")
            .field("len", &self.indices.len())
            .finish_non_exhaustive()
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    type Item = D::Item;

    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<D::Item, DataError> {
        let len = self.indices.len();
        let &i = self
            .indices
            .get(index)
            .ok_or(DataError::IndexOutOfRange { index, len })?;
        self.dataset.get(i)
    }
}

/// Splits `dataset` into non-overlapping random subsets of the given
/// `lengths` (which must add up to its length), like
/// `random_split(dataset, lengths, generator)`: a random permutation of
/// all indices (`torch.randperm(n, generator=...)`) is cut into
/// consecutive pieces, so with the same seed the parts hold the same
/// samples as PyTorch's. With `generator` the split is drawn from it;
/// without, from the default generator (seeded by
/// [`manual_seed`](crate::manual_seed)), as in PyTorch.
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::data::{Dataset, TensorDataset, random_split};
/// use kiln_runtime::rng::Generator;
/// let data = TensorDataset::new(vec![Tensor::arange(0.0, 10.0, 1.0)]);
/// let parts = random_split(data, &[8, 2], Some(&mut Generator::new(42)));
/// assert_eq!((parts[0].len(), parts[1].len()), (8, 2));
/// ```
pub fn random_split<D: Dataset>(
    dataset: D,
    lengths: &[usize],
    generator: Option<&mut Generator>,
) -> Vec<Subset<D>> {
    let n = dataset.len();
    let total: usize = lengths.iter().sum();
    assert_eq!(
        total, n,
        "random_split: sum of input lengths ({total}) does not equal the length of the input dataset ({n})"
    );
    let perm = with_generator(generator, |g| g.permutation(n));
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

/// [`random_split`] with fractions summing to 1 (`[0.8, 0.2]`), sized as
/// PyTorch sizes them: `⌊n · f⌋` each, then the remaining samples handed
/// out one at a time from the first part on.
pub fn random_split_fractions<D: Dataset>(
    dataset: D,
    fractions: &[f64],
    generator: Option<&mut Generator>,
) -> Vec<Subset<D>> {
    let lengths = split_lengths(dataset.len(), fractions);
    random_split(dataset, &lengths, generator)
}

/// The part sizes PyTorch's `random_split` gives `n` samples split by
/// `fractions`.
pub fn split_lengths(n: usize, fractions: &[f64]) -> Vec<usize> {
    let sum: f64 = fractions.iter().sum();
    assert!(
        (sum - 1.0).abs() < 1e-9 && fractions.iter().all(|f| (0.0..=1.0).contains(f)),
        "random_split: fractions must be in [0, 1] and sum to 1, got {fractions:?}"
    );
    assert!(!fractions.is_empty(), "random_split: no fractions given");
    let mut lengths: Vec<usize> = fractions
        .iter()
        .map(|f| (n as f64 * f).floor() as usize)
        .collect();
    let remainder = n - lengths.iter().sum::<usize>();
    let k = lengths.len();
    for i in 0..remainder {
        lengths[i % k] += 1;
    }
    lengths
}
