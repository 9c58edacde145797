//! NCCL for tensors on GPUs (feature `nccl`), through cudarc's bindings
//! loaded at run time.
//!
//! `init_process_group(Backend::Nccl)` first checks that `libnccl.so` can
//! be loaded (cudarc's loader would panic otherwise), then creates one
//! communicator per rank on the GPU `local_rank()`: rank 0 draws the NCCL
//! unique id and broadcasts it over MPI (or keeps it, in a world of one).
//! `all_reduce` and `broadcast` of contiguous CUDA tensors then run in
//! place on the device's stream, ordered with kiln's kernels; the other
//! collectives and CPU tensors take the MPI path.

use super::DistError;
use crate::backend::cuda::CudaDevice;
use crate::storage::Storage;
use crate::{DType, Device, Tensor};
use cudarc::nccl::{result, sys};
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

/// Checks that NCCL can be loaded: `Ok` when `libnccl.so` is on the
/// library path, else [`DistError::LibraryMissing`] saying how to fix it.
pub fn probe_nccl() -> Result<(), DistError> {
    // SAFETY: only tries to open the library, resolving nothing.
    if unsafe { sys::is_culib_present() } {
        Ok(())
    } else {
        Err(DistError::LibraryMissing {
            library: "libnccl.so",
            reason: "no NCCL library on the library path (cudarc looks for `libnccl.so`, not only `libnccl.so.2`): install NCCL (Debian's libnccl-dev, or pip's nvidia-nccl-cu12 and a `libnccl.so` symlink to its `libnccl.so.2`) and add its folder to LD_LIBRARY_PATH".into(),
        })
    }
}

/// One rank's NCCL communicator on its GPU.
pub(crate) struct NcclComm {
    comm: sys::ncclComm_t,
    device: Arc<CudaDevice>,
    rank: usize,
}

// SAFETY: an NCCL communicator may be used from any thread as long as
// calls on it do not overlap; the group keeps it in a Mutex.
unsafe impl Send for NcclComm {}

impl Drop for NcclComm {
    fn drop(&mut self) {
        // SAFETY: the communicator was created by comm_init_rank and is
        // not used after this.
        unsafe {
            let _ = result::comm_destroy(self.comm);
        }
    }
}

fn nccl_error(what: &str, e: result::NcclError) -> DistError {
    DistError::Backend {
        backend: "NCCL",
        reason: format!("{what}: {:?}", e.0),
    }
}

/// Creates this rank's communicator on GPU `local_rank`; `share_id`
/// broadcasts rank 0's unique id (128 bytes) to every rank.
pub(crate) fn create(
    rank: usize,
    world: usize,
    local_rank: usize,
    share_id: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> Result<Mutex<NcclComm>, DistError> {
    let device = CudaDevice::get(local_rank).map_err(|e| DistError::Backend {
        backend: "NCCL",
        reason: format!("GPU {local_rank} for local rank {local_rank}: {e}"),
    })?;
    device.bind().map_err(|e| DistError::Backend {
        backend: "NCCL",
        reason: format!("binding GPU {local_rank}: {e}"),
    })?;
    let mine = if rank == 0 {
        let id = result::get_uniqueid().map_err(|e| nccl_error("ncclGetUniqueId", e))?;
        id.internal.iter().map(|&c| c as u8).collect()
    } else {
        vec![0u8; 128]
    };
    let shared = share_id(mine);
    let mut id = sys::ncclUniqueId { internal: [0; 128] };
    for (d, s) in id.internal.iter_mut().zip(&shared) {
        *d = *s as std::ffi::c_char;
    }
    let mut comm = std::mem::MaybeUninit::uninit();
    // SAFETY: `comm` is written by NCCL on success.
    let comm = unsafe {
        result::comm_init_rank(comm.as_mut_ptr(), world as i32, id, rank as i32)
            .map_err(|e| nccl_error("ncclCommInitRank", e))?;
        comm.assume_init()
    };
    Ok(Mutex::new(NcclComm { comm, device, rank }))
}

/// NCCL's element type for `d`; `None` for int16, which NCCL lacks (such
/// tensors take the host path). Bool travels as uint8, its storage on the
/// GPU (only broadcast reaches here: bool tensors are not reducible).
fn nccl_dtype(d: DType) -> Option<sys::ncclDataType_t> {
    use sys::ncclDataType_t as N;
    Some(match d {
        DType::F32 => N::ncclFloat32,
        DType::F64 => N::ncclFloat64,
        DType::F16 => N::ncclFloat16,
        DType::BF16 => N::ncclBfloat16,
        DType::I64 => N::ncclInt64,
        DType::I32 => N::ncclInt32,
        DType::U8 | DType::Bool => N::ncclUint8,
        DType::I16 => return None,
    })
}

/// Which collective [`NcclComm::run_in_place`] runs.
pub(crate) enum InPlace {
    AllReduce(super::ReduceOp),
    Broadcast(usize),
}

impl NcclComm {
    /// True when `t` can go through NCCL in place: contiguous, on this
    /// communicator's GPU, a dtype NCCL knows.
    pub(crate) fn accepts(&self, t: &Tensor) -> bool {
        t.device() == Device::Cuda(self.device.ordinal())
            && t.is_contiguous()
            && nccl_dtype(t.dtype()).is_some()
    }

    /// Runs `op` on `t`'s device memory, queued on the device's stream.
    pub(crate) fn run_in_place(&self, t: &Tensor, op: InPlace) -> Result<(), DistError> {
        let dtype = nccl_dtype(t.dtype()).expect("checked by accepts");
        let count = t.numel();
        let offset = t.layout().offset();
        let guard = t.write_storage();
        let Storage::Cuda(s) = &*guard else {
            unreachable!("checked by accepts")
        };
        let ptr = s.ptr_at(offset) as *mut c_void;
        let stream = self.device.stream().cu_stream() as sys::cudaStream_t;
        // SAFETY: `ptr` addresses `count` elements of `dtype` on this
        // communicator's device, held by the storage lock until the
        // collective is queued; later kernels on the stream wait for it.
        unsafe {
            match op {
                InPlace::AllReduce(r) => {
                    let red = match r {
                        super::ReduceOp::Sum => sys::ncclRedOp_t::ncclSum,
                        super::ReduceOp::Avg => sys::ncclRedOp_t::ncclAvg,
                        super::ReduceOp::Max => sys::ncclRedOp_t::ncclMax,
                        super::ReduceOp::Min => sys::ncclRedOp_t::ncclMin,
                    };
                    result::all_reduce(ptr, ptr, count, dtype, red, self.comm, stream)
                        .map_err(|e| nccl_error("ncclAllReduce", e))?;
                }
                InPlace::Broadcast(root) => {
                    result::broadcast(ptr, ptr, count, dtype, root as i32, self.comm, stream)
                        .map_err(|e| nccl_error("ncclBroadcast", e))?;
                }
            }
        }
        let _ = self.rank;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nccl_types_match_element_sizes() {
        use sys::ncclDataType_t as N;
        let size = |t: N| match t {
            N::ncclFloat64 | N::ncclInt64 | N::ncclUint64 => 8,
            N::ncclFloat32 | N::ncclInt32 | N::ncclUint32 => 4,
            N::ncclFloat16 | N::ncclBfloat16 => 2,
            _ => 1,
        };
        for d in DType::ALL {
            match nccl_dtype(d) {
                Some(t) => assert_eq!(size(t), d.size_in_bytes(), "{d}"),
                None => assert_eq!(d, DType::I16),
            }
        }
    }
}
