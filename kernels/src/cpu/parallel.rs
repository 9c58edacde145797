//! The serial / rayon switch shared by every CPU kernel.
//!
//! Spawning rayon work costs a few microseconds (waking a worker, stealing,
//! joining); below some size that is more than the work itself. The helpers
//! here run on the calling thread below a threshold and split the work into
//! a few large chunks above it.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

/// Element count from which a cheap elementwise op (one load/store pair and
/// an add per element, e.g. `c = a + b` on `f32`) is split across threads.
/// It is also the unit in which the other kernels weigh their work (a
/// pooling window tap, an `exp`, a convolution multiply-add each count as
/// a measured number of such adds).
///
/// Measured with `cargo run --release -p kiln-kernels --example
/// bench_kernels all` (`par_threshold` lines: `f32` add of two slices into
/// a third, serial vs. two rayon halves) on a 2-core Intel Xeon with the
/// workers kept spinning ([`keep_workers_warm`]): 16 Ki elements broke
/// even, 32 Ki gained 1.33x, 64 Ki 1.6x and 128 Ki 2x. While workers slept
/// between ops (waking a halted vCPU costs 5-50 µs) the break-even was
/// 192 Ki, the value this constant had before the workers spun.
pub const PAR_THRESHOLD: usize = 32 * 1024;

/// Number of threads in rayon's current pool (after [`join_pool`]).
#[inline]
pub fn num_threads() -> usize {
    join_pool();
    rayon::current_num_threads()
}

/// Makes the program's main thread a member of rayon's global pool, the
/// way OpenMP's calling thread is thread 0 of every parallel region.
///
/// A parallel kernel called from a thread outside the pool hands its work
/// to the pool and sleeps until a worker wakes it: two thread hand-offs
/// per op, 5-20 µs each on a VM, which for a LeNet training step at
/// batch 64 (≈ 40 parallel ops) was 15-25 % of the step. As a pool member
/// the caller runs its own share and only the second half travels.
///
/// Runs once, on the first call from the thread named `main`, and only if
/// nothing has configured the global pool yet: a program that builds it
/// itself (`rayon::ThreadPoolBuilder::build_global`, `RAYON_NUM_THREADS`
/// is still honoured here) keeps its choice. Every kiln kernel calls this
/// before going parallel, so users never need to.
#[inline]
pub fn join_pool() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.load(Ordering::Relaxed) {
        return;
    }
    join_pool_slow(&DONE);
}

#[cold]
fn join_pool_slow(done: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    // Before the pool's threads first allocate (see `alloc`: one arena).
    super::alloc::keep_freed_buffers();
    // Only the main thread joins: test harness threads and data-loader
    // workers come and go, and a pool member should live as long as the pool.
    if std::thread::current().name() != Some("main") {
        return;
    }
    done.store(true, Ordering::Relaxed);
    // Err: the global pool exists already (built by the program, or first
    // used from another thread); it is then used as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global();
}

/// Whether `elements` items, each costing about `cost` cheap elementwise ops,
/// are worth splitting across threads. A yes also keeps the pool's workers
/// awake for the next parallel op ([`keep_workers_warm`]).
#[inline]
pub fn should_parallelize(elements: usize, cost: usize) -> bool {
    let yes = elements.saturating_mul(cost.max(1)) >= PAR_THRESHOLD && num_threads() > 1;
    if yes {
        keep_workers_warm();
    }
    yes
}

/// How long a worker keeps looking for work after the last parallel op
/// before it goes to sleep (OpenMP's "block time").
const SPIN_FOR: std::time::Duration = std::time::Duration::from_micros(1000);

/// Keeps rayon's workers spinning, ready to steal, until 1 ms
/// passes without a parallel op, the way an OpenMP runtime (PyTorch's)
/// keeps its team awake between parallel regions.
///
/// A rayon worker that finds no work sleeps after a few dozen yields, and
/// waking it for the next op costs a futex call and, on a VM, waking a
/// halted vCPU: 5-50 µs, paid by every parallel op of a training step whose
/// serial stretches are longer than that. Each kernel that goes parallel
/// calls this first; while the workers spin, they pick up the op's second
/// half within a microsecond or two. Set `KILN_NO_SPIN=1` to let workers
/// sleep as soon as rayon decides to.
#[inline]
pub fn keep_workers_warm() {
    use std::sync::atomic::Ordering;
    DEMAND.fetch_add(1, Ordering::Relaxed);
    if SPINNERS.load(Ordering::Acquire) == 0 {
        start_spinners();
    }
}

/// Parallel ops asked for so far; spinners watch it change.
static DEMAND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Workers now spinning in [`spin`].
static SPINNERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cold]
fn start_spinners() {
    use std::sync::atomic::Ordering;
    static DISABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *DISABLED.get_or_init(|| std::env::var_os("KILN_NO_SPIN").is_some()) {
        return;
    }
    let threads = rayon::current_num_threads();
    let caller = rayon::current_thread_index();
    let spinners = threads - usize::from(caller.is_some());
    if spinners == 0
        || SPINNERS
            .compare_exchange(0, spinners, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    rayon::spawn_broadcast(move |ctx| {
        if Some(ctx.index()) != caller {
            spin();
            SPINNERS.fetch_sub(1, Ordering::AcqRel);
        }
    });
}

/// A worker's wait for work: runs whatever it can steal, and returns once
/// nothing was found and no op was asked for during [`SPIN_FOR`].
fn spin() {
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    let mut seen = DEMAND.load(Ordering::Relaxed);
    let mut busy_at = Instant::now();
    let mut idle_rounds = 0u32;
    loop {
        if let Some(rayon::Yield::Executed) = rayon::yield_now() {
            busy_at = Instant::now();
            idle_rounds = 0;
            continue;
        }
        let now = DEMAND.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            busy_at = Instant::now();
        } else if busy_at.elapsed() > SPIN_FOR {
            return;
        }
        idle_rounds += 1;
        if idle_rounds.is_multiple_of(64) {
            // Let other runnable threads (data loaders) have the core.
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Chunk length for splitting `len` items of cost `cost` across the pool:
/// a few chunks per thread (for balance), none smaller than half the
/// threshold's worth of work; chunks of 64 elements or more are rounded to
/// a multiple of 64 so their boundaries stay cache-line aligned for 4- and
/// 8-byte elements.
fn chunk_len(len: usize, cost: usize) -> usize {
    let min_chunk = (PAR_THRESHOLD / 2 / cost.max(1)).max(1);
    let target = len.div_ceil(num_threads() * 2).max(min_chunk);
    if target >= 64 {
        target.div_ceil(64) * 64
    } else {
        target
    }
}

/// Calls `f(offset, chunk)` over disjoint chunks covering `dst`, where
/// `offset` is the chunk's start index in `dst`. Serial (a single call with
/// the whole slice) below [`PAR_THRESHOLD`] elements, rayon above.
pub fn par_chunks_mut_map<T, F>(dst: &mut [T], f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    par_chunks_mut_map_with(dst, 1, f)
}

/// As [`par_chunks_mut_map`], for work costing about `cost` cheap ops per
/// element (the threshold is divided by `cost`).
pub fn par_chunks_mut_map_with<T, F>(dst: &mut [T], cost: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    if !should_parallelize(dst.len(), cost) {
        f(0, dst);
        return;
    }
    let chunk = chunk_len(dst.len(), cost);
    dst.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i * chunk, c));
}

/// Calls `f(first_block, chunk)` over chunks of `dst` made of whole blocks
/// of `block` elements (`first_block` is the index of the chunk's first
/// block), where each element costs about `cost` cheap ops. Serial (one call
/// with all of `dst`) below the threshold. A trailing partial block, if
/// `dst.len()` is not a multiple of `block`, ends the last chunk.
pub fn par_blocks_mut<T, F>(dst: &mut [T], block: usize, cost: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    let blocks = if block == 0 {
        0
    } else {
        dst.len().div_ceil(block)
    };
    if blocks < 2 || !should_parallelize(dst.len(), cost) {
        f(0, dst);
        return;
    }
    let min_blocks = (PAR_THRESHOLD / 2 / cost.max(1) / block).max(1);
    let per = blocks.div_ceil(num_threads() * 2).max(min_blocks);
    dst.par_chunks_mut(per * block)
        .enumerate()
        .for_each(|(i, c)| f(i * per, c));
}

/// Allocates a `len`-element vector and fills it by `f(first_block,
/// chunk)` over chunks of whole `block`-element blocks, split as in
/// [`par_blocks_mut`]. Each chunk is zeroed (`T::default()`) by the thread
/// that then runs `f` on it, instead of one serial zeroing pass over the
/// whole vector before the parallel work (which cost ~10% of pooling and
/// convolution passes): the zeroing is shared out and the chunk is still in
/// cache when `f` writes it.
pub fn par_blocks_alloc<T, F>(len: usize, block: usize, cost: usize, f: F) -> Vec<T>
where
    T: Copy + Default + Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    let mut out: Vec<T> = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    par_blocks_mut(spare, block, cost, |first, chunk| f(first, zeroed(chunk)));
    // SAFETY: `par_blocks_mut` hands out chunks covering all of `spare`
    // (`0..len`), and `zeroed` initialised each of them (a panic would have
    // unwound past this point).
    unsafe { out.set_len(len) };
    out
}

/// Initialises every element of `part` to `T::default()` and returns it as
/// an initialised slice.
pub(crate) fn zeroed<T: Copy + Default>(part: &mut [MaybeUninit<T>]) -> &mut [T] {
    for x in part.iter_mut() {
        x.write(T::default());
    }
    // SAFETY: every element was initialised just above, and `MaybeUninit<T>`
    // has the same layout as `T`.
    unsafe { &mut *(part as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// `dst[i] = f(src[i])`, in parallel above the threshold.
///
/// # Panics
/// If the lengths differ.
pub fn par_map<S, D, F>(src: &[S], dst: &mut [D], f: F)
where
    S: Copy + Sync,
    D: Send,
    F: Fn(S) -> D + Send + Sync,
{
    assert_eq!(src.len(), dst.len(), "par_map: length mismatch");
    par_chunks_mut_map(dst, |off, d| {
        let s = &src[off..off + d.len()];
        for (d, &s) in d.iter_mut().zip(s) {
            *d = f(s);
        }
    });
}

/// `dst[i] = f(a[i], b[i])`, in parallel above the threshold.
///
/// # Panics
/// If the lengths differ.
pub fn par_zip_map<A, B, D, F>(a: &[A], b: &[B], dst: &mut [D], f: F)
where
    A: Copy + Sync,
    B: Copy + Sync,
    D: Send,
    F: Fn(A, B) -> D + Send + Sync,
{
    assert!(
        a.len() == dst.len() && b.len() == dst.len(),
        "par_zip_map: length mismatch ({}, {}, {})",
        a.len(),
        b.len(),
        dst.len()
    );
    par_chunks_mut_map(dst, |off, d| {
        let n = d.len();
        let (a, b) = (&a[off..off + n], &b[off..off + n]);
        for ((d, &a), &b) in d.iter_mut().zip(a).zip(b) {
            *d = f(a, b);
        }
    });
}

/// Calls `f(range)` over disjoint sub-ranges covering `0..n`, where each
/// index costs about `cost` cheap ops; serial below the threshold.
pub fn par_ranges<F>(n: usize, cost: usize, f: F)
where
    F: Fn(Range<usize>) + Send + Sync,
{
    if n == 0 {
        return;
    }
    if !should_parallelize(n, cost) || n == 1 {
        f(0..n);
        return;
    }
    let min_chunk = (PAR_THRESHOLD / 2 / cost.max(1)).max(1);
    let chunk = n.div_ceil(num_threads() * 2).max(min_chunk);
    let n_chunks = n.div_ceil(chunk);
    (0..n_chunks)
        .into_par_iter()
        .for_each(|i| f(i * chunk..((i + 1) * chunk).min(n)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinning_workers_run_work_and_then_go_to_sleep() {
        use std::sync::atomic::Ordering;
        keep_workers_warm();
        // Work handed to the pool while it spins still runs, every piece once.
        let sum: u64 = (0..10_000u64).into_par_iter().sum();
        assert_eq!(sum, 10_000 * 9_999 / 2);
        // With no more demand the spinners leave within SPIN_FOR (other
        // tests of this binary may ask for a while; they finish in well
        // under the deadline).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while SPINNERS.load(Ordering::Acquire) != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "spinning workers never went to sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn chunks_cover_everything_once() {
        for &n in &[
            0usize,
            1,
            63,
            1000,
            PAR_THRESHOLD + 7,
            5 * PAR_THRESHOLD + 3,
        ] {
            let mut v = vec![0u32; n];
            par_chunks_mut_map(&mut v, |off, c| {
                for (i, x) in c.iter_mut().enumerate() {
                    *x += (off + i) as u32 + 1;
                }
            });
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32 + 1));

            let hits: Vec<std::sync::atomic::AtomicU32> =
                (0..n).map(|_| Default::default()).collect();
            par_ranges(n, 3, |r| {
                for i in r {
                    hits[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
            assert!(
                hits.iter()
                    .all(|h| h.load(std::sync::atomic::Ordering::Relaxed) == 1)
            );
        }
    }

    #[test]
    fn blocks_are_whole() {
        for &(n, block) in &[
            (0usize, 3usize),
            (10, 3),
            (PAR_THRESHOLD * 3, 7),
            (100_000, 1000),
        ] {
            let mut v = vec![0usize; n];
            par_blocks_mut(&mut v, block, 1, |first, c| {
                assert!(c.len() % block == 0 || first * block + c.len() == n);
                for (i, x) in c.iter_mut().enumerate() {
                    *x = first * block + i + 1;
                }
            });
            assert!(v.iter().enumerate().all(|(i, &x)| x == i + 1));
        }
    }

    #[test]
    fn alloc_fills_everything() {
        for &(n, block) in &[
            (0usize, 4usize),
            (1, 4),
            (10, 3),
            (PAR_THRESHOLD * 2 + 5, 100),
        ] {
            let v: Vec<u64> = par_blocks_alloc(n, block, 1, |first, c| {
                assert!(c.iter().all(|&x| x == 0));
                for (i, x) in c.iter_mut().enumerate() {
                    *x = (first * block + i) as u64;
                }
            });
            assert_eq!(v.len(), n);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
        }
    }

    #[test]
    fn maps() {
        let n = 3 * PAR_THRESHOLD + 5;
        let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..n).map(|i| 2.0 * i as f32).collect();
        let mut c = vec![0.0f32; n];
        par_zip_map(&a, &b, &mut c, |x, y| x + y);
        assert!(c.iter().enumerate().all(|(i, &x)| x == 3.0 * i as f32));
        par_map(&a, &mut c, |x| -x);
        assert!(c.iter().enumerate().all(|(i, &x)| x == -(i as f32)));
    }
}
