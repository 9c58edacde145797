//! [`DistributedSampler`]: each rank's share of a data set, with PyTorch's
//! index maths, and [`DistributedShard`], the data set view a
//! [`DataLoader`](super::DataLoader) iterates.

use super::{DataError, Dataset};
use crate::rng::Generator;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Splits `0..len` among `num_replicas` ranks like
/// `torch.utils.data.distributed.DistributedSampler`.
///
/// Each epoch the indices are shuffled (unless `shuffle(false)`) with a
/// generator seeded from `seed + epoch`, so every rank draws the same
/// permutation; then either padded by wrapping around to a multiple of the
/// world size (default) or cut to one (`drop_last`), and rank `r` takes
/// `perm[r::num_replicas]`. The shards are disjoint (up to the padding)
/// and together cover the data set. Call [`set_epoch`](Self::set_epoch)
/// before each epoch for a new order. (The permutation comes from kiln's
/// generator, not from `torch.randperm`.)
///
/// With a [`DataLoader`](super::DataLoader), wrap the data set and do not
/// shuffle in the loader:
///
/// ```
/// use kiln_runtime::data::{DataLoader, Dataset, DistributedSampler, TensorDataset};
/// use kiln_runtime::Tensor;
/// let data = TensorDataset::new(vec![Tensor::arange(0.0, 10.0, 1.0)]);
/// let sampler = DistributedSampler::with_replicas(data.len(), 2, 1).seed(3);
/// let loader = DataLoader::new(sampler.wrap(data)).batch_size(2);
/// sampler.set_epoch(0);
/// assert_eq!(loader.len(), 3); // ceil(10 / 2) = 5 samples on this rank
/// ```
#[derive(Clone, Debug)]
pub struct DistributedSampler {
    len: usize,
    num_replicas: usize,
    rank: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    epoch: Arc<AtomicU64>,
}

impl DistributedSampler {
    /// A sampler over `len` samples for this process's rank and world
    /// size (from [`crate::distributed`]).
    pub fn new(len: usize) -> Self {
        Self::with_replicas(
            len,
            crate::distributed::world_size(),
            crate::distributed::rank(),
        )
    }

    /// A sampler for rank `rank` of `num_replicas`. Panics when `rank` is
    /// not below `num_replicas`.
    pub fn with_replicas(len: usize, num_replicas: usize, rank: usize) -> Self {
        assert!(
            rank < num_replicas,
            "DistributedSampler: invalid rank {rank}, rank should be in the interval [0, {}]",
            num_replicas.saturating_sub(1)
        );
        DistributedSampler {
            len,
            num_replicas,
            rank,
            shuffle: true,
            seed: 0,
            drop_last: false,
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    setters! {
        /// Shuffles every epoch (default true).
        shuffle: bool;
        /// The seed shared by all ranks (default 0).
        seed: u64;
        /// Drops the tail that does not split evenly instead of padding.
        drop_last: bool;
    }

    /// Sets the epoch whose order [`indices`](Self::indices) gives; shared
    /// with every clone and [`DistributedShard`] of this sampler.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Samples on each rank (`num_samples`).
    pub fn num_samples(&self) -> usize {
        let (n, w) = (self.len, self.num_replicas);
        if self.drop_last && n % w != 0 {
            n.saturating_sub(w).div_ceil(w)
        } else {
            n.div_ceil(w)
        }
    }

    /// Samples over all ranks (`total_size`).
    pub fn total_size(&self) -> usize {
        self.num_samples() * self.num_replicas
    }

    /// This rank's indices for the current epoch.
    pub fn indices(&self) -> Vec<usize> {
        let n = self.len;
        let mut order: Vec<usize> = if self.shuffle {
            Generator::new(self.seed.wrapping_add(self.epoch())).permutation(n)
        } else {
            (0..n).collect()
        };
        let total = self.total_size();
        if self.drop_last {
            order.truncate(total);
        } else if n > 0 {
            // Wrap around (repeatedly when the padding exceeds the data).
            let mut k = 0;
            while order.len() < total {
                order.push(order[k % n]);
                k += 1;
            }
        }
        order
            .into_iter()
            .skip(self.rank)
            .step_by(self.num_replicas)
            .collect()
    }

    /// `dataset` seen through this sampler: sample `i` of the shard is
    /// sample `indices()[i]` of `dataset`, following
    /// [`set_epoch`](Self::set_epoch).
    pub fn wrap<D: Dataset>(&self, dataset: D) -> DistributedShard<D> {
        DistributedShard {
            dataset,
            sampler: self.clone(),
            cache: Mutex::new(None),
        }
    }
}

/// This rank's share of a data set ([`DistributedSampler::wrap`]).
pub struct DistributedShard<D> {
    dataset: D,
    sampler: DistributedSampler,
    cache: Mutex<Option<(u64, Arc<Vec<usize>>)>>,
}

impl<D> DistributedShard<D> {
    /// The whole data set.
    pub fn inner(&self) -> &D {
        &self.dataset
    }

    /// The sampler (to call `set_epoch` on).
    pub fn sampler(&self) -> &DistributedSampler {
        &self.sampler
    }

    fn indices(&self) -> Arc<Vec<usize>> {
        let epoch = self.sampler.epoch();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some((e, idx)) if *e == epoch => idx.clone(),
            _ => {
                let idx = Arc::new(self.sampler.indices());
                *cache = Some((epoch, idx.clone()));
                idx
            }
        }
    }
}

impl<D: Dataset> Dataset for DistributedShard<D> {
    type Item = D::Item;

    fn len(&self) -> usize {
        self.sampler.num_samples()
    }

    fn get(&self, index: usize) -> Result<D::Item, DataError> {
        let idx = self.indices();
        match idx.get(index) {
            Some(&i) => self.dataset.get(i),
            None => Err(DataError::IndexOutOfRange {
                index,
                len: idx.len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(len: usize, world: usize, drop_last: bool, epoch: u64) -> Vec<Vec<usize>> {
        (0..world)
            .map(|r| {
                let s = DistributedSampler::with_replicas(len, world, r)
                    .seed(5)
                    .drop_last(drop_last);
                s.set_epoch(epoch);
                s.indices()
            })
            .collect()
    }

    #[test]
    fn padded_shards_are_disjoint_and_cover_with_wrap_around() {
        for (len, world) in [(10, 2), (10, 3), (7, 4), (2, 5), (12, 4)] {
            let s = shards(len, world, false, 1);
            let n = len.div_ceil(world);
            assert!(s.iter().all(|x| x.len() == n), "{len} {world}: {s:?}");
            let mut all: Vec<usize> = s.concat();
            assert_eq!(all.len(), n * world);
            all.sort();
            let mut uniq = all.clone();
            uniq.dedup();
            assert_eq!(uniq, (0..len).collect::<Vec<_>>(), "{len} {world}: covers");
            // Only the padding repeats.
            assert_eq!(all.len() - uniq.len(), n * world - len);
        }
    }

    #[test]
    fn drop_last_shards_are_disjoint_and_even() {
        for (len, world) in [(10, 3), (10, 2), (7, 4)] {
            let s = shards(len, world, true, 0);
            let n = if len % world != 0 {
                (len - world).div_ceil(world)
            } else {
                len / world
            };
            assert!(s.iter().all(|x| x.len() == n));
            let mut all = s.concat();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), n * world, "disjoint");
        }
    }

    #[test]
    fn unshuffled_matches_pytorch_strides() {
        // PyTorch: list(DistributedSampler(range(10), 3, 1, shuffle=False))
        // == [1, 4, 7, 0]: indices 0..10 padded with 0, 1 then [1::3].
        let s = DistributedSampler::with_replicas(10, 3, 1).shuffle(false);
        assert_eq!(s.indices(), vec![1, 4, 7, 0]);
        let s = DistributedSampler::with_replicas(10, 3, 2)
            .shuffle(false)
            .drop_last(true);
        assert_eq!(s.indices(), vec![2, 5, 8]);
    }

    #[test]
    fn epoch_changes_the_order_and_ranks_agree() {
        let a = shards(20, 2, false, 0);
        let b = shards(20, 2, false, 1);
        assert_ne!(a, b);
        assert_eq!(a, shards(20, 2, false, 0));
    }

    #[test]
    fn shard_follows_set_epoch() {
        use crate::Tensor;
        use crate::data::TensorDataset;
        let data = TensorDataset::new(vec![Tensor::arange(0.0, 8.0, 1.0)]);
        let sampler = DistributedSampler::with_replicas(8, 2, 0).seed(1);
        let shard = sampler.wrap(data);
        let read = |s: &DistributedShard<TensorDataset>| -> Vec<usize> {
            (0..s.len())
                .map(|i| s.get(i).unwrap()[0].to_vec::<f32>()[0] as usize)
                .collect()
        };
        assert_eq!(read(&shard), sampler.indices());
        sampler.set_epoch(4);
        assert_eq!(read(&shard), sampler.indices());
        assert!(shard.get(4).is_err());
    }
}
