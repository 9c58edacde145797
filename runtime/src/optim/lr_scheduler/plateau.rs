//! `ReduceLROnPlateau`: lower the rate when a metric stops improving.

use super::{Field, Optimizer, Problems, assert_one_per_group, check_group_counts, field};
use crate::io::{Dict, Value};
use crate::optim::{LoadStateError, SharedLr};

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
    /// The scheduler's state under PyTorch's keys: `last_epoch`, `best`,
    /// `cooldown_counter`, `num_bad_epochs`, `_last_lr` and its settings
    /// (`factor`, `patience`, `threshold`, `cooldown`, `min_lrs`, `eps`).
    /// `ReduceLROnPlateau` steps on a metric, so it is not an
    /// [`LrScheduler`](super::LrScheduler); this pair mirrors that trait's.
    pub fn state_dict(&self) -> Dict {
        let mut d = Dict::new();
        d.insert("last_epoch", Value::Int(self.last_epoch));
        d.insert("best", Value::Float(self.best));
        d.insert("cooldown_counter", Value::Int(self.cooldown_counter as i64));
        d.insert("num_bad_epochs", Value::Int(self.num_bad_epochs as i64));
        d.insert("_last_lr", self.last_lr.to_value());
        d.insert("factor", Value::Float(self.factor));
        d.insert("patience", Value::Int(self.patience as i64));
        d.insert("threshold", Value::Float(self.threshold));
        d.insert("cooldown", Value::Int(self.cooldown as i64));
        d.insert("min_lrs", self.min_lrs.to_value());
        d.insert("eps", Value::Float(self.eps));
        d
    }

    /// Restores a state from [`state_dict`](Self::state_dict) (or
    /// PyTorch's); everything is checked first, and on any problem the
    /// scheduler is unchanged and the error lists them all.
    pub fn load_state_dict(&mut self, state: &Dict) -> Result<(), LoadStateError> {
        let mut pr = Problems::new("ReduceLROnPlateau");
        let count = |key: &str, pr: &mut Problems| -> Option<usize> {
            let v: i64 = field(state, key, pr)?;
            match usize::try_from(v) {
                Ok(v) => Some(v),
                Err(_) => {
                    pr.push(format!("{key:?} is negative ({v})"));
                    None
                }
            }
        };
        let epoch: Option<i64> = field(state, "last_epoch", &mut pr);
        let best: Option<f64> = field(state, "best", &mut pr);
        let cooldown_counter = count("cooldown_counter", &mut pr);
        let bad = count("num_bad_epochs", &mut pr);
        let last: Option<Vec<f64>> = field(state, "_last_lr", &mut pr);
        let factor: Option<f64> = field(state, "factor", &mut pr);
        let patience = count("patience", &mut pr);
        let threshold: Option<f64> = field(state, "threshold", &mut pr);
        let cooldown = count("cooldown", &mut pr);
        let min_lrs: Option<Vec<f64>> = field(state, "min_lrs", &mut pr);
        let eps: Option<f64> = field(state, "eps", &mut pr);
        let lists = [("_last_lr", &last), ("min_lrs", &min_lrs)];
        check_group_counts(&mut pr, self.cells.len(), lists);
        pr.finish(())?;
        let (
            Some(epoch),
            Some(best),
            Some(cooldown_counter),
            Some(bad),
            Some(last),
            Some(factor),
            Some(patience),
            Some(threshold),
            Some(cooldown),
            Some(min_lrs),
            Some(eps),
        ) = (
            epoch,
            best,
            cooldown_counter,
            bad,
            last,
            factor,
            patience,
            threshold,
            cooldown,
            min_lrs,
            eps,
        )
        else {
            unreachable!("every missing entry was reported");
        };
        self.last_epoch = epoch;
        self.best = best;
        self.cooldown_counter = cooldown_counter;
        self.num_bad_epochs = bad;
        self.last_lr = last;
        self.factor = factor;
        self.patience = patience;
        self.threshold = threshold;
        self.cooldown = cooldown;
        self.min_lrs = min_lrs;
        self.eps = eps;
        Ok(())
    }

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

    setters! {
        /// The rate multiplier on a plateau (must be below 1).
        factor: f64 => assert!(
            factor < 1.0,
            "ReduceLROnPlateau: factor should be < 1.0, got {factor}"
        );
        /// Epochs without improvement tolerated before lowering the rate.
        patience: usize;
    }

    /// The size of a significant improvement, measured as `mode` says.
    pub fn threshold(mut self, threshold: f64, mode: ThresholdMode) -> Self {
        self.threshold = threshold;
        self.threshold_mode = mode;
        self
    }

    setters! {
        /// Epochs to wait after a reduction before counting bad epochs again.
        cooldown: usize;
    }

    /// A lower bound on every group's rate.
    pub fn min_lr(mut self, min_lr: f64) -> Self {
        self.min_lrs.fill(min_lr);
        self
    }

    /// A lower bound per group.
    pub fn min_lrs(mut self, min_lrs: &[f64]) -> Self {
        assert_one_per_group("ReduceLROnPlateau", "min_lrs", min_lrs, self.cells.len());
        self.min_lrs = min_lrs.to_vec();
        self
    }

    setters! {
        /// Reductions smaller than `eps` are skipped.
        eps: f64;
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
