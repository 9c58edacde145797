//! Launchers of `batchnorm.cu`: batch statistics, normalisation and the
//! backward over `[n, c, s]` inputs. Statistics are in the accumulation
//! type (f32, or f64 for f64 tensors); optional buffers are null.

use super::FLOAT;

kernels! {
    family BATCHNORM;

    /// A block per channel: mean and 1/sqrt(var + eps), updating the
    /// running buffers with `momentum` when given.
    struct BnStatsArgs {
        n: i64, c: i64, s: i64, x: u64, mean: u64, invstd: u64, running_mean: u64,
        running_var: u64, momentum: f64, eps: f64,
    }
        in ["bn_stats"] for FLOAT;

    /// Eval mode: the statistics from the running buffers.
    struct BnRunningStatsArgs {
        c: i64, running_mean: u64, running_var: u64, eps: f64, mean: u64, invstd: u64,
    }
        in ["bn_running_stats"] for FLOAT;

    /// `y = (x - mean) * invstd * weight + bias`.
    struct BnApplyArgs {
        total: i64, c: i64, s: i64, x: u64, mean: u64, invstd: u64, weight: u64, bias: u64,
        y: u64,
    }
        in ["bn_apply"] for FLOAT;

    /// A block per channel: `sum(dy)` and `sum(dy * xhat)`.
    struct BnBwdReduceArgs {
        n: i64, c: i64, s: i64, x: u64, gy: u64, mean: u64, invstd: u64, sum_dy: u64,
        sum_dy_xhat: u64,
    }
        in ["bn_bwd_reduce"] for FLOAT;

    /// The input gradient (batch statistics when `training` is 1).
    struct BnBwdApplyArgs {
        total: i64, c: i64, s: i64, x: u64, gy: u64, mean: u64, invstd: u64, weight: u64,
        sum_dy: u64, sum_dy_xhat: u64, training: i32, gx: u64,
    }
        in ["bn_bwd_apply"] for FLOAT;

    /// Accumulation-type values back to the tensor's dtype.
    struct BnAccToArgs { n: i64, acc: u64, out: u64 }
        in ["bn_acc_to"] for FLOAT;
}
