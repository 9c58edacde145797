//! [`CudaStorage`]: a tensor's elements in device memory.

use super::CudaError;
use super::device::CudaDevice;
use crate::DType;
use std::sync::Arc;

/// A device block from the caching allocator; dropping it returns the
/// block to the device's free lists.
pub(crate) struct DeviceBuffer {
    ptr: u64,
    size: usize,
    dev: Arc<CudaDevice>,
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.size > 0 {
            self.dev.alloc.free(self.ptr, self.size);
        }
    }
}

/// Device memory for one tensor's elements (contiguous, `len` elements of
/// `dtype`; views are expressed by the tensor's layout, as on the CPU).
pub struct CudaStorage {
    buf: DeviceBuffer,
    dtype: DType,
    len: usize,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaStorage {{ device: cuda:{}, dtype: {}, len: {} }}",
            self.ordinal(),
            self.dtype,
            self.len
        )
    }
}

impl CudaStorage {
    /// Uninitialised storage for `len` elements of `dtype` on `dev`.
    pub(crate) fn alloc(
        dev: &Arc<CudaDevice>,
        dtype: DType,
        len: usize,
    ) -> Result<Self, CudaError> {
        let bytes = len * dtype.size_in_bytes();
        let (ptr, size) = if bytes == 0 {
            (0, 0)
        } else {
            dev.alloc.alloc(bytes)?
        };
        Ok(CudaStorage {
            buf: DeviceBuffer {
                ptr,
                size,
                dev: dev.clone(),
            },
            dtype,
            len,
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The ordinal of the device holding the data.
    pub fn ordinal(&self) -> usize {
        self.buf.dev.ordinal()
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no element is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device address of element 0.
    pub(crate) fn ptr(&self) -> u64 {
        self.buf.ptr
    }

    /// The device address of element `offset`.
    pub(crate) fn ptr_at(&self, offset: usize) -> u64 {
        self.buf.ptr + (offset * self.dtype.size_in_bytes()) as u64
    }

    /// The device holding the data.
    pub(crate) fn device(&self) -> &Arc<CudaDevice> {
        &self.buf.dev
    }
}
