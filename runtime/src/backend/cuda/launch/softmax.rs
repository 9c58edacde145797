//! Launchers of `softmax.cu`: softmax and log-softmax along one dimension
//! of a contiguous `[outer, len, inner]` tensor, a block per row.

use super::FLOAT;

kernels! {
    family SOFTMAX;

    /// `y = softmax(x)` (or log-softmax when `log` is 1).
    struct SoftmaxFwdArgs { outer: i64, len: i64, inner: i64, x: u64, y: u64, log: i32 }
        in ["softmax_fwd"] for FLOAT;

    /// `gx` from the output `y` and its gradient `gy`.
    struct SoftmaxBwdArgs { outer: i64, len: i64, inner: i64, y: u64, gy: u64, gx: u64, log: i32 }
        in ["softmax_bwd"] for FLOAT;
}
