//! Learning-rate schedulers, like `torch.optim.lr_scheduler`.
//!
//! A scheduler is built from an optimizer (borrowed only while building:
//! it keeps handles on the groups' shared learning rates) and sets the
//! epoch-0 rates at once, as PyTorch's constructors do. Each `step()`
//! advances one epoch (or iteration) and writes every group's new rate;
//! `get_last_lr()` returns them.
//!
//! ```
//! use kiln_runtime::Tensor;
//! use kiln_runtime::optim::{Optimizer, SGD, lr_scheduler::{LrScheduler, StepLR}};
//! let p = Tensor::zeros([1]).requires_grad_(true);
//! let mut opt = SGD::new(vec![p], 0.1);
//! let mut sched = StepLR::new(&opt, 2, 0.5);
//! let mut lrs = vec![];
//! for _ in 0..5 {
//!     opt.step();
//!     lrs.push(sched.get_last_lr()[0]);
//!     sched.step();
//! }
//! assert_eq!(lrs, [0.1, 0.1, 0.05, 0.05, 0.025]);
//! assert_eq!(opt.lr(), 0.025);
//! ```

use super::state::Problems;
use super::{LoadStateError, Optimizer, SharedLr};
use crate::io::{Dict, Value};
use std::f64::consts::PI;

/// Every [`LrScheduler`] method but `step` of a scheduler built on `Core`
/// (field `core`), whose own state dict entries are the listed fields
/// under PyTorch's keys. Used inside an `impl LrScheduler` block.
macro_rules! core_methods {
    ($ty:ty, [$($key:literal => $f:ident: $ft:ty),*]) => {
        fn get_last_lr(&self) -> Vec<f64> {
            self.core.last_lr.clone()
        }
        fn last_epoch(&self) -> i64 {
            self.core.last_epoch
        }
        fn state_dict(&self) -> Dict {
            let mut d = Dict::new();
            $(d.insert($key, Field::to_value(&self.$f));)*
            self.core.state_dict(&mut d);
            d
        }
        fn load_state_dict(&mut self, state: &Dict) -> Result<(), LoadStateError> {
            let mut pr = Problems::new(stringify!($ty));
            $(let $f: Option<$ft> = field(state, $key, &mut pr);)*
            let core = self.core.check(state, &mut pr);
            pr.finish(())?;
            if let Some((base, epoch, last)) = core {
                self.core.base_lrs = base;
                self.core.last_epoch = epoch;
                self.core.last_lr = last;
            }
            $(if let Some(v) = $f {
                self.$f = v;
            })*
            Ok(())
        }
    };
}

mod composite;
mod cyclic;
mod plateau;
mod warm;

pub use composite::{ChainedScheduler, Restartable, SequentialLR};
pub use cyclic::{AnnealStrategy, CyclicLR, CyclicMode, OneCycleLR, ScaleMode};
pub use plateau::{PlateauMode, ReduceLROnPlateau, ThresholdMode};
pub use warm::{CosineAnnealingWarmRestarts, LinearLR, tutorial_warmup_cosine};

/// What every scheduler offers.
pub trait LrScheduler {
    /// Advances one epoch and updates the optimizer's learning rates.
    fn step(&mut self);
    /// The learning rates set by the last `step` (or the constructor), one
    /// per group, like `scheduler.get_last_lr()`.
    fn get_last_lr(&self) -> Vec<f64>;
    /// The current epoch (0 right after construction).
    fn last_epoch(&self) -> i64;

    /// The scheduler's state, like `scheduler.state_dict()`: `last_epoch`,
    /// `base_lrs`, `_last_lr`, `_step_count` and its own settings
    /// (`step_size`, `gamma`, `T_max`, ... under PyTorch's names).
    fn state_dict(&self) -> Dict;

    /// Restores a state from [`state_dict`](LrScheduler::state_dict) (or
    /// PyTorch's), like `scheduler.load_state_dict`. The optimizer's
    /// learning rates are not touched (they come with the optimizer's own
    /// state dict, as in PyTorch). Everything is checked first; on any
    /// mismatch the scheduler is unchanged and the error lists them all.
    fn load_state_dict(&mut self, state: &Dict) -> Result<(), LoadStateError>;
}

/// A scheduler setting as a state dict entry.
trait Field: Sized {
    fn to_value(&self) -> Value;
    fn from_value(v: &Value) -> Option<Self>;
    const KIND: &'static str;
}

impl Field for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
    fn from_value(v: &Value) -> Option<Self> {
        v.as_int()
    }
    const KIND: &'static str = "an int";
}

impl Field for f64 {
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
    fn from_value(v: &Value) -> Option<Self> {
        v.as_float()
    }
    const KIND: &'static str = "a float";
}

impl Field for Vec<i64> {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|&i| Value::Int(i)).collect())
    }
    fn from_value(v: &Value) -> Option<Self> {
        v.as_list()?.iter().map(Value::as_int).collect()
    }
    const KIND: &'static str = "a list of ints";
}

impl Field for Vec<f64> {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|&x| Value::Float(x)).collect())
    }
    fn from_value(v: &Value) -> Option<Self> {
        v.as_list()?.iter().map(Value::as_float).collect()
    }
    const KIND: &'static str = "a list of floats";
}

/// Reads `key` of `d` as a `T`, recording a problem when it is missing or
/// of the wrong type.
fn field<T: Field>(d: &Dict, key: &str, pr: &mut Problems) -> Option<T> {
    match d.get(key) {
        Some(v) => {
            let got = T::from_value(v);
            if got.is_none() {
                pr.push(format!("{key:?} is not {}", T::KIND));
            }
            got
        }
        None => {
            pr.push(format!("the state dict has no {key:?}"));
            None
        }
    }
}

/// Records a problem for each per-group list (under its key) whose length
/// is not the optimizer's number of `groups`.
fn check_group_counts(pr: &mut Problems, groups: usize, lists: [(&str, &Option<Vec<f64>>); 2]) {
    for (key, v) in lists {
        if let Some(v) = v
            && v.len() != groups
        {
            pr.push(format!(
                "{key:?} has {} entries but the optimizer has {groups} group(s)",
                v.len()
            ));
        }
    }
}

/// Panics unless `values` holds one entry per group, naming the scheduler
/// `who` and the values `what` in the message.
fn assert_one_per_group(who: &str, what: &str, values: &[f64], groups: usize) {
    assert_eq!(
        values.len(),
        groups,
        "{who}: expected {groups} {what}, got {}",
        values.len()
    );
}

/// State common to every scheduler.
struct Core {
    cells: Vec<SharedLr>,
    base_lrs: Vec<f64>,
    last_epoch: i64,
    last_lr: Vec<f64>,
}

impl Core {
    fn state_dict(&self, d: &mut Dict) {
        d.insert("base_lrs", self.base_lrs.to_value());
        d.insert("last_epoch", Value::Int(self.last_epoch));
        d.insert("_step_count", Value::Int(self.last_epoch + 1));
        d.insert("_last_lr", self.last_lr.to_value());
    }

    /// The checked `(base_lrs, last_epoch, last_lr)` of `d`.
    fn check(&self, d: &Dict, pr: &mut Problems) -> Option<(Vec<f64>, i64, Vec<f64>)> {
        let base: Option<Vec<f64>> = field(d, "base_lrs", pr);
        let epoch: Option<i64> = field(d, "last_epoch", pr);
        let last: Option<Vec<f64>> = field(d, "_last_lr", pr);
        check_group_counts(
            pr,
            self.cells.len(),
            [("base_lrs", &base), ("_last_lr", &last)],
        );
        Some((base?, epoch?, last?))
    }

    /// Moves to the next epoch and returns it.
    fn advance(&mut self) -> i64 {
        self.last_epoch += 1;
        self.last_epoch
    }

    fn new(opt: &(impl Optimizer + ?Sized)) -> Core {
        let cells = opt.lr_cells();
        let base_lrs: Vec<f64> = cells.iter().map(SharedLr::initial_lr_or_record).collect();
        Core {
            cells,
            last_lr: base_lrs.clone(),
            base_lrs,
            last_epoch: -1,
        }
    }
}

/// Implements [`LrScheduler`] from a rule `(self, group, current lr, base
/// lr, new epoch) -> lr`.
macro_rules! scheduler_impl {
    ($ty:ty, [$($key:literal => $f:ident: $ft:ty),*], |$s:ident, $i:pat_param, $lr:pat_param, $base:pat_param, $e:pat_param| $rule:expr) => {
        impl LrScheduler for $ty {
            core_methods!($ty, [$($key => $f: $ft),*]);
            fn step(&mut self) {
                let epoch = self.core.advance();
                let lrs: Vec<f64> = (0..self.core.cells.len())
                    .map(|i| {
                        let $s = &*self;
                        let ($i, $lr, $base, $e) =
                            (i, self.core.cells[i].get(), self.core.base_lrs[i], epoch);
                        $rule
                    })
                    .collect();
                for (c, &lr) in self.core.cells.iter().zip(&lrs) {
                    c.set(lr);
                }
                self.core.last_lr = lrs;
            }
        }
    };
}

/// Multiplies the rate by `gamma` every `step_size` epochs, like
/// `StepLR`: `lr = base · gamma^⌊epoch / step_size⌋`.
pub struct StepLR {
    core: Core,
    step_size: i64,
    gamma: f64,
}

impl StepLR {
    /// Decay by `gamma` every `step_size` epochs.
    pub fn new(opt: &(impl Optimizer + ?Sized), step_size: usize, gamma: f64) -> StepLR {
        assert!(step_size > 0, "StepLR: step_size must be positive");
        let mut s = StepLR {
            core: Core::new(opt),
            step_size: step_size as i64,
            gamma,
        };
        s.step();
        s
    }
}

scheduler_impl!(
    StepLR,
    ["step_size" => step_size: i64, "gamma" => gamma: f64],
    |s, _i, lr, _base, e| if e == 0 || e % s.step_size != 0 {
        lr
    } else {
        lr * s.gamma
    }
);

/// Multiplies the rate by `gamma` at each milestone epoch, like
/// `MultiStepLR`: `lr = base · gamma^(milestones ≤ epoch)`.
pub struct MultiStepLR {
    core: Core,
    milestones: Vec<i64>,
    gamma: f64,
}

impl MultiStepLR {
    /// Decay by `gamma` at each of `milestones` (repeats count twice).
    pub fn new(opt: &(impl Optimizer + ?Sized), milestones: &[usize], gamma: f64) -> MultiStepLR {
        let mut s = MultiStepLR {
            core: Core::new(opt),
            milestones: milestones.iter().map(|&m| m as i64).collect(),
            gamma,
        };
        s.step();
        s
    }
}

scheduler_impl!(MultiStepLR, ["milestones" => milestones: Vec<i64>, "gamma" => gamma: f64], |s, _i, lr, _base, e| lr
    * s.gamma
        .powi(s.milestones.iter().filter(|&&m| m == e).count() as i32));

/// Multiplies the rate by `gamma` every epoch, like `ExponentialLR`:
/// `lr = base · gamma^epoch`.
pub struct ExponentialLR {
    core: Core,
    gamma: f64,
}

impl ExponentialLR {
    /// Decay by `gamma` per epoch.
    pub fn new(opt: &(impl Optimizer + ?Sized), gamma: f64) -> ExponentialLR {
        let mut s = ExponentialLR {
            core: Core::new(opt),
            gamma,
        };
        s.step();
        s
    }
}

scheduler_impl!(ExponentialLR, ["gamma" => gamma: f64], |s, _i, lr, _base, e| if e == 0 {
    lr
} else {
    lr * s.gamma
});

/// Cosine annealing, like `CosineAnnealingLR`:
/// `lr = eta_min + (base − eta_min)(1 + cos(π · epoch / T_max)) / 2`,
/// computed with PyTorch's recursive form (so rates set by hand between
/// steps are respected the same way). Past `T_max` the cosine continues
/// (the rate rises again), as in PyTorch.
pub struct CosineAnnealingLR {
    core: Core,
    t_max: i64,
    eta_min: f64,
}

impl CosineAnnealingLR {
    /// Anneal over `t_max` epochs down to `eta_min`.
    pub fn new(opt: &(impl Optimizer + ?Sized), t_max: usize, eta_min: f64) -> CosineAnnealingLR {
        assert!(t_max > 0, "CosineAnnealingLR: T_max must be positive");
        let mut s = CosineAnnealingLR {
            core: Core::new(opt),
            t_max: t_max as i64,
            eta_min,
        };
        s.step();
        s
    }
}

scheduler_impl!(CosineAnnealingLR, ["T_max" => t_max: i64, "eta_min" => eta_min: f64], |s, _i, lr, base, e| {
    let (t, eta) = (s.t_max, s.eta_min);
    let tf = t as f64;
    if e == 0 {
        lr
    } else if (e - 1 - t) % (2 * t) == 0 {
        lr + (base - eta) * (1.0 - (PI / tf).cos()) / 2.0
    } else {
        (1.0 + (PI * e as f64 / tf).cos()) / (1.0 + (PI * (e - 1) as f64 / tf).cos()) * (lr - eta)
            + eta
    }
});

/// Sets each group's rate to `base · lambda(epoch)`, like `LambdaLR`.
pub struct LambdaLR {
    core: Core,
    lambda: Box<dyn Fn(i64) -> f64 + Send + Sync>,
}

impl LambdaLR {
    /// `lr = base · lambda(epoch)` for every group.
    pub fn new(
        opt: &(impl Optimizer + ?Sized),
        lambda: impl Fn(i64) -> f64 + Send + Sync + 'static,
    ) -> LambdaLR {
        let mut s = LambdaLR {
            core: Core::new(opt),
            lambda: Box::new(lambda),
        };
        s.step();
        s
    }
}

scheduler_impl!(LambdaLR, [], |s, _i, _lr, base, e| base * (s.lambda)(e));

/// Linear warm-up then cosine decay, like the tutorials'
/// `SchedulerCosineDecayWarmup(optimizer, lr, warmup_len, total_iters)`.
/// At iteration `t` (0 at construction, +1 per `step`):
///
/// ```text
/// t < warmup_len:     lr(t) = lr · (t + 1) / warmup_len
/// t < total_iters:    lr(t) = lr · (1 + cos(π · (t − warmup_len) / (total_iters − warmup_len))) / 2
/// t ≥ total_iters:    lr(t) = 0
/// ```
///
/// With several groups each group's peak is `lr` scaled by its initial
/// rate relative to the first group's (one group: exactly `lr`).
///
/// Tutorials often hand-write this rule as
/// `lr·(i+1)/warmup` then `0.5·(1+cos(π·(i−warmup)/(total−warmup)))·lr`
/// with no case for `i ≥ total`, so their rate rises again past `total`;
/// this scheduler holds 0 there instead. Up to `total` the two agree. For
/// the hand-written rule exactly, use `LambdaLR` with
/// [`tutorial_warmup_cosine`].
pub struct CosineDecayWarmup {
    core: Core,
    peaks: Vec<f64>,
    warmup_len: i64,
    total_iters: i64,
}

impl CosineDecayWarmup {
    /// Warm up for `warmup_len` iterations to `lr`, then decay to 0 at
    /// `total_iters`.
    pub fn new(
        opt: &(impl Optimizer + ?Sized),
        lr: f64,
        warmup_len: usize,
        total_iters: usize,
    ) -> CosineDecayWarmup {
        assert!(
            warmup_len < total_iters,
            "CosineDecayWarmup: warmup_len ({warmup_len}) must be below total_iters ({total_iters})"
        );
        let core = Core::new(opt);
        let first = core.base_lrs.first().copied().unwrap_or(lr);
        let peaks = core
            .base_lrs
            .iter()
            .map(|&b| if first != 0.0 { lr * b / first } else { lr })
            .collect();
        let mut s = CosineDecayWarmup {
            core,
            peaks,
            warmup_len: warmup_len as i64,
            total_iters: total_iters as i64,
        };
        s.step();
        s
    }

    /// The formula above for iteration `t` and peak `lr`.
    pub fn lr_at(lr: f64, t: i64, warmup_len: i64, total_iters: i64) -> f64 {
        if t < warmup_len {
            lr * (t + 1) as f64 / warmup_len as f64
        } else if t < total_iters {
            let cur = (t - warmup_len) as f64;
            let total = (total_iters - warmup_len) as f64;
            0.5 * (1.0 + (PI * cur / total).cos()) * lr
        } else {
            0.0
        }
    }
}

scheduler_impl!(CosineDecayWarmup, ["peaks" => peaks: Vec<f64>, "warmup_len" => warmup_len: i64, "total_iters" => total_iters: i64], |s, i, _lr, _base, e| {
    CosineDecayWarmup::lr_at(s.peaks[i], e, s.warmup_len, s.total_iters)
});
