//! Index validation without stalling the stream. Kernels that read
//! indices (losses' targets, `index_select`, `gather`, ...) set a device
//! error flag instead of faulting on a bad index. Reading the flag right
//! away would wait for the GPU on every such op (one host round-trip per
//! training step for the loss alone), so each flag is registered with the
//! launching thread and read at that thread's next synchronisation of the
//! device (`to_vec`, `item`, `.to(&Device::Cpu)`, `Device::synchronize`),
//! which then panics with the op's message, like PyTorch's device-side
//! asserts. At most [`MAX_PENDING`] flags wait before a synchronisation is
//! forced.

use super::{CudaDevice, CudaError, CudaStorage, alloc, check, zero};
use crate::DType;
use std::cell::RefCell;
use std::sync::Arc;

/// Flags a thread may leave unread before they are checked eagerly.
pub(crate) const MAX_PENDING: usize = 64;

thread_local! {
    /// This thread's unread flags, with the panic message for each.
    static PENDING: RefCell<Vec<(ErrFlag, String)>> = const { RefCell::new(Vec::new()) };
}

/// A device `int` error flag (zeroed) for kernels that validate indices.
pub(crate) struct ErrFlag(CudaStorage);

impl ErrFlag {
    /// A zeroed flag on `dev`, ordered before the kernels that set it.
    pub(crate) fn new(op: &str, dev: &Arc<CudaDevice>) -> Self {
        let s = alloc(op, dev, DType::U8, 4);
        zero(op, dev, &s);
        ErrFlag(s)
    }

    /// The flag's device address (a kernel's `int* err` argument).
    pub(crate) fn ptr(&self) -> u64 {
        self.0.ptr()
    }

    /// Registers the flag to be read at this thread's next synchronisation
    /// of the device; a set flag then panics with "`op`: `msg`".
    pub(crate) fn check_later(self, op: &str, msg: String) {
        let dev = self.0.device().clone();
        let waiting = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            p.push((self, format!("{op}: {msg}")));
            p.len()
        });
        if waiting >= MAX_PENDING {
            check(op, dev.synchronize());
        }
    }
}

/// Reads this thread's flags on `dev` (whose stream has just been
/// synchronised) and panics with the message of the first one set.
pub(crate) fn raise_pending(dev: &CudaDevice) -> Result<(), CudaError> {
    let mine: Vec<(ErrFlag, String)> = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let (mine, rest) = p
            .drain(..)
            .partition(|(f, _)| f.0.ordinal() == dev.ordinal());
        *p = rest;
        mine
    });
    if mine.is_empty() {
        return Ok(());
    }
    let mut values = vec![[0u8; 4]; mine.len()];
    let stream = dev.stream().cu_stream();
    for ((flag, _), v) in mine.iter().zip(values.iter_mut()) {
        // SAFETY: 4 bytes from a live 4-byte block into a live 4-byte
        // slot; the stream is synchronised before the slots are read.
        unsafe { cudarc::driver::result::memcpy_dtoh_async(v, flag.ptr(), stream) }
            .map_err(CudaError::driver)?;
    }
    dev.stream().synchronize().map_err(CudaError::driver)?;
    if let Some((_, msg)) = mine
        .iter()
        .zip(&values)
        .find(|(_, v)| **v != [0; 4])
        .map(|(m, _)| m)
    {
        panic!("{msg}");
    }
    Ok(())
}
