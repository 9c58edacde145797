//! The plain-data types kernels take by value, laid out as the CUDA
//! sources declare them ([`Strided`] in the prelude, the geometry structs
//! in conv.cu and pool.cu), and the argument packer for `cuLaunchKernel`.

use crate::Layout;

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

/// Declares a `#[repr(C)]` struct of `i64` fields in the order a kernel
/// source declares it.
macro_rules! geometry {
    ($(#[$doc:meta])* $name:ident { $($field:ident),* $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default)]
        pub(crate) struct $name {
            $(pub $field: i64,)*
        }
    };
}

geometry! {
    /// Geometry of a 2-D convolution (`struct Conv2dGeom` in conv.cu):
    /// channels, input size, kernel, stride, padding, dilation, output size.
    Conv2dGeom { c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow }
}

geometry! {
    /// Geometry of a 2-D pooling (`struct PoolGeom` in pool.cu): input
    /// size, output size, kernel, stride, padding, dilation.
    PoolGeom { h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw }
}

/// Kernel arguments, each copied into its own 8-byte-aligned slot so that
/// `cuLaunchKernel` can read them by pointer.
#[derive(Default)]
pub(super) struct Args {
    slots: Vec<Box<[u64]>>,
}

impl Args {
    /// No arguments yet.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Appends a plain-data argument (integers, floats, device pointers as
    /// `u64`, `#[repr(C)]` structs of those).
    pub(super) fn push<T: Copy + 'static>(&mut self, v: T) -> &mut Self {
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

    /// Pointers to the slots, in order: `cuLaunchKernel`'s parameter array.
    pub(super) fn pointers(&mut self) -> Vec<*mut std::ffi::c_void> {
        self.slots
            .iter_mut()
            .map(|s| s.as_mut_ptr() as *mut std::ffi::c_void)
            .collect()
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
