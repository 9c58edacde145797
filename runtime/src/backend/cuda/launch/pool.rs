//! Launchers of `pool.cu`: max, average and adaptive-average 2-D pooling,
//! forward and backward, a thread per destination element.

use super::{FLOAT, PoolGeom};

kernels! {
    family POOL;

    /// Max pooling: outputs `y` and flat in-plane argmax `idx`.
    struct MaxPoolFwdArgs { planes: i64, x: u64, y: u64, idx: u64, g: PoolGeom }
        in ["max_pool2d_fwd"] for FLOAT;

    /// Max pooling's input gradient from `gy` and the argmax `idx`.
    struct MaxPoolBwdArgs { planes: i64, gy: u64, idx: u64, gx: u64, g: PoolGeom }
        in ["max_pool2d_bwd"] for FLOAT;

    /// Average pooling from `src` to `dst` (forward: input to output;
    /// backward: output gradient to input gradient), with PyTorch's
    /// divisor rules (`divisor_override` 0 for none).
    struct AvgPoolArgs {
        planes: i64, src: u64, dst: u64, g: PoolGeom, count_include_pad: i32,
        divisor_override: i64,
    }
        in ["avg_pool2d_fwd", "avg_pool2d_bwd"] for FLOAT;

    /// Adaptive average pooling from `src` to `dst`, forward or backward.
    struct AdaptivePoolArgs { planes: i64, src: u64, dst: u64, g: PoolGeom }
        in ["adaptive_avg_pool2d_fwd", "adaptive_avg_pool2d_bwd"] for FLOAT;
}
