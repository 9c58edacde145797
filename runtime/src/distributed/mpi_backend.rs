//! The MPI backend: one communication thread owns every MPI call.
//!
//! OpenMPI does not progress non-blocking collectives by itself, so rather
//! than polling `MPI_Iallreduce` from the training thread, a dedicated
//! thread initialises MPI and runs blocking collectives from a FIFO queue.
//! A collective queued by the training thread therefore runs while the
//! training thread keeps computing (the overlap data-parallel training
//! needs), and since the queue is FIFO and every rank queues the same
//! collectives in the same order, every rank issues them in the same
//! order. MPI is initialised with `MPI_THREAD_MULTIPLE` when the library
//! offers it, so that the panic hook may call `MPI_Abort` from any thread.

use super::buffer::Buffer;
use super::{DistError, Job, ReduceOp, Reply, WorldInfo};
use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::traits::*;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

enum Msg {
    Job(Job, Sender<Reply>),
    Shutdown,
}

/// A running MPI communication thread.
pub(crate) struct MpiBackend {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl MpiBackend {
    /// Starts the thread, initialises MPI on it, and returns the world.
    pub(crate) fn start() -> Result<(MpiBackend, WorldInfo), DistError> {
        let (tx, rx) = channel::<Msg>();
        let (info_tx, info_rx) = channel::<Result<WorldInfo, DistError>>();
        let thread = std::thread::Builder::new()
            .name("kiln-mpi".into())
            .spawn(move || comm_thread(rx, info_tx))
            .map_err(|e| DistError::Backend {
                backend: "MPI",
                reason: format!("cannot start the communication thread: {e}"),
            })?;
        let info = info_rx.recv().unwrap_or_else(|_| {
            Err(DistError::Backend {
                backend: "MPI",
                reason: "the communication thread ended during MPI_Init".into(),
            })
        })?;
        Ok((
            MpiBackend {
                tx,
                thread: Some(thread),
            },
            info,
        ))
    }

    /// Queues `job`; its result arrives on `reply`.
    pub(crate) fn submit(&self, job: Job, reply: Sender<Reply>) {
        // A send fails only after shutdown, and the group is gone then.
        let _ = self.tx.send(Msg::Job(job, reply));
    }

    /// Ends the job of every rank: `MPI_Abort` on `MPI_COMM_WORLD`.
    pub(crate) fn abort(code: i32) -> ! {
        // SAFETY: MPI is initialised (the hook is installed only then) with
        // the highest thread level the library gives; MPI_Abort does not
        // return.
        unsafe {
            mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, code);
        }
        std::process::exit(code)
    }
}

impl Drop for MpiBackend {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn comm_thread(rx: Receiver<Msg>, info_tx: Sender<Result<WorldInfo, DistError>>) {
    let Some((universe, _level)) = mpi::initialize_with_threading(mpi::Threading::Multiple) else {
        let _ = info_tx.send(Err(DistError::Backend {
            backend: "MPI",
            reason: "MPI is already initialised in this process".into(),
        }));
        return;
    };
    let world = universe.world();
    let local = world.split_shared(world.rank());
    let info = WorldInfo {
        rank: world.rank() as usize,
        world_size: world.size() as usize,
        local_rank: local.rank() as usize,
    };
    drop(local);
    let _ = info_tx.send(Ok(info));
    while let Ok(Msg::Job(job, reply)) = rx.recv() {
        let _ = reply.send(run(&world, job));
    }
    // Dropping the universe calls MPI_Finalize.
    drop(universe);
}

fn system_op(op: ReduceOp) -> SystemOperation {
    match op {
        ReduceOp::Sum | ReduceOp::Avg => SystemOperation::sum(),
        ReduceOp::Max => SystemOperation::max(),
        ReduceOp::Min => SystemOperation::min(),
    }
}

fn all_reduce<T: Equivalence + Copy + Default>(
    world: &impl Communicator,
    v: &[T],
    op: ReduceOp,
) -> Vec<T> {
    // rsmpi has no in-place all-reduce: reduce into a scratch vector.
    let mut out = vec![T::default(); v.len()];
    world.all_reduce_into(v, &mut out[..], system_op(op));
    out
}

fn all_gather<T: Equivalence + Copy + Default>(world: &impl Communicator, v: &[T]) -> Vec<T> {
    let mut out = vec![T::default(); v.len() * world.size() as usize];
    world.all_gather_into(v, &mut out[..]);
    out
}

fn reduce_scatter<T: Equivalence + Copy + Default>(
    world: &impl Communicator,
    v: &[T],
    op: ReduceOp,
) -> Vec<T> {
    let mut out = vec![T::default(); v.len() / world.size() as usize];
    world.reduce_scatter_block_into(v, &mut out[..], system_op(op));
    out
}

fn not_reducible(d: crate::DType) -> Reply {
    Err(DistError::Backend {
        backend: "MPI",
        reason: format!("cannot reduce {d} tensors (float32, float64 and int64 reduce)"),
    })
}

fn run(world: &impl Communicator, job: Job) -> Reply {
    Ok(match job {
        Job::AllReduce(buf, op) => match buf {
            Buffer::F32(v) => Buffer::F32(all_reduce(world, &v, op)),
            Buffer::F64(v) => Buffer::F64(all_reduce(world, &v, op)),
            Buffer::I64(v) => Buffer::I64(all_reduce(world, &v, op)),
            Buffer::Bytes(_, d) => return not_reducible(d),
        },
        Job::ReduceScatter(buf, op) => match buf {
            Buffer::F32(v) => Buffer::F32(reduce_scatter(world, &v, op)),
            Buffer::F64(v) => Buffer::F64(reduce_scatter(world, &v, op)),
            Buffer::I64(v) => Buffer::I64(reduce_scatter(world, &v, op)),
            Buffer::Bytes(_, d) => return not_reducible(d),
        },
        Job::Broadcast(mut buf, root) => {
            let root = world.process_at_rank(root as i32);
            match &mut buf {
                Buffer::F32(v) => root.broadcast_into(&mut v[..]),
                Buffer::F64(v) => root.broadcast_into(&mut v[..]),
                Buffer::I64(v) => root.broadcast_into(&mut v[..]),
                Buffer::Bytes(v, _) => root.broadcast_into(&mut v[..]),
            }
            buf
        }
        Job::AllGather(buf) => match buf {
            Buffer::F32(v) => Buffer::F32(all_gather(world, &v)),
            Buffer::F64(v) => Buffer::F64(all_gather(world, &v)),
            Buffer::I64(v) => Buffer::I64(all_gather(world, &v)),
            Buffer::Bytes(v, d) => Buffer::Bytes(all_gather(world, &v), d),
        },
        Job::Barrier => {
            world.barrier();
            Buffer::Bytes(Vec::new(), crate::DType::U8)
        }
    })
}
