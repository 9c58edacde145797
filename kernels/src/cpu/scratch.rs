//! Per-thread scratch buffers reused across calls.
//!
//! im2col buffers are large (hundreds of KiB) and needed on every training
//! step; allocating them afresh each time costs page faults. Each thread keeps
//! one buffer per element type. A buffer is *taken* out of the thread-local
//! slot while in use and put back afterwards, so a re-entrant use on the same
//! thread (e.g. rayon work-stealing while a kernel waits) just allocates a
//! fresh one instead of panicking on a double borrow.

use std::any::Any;
use std::cell::Cell;
use std::thread::LocalKey;

thread_local! {
    static F32: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static F64: Cell<Vec<f64>> = const { Cell::new(Vec::new()) };
}

/// Buffers larger than this (bytes) are freed after use rather than kept:
/// a huge im2col (e.g. a 3x3 conv on 224x224 images) should not pin
/// hundreds of MiB per thread for the life of the program.
const MAX_CACHED_BYTES: usize = 64 << 20;

/// A buffer borrowed from the current thread's cache; returned on drop.
pub(crate) struct Scratch<T: Copy + Default + 'static> {
    buf: Vec<T>,
}

impl<T: Copy + Default + 'static> Scratch<T> {
    /// Takes this thread's cached buffer for `T` (or an empty one).
    pub(crate) fn take() -> Self {
        let mut buf: Vec<T> = Vec::new();
        let any = &mut buf as &mut dyn Any;
        if let Some(v) = any.downcast_mut::<Vec<f32>>() {
            *v = F32.take();
        } else if let Some(v) = any.downcast_mut::<Vec<f64>>() {
            *v = F64.take();
        }
        Scratch { buf }
    }

    /// A slice of exactly `len` elements with unspecified contents.
    pub(crate) fn get(&mut self, len: usize) -> &mut [T] {
        if self.buf.len() < len {
            self.buf.resize(len, T::default());
        }
        &mut self.buf[..len]
    }
}

impl<T: Copy + Default + 'static> Drop for Scratch<T> {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() * std::mem::size_of::<T>() > MAX_CACHED_BYTES {
            return;
        }
        let any = &mut buf as &mut dyn Any;
        if let Some(v) = any.downcast_mut::<Vec<f32>>() {
            keep_larger(&F32, std::mem::take(v));
        } else if let Some(v) = any.downcast_mut::<Vec<f64>>() {
            keep_larger(&F64, std::mem::take(v));
        }
    }
}

/// Puts `v` in this thread's `slot` unless the slot holds a larger buffer.
fn keep_larger<T>(slot: &'static LocalKey<Cell<Vec<T>>>, v: Vec<T>) {
    slot.with(|c| {
        let old = c.take();
        c.set(if old.capacity() > v.capacity() {
            old
        } else {
            v
        });
    });
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    #[test]
    fn reused_and_reentrant() {
        let ptr = {
            let mut a = Scratch::<f32>::take();
            a.get(1000).fill(1.0);
            // A second, nested borrow on the same thread gets its own buffer.
            let mut b = Scratch::<f32>::take();
            assert_eq!(b.get(10).len(), 10);
            a.get(1000).as_ptr()
        };
        // The larger buffer was kept and comes back.
        let mut c = Scratch::<f32>::take();
        assert_eq!(c.get(500).as_ptr(), ptr);
        // Other element types have their own slot, or none (fresh buffers).
        let mut d = Scratch::<f64>::take();
        assert_eq!(d.get(3).len(), 3);
        let mut e = Scratch::<u8>::take();
        assert_eq!(e.get(7).len(), 7);
    }
}
