//! Data-parallel training across processes and machines, like
//! `torch.distributed` and `DistributedDataParallel`, on existing
//! collective engines: MPI (feature `distributed`) for CPU processes and
//! NCCL (feature `nccl`) for GPUs.
//!
//! A launcher starts one process per rank (`mpirun -n 2 prog`, or
//! `mpirun --hostfile hosts -n 8 prog` across machines);
//! [`init_process_group`] reads the rank and world size from it. A program
//! started without a launcher is a world of one, as in PyTorch: every
//! collective is then the identity, so the same program runs alone.
//!
//! Collectives work on tensors in place ([`all_reduce`], [`broadcast`]) or
//! return new ones ([`all_gather`], [`reduce_scatter`]); each has an
//! `_async` form returning a [`Work`] to [`wait`](Work::wait) on. Every rank
//! must issue the same collectives in the same order.
//!
//! A rank that panics ends the whole job (`MPI_Abort` from a panic hook,
//! after the panic message is printed), and a collective that waits longer
//! than the group's timeout (`KILN_DIST_TIMEOUT` seconds, default 1800, as
//! PyTorch's) ends it too, so a job never hangs on a dead peer.
//!
//! ```
//! use kiln_runtime::distributed::{self, Backend, ReduceOp};
//! use kiln_runtime::Tensor;
//! // Without a launcher this is a world of one.
//! let _group = distributed::init_process_group(Backend::Mpi).unwrap();
//! let t = Tensor::from([1.0f32, 2.0]);
//! distributed::all_reduce(&t, ReduceOp::Sum);
//! assert_eq!(t.to_vec::<f32>(), vec![1.0 * distributed::world_size() as f32, 2.0]);
//! ```

mod buffer;
mod ddp;
mod error;
#[cfg(feature = "distributed")]
mod mpi_backend;
#[cfg(feature = "nccl")]
mod nccl;

pub use ddp::{DdpOptions, DistributedDataParallel, NoSyncGuard};
pub use error::DistError;
#[cfg(feature = "nccl")]
pub use nccl::probe_nccl;

use crate::{DType, Tensor};
use buffer::Buffer;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A collective engine, like the `backend` argument of PyTorch's
/// `init_process_group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// MPI (OpenMPI, MPICH): CPU tensors; tensors on a GPU are staged
    /// through host memory. Needs the `distributed` feature.
    Mpi,
    /// NCCL for GPU ranks, its communicator id exchanged over MPI. Needs
    /// the `nccl` feature and `libnccl.so` at run time.
    Nccl,
}

/// How [`all_reduce`] and [`reduce_scatter`] combine the ranks' values,
/// like `torch.distributed.ReduceOp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Elementwise sum.
    Sum,
    /// Elementwise mean over the ranks (floating point only).
    Avg,
    /// Elementwise maximum.
    Max,
    /// Elementwise minimum.
    Min,
}

/// Where this process sits in the job.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorldInfo {
    pub(crate) rank: usize,
    pub(crate) world_size: usize,
    pub(crate) local_rank: usize,
}

/// One collective, on host buffers. (A world of one reads only the
/// buffers.)
#[cfg_attr(not(feature = "distributed"), allow(dead_code))]
pub(crate) enum Job {
    AllReduce(Buffer, ReduceOp),
    Broadcast(Buffer, usize),
    AllGather(Buffer),
    ReduceScatter(Buffer, ReduceOp),
    Barrier,
}

/// What a collective gives back.
pub(crate) type Reply = Result<Buffer, DistError>;

enum Engine {
    /// A world of one: every collective is the identity.
    Local,
    #[cfg(feature = "distributed")]
    Mpi(mpi_backend::MpiBackend),
}

struct Group {
    info: WorldInfo,
    backend: Backend,
    engine: Engine,
    timeout: Duration,
    /// The NCCL communicator of `Backend::Nccl`, for CUDA tensors.
    #[cfg(feature = "nccl")]
    nccl: Option<std::sync::Mutex<nccl::NcclComm>>,
}

static GROUP: RwLock<Option<Arc<Group>>> = RwLock::new(None);
/// MPI cannot be initialised twice in a process.
static MPI_STARTED: AtomicBool = AtomicBool::new(false);

fn group() -> Option<Arc<Group>> {
    GROUP.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// True when this process was started by an MPI launcher (`mpirun`,
/// `mpiexec`, `srun` with PMI), i.e. when it is one rank of a bigger job.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// The running process group; dropping it is
/// [`destroy_process_group`]. Hold it for as long as the program
/// communicates (typically all of `main`).
#[must_use = "dropping the process group ends it"]
pub struct ProcessGroup {
    _private: (),
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        destroy_process_group();
    }
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroup(rank {} of {})", rank(), world_size())
    }
}

/// Joins the job's default process group, like
/// `torch.distributed.init_process_group`: rank and world size come from
/// the launcher; without one this process is a world of one.
///
/// Errors when a group already runs, when the backend was not built in,
/// or (NCCL) when `libnccl.so` cannot be loaded.
pub fn init_process_group(backend: Backend) -> Result<ProcessGroup, DistError> {
    let mut slot = GROUP.write().unwrap_or_else(|e| e.into_inner());
    if slot.is_some() {
        return Err(DistError::AlreadyInitialized);
    }
    if backend == Backend::Nccl {
        check_nccl()?;
    }
    let timeout = std::env::var("KILN_DIST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(1800), Duration::from_secs_f64);
    let (engine, info) = if launched_by_mpi() {
        start_mpi()?
    } else {
        let one = WorldInfo {
            rank: 0,
            world_size: 1,
            local_rank: 0,
        };
        (Engine::Local, one)
    };
    if info.world_size > 1 {
        install_abort_on_panic(info.rank);
    }
    #[cfg(feature = "nccl")]
    let nccl = if backend == Backend::Nccl {
        // Rank 0's NCCL id reaches the others over MPI.
        let share = |id: Vec<u8>| {
            let (tx, rx) = channel();
            match &engine {
                Engine::Local => return id,
                Engine::Mpi(m) => m.submit(Job::Broadcast(Buffer::Bytes(id, DType::U8), 0), tx),
            }
            match rx.recv() {
                Ok(Ok(Buffer::Bytes(b, _))) => b,
                _ => panic!("init_process_group: exchanging the NCCL id over MPI failed"),
            }
        };
        Some(nccl::create(
            info.rank,
            info.world_size,
            info.local_rank,
            share,
        )?)
    } else {
        None
    };
    *slot = Some(Arc::new(Group {
        info,
        backend,
        engine,
        timeout,
        #[cfg(feature = "nccl")]
        nccl,
    }));
    Ok(ProcessGroup { _private: () })
}

#[cfg(feature = "nccl")]
fn check_nccl() -> Result<(), DistError> {
    nccl::probe_nccl()
}

#[cfg(not(feature = "nccl"))]
fn check_nccl() -> Result<(), DistError> {
    Err(DistError::BackendNotBuilt {
        backend: "NCCL",
        feature: "nccl",
    })
}

#[cfg(feature = "distributed")]
fn start_mpi() -> Result<(Engine, WorldInfo), DistError> {
    if MPI_STARTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(DistError::AlreadyInitialized);
    }
    let (backend, info) = mpi_backend::MpiBackend::start()?;
    Ok((Engine::Mpi(backend), info))
}

#[cfg(not(feature = "distributed"))]
fn start_mpi() -> Result<(Engine, WorldInfo), DistError> {
    let _ = &MPI_STARTED;
    Err(DistError::BackendNotBuilt {
        backend: "MPI",
        feature: "distributed",
    })
}

/// Makes a panic on any thread of this rank end every rank: the panic
/// message is printed first, then `MPI_Abort` ends the job.
fn install_abort_on_panic(rank: usize) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        eprintln!("kiln::distributed: rank {rank} panicked; aborting the whole job");
        abort_job(1);
    }));
}

/// Ends every rank of the job with exit status `code` (MPI_Abort); in a
/// world of one, exits this process.
pub fn abort_job(code: i32) -> ! {
    #[cfg(feature = "distributed")]
    if MPI_STARTED.load(std::sync::atomic::Ordering::SeqCst) {
        mpi_backend::MpiBackend::abort(code);
    }
    std::process::exit(code)
}

/// Leaves the process group (MPI_Finalize), like
/// `destroy_process_group`. Afterwards this process is a world of one
/// again; MPI cannot be started a second time.
pub fn destroy_process_group() {
    let group = GROUP.write().unwrap_or_else(|e| e.into_inner()).take();
    drop(group);
}

/// True while a process group runs.
pub fn is_initialized() -> bool {
    group().is_some()
}

/// The backend of the running group.
pub fn backend() -> Option<Backend> {
    group().map(|g| g.backend)
}

/// This process's rank in `0..world_size()` (0 without a group).
pub fn rank() -> usize {
    group().map_or(0, |g| g.info.rank)
}

/// Number of ranks in the job (1 without a group).
pub fn world_size() -> usize {
    group().map_or(1, |g| g.info.world_size)
}

/// This process's rank among the ranks on the same machine, e.g. the GPU
/// it should use (0 without a group).
pub fn local_rank() -> usize {
    group().map_or(0, |g| g.info.local_rank)
}

/// True on rank 0, the rank that writes checkpoints, plots and progress.
pub fn is_main_process() -> bool {
    rank() == 0
}

/// A collective in flight, like the handle of PyTorch's `async_op=True`;
/// [`wait`](Work::wait) blocks until it finished and gives its result.
#[must_use = "a collective's result is only written by wait()"]
pub struct Work<T> {
    rx: Receiver<Reply>,
    op: &'static str,
    timeout: Duration,
    finish: Box<dyn FnOnce(Buffer) -> T + Send>,
}

impl<T> Work<T> {
    /// Blocks until the collective finished on this rank and returns its
    /// result (in-place collectives write their tensor here). A collective
    /// that outlasts the group's timeout ends the whole job with an error.
    pub fn wait(self) -> T {
        match self.rx.recv_timeout(self.timeout) {
            Ok(Ok(buf)) => (self.finish)(buf),
            Ok(Err(e)) => panic!("{}: {e}", self.op),
            Err(RecvTimeoutError::Timeout) => {
                let e = DistError::Timeout {
                    op: self.op,
                    seconds: self.timeout.as_secs_f64(),
                };
                eprintln!("kiln::distributed: rank {}: {e}", rank());
                abort_job(1)
            }
            Err(RecvTimeoutError::Disconnected) => panic!(
                "{}: the process group was destroyed before the collective finished",
                self.op
            ),
        }
    }
}

/// Queues `job` on the group's engine.
fn submit<T>(
    op: &'static str,
    job: Job,
    finish: impl FnOnce(Buffer) -> T + Send + 'static,
) -> Work<T> {
    let (tx, rx) = channel();
    let group = group();
    let timeout = group
        .as_ref()
        .map_or(Duration::from_secs(1800), |g| g.timeout);
    match group.as_deref().map(|g| &g.engine) {
        None | Some(Engine::Local) => {
            let _ = tx.send(run_local(job));
        }
        #[cfg(feature = "distributed")]
        Some(Engine::Mpi(m)) => m.submit(job, tx),
    }
    Work {
        rx,
        op,
        timeout,
        finish: Box::new(finish),
    }
}

/// A collective in a world of one.
fn run_local(job: Job) -> Reply {
    Ok(match job {
        Job::AllReduce(b, _)
        | Job::Broadcast(b, _)
        | Job::AllGather(b)
        | Job::ReduceScatter(b, _) => b,
        Job::Barrier => Buffer::Bytes(Vec::new(), DType::U8),
    })
}

/// A [`Work`] that is already done (NCCL collectives are ordered on the
/// device's stream, so there is nothing to wait for on the host).
#[cfg(feature = "nccl")]
fn done(op: &'static str) -> Work<()> {
    let (tx, rx) = channel();
    let _ = tx.send(Ok(Buffer::Bytes(Vec::new(), DType::U8)));
    Work {
        rx,
        op,
        timeout: Duration::from_secs(1),
        finish: Box::new(|_| ()),
    }
}

/// Runs `op` on `t` through NCCL when the group has a communicator that
/// takes `t`; `None` when `t` goes the host (MPI) way.
#[cfg(feature = "nccl")]
fn try_nccl(name: &'static str, t: &Tensor, op: nccl::InPlace) -> Option<Work<()>> {
    let g = group()?;
    let comm = g.nccl.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
    if !comm.accepts(t) {
        return None;
    }
    if let Err(e) = comm.run_in_place(t, op) {
        panic!("{name}: {e}");
    }
    Some(done(name))
}

fn check_reducible(op: &str, t: &Tensor, reduce: ReduceOp) {
    match t.dtype() {
        DType::F32 | DType::F64 => {}
        DType::I64 if reduce != ReduceOp::Avg => {}
        d => panic!(
            "{op}: cannot reduce a {d} tensor of shape {:?} with {reduce:?} (float32 and float64 reduce with every op, int64 with sum, max and min)",
            t.shape()
        ),
    }
}

/// Writes `buf` into `t` in place (any device), outside autograd.
fn write_into(t: &Tensor, buf: &Buffer) {
    let src = buf.to_tensor(t.shape(), t.device());
    crate::autograd::no_grad(|| t.copy_(&src));
}

/// The result of reduction `op` over `world` ranks from the transport's
/// sum: `Avg` travels as a sum and is divided here.
fn averaged(mut b: Buffer, op: ReduceOp, world: usize) -> Buffer {
    if op == ReduceOp::Avg {
        b.divide(world);
    }
    b
}

/// Reduces `t` across all ranks in place, like `dist.all_reduce`.
pub fn all_reduce(t: &Tensor, op: ReduceOp) {
    all_reduce_async(t, op).wait()
}

/// [`all_reduce`] that returns at once; `t` holds the result after
/// [`Work::wait`].
pub fn all_reduce_async(t: &Tensor, op: ReduceOp) -> Work<()> {
    check_reducible("all_reduce", t, op);
    #[cfg(feature = "nccl")]
    if let Some(w) = try_nccl("all_reduce", t, nccl::InPlace::AllReduce(op)) {
        return w;
    }
    let target = t.shallow_clone();
    let world = world_size();
    submit(
        "all_reduce",
        Job::AllReduce(Buffer::from_tensor(t), op),
        move |b| write_into(&target, &averaged(b, op, world)),
    )
}

/// Overwrites `t` on every rank with rank `src`'s `t`, like
/// `dist.broadcast`.
pub fn broadcast(t: &Tensor, src: usize) {
    broadcast_async(t, src).wait()
}

/// [`broadcast`] that returns at once.
pub fn broadcast_async(t: &Tensor, src: usize) -> Work<()> {
    let world = world_size();
    assert!(
        src < world,
        "broadcast: source rank {src} is not in a world of {world}"
    );
    #[cfg(feature = "nccl")]
    if let Some(w) = try_nccl("broadcast", t, nccl::InPlace::Broadcast(src)) {
        return w;
    }
    let target = t.shallow_clone();
    submit(
        "broadcast",
        Job::Broadcast(Buffer::from_tensor(t), src),
        move |b| write_into(&target, &b),
    )
}

/// Every rank's `t`, in rank order, like `dist.all_gather`. Every rank
/// must pass a tensor of the same shape and dtype.
pub fn all_gather(t: &Tensor) -> Vec<Tensor> {
    all_gather_async(t).wait()
}

/// [`all_gather`] that returns at once.
pub fn all_gather_async(t: &Tensor) -> Work<Vec<Tensor>> {
    let (shape, device, n) = (t.shape().to_vec(), t.device(), t.numel());
    let world = world_size();
    submit(
        "all_gather",
        Job::AllGather(Buffer::from_tensor(t)),
        move |b| {
            (0..world)
                .map(|r| b.slice(r * n, n).to_tensor(&shape, device))
                .collect()
        },
    )
}

/// Reduces `t` across ranks and gives each rank its slice of the result
/// along dimension 0, like `dist.reduce_scatter_tensor`: rank `r` gets rows
/// `r * d0 / world .. (r + 1) * d0 / world`. Dimension 0 must divide by
/// the world size.
pub fn reduce_scatter(t: &Tensor, op: ReduceOp) -> Tensor {
    reduce_scatter_async(t, op).wait()
}

/// [`reduce_scatter`] that returns at once.
pub fn reduce_scatter_async(t: &Tensor, op: ReduceOp) -> Work<Tensor> {
    check_reducible("reduce_scatter", t, op);
    let world = world_size();
    let shape = t.shape();
    assert!(
        !shape.is_empty() && shape[0].is_multiple_of(world),
        "reduce_scatter: dimension 0 of shape {shape:?} must divide by the world size {world}"
    );
    let mut out_shape = shape.to_vec();
    out_shape[0] /= world;
    let device = t.device();
    submit(
        "reduce_scatter",
        Job::ReduceScatter(Buffer::from_tensor(t), op),
        move |b| {
            let b = averaged(b, op, world);
            debug_assert_eq!(b.len(), out_shape.iter().product::<usize>());
            b.to_tensor(&out_shape, device)
        },
    )
}

/// Blocks until every rank reached it, like `dist.barrier`.
pub fn barrier() {
    submit("barrier", Job::Barrier, |_| ()).wait()
}

/// Runs `f` on rank 0 only, then waits at a barrier with the other ranks,
/// so that what rank 0 wrote (a checkpoint, a plot) is complete on every
/// rank's return. Returns `f`'s result on rank 0, `None` elsewhere.
///
/// ```
/// use kiln_runtime::distributed;
/// let wrote = distributed::on_rank_zero(|| "checkpoint.safetensors");
/// assert_eq!(wrote.is_some(), distributed::rank() == 0);
/// ```
pub fn on_rank_zero<R>(f: impl FnOnce() -> R) -> Option<R> {
    let out = (rank() == 0).then(f);
    barrier();
    out
}

/// Buffers holding one flat vector per dtype: DDP's gradient buckets.
pub(crate) fn all_reduce_buffer_async(buf: Vec<f32>) -> Work<Vec<f32>> {
    submit(
        "all_reduce",
        Job::AllReduce(Buffer::F32(buf), ReduceOp::Sum),
        |b| match b {
            Buffer::F32(v) => v,
            _ => unreachable!("an f32 all-reduce gives f32"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_group_collectives_are_the_identity() {
        assert_eq!((rank(), world_size(), local_rank()), (0, 1, 0));
        let t = Tensor::from([1.0f32, -2.0, 3.0]);
        all_reduce(&t, ReduceOp::Avg);
        assert_eq!(t.to_vec::<f32>(), vec![1.0, -2.0, 3.0]);
        broadcast(&t, 0);
        let g = all_gather(&t);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].to_vec::<f32>(), vec![1.0, -2.0, 3.0]);
        let m = Tensor::from_vec(vec![1i64, 2, 3, 4], [2, 2]);
        let r = reduce_scatter(&m, ReduceOp::Max);
        assert_eq!(r.shape(), &[2, 2]);
        assert_eq!(r.to_vec::<i64>(), vec![1, 2, 3, 4]);
        barrier();
        assert_eq!(on_rank_zero(|| 7), Some(7));
    }

    #[test]
    #[should_panic(expected = "all_reduce: cannot reduce a int64 tensor of shape [2] with Avg")]
    fn avg_of_integers_is_refused() {
        all_reduce(&Tensor::from_vec(vec![1i64, 2], [2]), ReduceOp::Avg);
    }

    #[test]
    fn broadcast_keeps_half_precision_bits() {
        let t = Tensor::from_vec(
            vec![half::bf16::from_f32(1.5), half::bf16::from_f32(-3.0)],
            [2],
        );
        broadcast(&t, 0);
        assert_eq!(
            t.to_vec::<half::bf16>(),
            vec![half::bf16::from_f32(1.5), half::bf16::from_f32(-3.0)]
        );
    }

    #[cfg(not(feature = "nccl"))]
    #[test]
    fn nccl_without_the_feature_is_a_typed_error() {
        let e = init_process_group(Backend::Nccl).unwrap_err();
        assert!(
            matches!(
                e,
                DistError::BackendNotBuilt {
                    feature: "nccl",
                    ..
                }
            ),
            "{e}"
        );
        assert!(!is_initialized());
    }
}
