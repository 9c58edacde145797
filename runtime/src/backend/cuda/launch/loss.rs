//! Launchers of `loss.cu`: fused cross-entropy (a block per sample) and
//! NLL (a thread per sample or score), forward and backward. `weight` is
//! null when absent; `err` flags a target outside `0..c`.

use super::FLOAT;

kernels! {
    family LOSS;

    /// Per-sample losses and weights of `[n, c]` logits with label
    /// smoothing `eps`.
    struct CrossEntropyFwdArgs {
        n: i64, c: i64, x: u64, target: u64, weight: u64, ignore: i64, eps: f64, loss: u64,
        wsum: u64, err: u64,
    }
        in ["cross_entropy_fwd"] for FLOAT;

    /// The logits' gradient from the per-sample loss gradients `gloss`.
    struct CrossEntropyBwdArgs {
        n: i64, c: i64, x: u64, target: u64, weight: u64, ignore: i64, eps: f64, gloss: u64,
        gx: u64,
    }
        in ["cross_entropy_bwd"] for FLOAT;

    /// Per-sample losses and weights of `[n, c]` log-probabilities.
    struct NllFwdArgs {
        n: i64, c: i64, logp: u64, target: u64, weight: u64, ignore: i64, loss: u64, wsum: u64,
        err: u64,
    }
        in ["nll_fwd"] for FLOAT;

    /// The log-probabilities' gradient from `gloss`.
    struct NllBwdArgs {
        n: i64, c: i64, target: u64, weight: u64, ignore: i64, gloss: u64, glogp: u64,
    }
        in ["nll_bwd"] for FLOAT;
}
