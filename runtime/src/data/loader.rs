//! [`DataLoader`]: batches from a [`Dataset`], shuffled, collated, and
//! optionally loaded by worker threads.

use super::transforms::{mix_seed, with_sample_seed};
use super::{DataError, Dataset};
use crate::rng::Generator;
use crate::{DType, Element, Tensor};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Turns a list of samples into a batch: the default `collate_fn`.
///
/// Tensors are stacked along a new first dimension (they must share shape
/// and dtype); numbers become 1-D tensors (`i64` → `int64`, `f32` →
/// `float32`, ...); tuples and `Vec`s are collated position by position, so
/// `(Tensor, i64)` samples give `(Tensor [B, ...], Tensor int64 [B])` and
/// `Vec<Tensor>` samples give `Vec<Tensor>` batches.
pub trait Collate: Sized + Send {
    /// What a batch of these samples is.
    type Batch: Send;

    /// Collates `items` (at least one).
    fn collate(items: Vec<Self>) -> Result<Self::Batch, DataError>;
}

/// Stacks same-shaped tensors along a new dimension 0 by copying each into
/// one preallocated buffer (no per-item generic `stack`).
pub fn stack_items(items: &[Tensor]) -> Result<Tensor, DataError> {
    let Some(first) = items.first() else {
        return Err(DataError::other("cannot collate an empty batch"));
    };
    let (shape, dtype) = (first.shape(), first.dtype());
    if let Some((i, t)) = items
        .iter()
        .enumerate()
        .find(|(_, t)| t.shape() != shape || t.dtype() != dtype)
    {
        return Err(DataError::other(format!(
            "stack expects each tensor to be equal size and dtype, but got {dtype} {shape:?} at entry 0 and {} {:?} at entry {i}",
            t.dtype(),
            t.shape()
        )));
    }
    fn typed<T: Element>(items: &[Tensor], shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let mut out: Vec<T> = Vec::with_capacity(n * items.len());
        for t in items {
            let t = t.to_device(crate::Device::Cpu);
            t.with_slice::<T, _>("collate", |s| out.extend_from_slice(s));
        }
        let mut full = Vec::with_capacity(shape.len() + 1);
        full.push(items.len());
        full.extend_from_slice(shape);
        Tensor::from_vec(out, full)
    }
    Ok(match dtype {
        DType::F32 => typed::<f32>(items, shape),
        DType::F64 => typed::<f64>(items, shape),
        DType::F16 => typed::<half::f16>(items, shape),
        DType::BF16 => typed::<half::bf16>(items, shape),
        DType::I64 => typed::<i64>(items, shape),
        DType::I32 => typed::<i32>(items, shape),
        DType::I16 => typed::<i16>(items, shape),
        DType::U8 => typed::<u8>(items, shape),
        DType::Bool => typed::<bool>(items, shape),
    })
}

impl Collate for Tensor {
    type Batch = Tensor;
    fn collate(items: Vec<Tensor>) -> Result<Tensor, DataError> {
        stack_items(&items)
    }
}

macro_rules! collate_scalar {
    ($($t:ty),*) => {$(
        impl Collate for $t {
            type Batch = Tensor;
            fn collate(items: Vec<$t>) -> Result<Tensor, DataError> {
                let n = items.len();
                Ok(Tensor::from_vec(items, [n]))
            }
        }
    )*};
}
collate_scalar!(f32, f64, i64, u8, bool);

impl<T: Collate> Collate for Vec<T> {
    type Batch = Vec<T::Batch>;
    fn collate(items: Vec<Vec<T>>) -> Result<Vec<T::Batch>, DataError> {
        let width = items.first().map_or(0, Vec::len);
        if let Some(i) = items.iter().position(|v| v.len() != width) {
            return Err(DataError::other(format!(
                "each sample should have the same number of fields: entry 0 has {width}, entry {i} has {}",
                items[i].len()
            )));
        }
        let mut columns: Vec<Vec<T>> = (0..width)
            .map(|_| Vec::with_capacity(items.len()))
            .collect();
        for row in items {
            for (col, x) in columns.iter_mut().zip(row) {
                col.push(x);
            }
        }
        columns.into_iter().map(T::collate).collect()
    }
}

impl<A: Collate, B: Collate> Collate for (A, B) {
    type Batch = (A::Batch, B::Batch);
    fn collate(items: Vec<(A, B)>) -> Result<Self::Batch, DataError> {
        let (a, b): (Vec<A>, Vec<B>) = items.into_iter().unzip();
        Ok((A::collate(a)?, B::collate(b)?))
    }
}

impl<A: Collate, B: Collate, C: Collate> Collate for (A, B, C) {
    type Batch = (A::Batch, B::Batch, C::Batch);
    fn collate(items: Vec<(A, B, C)>) -> Result<Self::Batch, DataError> {
        let mut a = Vec::with_capacity(items.len());
        let mut b = Vec::with_capacity(items.len());
        let mut c = Vec::with_capacity(items.len());
        for (x, y, z) in items {
            a.push(x);
            b.push(y);
            c.push(z);
        }
        Ok((A::collate(a)?, B::collate(b)?, C::collate(c)?))
    }
}

/// A shared collate function: samples → batch.
pub type CollateFn<I, B> = Arc<dyn Fn(Vec<I>) -> Result<B, DataError> + Send + Sync>;

/// Iterates a [`Dataset`] in batches, like `torch.utils.data.DataLoader`.
///
/// Configured builder-style; each [`iter`](DataLoader::iter) (or `for b in
/// &loader`) is one epoch and yields `Result<batch, DataError>`:
///
/// * `batch_size` (default 1), `drop_last` (default false);
/// * `shuffle`: a fresh permutation every epoch, drawn as PyTorch's
///   `RandomSampler` draws it. Without a generator each epoch takes a base
///   seed and then a sampler seed from the default generator, so after the
///   same [`manual_seed`](crate::manual_seed) the order is PyTorch's,
///   index for index. With [`generator`](DataLoader::generator) the
///   permutations come from that generator (`generator=g` in PyTorch);
///   [`seed`](DataLoader::seed)`(s)` is `generator=torch.Generator().manual_seed(s)`
///   that also replays after [`set_epoch`](DataLoader::set_epoch);
/// * `collate`: a custom samples → batch function (default: [`Collate`]);
/// * `num_workers`: 0 loads in the calling thread; `n > 0` starts `n`
///   threads per epoch that load and collate whole batches in parallel,
///   each at most `prefetch` batches ahead; batches still arrive in order.
///
/// A sample that fails or panics surfaces as an error naming its index
/// (the other batches still come). Dropping the iterator mid-epoch stops
/// and joins its workers.
///
/// ```
/// use kiln_runtime::data::{DataLoader, TensorDataset};
/// use kiln_runtime::Tensor;
/// let x = Tensor::arange(0.0, 10.0, 1.0).to_dtype(kiln_runtime::DType::F32).reshape(&[5, 2]);
/// let y = Tensor::from_vec(vec![0i64, 1, 0, 1, 0], [5]);
/// let loader = DataLoader::new(TensorDataset::new(vec![x, y])).batch_size(2).shuffle(true).seed(0);
/// assert_eq!(loader.len(), 3);
/// for batch in &loader {
///     let batch = batch.unwrap();
///     assert_eq!(batch[0].shape()[1], 2);
/// }
/// ```
pub struct DataLoader<D: Dataset, B> {
    dataset: Arc<D>,
    collate: CollateFn<D::Item, B>,
    batch_size: usize,
    shuffle: bool,
    source: SeedSource,
    drop_last: bool,
    num_workers: usize,
    prefetch: usize,
    epoch: AtomicU64,
}

impl<D> DataLoader<D, <D::Item as Collate>::Batch>
where
    D: Dataset + 'static,
    D::Item: Collate,
{
    /// A loader over `dataset` with the default collate, batch size 1, no
    /// shuffling and no workers.
    pub fn new(dataset: D) -> Self {
        DataLoader::with_collate(dataset, <D::Item as Collate>::collate)
    }
}

impl<D: Dataset + 'static, B: Send + 'static> DataLoader<D, B> {
    /// A loader whose batches are made by `collate` (for sample types
    /// without a [`Collate`] impl).
    pub fn with_collate(
        dataset: D,
        collate: impl Fn(Vec<D::Item>) -> Result<B, DataError> + Send + Sync + 'static,
    ) -> Self {
        DataLoader {
            dataset: Arc::new(dataset),
            collate: Arc::new(collate),
            batch_size: 1,
            shuffle: false,
            source: SeedSource::Default,
            drop_last: false,
            num_workers: 0,
            prefetch: 2,
            epoch: AtomicU64::new(0),
        }
    }

    setters! {
        /// Samples per batch (the last one may be smaller unless `drop_last`).
        /// Panics on 0.
        batch_size: usize => assert!(batch_size > 0, "DataLoader: batch_size must be positive");
        /// Reshuffles the sample order every epoch.
        shuffle: bool;
    }

    /// Seeds shuffling and the per-sample generators of random transforms,
    /// like `generator=torch.Generator().manual_seed(seed)`: the epochs
    /// visit the samples in the orders PyTorch's loader would, and epoch `e`
    /// is the same in every run (also after [`set_epoch`](DataLoader::set_epoch)).
    pub fn seed(mut self, seed: u64) -> Self {
        self.source = SeedSource::Seed(seed);
        self
    }

    /// Draws the shuffling and the transforms' base seeds from `generator`,
    /// like `DataLoader(..., generator=g)`: its state carries from epoch to
    /// epoch (so [`set_epoch`](DataLoader::set_epoch) does not rewind it).
    pub fn generator(mut self, generator: Generator) -> Self {
        self.source = SeedSource::Own(Box::new(Mutex::new(generator)));
        self
    }

    setters! {
        /// Drops the last batch when it would be smaller than `batch_size`.
        drop_last: bool;
        /// Loads batches in `num_workers` worker threads (0: in the caller's
        /// thread).
        num_workers: usize;
    }

    /// How many loaded batches each worker may hold ahead of the consumer
    /// (PyTorch's `prefetch_factor`; default 2, minimum 1).
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches.max(1);
        self
    }

    /// Replaces the collate function.
    pub fn collate<B2: Send + 'static>(
        self,
        collate: impl Fn(Vec<D::Item>) -> Result<B2, DataError> + Send + Sync + 'static,
    ) -> DataLoader<D, B2> {
        DataLoader {
            dataset: self.dataset,
            collate: Arc::new(collate),
            batch_size: self.batch_size,
            shuffle: self.shuffle,
            source: self.source,
            drop_last: self.drop_last,
            num_workers: self.num_workers,
            prefetch: self.prefetch,
            epoch: self.epoch,
        }
    }

    /// The data set.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// Number of batches per epoch, like `len(loader)`.
    pub fn len(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// True when an epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The epoch the next [`iter`](DataLoader::iter) will run (starts at 0).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Sets the next epoch's number, e.g. when resuming from a checkpoint.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Starts an epoch: the batches in order, loaded by the workers if any.
    pub fn iter(&self) -> DataLoaderIter<D, B> {
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed);
        let n = self.dataset.len();
        let (epoch_seed, order) = match &self.source {
            SeedSource::Default => crate::rng::with_rng(|g| draw_epoch(g, n, self.shuffle, true)),
            SeedSource::Own(g) => draw_epoch(
                &mut g.lock().unwrap_or_else(|e| e.into_inner()),
                n,
                self.shuffle,
                false,
            ),
            SeedSource::Seed(s) => {
                let mut g = Generator::new(*s);
                for _ in 0..epoch {
                    draw_epoch(&mut g, n, self.shuffle, false);
                }
                draw_epoch(&mut g, n, self.shuffle, false)
            }
        };
        let order = order.unwrap_or_else(|| (0..n).collect());
        let batches: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .take(self.len())
            .map(<[usize]>::to_vec)
            .collect();
        let job = Arc::new(Job {
            dataset: self.dataset.clone(),
            collate: self.collate.clone(),
            batches,
            epoch_seed,
        });
        let workers = if self.num_workers == 0 {
            None
        } else {
            Some(Workers::start(&job, self.num_workers, self.prefetch))
        };
        DataLoaderIter {
            job,
            next: 0,
            workers,
        }
    }
}

impl<D: Dataset + 'static, B: Send + 'static> IntoIterator for &DataLoader<D, B> {
    type Item = Result<B, DataError>;
    type IntoIter = DataLoaderIter<D, B>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Where a loader's epochs draw their seeds and orders from.
enum SeedSource {
    /// The default generator, as PyTorch's loader without `generator`.
    Default,
    /// A fresh `Generator::new(seed)`, replayed up to the epoch.
    Seed(u64),
    /// A generator whose state carries from epoch to epoch.
    Own(Box<Mutex<Generator>>),
}

/// One epoch's draws, in PyTorch's order: the loader's base seed
/// (`_BaseDataLoaderIter`'s `random_()`), then, when shuffling,
/// `RandomSampler`'s permutation: from a generator seeded with a second
/// `random_()` draw when `fresh_sampler` (no loader generator), else from
/// `g` itself. Returns the base seed (for the transforms) and the order.
/// kiln draws a whole epoch up front, as PyTorch does for an epoch that runs
/// to its end.
fn draw_epoch(
    g: &mut Generator,
    n: usize,
    shuffle: bool,
    fresh_sampler: bool,
) -> (u64, Option<Vec<usize>>) {
    let base = crate::rng::random_i64(g) as u64;
    let order = shuffle.then(|| {
        if fresh_sampler {
            Generator::new(crate::rng::random_i64(g) as u64).permutation(n)
        } else {
            let order = g.permutation(n);
            // `RandomSampler.__iter__` ends with a second `randperm` (for the
            // `num_samples % n` tail, empty here) that still draws from `g`
            // when the epoch runs to its end.
            g.permutation(n);
            order
        }
    });
    (base, order)
}

/// What one epoch loads: shared by the iterator and its workers.
struct Job<D: Dataset, B> {
    dataset: Arc<D>,
    collate: CollateFn<D::Item, B>,
    batches: Vec<Vec<usize>>,
    epoch_seed: u64,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl<D: Dataset, B> Job<D, B> {
    /// Loads and collates batch `k`, turning errors and panics into
    /// [`DataError`]s that name the sample or batch. Stops early (`None`)
    /// when `stop` is raised.
    fn load(&self, k: usize, stop: Option<&AtomicBool>) -> Option<Result<B, DataError>> {
        let indices = &self.batches[k];
        let mut items = Vec::with_capacity(indices.len());
        for &index in indices {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return None;
            }
            let seed = mix_seed(self.epoch_seed, index as u64);
            let got = catch_unwind(AssertUnwindSafe(|| {
                with_sample_seed(seed, || self.dataset.get(index))
            }));
            match got {
                Ok(Ok(item)) => items.push(item),
                Ok(Err(e)) => {
                    return Some(Err(DataError::Sample {
                        index,
                        source: Box::new(e),
                    }));
                }
                Err(p) => {
                    return Some(Err(DataError::Panic {
                        index,
                        message: panic_message(p.as_ref()),
                    }));
                }
            }
        }
        Some(
            match catch_unwind(AssertUnwindSafe(|| (self.collate)(items))) {
                Ok(Ok(b)) => Ok(b),
                Ok(Err(e)) => Err(DataError::Collate {
                    batch: k,
                    reason: e.to_string(),
                }),
                Err(p) => Err(DataError::Collate {
                    batch: k,
                    reason: format!("collate panicked: {}", panic_message(p.as_ref())),
                }),
            },
        )
    }
}

type Delivery<B> = (usize, Result<B, DataError>);

/// The threads of one epoch. Worker `w` loads batches `w, w + n, w + 2n,
/// ...` into its own bounded channel, so the consumer reads batch `k` from
/// channel `k % n`: in order, with at most `prefetch` batches waiting per
/// worker.
struct Workers<B> {
    receivers: Vec<Receiver<Delivery<B>>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl<B: Send + 'static> Workers<B> {
    fn start<D: Dataset + 'static>(job: &Arc<Job<D, B>>, n: usize, prefetch: usize) -> Self {
        // Before any worker allocates: the batches it builds are freed on
        // the training thread, and must come from the one shared arena.
        kiln_kernels::cpu::alloc::keep_freed_buffers();
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for w in 0..n {
            let (tx, rx): (SyncSender<Delivery<B>>, _) = sync_channel(prefetch);
            let (job, stop) = (job.clone(), stop.clone());
            let handle = std::thread::Builder::new()
                .name(format!("kiln-data-{w}"))
                .spawn(move || {
                    for k in (w..job.batches.len()).step_by(n) {
                        let Some(result) = job.load(k, Some(&stop)) else {
                            return;
                        };
                        if stop.load(Ordering::Relaxed) || tx.send((k, result)).is_err() {
                            return;
                        }
                    }
                })
                .expect("DataLoader: cannot spawn a worker thread");
            receivers.push(rx);
            handles.push(handle);
        }
        Workers {
            receivers,
            handles,
            stop,
        }
    }
}

impl<B> Drop for Workers<B> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers wakes workers blocked on a full channel.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// One epoch of a [`DataLoader`]: yields `Result<batch, DataError>`.
pub struct DataLoaderIter<D: Dataset, B> {
    job: Arc<Job<D, B>>,
    next: usize,
    workers: Option<Workers<B>>,
}

impl<D: Dataset + 'static, B: Send + 'static> Iterator for DataLoaderIter<D, B> {
    type Item = Result<B, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let k = self.next;
        if k >= self.job.batches.len() {
            // Finished: let the workers go now rather than at drop.
            self.workers = None;
            return None;
        }
        self.next += 1;
        match &self.workers {
            None => self.job.load(k, None),
            Some(w) => match w.receivers[k % w.receivers.len()].recv() {
                Ok((got, result)) => {
                    debug_assert_eq!(got, k, "batches arrive in order");
                    Some(result)
                }
                Err(_) => Some(Err(DataError::WorkerDied { batch: k })),
            },
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.job.batches.len() - self.next.min(self.job.batches.len());
        (left, Some(left))
    }
}

impl<D: Dataset + 'static, B: Send + 'static> ExactSizeIterator for DataLoaderIter<D, B> {}
