//! `ReduceLROnPlateau`: lower the rate when a metric stops improving.

use super::Optimizer;
use crate::optim::SharedLr;

/// Whether a lower or a higher metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss; the default).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` measures a significant improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Better than `best · (1 ∓ threshold)` (the default).
    Rel,
    /// Better than `best ∓ threshold`.
    Abs,
}

/// Multiplies the rates by `factor` when the metric passed to
/// [`step`](Self::step) has not improved for more than `patience` epochs,
/// like `ReduceLROnPlateau`. Its `step` takes the metric, so it is not an
/// [`LrScheduler`](super::LrScheduler) (PyTorch's `SequentialLR` and
/// `ChainedScheduler` refuse it too).
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::{SGD, lr_scheduler::ReduceLROnPlateau};
/// let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 0.1);
/// let mut sched = ReduceLROnPlateau::new(&opt).factor(0.5).patience(1);
/// for val_loss in [1.0, 0.8, 0.8, 0.8] {
///     sched.step(val_loss);
/// }
/// assert_eq!(sched.get_last_lr(), [0.05]);
/// ```
pub struct ReduceLROnPlateau {
    cells: Vec<SharedLr>,
    last_lr: Vec<f64>,
    /// Epochs seen (0 at construction).
    pub(super) last_epoch: i64,
    mode: PlateauMode,
    factor: f64,
    patience: usize,
    threshold: f64,
    threshold_mode: ThresholdMode,
    cooldown: usize,
    min_lrs: Vec<f64>,
    eps: f64,
    /// The best metric seen.
    pub(super) best: f64,
    /// Epochs of cooldown left.
    pub(super) cooldown_counter: usize,
    /// Epochs without improvement.
    pub(super) num_bad_epochs: usize,
}

impl ReduceLROnPlateau {
    /// PyTorch's defaults: mode min, factor 0.1, patience 10, threshold
    /// 1e-4 (relative), cooldown 0, min_lr 0, eps 1e-8.
    pub fn new(opt: &(impl Optimizer + ?Sized)) -> ReduceLROnPlateau {
        let cells = opt.lr_cells();
        let n = cells.len();
        ReduceLROnPlateau {
            last_lr: cells.iter().map(SharedLr::get).collect(),
            cells,
            last_epoch: 0,
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lrs: vec![0.0; n],
            eps: 1e-8,
            best: f64::INFINITY,
            cooldown_counter: 0,
            num_bad_epochs: 0,
        }
    }

    /// Whether lower or higher is better.
    pub fn mode(mut self, mode: PlateauMode) -> Self {
        self.mode = mode;
        self.best = self.mode_worse();
        self
    }

    /// The rate multiplier on a plateau (must be below 1).
    pub fn factor(mut self, factor: f64) -> Self {
        assert!(
            factor < 1.0,
            "ReduceLROnPlateau: factor should be < 1.0, got {factor}"
        );
        self.factor = factor;
        self
    }

    /// Epochs without improvement tolerated before lowering the rate.
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// The size of a significant improvement, measured as `mode` says.
    pub fn threshold(mut self, threshold: f64, mode: ThresholdMode) -> Self {
        self.threshold = threshold;
        self.threshold_mode = mode;
        self
    }

    /// Epochs to wait after a reduction before counting bad epochs again.
    pub fn cooldown(mut self, cooldown: usize) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// A lower bound on every group's rate.
    pub fn min_lr(mut self, min_lr: f64) -> Self {
        self.min_lrs.fill(min_lr);
        self
    }

    /// A lower bound per group.
    pub fn min_lrs(mut self, min_lrs: &[f64]) -> Self {
        assert_eq!(
            min_lrs.len(),
            self.cells.len(),
            "ReduceLROnPlateau: expected {} min_lrs, got {}",
            self.cells.len(),
            min_lrs.len()
        );
        self.min_lrs = min_lrs.to_vec();
        self
    }

    /// Reductions smaller than `eps` are skipped.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    fn mode_worse(&self) -> f64 {
        match self.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        }
    }

    fn is_better(&self, a: f64, best: f64) -> bool {
        let t = self.threshold;
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (t + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }

    /// Ends an epoch whose validation metric was `metric`.
    pub fn step(&mut self, metric: f64) {
        self.last_epoch += 1;
        if self.is_better(metric, self.best) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.patience {
            for (c, &min) in self.cells.iter().zip(&self.min_lrs) {
                let old = c.get();
                let new = (old * self.factor).max(min);
                if old - new > self.eps {
                    c.set(new);
                }
            }
            self.cooldown_counter = self.cooldown;
            self.num_bad_epochs = 0;
        }
        self.last_lr = self.cells.iter().map(SharedLr::get).collect();
    }

    /// The rates after the last `step`, one per group.
    pub fn get_last_lr(&self) -> Vec<f64> {
        self.last_lr.clone()
    }

    /// Epochs seen.
    pub fn last_epoch(&self) -> i64 {
        self.last_epoch
    }

    /// The best metric so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Epochs since the last improvement (reset by a reduction).
    pub fn num_bad_epochs(&self) -> usize {
        self.num_bad_epochs
    }
}
