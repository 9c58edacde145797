//! The caching allocator: freed device blocks go to per-device free lists
//! bucketed by rounded size and are handed out again, so a training loop
//! that allocates the same shapes every step stops calling `cuMemAlloc`
//! after the first step.
//!
//! Sizes are rounded up to a multiple of 512 bytes, and above 4 KiB to a
//! multiple of 1/16 of the next power of two (at most 12.5% waste). All
//! work on a device runs on its one stream, so a block freed by an op may be reused
//! by any later op at once: stream order makes the reuse safe. When
//! `cuMemAlloc` fails, the cache is released and the allocation retried.

use super::CudaError;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counters of one device's allocator, like `torch.cuda.memory_stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes in blocks currently held by tensors (rounded sizes).
    pub allocated_bytes: usize,
    /// Highest `allocated_bytes` seen.
    pub peak_allocated_bytes: usize,
    /// Bytes in freed blocks kept for reuse.
    pub cached_bytes: usize,
    /// Number of `cuMemAlloc` calls made.
    pub device_allocs: u64,
    /// Number of allocations served from the cache.
    pub cache_hits: u64,
}

/// The size a request of `bytes` is rounded up to.
pub(crate) fn round_size(bytes: usize) -> usize {
    const MIN: usize = 512;
    if bytes <= 4096 {
        return bytes.div_ceil(MIN).max(1) * MIN;
    }
    let step = (bytes.next_power_of_two() / 16).max(MIN);
    bytes.div_ceil(step) * step
}

#[derive(Default)]
struct State {
    free: BTreeMap<usize, Vec<u64>>,
    stats: MemoryStats,
}

/// Size-bucketed free lists of one device.
#[derive(Default)]
pub(crate) struct Allocator {
    state: Mutex<State>,
}

impl Allocator {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A device block of at least `bytes` (returned with its rounded size).
    /// The device's context must be current on this thread.
    pub(crate) fn alloc(&self, bytes: usize) -> Result<(u64, usize), CudaError> {
        let size = round_size(bytes);
        {
            let mut st = self.lock();
            if let Some(list) = st.free.get_mut(&size)
                && let Some(ptr) = list.pop()
            {
                if list.is_empty() {
                    st.free.remove(&size);
                }
                st.stats.cached_bytes -= size;
                st.stats.cache_hits += 1;
                st.stats.allocated_bytes += size;
                st.stats.peak_allocated_bytes =
                    st.stats.peak_allocated_bytes.max(st.stats.allocated_bytes);
                return Ok((ptr, size));
            }
        }
        // SAFETY: plain allocation in the current context.
        let ptr = match unsafe { cudarc::driver::result::malloc_sync(size) } {
            Ok(p) => p,
            Err(_) => {
                self.empty_cache();
                // SAFETY: as above.
                unsafe { cudarc::driver::result::malloc_sync(size) }.map_err(|e| {
                    CudaError::new(format!(
                        "out of memory allocating {size} bytes ({} bytes in use): {e:?}",
                        self.stats().allocated_bytes
                    ))
                })?
            }
        };
        let mut st = self.lock();
        st.stats.device_allocs += 1;
        st.stats.allocated_bytes += size;
        st.stats.peak_allocated_bytes = st.stats.peak_allocated_bytes.max(st.stats.allocated_bytes);
        Ok((ptr, size))
    }

    /// Returns a block (of rounded `size`) to the cache.
    pub(crate) fn free(&self, ptr: u64, size: usize) {
        let mut st = self.lock();
        st.stats.allocated_bytes -= size;
        st.stats.cached_bytes += size;
        st.free.entry(size).or_default().push(ptr);
    }

    /// Releases every cached block to the driver (after the device's work
    /// has finished), like `torch.cuda.empty_cache`.
    pub(crate) fn empty_cache(&self) {
        let blocks: Vec<u64> = {
            let mut st = self.lock();
            st.stats.cached_bytes = 0;
            std::mem::take(&mut st.free)
                .into_values()
                .flatten()
                .collect()
        };
        for p in blocks {
            // SAFETY: the block came from malloc_sync and no tensor owns it;
            // free_sync waits for queued work using it.
            let _ = unsafe { cudarc::driver::result::free_sync(p) };
        }
    }

    /// The current counters.
    pub(crate) fn stats(&self) -> MemoryStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::round_size;

    #[test]
    fn sizes_round_into_buckets() {
        assert_eq!(round_size(0), 512);
        assert_eq!(round_size(1), 512);
        assert_eq!(round_size(513), 1024);
        assert_eq!(round_size(4096), 4096);
        assert_eq!(round_size(4097), 4608);
        assert_eq!(round_size(1 << 20), 1 << 20);
        assert_eq!(round_size((1 << 20) + 1), (1 << 20) + (1 << 17));
        for n in [5000usize, 77_777, 3_000_001] {
            let r = round_size(n);
            assert!(r >= n && (r - n) * 8 <= r, "{n} -> {r}");
        }
    }
}
