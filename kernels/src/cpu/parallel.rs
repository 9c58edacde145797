//! The serial / rayon switch shared by every CPU kernel.
//!
//! Spawning rayon work costs a few microseconds (waking a worker, stealing,
//! joining); below some size that is more than the work itself. The helpers
//! here run on the calling thread below a threshold and split the work into
//! a few large chunks above it.

use std::ops::Range;

use rayon::prelude::*;

/// Element count from which a cheap elementwise op (one load/store pair and
/// an add per element, e.g. `c = a + b` on `f32`) is split across threads.
///
/// Measured on the 2-core development machine (AMD EPYC, AVX-512) with
/// `examples/bench_kernels.rs`'s `par_threshold` lines: `f32` add of two
/// slices into a third, serial vs. two rayon chunks. Below ~24 Ki elements
/// the hop to the second thread costs more than it saves; 32 Ki elements
/// run 1.3x faster on two threads, and from 64 Ki the gain is ~1.8x.
/// Heavier per-element work (exp, a pooling window, ...) should scale the
/// element count by a cost factor, as [`should_parallelize`] does.
pub const PAR_THRESHOLD: usize = 32 * 1024;

/// Number of threads in rayon's current pool.
#[inline]
pub fn num_threads() -> usize {
    rayon::current_num_threads()
}

/// Whether `elements` items, each costing about `cost` cheap elementwise ops,
/// are worth splitting across threads.
#[inline]
pub fn should_parallelize(elements: usize, cost: usize) -> bool {
    elements.saturating_mul(cost.max(1)) >= PAR_THRESHOLD && num_threads() > 1
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
