//! Kernel launch helpers: the [`Strided`] view struct shared with the CUDA
//! prelude, geometry structs, launch configurations and an argument packer
//! for `cuLaunchKernel`.

use super::device::CudaDevice;
use super::{CudaError, check, sfx};
use crate::{DType, Layout};
use kiln_kernels::cuda::KernelFamily;

/// The most dimensions a strided view passed to a kernel may have (after
/// merging dimensions that are contiguous with each other).
pub const MAX_DIMS: usize = 8;

/// A strided view as kernels see it (`struct Strided` in the prelude).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Strided {
    shape: [i64; MAX_DIMS],
    strides: [i64; MAX_DIMS],
    offset: i64,
    rank: i64,
}

impl Strided {
    /// The view of `layout`, with size-1 dimensions dropped and adjacent
    /// dimensions merged where the strides allow. Panics naming `op` when
    /// more than [`MAX_DIMS`] dimensions remain.
    pub(crate) fn new(op: &str, layout: &Layout) -> Strided {
        Self::from_parts(op, layout.shape(), layout.strides(), layout.offset())
    }

    pub(crate) fn from_parts(
        op: &str,
        shape: &[usize],
        strides: &[usize],
        offset: usize,
    ) -> Strided {
        let mut dims: Vec<(usize, usize)> = Vec::with_capacity(shape.len());
        for (&d, &s) in shape.iter().zip(strides) {
            if d == 1 {
                continue;
            }
            match dims.last_mut() {
                Some(last) if last.1 == s * d => *last = (last.0 * d, s),
                _ => dims.push((d, s)),
            }
        }
        if shape.contains(&0) {
            dims = vec![(0, 1)];
        }
        assert!(
            dims.len() <= MAX_DIMS,
            "{op}: CUDA kernels support views of at most {MAX_DIMS} non-mergeable dimensions, got shape {shape:?} with strides {strides:?}"
        );
        let mut v = Strided {
            shape: [1; MAX_DIMS],
            strides: [0; MAX_DIMS],
            offset: offset as i64,
            rank: dims.len() as i64,
        };
        for (i, (d, s)) in dims.into_iter().enumerate() {
            v.shape[i] = d as i64;
            v.strides[i] = s as i64;
        }
        v
    }
}

/// Geometry of a 2-D convolution (`struct Conv2dGeom` in conv.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Conv2dGeom {
    pub c: i64,
    pub h: i64,
    pub w: i64,
    pub kh: i64,
    pub kw: i64,
    pub sh: i64,
    pub sw: i64,
    pub ph: i64,
    pub pw: i64,
    pub dh: i64,
    pub dw: i64,
    pub oh: i64,
    pub ow: i64,
}

/// Geometry of a 2-D pooling (`struct PoolGeom` in pool.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PoolGeom {
    pub h: i64,
    pub w: i64,
    pub oh: i64,
    pub ow: i64,
    pub kh: i64,
    pub kw: i64,
    pub sh: i64,
    pub sw: i64,
    pub ph: i64,
    pub pw: i64,
    pub dh: i64,
    pub dw: i64,
}

/// Kernel arguments, each copied into its own 8-byte-aligned slot so that
/// `cuLaunchKernel` can read them by pointer.
#[derive(Default)]
pub(crate) struct Args {
    slots: Vec<Box<[u64]>>,
}

impl Args {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends a plain-data argument (integers, floats, device pointers as
    /// `u64`, `#[repr(C)]` structs of those).
    pub(crate) fn push<T: Copy + 'static>(&mut self, v: T) -> &mut Self {
        let n = std::mem::size_of::<T>().div_ceil(8).max(1);
        let mut slot = vec![0u64; n].into_boxed_slice();
        // SAFETY: the slot has at least size_of::<T>() bytes, is 8-aligned,
        // and T is plain data.
        unsafe {
            std::ptr::copy_nonoverlapping(
                &v as *const T as *const u8,
                slot.as_mut_ptr() as *mut u8,
                std::mem::size_of::<T>(),
            )
        };
        self.slots.push(slot);
        self
    }

    /// Appends an `i64` (sizes and counts).
    pub(crate) fn i(&mut self, v: usize) -> &mut Self {
        self.push(v as i64)
    }
}

/// Threads per block of elementwise kernels.
pub(crate) const BLOCK: u32 = 256;

/// Grid size for a grid-stride loop over `n` elements.
pub(crate) fn grid_for(n: usize) -> u32 {
    n.div_ceil(BLOCK as usize).clamp(1, 1 << 20) as u32
}

/// Threads per block for a block-per-row kernel over rows of `len`
/// elements: a power of two from 32 to 256.
pub(crate) fn block_for_row(len: usize) -> u32 {
    (len.next_power_of_two()).clamp(32, 256) as u32
}

/// Launches kernel `name` of `family` on the device's stream.
pub(crate) fn launch(
    dev: &CudaDevice,
    family: &KernelFamily,
    name: &str,
    grid: u32,
    block: u32,
    args: &mut Args,
) -> Result<(), CudaError> {
    let f = dev.function(family, name)?;
    let mut params: Vec<*mut std::ffi::c_void> = args
        .slots
        .iter_mut()
        .map(|s| s.as_mut_ptr() as *mut std::ffi::c_void)
        .collect();
    // SAFETY: the kernel's parameter list matches `args` by construction of
    // each caller (kept next to the kernel's CUDA signature); the pointers
    // are valid device addresses of live buffers ordered on this stream.
    unsafe {
        cudarc::driver::result::launch_kernel(
            f.cu_function(),
            (grid.max(1), 1, 1),
            (block, 1, 1),
            0,
            dev.stream().cu_stream(),
            &mut params,
        )
    }
    .map_err(|e| CudaError::new(format!("launching {name} failed: {e:?}")))
}

/// Launches an elementwise kernel over `n` elements (nothing when `n == 0`).
pub(crate) fn launch_n(
    dev: &CudaDevice,
    family: &KernelFamily,
    name: &str,
    n: usize,
    args: &mut Args,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    launch(dev, family, name, grid_for(n), BLOCK, args)
}

/// The kernels of one family for one dtype (`{name}_{dtype}`), launched
/// on behalf of op `op`, whose name a launch failure panics with.
pub(crate) struct Kernels<'a> {
    op: &'a str,
    dev: &'a CudaDevice,
    family: &'static KernelFamily,
    dtype: DType,
}

/// [`Kernels`] of `family` for `dtype` on `dev`.
pub(crate) fn kernels<'a>(
    op: &'a str,
    dev: &'a CudaDevice,
    family: &'static KernelFamily,
    dtype: DType,
) -> Kernels<'a> {
    Kernels {
        op,
        dev,
        family,
        dtype,
    }
}

impl Kernels<'_> {
    /// The full name of kernel `name` for this dtype.
    fn name(&self, name: &str) -> String {
        format!("{name}_{}", sfx(self.dtype))
    }

    /// Launches elementwise kernel `name` over `n` elements.
    pub(crate) fn each(&self, name: &str, n: usize, args: &mut Args) {
        let f = self.name(name);
        check(self.op, launch_n(self.dev, self.family, &f, n, args));
    }

    /// Launches block-per-row kernel `name` over `rows` rows of `len`
    /// elements.
    pub(crate) fn rows(&self, name: &str, rows: usize, len: usize, args: &mut Args) {
        if rows == 0 {
            return;
        }
        let (f, grid) = (self.name(name), rows.min(65535) as u32);
        let r = launch(self.dev, self.family, &f, grid, block_for_row(len), args);
        check(self.op, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_merges_contiguous_dims() {
        let s = Strided::new("t", &Layout::contiguous(&[2, 3, 4]));
        assert_eq!((s.rank, s.shape[0], s.strides[0]), (1, 24, 1));
        let t = Strided::new("t", &Layout::contiguous(&[2, 3, 4]).transpose(0, 2));
        assert_eq!(t.rank, 3);
        let b = Strided::new(
            "t",
            &Layout::contiguous(&[3, 1])
                .broadcast_to(&[2, 3, 4])
                .unwrap(),
        );
        assert_eq!(&b.shape[..3], &[2, 3, 4]);
        assert_eq!(&b.strides[..3], &[0, 1, 0]);
        assert_eq!(std::mem::size_of::<Strided>(), 144);
    }
}
