//! Element types a tensor can hold, and the [`Element`] trait that ties a
//! Rust scalar type to its [`DType`] and its storage variant.

use crate::storage::CpuStorage;
use half::{bf16, f16};
use std::fmt;

/// The element type of a tensor, named like PyTorch's `torch.dtype`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float (`torch.float32`), the default.
    F32,
    /// 64-bit IEEE float (`torch.float64`).
    F64,
    /// 16-bit IEEE half float (`torch.float16`).
    F16,
    /// 16-bit brain float (`torch.bfloat16`).
    BF16,
    /// 64-bit signed integer (`torch.int64`), used for labels and indices.
    I64,
    /// 32-bit signed integer (`torch.int32`).
    I32,
    /// 16-bit signed integer (`torch.int16`).
    I16,
    /// 8-bit unsigned integer (`torch.uint8`), used for raw image bytes.
    U8,
    /// Boolean (`torch.bool`), produced by comparisons.
    Bool,
}

impl DType {
    /// Every dtype: the floating point ones, the integers, then bool.
    pub const ALL: [DType; 9] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::U8,
        DType::Bool,
    ];

    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::U8 | DType::Bool => 1,
        }
    }

    /// True for the floating-point types (the ones autograd works on).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// PyTorch's name for the type, as printed in `torch.float32`.
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.torch_name())
    }
}

/// The one dtype dispatch: runs `$body` with `$T` aliased to the Rust
/// type of a runtime [`DType`] (or, over a [`CpuStorage`], with `$v` bound
/// to its typed vector). The arm names the dtypes served; the others panic
/// naming `$op`:
///
/// - `dispatch!(all dtype, T => body)`: every dtype;
/// - `dispatch!(numeric op, dtype, T => body)`: every dtype with `+` (not bool);
/// - `dispatch!(real op, dtype, T => body)`: float32 and float64, the
///   types the fused CPU kernels compute in;
/// - `dispatch!(storage s, v => body)`: every variant of a `CpuStorage`
///   (or a reference to one).
///
/// The table of dtypes and their Rust types is written once, in the
/// `@types` arm.
macro_rules! dispatch {
    (all $dtype:expr, $T:ident => $body:expr) => {
        $crate::dtype::dispatch!(@types $dtype, $T => $body; all)
    };
    (numeric $op:expr, $dtype:expr, $T:ident => $body:expr) => {
        $crate::dtype::dispatch!(@types $dtype, $T => $body; numeric $op)
    };
    (real $op:expr, $dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            d => panic!("{}: expected a floating-point tensor, but got {}", $op, d),
        }
    };
    (storage $s:expr, $v:ident => $body:expr) => {
        $crate::dtype::dispatch!(@types $s, $v => $body; storage)
    };
    (@types $($x:tt)*) => {
        $crate::dtype::dispatch!(@arms [
            F32 f32, F64 f64, F16 half::f16, BF16 half::bf16, I64 i64, I32 i32, I16 i16, U8 u8
        ] $($x)*)
    };
    (@arms [$($d:ident $t:ty),*] $dtype:expr, $T:ident => $body:expr; all) => {
        match $dtype {
            $($crate::DType::$d => {
                type $T = $t;
                $body
            })*
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
        }
    };
    (@arms [$($d:ident $t:ty),*] $dtype:expr, $T:ident => $body:expr; numeric $op:expr) => {
        match $dtype {
            $($crate::DType::$d => {
                type $T = $t;
                $body
            })*
            $crate::DType::Bool => panic!("{}: not supported for bool tensors", $op),
        }
    };
    (@arms [$($d:ident $t:ty),*] $s:expr, $v:ident => $body:expr; storage) => {
        match $s {
            $($crate::storage::CpuStorage::$d($v) => $body,)*
            $crate::storage::CpuStorage::Bool($v) => $body,
        }
    };
}
pub(crate) use dispatch;

/// A Rust scalar type that a tensor can store.
pub trait Element: Copy + Send + Sync + fmt::Debug + PartialOrd + Default + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Converts to `f64` (booleans become 0 or 1).
    fn to_f64(self) -> f64;
    /// Converts from `f64`, rounding or truncating like a PyTorch cast.
    fn from_f64(v: f64) -> Self;
    /// True for the integer types and bool, which cast among themselves
    /// through [`Element::to_i64`] and [`Element::from_i64`].
    const INT: bool = false;
    /// Converts to `i64` (exact for the integer types and bool).
    fn to_i64(self) -> i64 {
        self.to_f64() as i64
    }
    /// Converts from `i64`; integer types wrap like a PyTorch integer cast.
    fn from_i64(v: i64) -> Self {
        Self::from_f64(v as f64)
    }
    /// Borrows the storage's data if it holds this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    /// Mutably borrows the storage's data if it holds this type.
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    /// Wraps a vector as storage.
    fn into_storage(v: Vec<Self>) -> CpuStorage;
}

macro_rules! element {
    // An integer type: `as` casts (from floats: truncating, saturating;
    // between integers: wrapping, like C and PyTorch).
    (int $t:ty, $variant:ident) => {
        element!($t, $variant, |x: $t| x as f64, |v: f64| v as $t, {
            const INT: bool = true;
            #[inline]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        });
    };
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        element!($t, $variant, $to, $from, {});
    };
    ($t:ty, $variant:ident, $to:expr, $from:expr, {$($int:tt)*}) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            $($int)*
            #[inline]
            fn to_f64(self) -> f64 {
                #[allow(clippy::redundant_closure_call)]
                ($to)(self)
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                #[allow(clippy::redundant_closure_call)]
                ($from)(v)
            }
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn into_storage(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
        }
    };
}

element!(f32, F32, |x: f32| x as f64, |v: f64| v as f32);
element!(f64, F64, |x: f64| x, |v: f64| v);
element!(f16, F16, |x: f16| x.to_f64(), f16::from_f64);
element!(bf16, BF16, |x: bf16| x.to_f64(), bf16::from_f64);
element!(int i64, I64);
element!(int i32, I32);
element!(int i16, I16);
element!(int u8, U8);
element!(
    bool,
    Bool,
    |x: bool| if x { 1.0 } else { 0.0 },
    |v: f64| v != 0.0,
    {
        const INT: bool = true;
        fn from_i64(v: i64) -> Self {
            v != 0
        }
    }
);
