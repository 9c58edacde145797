//! Launchers of `index.cu`: index_select and gather, their atomic-add
//! backwards, and one-hot. `err` flags an index out of range.

use super::{ALL, FLOAT};
use crate::DType;

kernels! {
    family INDEX;

    /// `out[o, j, i] = x[o, idx[..], i]` over `[outer, k, inner]` outputs
    /// from an `[outer, dim, inner]` input.
    struct TakeArgs {
        outer: i64, dim: i64, inner: i64, x: u64, idx: u64, k: i64, out: u64, err: u64,
    }
        in ["index_select", "gather"] for ALL;

    /// `dst[o, idx[..], i] += src[o, j, i]` (atomic adds).
    struct AddAtArgs {
        outer: i64, dim: i64, inner: i64, dst: u64, idx: u64, k: i64, src: u64, err: u64,
    }
        in ["index_add", "scatter_add"] for FLOAT;

    /// `out[r, c] = (idx[r] == c)` as int64.
    struct OneHotArgs { n: i64, classes: i64, idx: u64, out: u64, err: u64 }
        in ["one_hot"] for &[DType::I64];
}
