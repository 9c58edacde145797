//! Launchers of `optim.cu`: fused in-place optimizer updates, a thread
//! per parameter element. Optional state buffers are null; flags are 0/1.

use super::FLOAT;

kernels! {
    family OPTIM;

    /// SGD with momentum buffer `buf`, dampening, weight decay, Nesterov.
    struct SgdArgs {
        n: i64, p: u64, g: u64, buf: u64, lr: f64, momentum: f64, dampening: f64,
        weight_decay: f64, nesterov: i32, maximize: i32, first_step: i32,
    }
        in ["sgd"] for FLOAT;

    /// Adam / AdamW with bias corrections `bc1`, `bc2` computed by the host.
    struct AdamArgs {
        n: i64, p: u64, g: u64, m: u64, v: u64, vmax: u64, lr: f64, beta1: f64, beta2: f64,
        eps: f64, weight_decay: f64, decoupled: i32, maximize: i32, bc1: f64, bc2: f64,
    }
        in ["adam"] for FLOAT;

    /// RMSprop with optional momentum buffer and centred average.
    struct RmspropArgs {
        n: i64, p: u64, g: u64, sq: u64, buf: u64, gavg: u64, lr: f64, alpha: f64, eps: f64,
        weight_decay: f64, momentum: f64, maximize: i32,
    }
        in ["rmsprop"] for FLOAT;
}
