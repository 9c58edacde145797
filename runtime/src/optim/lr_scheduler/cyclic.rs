//! Cyclical schedules: `OneCycleLR` and `CyclicLR`.
//!
//! Like PyTorch's (`cycle_momentum=True`, the default) they also cycle the
//! momentum inversely to the rate: SGD's and RMSprop's `momentum`, Adam's
//! and AdamW's `beta1`, through each group's
//! [`SharedMomentum`](crate::optim::SharedMomentum). PyTorch refuses
//! optimizers without a momentum unless `cycle_momentum=False`; kiln
//! leaves their momentum alone.

use super::warm::write;
use super::{Core, LrScheduler, Optimizer};
use super::{Field, Problems, assert_one_per_group, field};
use crate::io::Dict;
use crate::optim::{LoadStateError, SharedMomentum};
use std::f64::consts::PI;

/// How [`OneCycleLR`] moves between two rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnealStrategy {
    /// Half a cosine (PyTorch's `"cos"`, the default).
    Cos,
    /// A straight line (`"linear"`).
    Linear,
}

/// The momentum side of a cyclical schedule (PyTorch's `cycle_momentum`,
/// `base_momentum`, `max_momentum`).
pub(super) struct MomentumCycle {
    cells: Vec<SharedMomentum>,
    base: Vec<f64>,
    max: Vec<f64>,
    on: bool,
}

impl MomentumCycle {
    /// Cycling between `base` and `max` for every group, or `None` when the
    /// optimizer has no momentum to cycle.
    fn of(opt: &(impl Optimizer + ?Sized), base: f64, max: f64) -> Option<MomentumCycle> {
        opt.momentum_kind()?;
        let cells: Vec<SharedMomentum> = opt
            .param_groups()
            .iter()
            .map(|g| g.momentum_cell().clone())
            .collect();
        let n = cells.len();
        Some(MomentumCycle {
            cells,
            base: vec![base; n],
            max: vec![max; n],
            on: true,
        })
    }

    fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            for c in &self.cells {
                c.clear();
            }
        }
    }

    fn set_range(&mut self, op: &str, base: Option<&[f64]>, max: Option<&[f64]>) {
        for (v, new) in [(&mut self.base, base), (&mut self.max, max)] {
            if let Some(new) = new {
                assert_one_per_group(op, "momentum values (one per group)", new, v.len());
                v.copy_from_slice(new);
            }
        }
    }

    /// Writes `f(group, base, max)` into each group's momentum.
    fn write(&self, f: impl Fn(usize, f64, f64) -> f64) {
        if !self.on {
            return;
        }
        for (g, c) in self.cells.iter().enumerate() {
            c.set(f(g, self.base[g], self.max[g]));
        }
    }
}

/// The momentum builder methods of a scheduler with a
/// `momentum: Option<MomentumCycle>` field and a `$restart` method.
macro_rules! momentum_builders {
    ($name:literal, $restart:ident) => {
        /// Whether to cycle the momentum inversely to the rate (default
        /// true, as PyTorch's `cycle_momentum`); `false` gives the groups'
        /// own momentum back.
        pub fn cycle_momentum(mut self, on: bool) -> Self {
            if let Some(m) = &mut self.momentum {
                m.set_on(on);
            }
            self.$restart()
        }

        /// The momentum at the rate's peak, for every group (PyTorch's
        /// `base_momentum`).
        pub fn base_momentum(self, m: f64) -> Self {
            let n = self.core.cells.len();
            self.base_momentums(&vec![m; n])
        }

        /// The momentum where the rate is lowest, for every group
        /// (PyTorch's `max_momentum`).
        pub fn max_momentum(self, m: f64) -> Self {
            let n = self.core.cells.len();
            self.max_momentums(&vec![m; n])
        }

        /// [`base_momentum`](Self::base_momentum), one per group.
        pub fn base_momentums(mut self, m: &[f64]) -> Self {
            if let Some(c) = &mut self.momentum {
                c.set_range($name, Some(m), None);
            }
            self.$restart()
        }

        /// [`max_momentum`](Self::max_momentum), one per group.
        pub fn max_momentums(mut self, m: &[f64]) -> Self {
            if let Some(c) = &mut self.momentum {
                c.set_range($name, None, Some(m));
            }
            self.$restart()
        }
    };
}

impl AnnealStrategy {
    fn anneal(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            AnnealStrategy::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            AnnealStrategy::Linear => (end - start) * pct + start,
        }
    }
}

/// The 1cycle policy, like `OneCycleLR`: from `max_lr / div_factor` up to
/// `max_lr` over the first `pct_start` of `total_steps`, then down to
/// `max_lr / div_factor / final_div_factor` (with `three_phase`, back to
/// the start rate first, then down). Step it once per batch; stepping past
/// `total_steps` panics, as PyTorch raises. The momentum moves the other
/// way, from `max_momentum` (0.95) down to `base_momentum` (0.85) and back
/// (see [`cycle_momentum`](OneCycleLR::cycle_momentum)).
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::{SGD, lr_scheduler::{LrScheduler, OneCycleLR}};
/// let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 0.1);
/// let epochs = 2;
/// let steps_per_epoch = 5;
/// let mut sched = OneCycleLR::new(&opt, 0.5, epochs * steps_per_epoch).pct_start(0.25);
/// assert!((sched.get_last_lr()[0] - 0.02).abs() < 1e-12); // 0.5 / 25
/// // One step per batch; the last batch (step total − 1) has the final rate.
/// for _ in 0..epochs * steps_per_epoch - 1 {
///     sched.step();
/// }
/// assert!((sched.get_last_lr()[0] / (0.02 / 1e4) - 1.0).abs() < 1e-9);
/// ```
pub struct OneCycleLR {
    pub(super) core: Core,
    pub(super) max_lrs: Vec<f64>,
    pub(super) total_steps: i64,
    pub(super) pct_start: f64,
    pub(super) anneal: AnnealStrategy,
    pub(super) div_factor: f64,
    pub(super) final_div_factor: f64,
    pub(super) three_phase: bool,
    pub(super) momentum: Option<MomentumCycle>,
}

impl OneCycleLR {
    /// Peak rate `max_lr` for every group, over `total_steps` steps
    /// (`epochs * steps_per_epoch` in PyTorch's other form), with PyTorch's
    /// defaults: `pct_start` 0.3, cosine annealing, `div_factor` 25,
    /// `final_div_factor` 1e4, two phases.
    pub fn new(opt: &(impl Optimizer + ?Sized), max_lr: f64, total_steps: usize) -> OneCycleLR {
        let n = opt.param_groups().len();
        Self::with_max_lrs(opt, &vec![max_lr; n], total_steps)
    }

    /// Like [`new`](Self::new) with one peak rate per group.
    pub fn with_max_lrs(
        opt: &(impl Optimizer + ?Sized),
        max_lrs: &[f64],
        total_steps: usize,
    ) -> OneCycleLR {
        assert!(total_steps > 0, "OneCycleLR: total_steps must be positive");
        let core = Core::new(opt);
        let what = "max_lr values (one per group)";
        assert_one_per_group("OneCycleLR", what, max_lrs, core.cells.len());
        let mut s = OneCycleLR {
            core,
            max_lrs: max_lrs.to_vec(),
            total_steps: total_steps as i64,
            pct_start: 0.3,
            anneal: AnnealStrategy::Cos,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
            momentum: MomentumCycle::of(opt, 0.85, 0.95),
        };
        s.restart_schedule();
        s
    }

    momentum_builders!("OneCycleLR", restarted);

    fn restarted(mut self) -> Self {
        self.restart_schedule();
        self
    }

    /// The fraction of the steps spent rising (default 0.3).
    pub fn pct_start(self, pct: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&pct),
            "OneCycleLR: pct_start must be in [0, 1], got {pct}"
        );
        Self {
            pct_start: pct,
            ..self
        }
        .restarted()
    }

    /// The annealing shape (default cosine).
    pub fn anneal_strategy(self, a: AnnealStrategy) -> Self {
        Self { anneal: a, ..self }.restarted()
    }

    /// Start rate = `max_lr / div_factor` (default 25).
    pub fn div_factor(self, d: f64) -> Self {
        Self {
            div_factor: d,
            ..self
        }
        .restarted()
    }

    /// Final rate = start rate / `final_div_factor` (default 1e4).
    pub fn final_div_factor(self, d: f64) -> Self {
        Self {
            final_div_factor: d,
            ..self
        }
        .restarted()
    }

    /// Up, back down to the start rate, then down to the final rate
    /// (fast.ai's variant) instead of up then down.
    pub fn three_phase(self, on: bool) -> Self {
        Self {
            three_phase: on,
            ..self
        }
        .restarted()
    }

    /// Sets each group's `initial_lr` and goes back to step 0 (used by the
    /// constructor and the builder methods, before any `step`).
    fn restart_schedule(&mut self) {
        assert!(
            self.core.last_epoch <= 0,
            "OneCycleLR: options must be set before the first step"
        );
        for (i, c) in self.core.cells.iter().enumerate() {
            let initial = self.max_lrs[i] / self.div_factor;
            c.set_initial_lr(initial);
            self.core.base_lrs[i] = initial;
        }
        self.core.last_epoch = -1;
        self.step();
    }

    /// The phase step `t` falls in and how far into it (0 to 1).
    fn phase(&self, t: i64) -> (usize, f64) {
        let n = self.total_steps as f64;
        let p = self.pct_start;
        let ends: &[f64] = if self.three_phase {
            &[p * n - 1.0, 2.0 * p * n - 2.0, n - 1.0]
        } else {
            &[p * n - 1.0, n - 1.0]
        };
        let t = t as f64;
        let mut start_step = 0.0;
        for (i, &end_step) in ends.iter().enumerate() {
            if t <= end_step || i == ends.len() - 1 {
                return (i, (t - start_step) / (end_step - start_step));
            }
            start_step = end_step;
        }
        unreachable!("the last phase always matches")
    }

    /// The rate of group `g` at step `t`.
    pub(super) fn rate(&self, g: usize, t: i64) -> f64 {
        let initial = self.core.base_lrs[g];
        let max = self.max_lrs[g];
        let min = initial / self.final_div_factor;
        let three = [(initial, max), (max, initial), (initial, min)];
        self.anneal_phases(t, &three, &[(initial, max), (max, min)])
    }

    /// The momentum between `base` and `max` at step `t`.
    fn momentum_at(&self, t: i64, base: f64, max: f64) -> f64 {
        let three = [(max, base), (base, max), (max, max)];
        self.anneal_phases(t, &three, &[(max, base), (base, max)])
    }

    /// Anneals between the (start, end) values of the phase step `t` falls
    /// in: `three` for the three-phase schedule, else `two`.
    fn anneal_phases(&self, t: i64, three: &[(f64, f64); 3], two: &[(f64, f64); 2]) -> f64 {
        let phases: &[(f64, f64)] = if self.three_phase { three } else { two };
        let (i, pct) = self.phase(t);
        self.anneal.anneal(phases[i].0, phases[i].1, pct)
    }
}

impl LrScheduler for OneCycleLR {
    core_methods!(
        OneCycleLR,
        [
            "max_lrs" => max_lrs: Vec<f64>,
            "total_steps" => total_steps: i64,
            "pct_start" => pct_start: f64,
            "div_factor" => div_factor: f64,
            "final_div_factor" => final_div_factor: f64
        ]
    );
    fn step(&mut self) {
        let t = self.core.advance();
        assert!(
            t <= self.total_steps,
            "OneCycleLR: tried to step {t} times; the schedule has total_steps = {}",
            self.total_steps
        );
        let lrs = (0..self.core.cells.len())
            .map(|g| self.rate(g, t))
            .collect();
        write(&mut self.core, lrs);
        if let Some(m) = &self.momentum {
            m.write(|_, base, max| self.momentum_at(t, base, max));
        }
    }
}

/// The amplitude policy of [`CyclicLR`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CyclicMode {
    /// Constant amplitude (the default).
    Triangular,
    /// Amplitude halved every cycle.
    Triangular2,
    /// Amplitude scaled by `gamma^iteration`.
    ExpRange {
        /// The per-iteration factor.
        gamma: f64,
    },
}

/// What a custom [`CyclicLR`] scale function receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleMode {
    /// The cycle number (from 1).
    Cycle,
    /// The iteration number.
    Iterations,
}

type ScaleFn = Box<dyn Fn(f64) -> f64 + Send + Sync>;

/// Cyclical learning rates, like `CyclicLR`: the rate goes from `base_lr`
/// up to `max_lr` in `step_size_up` iterations and back down in
/// `step_size_down` (default: the same), the amplitude scaled by the mode's
/// policy. Step it once per batch. It sets the groups' rates to `base_lr`
/// at construction, as PyTorch does. The momentum moves the other way,
/// from `max_momentum` (0.9) down to `base_momentum` (0.8) at the peak
/// (see [`cycle_momentum`](CyclicLR::cycle_momentum)).
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::{SGD, lr_scheduler::{CyclicLR, LrScheduler}};
/// let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 0.1);
/// let mut sched = CyclicLR::new(&opt, 0.0, 1.0).step_size_up(2);
/// let mut lrs = vec![sched.get_last_lr()[0]];
/// for _ in 0..4 {
///     sched.step();
///     lrs.push(sched.get_last_lr()[0]);
/// }
/// assert_eq!(lrs, [0.0, 0.5, 1.0, 0.5, 0.0]);
/// ```
pub struct CyclicLR {
    pub(super) core: Core,
    pub(super) max_lrs: Vec<f64>,
    pub(super) step_size_up: f64,
    pub(super) step_size_down: Option<f64>,
    pub(super) mode: CyclicMode,
    scale_fn: Option<(ScaleFn, ScaleMode)>,
    momentum: Option<MomentumCycle>,
}

impl CyclicLR {
    /// Cycles every group between `base_lr` and `max_lr`, with PyTorch's
    /// defaults: `step_size_up` 2000, triangular.
    pub fn new(opt: &(impl Optimizer + ?Sized), base_lr: f64, max_lr: f64) -> CyclicLR {
        let n = opt.param_groups().len();
        Self::with_lrs(opt, &vec![base_lr; n], &vec![max_lr; n])
    }

    /// Like [`new`](Self::new) with one base and one peak rate per group.
    pub fn with_lrs(
        opt: &(impl Optimizer + ?Sized),
        base_lrs: &[f64],
        max_lrs: &[f64],
    ) -> CyclicLR {
        let mut core = Core::new(opt);
        let n = core.cells.len();
        assert!(
            base_lrs.len() == n && max_lrs.len() == n,
            "CyclicLR: expected {n} base_lr and max_lr values (one per group), got {} and {}",
            base_lrs.len(),
            max_lrs.len()
        );
        for (c, &b) in core.cells.iter().zip(base_lrs) {
            c.set(b);
        }
        core.base_lrs = base_lrs.to_vec();
        let mut s = CyclicLR {
            core,
            max_lrs: max_lrs.to_vec(),
            step_size_up: 2000.0,
            step_size_down: None,
            mode: CyclicMode::Triangular,
            scale_fn: None,
            momentum: MomentumCycle::of(opt, 0.8, 0.9),
        };
        s.step();
        s
    }

    momentum_builders!("CyclicLR", recompute);

    /// Iterations from base to peak (default 2000).
    pub fn step_size_up(mut self, n: usize) -> Self {
        assert!(n > 0, "CyclicLR: step_size_up must be positive");
        self.step_size_up = n as f64;
        self.recompute()
    }

    /// Iterations from peak back to base (default: `step_size_up`).
    pub fn step_size_down(mut self, n: usize) -> Self {
        self.step_size_down = Some(n as f64);
        self.recompute()
    }

    /// The amplitude policy.
    pub fn mode(mut self, mode: CyclicMode) -> Self {
        self.mode = mode;
        self.recompute()
    }

    /// A custom amplitude scale `f(x)` with `x` the cycle or the iteration
    /// (replaces the mode's policy), like `scale_fn` and `scale_mode`.
    pub fn scale_fn(
        mut self,
        f: impl Fn(f64) -> f64 + Send + Sync + 'static,
        mode: ScaleMode,
    ) -> Self {
        self.scale_fn = Some((Box::new(f), mode));
        self.recompute()
    }

    fn recompute(mut self) -> Self {
        assert!(
            self.core.last_epoch <= 0,
            "CyclicLR: options must be set before the first step"
        );
        self.core.last_epoch = -1;
        self.step();
        self
    }

    fn scale(&self, cycle: f64, iteration: f64) -> f64 {
        if let Some((f, mode)) = &self.scale_fn {
            return f(match mode {
                ScaleMode::Cycle => cycle,
                ScaleMode::Iterations => iteration,
            });
        }
        match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange { gamma } => gamma.powf(iteration),
        }
    }

    /// How far up the cycle the current iteration is (0 at the base, 1 at
    /// the peak) and the amplitude scale, kept apart so that the products
    /// round as PyTorch's do.
    fn height(&self) -> (f64, f64) {
        let up = self.step_size_up;
        let total = up + self.step_size_down.unwrap_or(up);
        let ratio = up / total;
        let e = self.core.last_epoch as f64;
        let cycle = (1.0 + e / total).floor();
        let x = 1.0 + e / total - cycle;
        let factor = if x <= ratio {
            x / ratio
        } else {
            (x - 1.0) / (ratio - 1.0)
        };
        (factor, self.scale(cycle, e))
    }

    pub(super) fn rates(&self) -> Vec<f64> {
        let (factor, scale) = self.height();
        self.core
            .base_lrs
            .iter()
            .zip(&self.max_lrs)
            .map(|(&b, &m)| b + (m - b) * factor * scale)
            .collect()
    }
}

impl LrScheduler for CyclicLR {
    core_methods!(
        CyclicLR,
        ["max_lrs" => max_lrs: Vec<f64>, "step_size_up" => step_size_up: f64]
    );
    fn step(&mut self) {
        self.core.advance();
        let lrs = self.rates();
        write(&mut self.core, lrs);
        if let Some(m) = &self.momentum {
            let (factor, scale) = self.height();
            m.write(|_, base, max| max - (max - base) * factor * scale);
        }
    }
}
