//! Keeps freed tensor-sized buffers in the process heap instead of handing
//! them back to the kernel, so that a training step reuses the previous
//! step's pages rather than faulting in fresh ones.
//!
//! glibc's `malloc` serves blocks above its mmap threshold (128 KiB at
//! first, raised on the fly up to 32 MiB) with a fresh `mmap` and gives the
//! top of the heap back (`brk`) once more than the trim threshold is free.
//! A training step allocates and frees the same large activations,
//! gradients and column matrices every time, so each step paid for its
//! buffers again in page faults: 5–10% of a LeNet step and ~11% of a
//! VGG-11 step in `perf` profiles. Raising both thresholds once (the
//! `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` tunables, set from
//! code) turns those faults into heap reuse. Peak memory stays the
//! program's own peak: freed pages are reused, not duplicated; the
//! benchmarks' peak RSS (`/usr/bin/time -v`) stays flat over epochs.
//!
//! Set `KILN_KEEP_MALLOC_DEFAULTS=1` to leave the allocator untouched.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::os::raw::c_int;

    unsafe extern "C" {
        /// glibc's `mallopt(3)`.
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    /// `M_TRIM_THRESHOLD` from `<malloc.h>`.
    const M_TRIM_THRESHOLD: c_int = -1;
    /// `M_MMAP_THRESHOLD` from `<malloc.h>`.
    const M_MMAP_THRESHOLD: c_int = -3;

    /// Blocks up to this size come from the heap (glibc's largest allowed
    /// mmap threshold on 64-bit targets, 32 MiB).
    const MMAP_THRESHOLD: c_int = 32 << 20;
    /// Free memory kept at the top of the heap before it is trimmed.
    const TRIM_THRESHOLD: c_int = 256 << 20;

    pub(super) fn tune() {
        // SAFETY: `mallopt` only sets allocator parameters; any values are
        // accepted (invalid ones are rejected with a 0 return).
        unsafe {
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Raises the allocator's mmap and trim thresholds, once per process (see
/// the module documentation); a no-op off glibc or when
/// `KILN_KEEP_MALLOC_DEFAULTS` is set. The kernels call it on their first
/// use; calling it again is cheap.
pub fn keep_freed_buffers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("KILN_KEEP_MALLOC_DEFAULTS").is_some() {
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        glibc::tune();
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn idempotent_and_allocations_still_work() {
        super::keep_freed_buffers();
        super::keep_freed_buffers();
        let v = vec![1.0f32; 1 << 22];
        assert_eq!(v.iter().sum::<f32>(), (1 << 22) as f32);
    }
}
