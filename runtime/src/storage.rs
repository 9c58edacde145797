//! Owned tensor data. A [`Storage`] is shared (behind `Arc<RwLock<_>>`) by
//! every view of the same data; its [`Layout`] lives in the
//! tensor.

use crate::dtype::{DType, Element, dispatch};
use crate::layout::Layout;
use half::{bf16, f16};

/// Host memory for one tensor's elements, one variant per dtype.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// `float32` data.
    F32(Vec<f32>),
    /// `float64` data.
    F64(Vec<f64>),
    /// `float16` data.
    F16(Vec<f16>),
    /// `bfloat16` data.
    BF16(Vec<bf16>),
    /// `int64` data.
    I64(Vec<i64>),
    /// `int32` data.
    I32(Vec<i32>),
    /// `int16` data.
    I16(Vec<i16>),
    /// `uint8` data.
    U8(Vec<u8>),
    /// `bool` data.
    Bool(Vec<bool>),
}

impl CpuStorage {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::I32(_) => DType::I32,
            CpuStorage::I16(_) => DType::I16,
            CpuStorage::U8(_) => DType::U8,
            CpuStorage::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        dispatch!(storage self, v => v.len())
    }

    /// True when no element is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` zeros of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::F64 => CpuStorage::F64(vec![0.0; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            DType::I64 => CpuStorage::I64(vec![0; n]),
            DType::I32 => CpuStorage::I32(vec![0; n]),
            DType::I16 => CpuStorage::I16(vec![0; n]),
            DType::U8 => CpuStorage::U8(vec![0; n]),
            DType::Bool => CpuStorage::Bool(vec![false; n]),
        }
    }

    /// `n` copies of `value` converted to `dtype`.
    pub fn full(dtype: DType, n: usize, value: f64) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![value as f32; n]),
            DType::F64 => CpuStorage::F64(vec![value; n]),
            DType::F16 => CpuStorage::F16(vec![f16::from_f64(value); n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::from_f64(value); n]),
            DType::I64 => CpuStorage::I64(vec![value as i64; n]),
            DType::I32 => CpuStorage::I32(vec![value as i32; n]),
            DType::I16 => CpuStorage::I16(vec![value as i16; n]),
            DType::U8 => CpuStorage::U8(vec![value as u8; n]),
            DType::Bool => CpuStorage::Bool(vec![value != 0.0; n]),
        }
    }

    /// Copies the elements `layout` selects into a new contiguous storage.
    pub fn gather(&self, layout: &Layout) -> CpuStorage {
        dispatch!(storage self, v => Element::into_storage(gather_vec(v, layout)))
    }

    /// The elements `layout` selects, converted to `dtype`, contiguous.
    pub fn cast(&self, layout: &Layout, dtype: DType) -> CpuStorage {
        if dtype == self.dtype() {
            return self.gather(layout);
        }
        macro_rules! to {
            ($t:ty) => {{
                let out: Vec<$t> = dispatch!(storage self, v => cast_vec(v, layout));
                Element::into_storage(out)
            }};
        }
        match dtype {
            DType::F32 => to!(f32),
            DType::F64 => to!(f64),
            DType::F16 => to!(f16),
            DType::BF16 => to!(bf16),
            DType::I64 => to!(i64),
            DType::I32 => to!(i32),
            DType::I16 => to!(i16),
            DType::U8 => to!(u8),
            DType::Bool => to!(bool),
        }
    }
}

/// Casts between element types: between integer types (and bool) through
/// `i64`, wrapping like PyTorch; otherwise through `f64`.
fn cast_vec<S: Element, T: Element>(src: &[S], layout: &Layout) -> Vec<T> {
    let f = |x: S| {
        if S::INT && T::INT {
            T::from_i64(x.to_i64())
        } else {
            T::from_f64(x.to_f64())
        }
    };
    if let Some(r) = layout.contiguous_range() {
        return src[r].iter().map(|&x| f(x)).collect();
    }
    layout.offsets().map(|o| f(src[o])).collect()
}

/// Copies the elements `layout` selects from `src` into a new row-major
/// vector, with a fast path for contiguous layouts and unit inner strides.
pub fn gather_vec<T: Copy>(src: &[T], layout: &Layout) -> Vec<T> {
    if let Some(r) = layout.contiguous_range() {
        return src[r].to_vec();
    }
    let n = layout.numel();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let rank = layout.rank();
    let (inner, inner_stride) = (layout.shape()[rank - 1], layout.strides()[rank - 1]);
    crate::layout::for_each_row(layout, |base| {
        if inner_stride == 1 {
            out.extend_from_slice(&src[base..base + inner]);
        } else {
            out.extend((0..inner).map(|i| src[base + i * inner_stride]));
        }
    });
    out
}

/// Where a tensor's data lives: host memory or a CUDA device buffer.
#[derive(Debug)]
pub enum Storage {
    /// Host memory.
    Cpu(CpuStorage),
    /// Device memory (feature `cuda`).
    #[cfg(feature = "cuda")]
    Cuda(crate::backend::cuda::CudaStorage),
    /// The test device's memory (see [`Device::Test`](crate::Device::Test)).
    Test(crate::backend::test::TestStorage),
}

impl Storage {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.dtype(),
            Storage::Test(s) => s.dtype(),
        }
    }

    /// The host storage, panicking with `op`'s name for device storage.
    pub fn cpu(&self, op: &str) -> &CpuStorage {
        match self {
            Storage::Cpu(s) => s,
            _ => panic!("{op}: this op needs a CPU tensor; call .to(&Device::Cpu)"),
        }
    }

    /// Mutable host storage, panicking with `op`'s name for device storage.
    pub fn cpu_mut(&mut self, op: &str) -> &mut CpuStorage {
        match self {
            Storage::Cpu(s) => s,
            _ => panic!("{op}: this op needs a CPU tensor; call .to(&Device::Cpu)"),
        }
    }
}
