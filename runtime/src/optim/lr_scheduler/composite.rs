//! Schedulers made of schedulers: `SequentialLR` and `ChainedScheduler`.

use super::warm::write;
use super::{
    CosineAnnealingLR, CosineAnnealingWarmRestarts, CosineDecayWarmup, CyclicLR, ExponentialLR,
    LambdaLR, LinearLR, LrScheduler, MultiStepLR, OneCycleLR, Optimizer, StepLR,
};
use super::{Field, Problems, field};
use crate::io::{Dict, Value};
use crate::optim::{LoadStateError, SharedLr};

/// The children's state dicts, in order, as PyTorch's `_schedulers` entry.
fn children_state<S: LrScheduler + ?Sized>(children: &[Box<S>]) -> Value {
    Value::List(
        children
            .iter()
            .map(|c| Value::Dict(c.state_dict()))
            .collect(),
    )
}

/// The `_schedulers` entry of `state`, checked to hold one dict per child.
fn child_dicts(state: &Dict, n: usize, pr: &mut Problems) -> Option<Vec<Dict>> {
    let Some(list) = state.get("_schedulers").and_then(Value::as_list) else {
        pr.push("the state dict has no \"_schedulers\" list".to_string());
        return None;
    };
    if list.len() != n {
        pr.push(format!(
            "\"_schedulers\" holds {} state dicts but there are {n} schedulers",
            list.len()
        ));
        return None;
    }
    let dicts: Option<Vec<Dict>> = list.iter().map(|v| v.as_dict().cloned()).collect();
    if dicts.is_none() {
        pr.push("an entry of \"_schedulers\" is not a dict".to_string());
    }
    dicts
}

/// Loads `dicts` into `children`, all or nothing: when one child refuses
/// its dict, the children loaded before it get their old state back.
fn load_children<S: LrScheduler + ?Sized>(
    children: &mut [Box<S>],
    dicts: &[Dict],
) -> Result<(), LoadStateError> {
    let saved: Vec<Dict> = children.iter().map(|c| c.state_dict()).collect();
    for (i, (c, d)) in children.iter_mut().zip(dicts).enumerate() {
        if let Err(e) = c.load_state_dict(d) {
            for (c, old) in children[..i].iter_mut().zip(&saved) {
                c.load_state_dict(old)
                    .expect("a scheduler reloads its own state dict");
            }
            return Err(e);
        }
    }
    Ok(())
}

/// A scheduler that [`SequentialLR`] can hand over to: it can take back the
/// step its constructor made and start again from epoch 0.
pub trait Restartable: LrScheduler {
    /// Takes back one epoch (PyTorch's `last_epoch -= 1` in
    /// `SequentialLR.recursive_undo`).
    fn undo_step(&mut self);
    /// Goes to epoch 0 and writes its epoch-0 rates, computed from its base
    /// rates (PyTorch's `_update_lr(0)` with the closed form).
    fn restart(&mut self);
}

/// Implements [`Restartable`] from the epoch-0 rate of group `i` with base
/// rate `base`.
macro_rules! restart_from_base {
    ($ty:ty, |$s:ident, $i:ident, $base:ident| $rate:expr) => {
        impl Restartable for $ty {
            fn undo_step(&mut self) {
                self.core.last_epoch -= 1;
            }
            fn restart(&mut self) {
                self.core.last_epoch = 0;
                let $s = &*self;
                let lrs = (0..$s.core.base_lrs.len())
                    .map(|$i| {
                        let $base = $s.core.base_lrs[$i];
                        $rate
                    })
                    .collect();
                write(&mut self.core, lrs);
            }
        }
    };
}

restart_from_base!(StepLR, |_s, _i, base| base);
restart_from_base!(MultiStepLR, |s, _i, base| base
    * s.gamma
        .powi(s.milestones.iter().filter(|&&m| m == 0).count() as i32));
restart_from_base!(ExponentialLR, |_s, _i, base| base);
restart_from_base!(CosineAnnealingLR, |_s, _i, base| base);
restart_from_base!(LambdaLR, |s, _i, base| base * (s.lambda)(0));
restart_from_base!(CosineDecayWarmup, |s, i, _base| CosineDecayWarmup::lr_at(
    s.peaks[i],
    0,
    s.warmup_len,
    s.total_iters
));
restart_from_base!(LinearLR, |s, _i, base| base * s.start_factor);
restart_from_base!(OneCycleLR, |s, i, _base| s.rate(i, 0));
restart_from_base!(CyclicLR, |s, i, _base| s.rates()[i]);

impl Restartable for CosineAnnealingWarmRestarts {
    fn undo_step(&mut self) {
        self.core.last_epoch -= 1;
    }
    fn restart(&mut self) {
        self.core.last_epoch = 0;
        self.t_cur = 0;
        self.t_i = self.t_0;
        let lrs = self.rates();
        write(&mut self.core, lrs);
    }
}

/// Runs schedulers one after another, like `SequentialLR`: `schedulers[k]`
/// drives the rates from epoch `milestones[k-1]` on, starting there from
/// its own epoch 0. The usual warm-up then decay:
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::SGD;
/// use kiln_runtime::optim::lr_scheduler::{
///     CosineAnnealingLR, LinearLR, LrScheduler, Restartable, SequentialLR,
/// };
/// let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 0.1);
/// let warmup = LinearLR::new(&opt, 0.1, 1.0, 3);
/// let decay = CosineAnnealingLR::new(&opt, 7, 0.0);
/// let parts: Vec<Box<dyn Restartable>> = vec![Box::new(warmup), Box::new(decay)];
/// let mut sched = SequentialLR::new(&opt, parts, &[3]);
/// let mut lrs = vec![sched.get_last_lr()[0]];
/// for _ in 0..10 {
///     sched.step();
///     lrs.push(sched.get_last_lr()[0]);
/// }
/// assert!((lrs[0] - 0.01).abs() < 1e-12); // warm-up from 0.1 · 0.1
/// assert!((lrs[3] - 0.1).abs() < 1e-12); // the cosine starts at the base rate
/// assert!(lrs[10].abs() < 1e-12); // and reaches 0 after T_max = 7 epochs
/// ```
pub struct SequentialLR {
    schedulers: Vec<Box<dyn Restartable>>,
    milestones: Vec<i64>,
    last_epoch: i64,
    last_lr: Vec<f64>,
}

impl SequentialLR {
    /// `schedulers` (all built on `opt`) and one milestone fewer. The
    /// groups' rates go back to their `initial_lr` and the first scheduler
    /// starts again from epoch 0, as PyTorch's constructor does.
    pub fn new(
        opt: &(impl Optimizer + ?Sized),
        mut schedulers: Vec<Box<dyn Restartable>>,
        milestones: &[usize],
    ) -> SequentialLR {
        assert!(
            !schedulers.is_empty(),
            "SequentialLR: expects at least one scheduler"
        );
        assert_eq!(
            milestones.len(),
            schedulers.len() - 1,
            "SequentialLR: expects one milestone fewer than schedulers, got {} schedulers and {} milestones",
            schedulers.len(),
            milestones.len()
        );
        for c in opt.lr_cells() {
            c.set(c.initial_lr_or_record());
        }
        for s in &mut schedulers {
            s.undo_step();
        }
        let milestones: Vec<i64> = milestones.iter().map(|&m| m as i64).collect();
        let idx = milestones.partition_point(|&m| m <= 0);
        schedulers[idx].restart();
        let last_lr = schedulers[idx].get_last_lr();
        SequentialLR {
            schedulers,
            milestones,
            last_epoch: 0,
            last_lr,
        }
    }
}

impl LrScheduler for SequentialLR {
    /// `last_epoch`, `_milestones`, `_last_lr` and `_schedulers` (each
    /// child's state dict), as PyTorch's.
    fn state_dict(&self) -> Dict {
        let mut d = Dict::new();
        d.insert("last_epoch", Value::Int(self.last_epoch));
        d.insert("_milestones", self.milestones.to_value());
        d.insert("_last_lr", self.last_lr.to_value());
        d.insert("_schedulers", children_state(&self.schedulers));
        d
    }
    fn load_state_dict(&mut self, state: &Dict) -> Result<(), LoadStateError> {
        let mut pr = Problems::new("SequentialLR");
        let epoch: Option<i64> = field(state, "last_epoch", &mut pr);
        let milestones: Option<Vec<i64>> = field(state, "_milestones", &mut pr);
        let last: Option<Vec<f64>> = field(state, "_last_lr", &mut pr);
        let dicts = child_dicts(state, self.schedulers.len(), &mut pr);
        if let Some(m) = &milestones
            && m.len() + 1 != self.schedulers.len()
        {
            pr.push(format!(
                "\"_milestones\" has {} entries but there are {} schedulers",
                m.len(),
                self.schedulers.len()
            ));
        }
        pr.finish(())?;
        let (Some(epoch), Some(milestones), Some(last), Some(dicts)) =
            (epoch, milestones, last, dicts)
        else {
            unreachable!("every missing entry was reported");
        };
        load_children(&mut self.schedulers, &dicts)?;
        self.last_epoch = epoch;
        self.milestones = milestones;
        self.last_lr = last;
        Ok(())
    }
    fn step(&mut self) {
        self.last_epoch += 1;
        let idx = self.milestones.partition_point(|&m| m <= self.last_epoch);
        let s = &mut self.schedulers[idx];
        if idx > 0 && self.milestones[idx - 1] == self.last_epoch {
            s.restart();
        } else {
            s.step();
        }
        self.last_lr = s.get_last_lr();
    }
    fn get_last_lr(&self) -> Vec<f64> {
        self.last_lr.clone()
    }
    fn last_epoch(&self) -> i64 {
        self.last_epoch
    }
}

/// Steps several schedulers together, like `ChainedScheduler`: each
/// `step` calls every scheduler's `step` in order, so their (recursive)
/// rules compose, e.g. a warm-up factor times an exponential decay.
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::SGD;
/// use kiln_runtime::optim::lr_scheduler::{ChainedScheduler, ExponentialLR, LinearLR, LrScheduler};
/// let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 1.0);
/// let warmup = LinearLR::new(&opt, 0.5, 1.0, 2);
/// let decay = ExponentialLR::new(&opt, 0.9);
/// let mut sched = ChainedScheduler::new(&opt, vec![Box::new(warmup), Box::new(decay)]);
/// sched.step();
/// assert!((sched.get_last_lr()[0] - 0.75 * 0.9).abs() < 1e-12);
/// ```
pub struct ChainedScheduler {
    schedulers: Vec<Box<dyn LrScheduler>>,
    cells: Vec<SharedLr>,
    last_lr: Vec<f64>,
}

impl ChainedScheduler {
    /// Chains `schedulers`, all built on `opt`.
    pub fn new(
        opt: &(impl Optimizer + ?Sized),
        schedulers: Vec<Box<dyn LrScheduler>>,
    ) -> ChainedScheduler {
        assert!(
            !schedulers.is_empty(),
            "ChainedScheduler: expects at least one scheduler"
        );
        let cells = opt.lr_cells();
        ChainedScheduler {
            last_lr: cells.iter().map(SharedLr::get).collect(),
            schedulers,
            cells,
        }
    }
}

impl LrScheduler for ChainedScheduler {
    /// `_last_lr` and `_schedulers` (each child's state dict), as
    /// PyTorch's.
    fn state_dict(&self) -> Dict {
        let mut d = Dict::new();
        d.insert("_last_lr", self.last_lr.to_value());
        d.insert("_schedulers", children_state(&self.schedulers));
        d
    }
    fn load_state_dict(&mut self, state: &Dict) -> Result<(), LoadStateError> {
        let mut pr = Problems::new("ChainedScheduler");
        let last: Option<Vec<f64>> = field(state, "_last_lr", &mut pr);
        let dicts = child_dicts(state, self.schedulers.len(), &mut pr);
        pr.finish(())?;
        let (Some(last), Some(dicts)) = (last, dicts) else {
            unreachable!("every missing entry was reported");
        };
        load_children(&mut self.schedulers, &dicts)?;
        self.last_lr = last;
        Ok(())
    }
    fn step(&mut self) {
        for s in &mut self.schedulers {
            s.step();
        }
        self.last_lr = self.cells.iter().map(SharedLr::get).collect();
    }
    fn get_last_lr(&self) -> Vec<f64> {
        self.last_lr.clone()
    }
    /// The last scheduler's epoch.
    fn last_epoch(&self) -> i64 {
        self.schedulers.last().map_or(0, |s| s.last_epoch())
    }
}
