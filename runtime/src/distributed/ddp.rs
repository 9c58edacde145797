//! [`DistributedDataParallel`]: PyTorch's DDP. Parameters and buffers are
//! broadcast from rank 0 when wrapping; during `backward` gradients are
//! averaged across ranks in buckets, each launched as soon as its
//! gradients are ready, so communication overlaps the rest of the
//! backward pass.

use super::{Work, all_reduce_buffer_async, broadcast_async, world_size};
use crate::autograd;
use crate::nn::{Forward, Module, TensorKind};
use crate::{DType, Tensor};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Options of [`DistributedDataParallel`], PyTorch's defaults.
#[derive(Clone, Debug)]
pub struct DdpOptions {
    /// Bucket size in MiB (`bucket_cap_mb`, default 25).
    pub bucket_cap_mb: f64,
    /// Size of the first bucket in MiB (default 1), small so that the
    /// first all-reduce starts early in the backward pass.
    pub first_bucket_cap_mb: f64,
    /// Re-broadcast buffers (batch-norm statistics) from rank 0 before
    /// every forward through the wrapper (default true).
    pub broadcast_buffers: bool,
    /// Launch each bucket's all-reduce as soon as it is ready (default
    /// true). `false` launches every bucket after the backward pass: the
    /// same result without overlap, for measuring what overlap saves.
    pub overlap: bool,
}

impl Default for DdpOptions {
    fn default() -> Self {
        DdpOptions {
            bucket_cap_mb: 25.0,
            first_bucket_cap_mb: 1.0,
            broadcast_buffers: true,
            overlap: true,
        }
    }
}

/// Wraps a module for data-parallel training, like
/// `torch.nn.parallel.DistributedDataParallel`.
///
/// Each rank runs the same model on its own share of the batch; after
/// `loss.backward()` every parameter's `.grad` holds the average over the
/// ranks, so an optimizer step keeps the replicas identical. Gradients
/// travel in buckets of about 25 MiB (the first 1 MiB) in reverse
/// registration order, each all-reduced as soon as its last gradient has
/// been accumulated; `backward` returns once all are done. A parameter
/// that got no gradient on a rank contributes zeros, so ranks never wait
/// for each other forever; [`no_sync`](Self::no_sync) skips the exchange
/// for gradient accumulation.
///
/// The wrapper is the module itself for naming (its state dict has the
/// inner module's keys, without PyTorch's `module.` prefix) and derefs to
/// it. Move the module to its device before wrapping it.
///
/// ```
/// use kiln_runtime::distributed::{self, Backend, DistributedDataParallel};
/// use kiln_runtime::nn::{Forward, Linear, Module};
/// use kiln_runtime::{Device, Tensor};
/// let _group = distributed::init_process_group(Backend::Mpi).unwrap();
/// let model = DistributedDataParallel::new(Linear::new(3, 1, &Device::Cpu));
/// let loss = model.forward(&Tensor::ones([4, 3])).sum();
/// loss.backward();
/// assert!(model.parameters().iter().all(|p| p.grad().is_some()));
/// ```
pub struct DistributedDataParallel<M: Module> {
    module: M,
    reducer: Arc<Reducer>,
    broadcast_buffers: bool,
}

/// While alive, backward passes through its model accumulate gradients
/// locally without communicating, like PyTorch's `with ddp.no_sync():`.
/// The first backward after it is dropped averages the accumulated sum.
pub struct NoSyncGuard {
    reducer: Arc<Reducer>,
}

impl Drop for NoSyncGuard {
    fn drop(&mut self) {
        self.reducer.sync.store(true, Ordering::SeqCst);
    }
}

/// One bucket: which parameters it holds and where each starts in it.
struct Bucket {
    members: Vec<usize>,
    offsets: Vec<usize>,
    numel: usize,
}

/// What one backward pass has done so far.
struct Iteration {
    /// A finalize callback is queued for this backward.
    active: bool,
    ready: Vec<bool>,
    pending: Vec<usize>,
    /// The next bucket to launch: buckets go out in index order on every
    /// rank, so every rank issues the same collectives in the same order.
    next: usize,
    works: Vec<Option<Work<Vec<f32>>>>,
    /// A gradient arrived after its bucket had been sent (a parameter
    /// used twice in one forward): the buckets are sent again.
    dirty: bool,
}

struct Reducer {
    params: Vec<Tensor>,
    buckets: Vec<Bucket>,
    bucket_of: Vec<usize>,
    overlap: bool,
    sync: AtomicBool,
    iteration: Mutex<Iteration>,
    last_wait: Mutex<Duration>,
}

/// Splits the parameters (by index, reverse registration order) into
/// buckets like PyTorch's `compute_bucket_assignment_by_size`: a bucket
/// closes once it holds at least its limit; the first limit is
/// `first_cap` bytes, the others `cap` bytes.
fn assign_buckets(sizes_in_bytes: &[usize], first_cap: usize, cap: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for i in (0..sizes_in_bytes.len()).rev() {
        current.push(i);
        bytes += sizes_in_bytes[i];
        let limit = if out.is_empty() { first_cap } else { cap };
        if bytes >= limit {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl<M: Module> DistributedDataParallel<M> {
    /// Wraps `module` with PyTorch's default options.
    pub fn new(module: M) -> Self {
        Self::with_options(module, DdpOptions::default())
    }

    /// Wraps `module`: broadcasts its parameters and buffers from rank 0,
    /// buckets its parameters and hooks their gradients. Every parameter
    /// must be float32.
    pub fn with_options(module: M, options: DdpOptions) -> Self {
        // Same values everywhere: rank 0's parameters and buffers.
        let mut tensors = Vec::new();
        module.visit("", &mut |_, t, _| tensors.push(t.shallow_clone()));
        let works: Vec<Work<()>> = tensors.iter().map(|t| broadcast_async(t, 0)).collect();
        works.into_iter().for_each(Work::wait);

        let named: Vec<(String, Tensor)> = module
            .named_parameters()
            .into_iter()
            .filter(|(_, p)| p.requires_grad())
            .collect();
        if let Some((name, p)) = named.iter().find(|(_, p)| p.dtype() != DType::F32) {
            panic!(
                "DistributedDataParallel: parameter {name} is {}; only float32 parameters are supported",
                p.dtype()
            );
        }
        let params: Vec<Tensor> = named.into_iter().map(|(_, p)| p).collect();
        let sizes: Vec<usize> = params.iter().map(|p| p.numel() * 4).collect();
        let mib = |m: f64| (m * 1024.0 * 1024.0) as usize;
        let groups = assign_buckets(
            &sizes,
            mib(options.first_bucket_cap_mb),
            mib(options.bucket_cap_mb),
        );
        let mut bucket_of = vec![0; params.len()];
        let buckets: Vec<Bucket> = groups
            .into_iter()
            .enumerate()
            .map(|(b, members)| {
                let mut offsets = Vec::with_capacity(members.len());
                let mut numel = 0;
                for &i in &members {
                    bucket_of[i] = b;
                    offsets.push(numel);
                    numel += params[i].numel();
                }
                Bucket {
                    members,
                    offsets,
                    numel,
                }
            })
            .collect();
        let iteration = Iteration::new(&buckets, params.len());
        let reducer = Arc::new(Reducer {
            params,
            buckets,
            bucket_of,
            overlap: options.overlap,
            sync: AtomicBool::new(true),
            iteration: Mutex::new(iteration),
            last_wait: Mutex::new(Duration::ZERO),
        });
        for (i, p) in reducer.params.iter().enumerate() {
            let weak: Weak<Reducer> = Arc::downgrade(&reducer);
            p.register_post_accumulate_grad_hook(move |_| {
                if let Some(r) = weak.upgrade() {
                    r.mark_ready(i);
                }
            });
        }
        DistributedDataParallel {
            module,
            reducer,
            broadcast_buffers: options.broadcast_buffers,
        }
    }

    /// The wrapped module, like `ddp.module`.
    pub fn module(&self) -> &M {
        &self.module
    }

    /// The wrapped module, mutably.
    pub fn module_mut(&mut self) -> &mut M {
        &mut self.module
    }

    /// Skips gradient averaging while the guard lives (gradient
    /// accumulation); see [`NoSyncGuard`].
    pub fn no_sync(&self) -> NoSyncGuard {
        self.reducer.sync.store(false, Ordering::SeqCst);
        NoSyncGuard {
            reducer: self.reducer.clone(),
        }
    }

    /// Number of gradient buckets and the parameter indices (registration
    /// order) in each, in launch order.
    pub fn bucket_assignment(&self) -> Vec<Vec<usize>> {
        self.reducer
            .buckets
            .iter()
            .map(|b| b.members.clone())
            .collect()
    }

    /// How long the last synchronised backward waited for communication
    /// after its last gradient was computed: the part of the all-reduces
    /// that did not overlap the backward pass.
    pub fn last_comm_wait(&self) -> Duration {
        *self.reducer.last_wait.lock().unwrap()
    }

    /// Broadcasts the buffers from rank 0 (what the wrapper's forward does
    /// first when `broadcast_buffers` is on).
    pub fn broadcast_buffers(&self) {
        let works: Vec<Work<()>> = self
            .module
            .buffers()
            .iter()
            .map(|b| broadcast_async(b, 0))
            .collect();
        works.into_iter().for_each(Work::wait);
    }
}

impl Iteration {
    fn new(buckets: &[Bucket], n_params: usize) -> Self {
        Iteration {
            active: false,
            ready: vec![false; n_params],
            pending: buckets.iter().map(|b| b.members.len()).collect(),
            next: 0,
            works: buckets.iter().map(|_| None).collect(),
            dirty: false,
        }
    }
}

impl Reducer {
    /// Parameter `i`'s gradient has been accumulated.
    fn mark_ready(self: &Arc<Self>, i: usize) {
        if !self.sync.load(Ordering::SeqCst) {
            return;
        }
        let mut it = self.iteration.lock().unwrap();
        if !it.active {
            it.active = true;
            let weak = Arc::downgrade(self);
            autograd::queue_callback(move || {
                if let Some(r) = weak.upgrade() {
                    r.finalize();
                }
            });
        }
        if it.ready[i] {
            // A second gradient for the same parameter in this backward.
            if it.next > self.bucket_of[i] {
                it.dirty = true;
            }
            return;
        }
        it.ready[i] = true;
        it.pending[self.bucket_of[i]] -= 1;
        if self.overlap {
            while it.next < self.buckets.len() && it.pending[it.next] == 0 {
                let b = it.next;
                it.works[b] = Some(self.launch(b));
                it.next += 1;
            }
        }
    }

    /// Flattens bucket `b`'s gradients (zeros where a parameter has none)
    /// and starts its all-reduce.
    fn launch(&self, b: usize) -> Work<Vec<f32>> {
        let bucket = &self.buckets[b];
        let mut flat = vec![0.0f32; bucket.numel];
        for (&p, &off) in bucket.members.iter().zip(&bucket.offsets) {
            let param = &self.params[p];
            if let Some(g) = param.grad() {
                flat[off..off + param.numel()].copy_from_slice(&g.to_vec::<f32>());
            }
        }
        all_reduce_buffer_async(flat)
    }

    /// End of backward: sends what is left, waits, writes the averages.
    fn finalize(&self) {
        let start = Instant::now();
        let (works, dirty) = {
            let mut it = self.iteration.lock().unwrap();
            while it.next < self.buckets.len() {
                let b = it.next;
                it.works[b] = Some(self.launch(b));
                it.next += 1;
            }
            let works: Vec<Work<Vec<f32>>> =
                it.works.iter_mut().map(|w| w.take().unwrap()).collect();
            let dirty = it.dirty;
            *it = Iteration::new(&self.buckets, self.params.len());
            (works, dirty)
        };
        // Whether any rank saw a late gradient; every rank asks, so every
        // rank issues the same collectives.
        let flag = Tensor::from_vec(vec![i64::from(dirty)], [1]);
        let flag_work = super::all_reduce_async(&flag, super::ReduceOp::Max);
        let mut results: Vec<Vec<f32>> = works.into_iter().map(Work::wait).collect();
        flag_work.wait();
        if flag.to_vec::<i64>()[0] != 0 {
            let again: Vec<Work<Vec<f32>>> =
                (0..self.buckets.len()).map(|b| self.launch(b)).collect();
            results = again.into_iter().map(Work::wait).collect();
        }
        *self.last_wait.lock().unwrap() = start.elapsed();
        let scale = 1.0 / world_size() as f32;
        for (bucket, flat) in self.buckets.iter().zip(results) {
            for (&p, &off) in bucket.members.iter().zip(&bucket.offsets) {
                let param = &self.params[p];
                let n = param.numel();
                let avg: Vec<f32> = flat[off..off + n].iter().map(|x| x * scale).collect();
                let g = Tensor::from_vec(avg, param.shape());
                let g = if param.device() == crate::Device::Cpu {
                    g
                } else {
                    g.to_device(param.device())
                };
                param.set_grad(Some(g));
            }
        }
    }
}

impl<M: Module> Deref for DistributedDataParallel<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.module
    }
}

impl<M: Module> DerefMut for DistributedDataParallel<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.module
    }
}

impl<M: Module> Module for DistributedDataParallel<M> {
    fn visit(&self, prefix: &str, v: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.module.visit(prefix, v)
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        self.module.visit_children(f)
    }
    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        self.module.visit_children_mut(f)
    }
    fn visit_tensors_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor, TensorKind)) {
        self.module.visit_tensors_mut(f)
    }
    fn set_training(&mut self, training: bool) {
        self.module.set_training(training)
    }
    fn is_training(&self) -> bool {
        self.module.is_training()
    }
    fn type_name(&self) -> &str {
        self.module.type_name()
    }
    fn extra_repr(&self) -> String {
        self.module.extra_repr()
    }
}

impl<M: Module + Forward> Forward for DistributedDataParallel<M> {
    fn forward(&self, x: &Tensor) -> Tensor {
        if self.broadcast_buffers && world_size() > 1 {
            self.broadcast_buffers();
        }
        self.module.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::assign_buckets;

    #[test]
    fn buckets_follow_pytorch_size_rule_in_reverse_order() {
        // 4 parameters of 0.6 MiB, 0.6 MiB, 10 MiB, 0.5 MiB; first cap 1 MiB.
        let m = 1024 * 1024;
        let sizes = [6 * m / 10, 6 * m / 10, 10 * m, m / 2];
        // Reverse order: 3 (0.5) + 2 (10) closes the 1 MiB bucket; then
        // 1 + 0 stay under 25 MiB and form the last one.
        assert_eq!(
            assign_buckets(&sizes, m, 25 * m),
            vec![vec![3, 2], vec![1, 0]]
        );
        assert_eq!(assign_buckets(&[], m, 25 * m), Vec::<Vec<usize>>::new());
    }
}
