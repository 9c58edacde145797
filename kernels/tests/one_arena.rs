//! After `keep_freed_buffers`, memory that another thread allocates comes
//! from the main heap, the one arena that every thread then shares, so a
//! data loader's batches, freed by the training thread, are reused by it
//! instead of building a second heap (see `kiln_kernels::cpu::alloc`).
//!
//! glibc's main arena grows the program break (`brk`); any other arena is
//! an `mmap`ed heap, above the break on Linux. A block a worker thread
//! allocated therefore lies below the break exactly when it came from the
//! main arena.
//!
//! Runs without libtest's harness (`harness = false`): the harness's own
//! threads would take arenas before the test could cap them.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    unsafe extern "C" {
        /// `sbrk(3)`: with 0, the current program break.
        fn sbrk(increment: isize) -> *mut std::ffi::c_void;
    }
    if std::env::var_os("KILN_KEEP_MALLOC_DEFAULTS").is_some() {
        println!("test one_arena ... skipped: KILN_KEEP_MALLOC_DEFAULTS is set");
        return;
    }
    kiln_kernels::cpu::alloc::keep_freed_buffers();
    const LEN: usize = 1 << 20;
    for round in 0..4u8 {
        // A worker builds a batch; the main thread consumes and drops it.
        let batch = std::thread::spawn(move || vec![round; LEN]).join().unwrap();
        // SAFETY: `sbrk(0)` only reads the break.
        let brk = unsafe { sbrk(0) } as usize;
        let at = batch.as_ptr() as usize;
        assert!(
            at + LEN <= brk,
            "round {round}: a worker thread's block at {at:#x} is not in the main heap \
             (below the break {brk:#x}): the thread has a malloc arena of its own"
        );
        drop(batch);
    }
    println!("test one_arena ... ok");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    println!("test one_arena ... skipped: glibc's allocator only");
}
