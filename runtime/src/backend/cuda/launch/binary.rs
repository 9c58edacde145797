//! Launchers of `binary.cu`: broadcast binary ops, in-place binary ops,
//! comparisons and logical ops.

use super::{ALL, FLOAT, INT, Strided};
use crate::DType;

/// The dtypes with in-place integer kernels (the integers and bool).
const INT_OR_BOOL: &[DType] = &[DType::I64, DType::I32, DType::I16, DType::U8, DType::Bool];

kernels! {
    family BINARY;

    /// `out[i] = f(a[view(i)], b[view(i)])` of two operands broadcast to
    /// the output's shape; comparisons and logical ops write bool.
    struct BinaryArgs { n: i64, a: u64, la: Strided, b: u64, lb: Strided, out: u64 }
        in [
            "binary_add", "binary_sub", "binary_mul", "binary_div", "binary_maximum",
            "binary_minimum", "binary_pow", "binary_atan2",
        ] for FLOAT,
        in ["binary_add", "binary_sub", "binary_mul", "binary_maximum", "binary_minimum"]
            for INT,
        in ["cmp_eq", "cmp_ne", "cmp_lt", "cmp_le", "cmp_gt", "cmp_ge"] for ALL,
        in ["logical_and", "logical_or", "logical_xor"] for ALL;

    /// `dst[view] = f(dst[view], src[view])`.
    struct InplaceArgs { n: i64, dst: u64, ld: Strided, src: u64, ls: Strided }
        in ["inplace_add", "inplace_sub", "inplace_mul", "inplace_div"] for FLOAT,
        in ["inplace_add", "inplace_sub", "inplace_mul", "inplace_div"] for INT_OR_BOOL;
}
