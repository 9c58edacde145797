//! `LinearLR`, `CosineAnnealingWarmRestarts` and the tutorials' hand-written
//! warm-up + cosine rule.

use super::{Core, LrScheduler, Optimizer};
use super::{Field, Problems, field};
use crate::io::Dict;
use crate::optim::LoadStateError;
use std::f64::consts::PI;

/// Writes `lrs` into the optimizer's groups and records them as the last
/// rates.
pub(super) fn write(core: &mut Core, lrs: Vec<f64>) {
    for (c, &lr) in core.cells.iter().zip(&lrs) {
        c.set(lr);
    }
    core.last_lr = lrs;
}

/// Scales the rate by a factor moving linearly from `start_factor` to
/// `end_factor` over `total_iters` epochs, then keeps it, like `LinearLR`.
/// Computed with PyTorch's recursive form, so it chains with other
/// schedulers as PyTorch's does.
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::{SGD, lr_scheduler::{LinearLR, LrScheduler}};
/// let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 0.1);
/// let mut sched = LinearLR::new(&opt, 0.5, 1.0, 2);
/// let mut lrs = vec![sched.get_last_lr()[0]];
/// for _ in 0..3 {
///     sched.step();
///     lrs.push(sched.get_last_lr()[0]);
/// }
/// assert!((lrs[0] - 0.05).abs() < 1e-12 && (lrs[1] - 0.075).abs() < 1e-12);
/// assert!((lrs[2] - 0.1).abs() < 1e-12 && (lrs[3] - 0.1).abs() < 1e-12);
/// ```
pub struct LinearLR {
    pub(super) core: Core,
    pub(super) start_factor: f64,
    pub(super) end_factor: f64,
    pub(super) total_iters: i64,
}

impl LinearLR {
    /// `start_factor` in (0, 1], `end_factor` in [0, 1] (PyTorch's defaults
    /// are 1/3, 1 and 5).
    pub fn new(
        opt: &(impl Optimizer + ?Sized),
        start_factor: f64,
        end_factor: f64,
        total_iters: usize,
    ) -> LinearLR {
        assert!(
            start_factor > 0.0 && start_factor <= 1.0,
            "LinearLR: start_factor ({start_factor}) must be in (0, 1]"
        );
        assert!(
            (0.0..=1.0).contains(&end_factor),
            "LinearLR: end_factor ({end_factor}) must be in [0, 1]"
        );
        let mut s = LinearLR {
            core: Core::new(opt),
            start_factor,
            end_factor,
            total_iters: total_iters as i64,
        };
        s.step();
        s
    }
}

impl LrScheduler for LinearLR {
    core_methods!(
        LinearLR,
        [
            "start_factor" => start_factor: f64,
            "end_factor" => end_factor: f64,
            "total_iters" => total_iters: i64
        ]
    );
    fn step(&mut self) {
        let e = self.core.advance();
        let (sf, ef, n) = (self.start_factor, self.end_factor, self.total_iters);
        let lrs = self
            .core
            .cells
            .iter()
            .map(|c| {
                let lr = c.get();
                if e == 0 {
                    lr * sf
                } else if e > n {
                    lr
                } else {
                    lr * (1.0 + (ef - sf) / (n as f64 * sf + (e - 1) as f64 * (ef - sf)))
                }
            })
            .collect();
        write(&mut self.core, lrs);
    }
}

/// Cosine annealing with warm restarts (SGDR), like
/// `CosineAnnealingWarmRestarts`: `lr = eta_min + (base − eta_min)(1 +
/// cos(π · T_cur / T_i)) / 2`, where `T_cur` counts epochs since the last
/// restart and the period `T_i` starts at `T_0` and is multiplied by
/// `T_mult` at every restart.
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::{SGD, lr_scheduler::{CosineAnnealingWarmRestarts, LrScheduler}};
/// let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 1.0);
/// let mut sched = CosineAnnealingWarmRestarts::new(&opt, 2, 1, 0.0);
/// let mut lrs = vec![sched.get_last_lr()[0]];
/// for _ in 0..3 {
///     sched.step();
///     lrs.push(sched.get_last_lr()[0]);
/// }
/// assert!((lrs[1] - 0.5).abs() < 1e-12);
/// assert_eq!((lrs[0], lrs[2]), (1.0, 1.0)); // restarted at epoch 2
/// ```
pub struct CosineAnnealingWarmRestarts {
    pub(super) core: Core,
    pub(super) t_0: i64,
    pub(super) t_i: i64,
    pub(super) t_mult: i64,
    pub(super) t_cur: i64,
    pub(super) eta_min: f64,
}

impl CosineAnnealingWarmRestarts {
    /// First period `t_0` epochs (> 0), each next one `t_mult` (≥ 1) times
    /// longer, annealing down to `eta_min`.
    pub fn new(
        opt: &(impl Optimizer + ?Sized),
        t_0: usize,
        t_mult: usize,
        eta_min: f64,
    ) -> CosineAnnealingWarmRestarts {
        assert!(
            t_0 > 0,
            "CosineAnnealingWarmRestarts: T_0 must be positive, got {t_0}"
        );
        assert!(
            t_mult >= 1,
            "CosineAnnealingWarmRestarts: T_mult must be at least 1, got {t_mult}"
        );
        let mut s = CosineAnnealingWarmRestarts {
            core: Core::new(opt),
            t_0: t_0 as i64,
            t_i: t_0 as i64,
            t_mult: t_mult as i64,
            t_cur: -1,
            eta_min,
        };
        s.step();
        s
    }

    /// Epochs since the last restart.
    pub fn t_cur(&self) -> i64 {
        self.t_cur
    }

    /// The length of the current period.
    pub fn t_i(&self) -> i64 {
        self.t_i
    }

    pub(super) fn rates(&self) -> Vec<f64> {
        let eta = self.eta_min;
        let cos = (PI * self.t_cur as f64 / self.t_i as f64).cos();
        self.core
            .base_lrs
            .iter()
            .map(|&b| eta + (b - eta) * (1.0 + cos) / 2.0)
            .collect()
    }
}

impl LrScheduler for CosineAnnealingWarmRestarts {
    core_methods!(
        CosineAnnealingWarmRestarts,
        [
            "T_0" => t_0: i64,
            "T_i" => t_i: i64,
            "T_mult" => t_mult: i64,
            "T_cur" => t_cur: i64,
            "eta_min" => eta_min: f64
        ]
    );
    fn step(&mut self) {
        if self.core.last_epoch < 0 {
            self.t_i = self.t_0;
            self.t_cur = 0;
        } else {
            self.t_cur += 1;
            if self.t_cur >= self.t_i {
                self.t_cur %= self.t_i;
                self.t_i *= self.t_mult;
            }
        }
        self.core.advance();
        let lrs = self.rates();
        write(&mut self.core, lrs);
    }
}

/// The warm-up + cosine factor that tutorials write by hand and feed to
/// `LambdaLR` (multiply it by the peak rate):
///
/// ```text
/// i < warmup:   (i + 1) / warmup
/// otherwise:    0.5 · (1 + cos(π · (i − warmup) / (total − warmup)))
/// ```
///
/// Unlike [`CosineDecayWarmup`](super::CosineDecayWarmup), which holds the
/// rate at 0 from `total` on, this keeps following the cosine past `total`,
/// so the rate rises again (back to the peak at `2·total − warmup`), exactly
/// as the hand-written rule does. Up to `total` the two agree.
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::{SGD, lr_scheduler::{LambdaLR, LrScheduler, tutorial_warmup_cosine}};
/// let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 0.1);
/// let mut sched = LambdaLR::new(&opt, |i| tutorial_warmup_cosine(i, 2, 4));
/// let mut lrs = vec![sched.get_last_lr()[0]];
/// for _ in 0..6 {
///     sched.step();
///     lrs.push(sched.get_last_lr()[0]);
/// }
/// assert!((lrs[0] - 0.05).abs() < 1e-12 && (lrs[1] - 0.1).abs() < 1e-12);
/// assert!(lrs[4].abs() < 1e-12); // 0 at `total`
/// assert!((lrs[6] - 0.1).abs() < 1e-12); // and back up past it
/// ```
pub fn tutorial_warmup_cosine(i: i64, warmup: i64, total: i64) -> f64 {
    assert!(
        warmup >= 0 && warmup < total,
        "tutorial_warmup_cosine: need 0 ≤ warmup ({warmup}) < total ({total})"
    );
    if i < warmup {
        (i + 1) as f64 / warmup as f64
    } else {
        0.5 * (1.0 + (PI * (i - warmup) as f64 / (total - warmup) as f64).cos())
    }
}
