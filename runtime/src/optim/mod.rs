//! Optimizers, like `torch.optim`: [`SGD`], [`Adam`], [`AdamW`],
//! [`RMSprop`], parameter groups, learning-rate schedulers and gradient
//! clipping.
//!
//! Updates follow `torch.optim`'s single-tensor algorithms to float
//! rounding. They run under no-grad semantics, in place, in one pass over
//! each parameter's data; parameters without a gradient are skipped.
//!
//! ```
//! use kiln_runtime::{Device, Tensor};
//! use kiln_runtime::nn::{Forward, Linear, Module};
//! use kiln_runtime::optim::{Optimizer, SGD};
//! let fc = Linear::new(3, 1, &Device::Cpu);
//! let mut opt = SGD::new(fc.parameters(), 0.1).momentum(0.9);
//! let loss = fc.forward(&Tensor::ones([2, 3])).sum();
//! opt.zero_grad();
//! loss.backward();
//! opt.step();
//! ```

/// The [`Optimizer`] methods every optimizer writes alike: its parameter
/// groups (the `Vec<ParamGroup>` at `self.$groups`) and the kind of
/// momentum schedulers may cycle.
macro_rules! group_accessors {
    ($($groups:tt).+, $momentum:expr) => {
        fn param_groups(&self) -> &[ParamGroup] {
            &self.$($groups).+
        }

        fn param_groups_mut(&mut self) -> &mut [ParamGroup] {
            &mut self.$($groups).+
        }

        fn momentum_kind(&self) -> Option<MomentumKind> {
            Some($momentum)
        }
    };
}

/// `new` and `with_groups` of an optimizer over parameter groups:
/// `with_groups` checks the default learning rate (`$label` names the
/// optimizer in the panic) and gives it to the groups that set none
/// ([`Groups::new`](options::Groups::new), with the default options
/// `$defaults`), then builds the optimizer from those with `$build`.
macro_rules! group_constructors {
    (
        $name:ident, $label:expr, $defaults:expr, |$core:ident| $build:expr;
        $(#[$new_doc:meta])*
        new;
        $(#[$groups_doc:meta])*
        with_groups;
    ) => {
        $(#[$new_doc])*
        pub fn new(params: Vec<Tensor>, lr: f64) -> $name {
            $name::with_groups(vec![ParamGroup::new(params)], lr)
        }

        $(#[$groups_doc])*
        pub fn with_groups(groups: Vec<ParamGroup>, lr: f64) -> $name {
            let $core = Groups::new($label, groups, lr, $defaults);
            $build
        }
    };
}

/// Builder methods of [`ParamGroup`] that set one option.
macro_rules! group_options {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $name: $ty) -> Self {
            self.$name = Some($name);
            self
        }
    )*};
}

mod adam;
mod clip;
mod lbfgs;
pub mod lr_scheduler;
mod options;
mod rmsprop;
mod sgd;
mod state;

pub use adam::{Adam, AdamW};
pub use clip::{clip_grad_norm_, clip_grad_value_};
pub use lbfgs::LBFGS;
pub use rmsprop::RMSprop;
pub use sgd::SGD;
pub use state::LoadStateError;

use crate::backend::{self, OptimStep};
use crate::dtype::Element;
use crate::io::Dict;
use crate::{DType, Device, Tensor};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A learning rate shared between an optimizer's parameter group and the
/// schedulers driving it (so `scheduler.step()` needs no borrow of the
/// optimizer). It also holds the group's `initial_lr`, which the first
/// scheduler built on the group records (PyTorch's
/// `group.setdefault("initial_lr", group["lr"])`) and later schedulers use
/// as their base rate.
#[derive(Clone, Debug)]
pub struct SharedLr(Arc<AtomicU64>, Arc<AtomicU64>);

impl SharedLr {
    /// A new cell holding `lr`, with no initial rate recorded.
    pub fn new(lr: f64) -> Self {
        SharedLr(
            Arc::new(AtomicU64::new(lr.to_bits())),
            Arc::new(AtomicU64::new(f64::NAN.to_bits())),
        )
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    /// Replaces the value.
    pub fn set(&self, lr: f64) {
        self.0.store(lr.to_bits(), Ordering::Relaxed)
    }
    /// The recorded `initial_lr`, if a scheduler has recorded one.
    pub fn initial_lr(&self) -> Option<f64> {
        let v = f64::from_bits(self.1.load(Ordering::Relaxed));
        (!v.is_nan()).then_some(v)
    }
    /// Records `lr` as the `initial_lr` (replacing any earlier one).
    pub fn set_initial_lr(&self, lr: f64) {
        self.1.store(lr.to_bits(), Ordering::Relaxed)
    }
    /// The recorded `initial_lr`, recording the current value first if
    /// there is none (PyTorch's `setdefault`).
    pub fn initial_lr_or_record(&self) -> f64 {
        self.initial_lr().unwrap_or_else(|| {
            let lr = self.get();
            self.set_initial_lr(lr);
            lr
        })
    }
}

/// A momentum (SGD's `momentum`, Adam's `beta1`) shared between a
/// parameter group and a scheduler that cycles it ([`OneCycleLR`] and
/// [`CyclicLR`] with `cycle_momentum`, PyTorch's default). While set, it
/// replaces the group's `momentum` (or the first of its `betas`), as
/// PyTorch's schedulers overwrite `group["momentum"]`.
///
/// [`OneCycleLR`]: lr_scheduler::OneCycleLR
/// [`CyclicLR`]: lr_scheduler::CyclicLR
#[derive(Clone, Debug)]
pub struct SharedMomentum(Arc<AtomicU64>);

impl SharedMomentum {
    fn new() -> Self {
        SharedMomentum(Arc::new(AtomicU64::new(f64::NAN.to_bits())))
    }
    /// The value a scheduler set, if any.
    pub fn get(&self) -> Option<f64> {
        let v = f64::from_bits(self.0.load(Ordering::Relaxed));
        (!v.is_nan()).then_some(v)
    }
    /// Sets the value.
    pub fn set(&self, m: f64) {
        self.0.store(m.to_bits(), Ordering::Relaxed)
    }
    /// Unsets it: the group's own option applies again.
    pub fn clear(&self) {
        self.set(f64::NAN)
    }
}

/// Which hyper-parameter a momentum-cycling scheduler drives, like
/// PyTorch's check for `"momentum"` or `"betas"` in `optimizer.defaults`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MomentumKind {
    /// The group's `momentum` (SGD, RMSprop).
    Momentum,
    /// The first of the group's `betas` (Adam, AdamW).
    Beta1,
}

/// A set of parameters with its own learning rate and options, like one
/// dict of PyTorch's `optimizer.param_groups`.
///
/// Options left `None` use the optimizer's defaults (those given to its
/// constructor and builder methods), read at every step.
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::{Optimizer, ParamGroup, SGD};
/// let backbone = vec![Tensor::zeros([3]).requires_grad_(true)];
/// let head = vec![Tensor::zeros([2]).requires_grad_(true)];
/// let opt = SGD::with_groups(
///     vec![ParamGroup::new(backbone).lr(1e-5), ParamGroup::new(head)],
///     1e-2,
/// )
/// .momentum(0.9);
/// assert_eq!(opt.param_groups()[0].get_lr(), 1e-5);
/// assert_eq!(opt.param_groups()[1].get_lr(), 1e-2);
/// ```
pub struct ParamGroup {
    /// The parameters updated with these options.
    pub params: Vec<Tensor>,
    lr: SharedLr,
    lr_given: bool,
    cycled_momentum: SharedMomentum,
    /// L2 penalty (decoupled for AdamW).
    pub weight_decay: Option<f64>,
    /// Momentum factor (SGD, RMSprop).
    pub momentum: Option<f64>,
    /// Dampening for momentum (SGD).
    pub dampening: Option<f64>,
    /// Nesterov momentum (SGD).
    pub nesterov: Option<bool>,
    /// `(beta1, beta2)` (Adam, AdamW).
    pub betas: Option<(f64, f64)>,
    /// Term added to the denominator (Adam, AdamW, RMSprop).
    pub eps: Option<f64>,
    /// Smoothing constant (RMSprop).
    pub alpha: Option<f64>,
    /// Normalise by the estimated variance (RMSprop).
    pub centered: Option<bool>,
    /// AMSGrad variant (Adam, AdamW).
    pub amsgrad: Option<bool>,
}

impl Clone for ParamGroup {
    /// A group over the same parameters (shared handles, not copies) and the
    /// same learning-rate cell, like Python's `dict(group)`.
    fn clone(&self) -> Self {
        ParamGroup {
            params: self.params.iter().map(Tensor::shallow_clone).collect(),
            lr: self.lr.clone(),
            lr_given: self.lr_given,
            cycled_momentum: self.cycled_momentum.clone(),
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            dampening: self.dampening,
            nesterov: self.nesterov,
            betas: self.betas,
            eps: self.eps,
            alpha: self.alpha,
            centered: self.centered,
            amsgrad: self.amsgrad,
        }
    }
}

impl std::fmt::Debug for ParamGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes: Vec<&[usize]> = self.params.iter().map(Tensor::shape).collect();
        f.debug_struct("ParamGroup")
            .field("params", &shapes)
            .field("lr", &self.get_lr())
            .field("weight_decay", &self.weight_decay)
            .field("momentum", &self.momentum)
            .field("dampening", &self.dampening)
            .field("nesterov", &self.nesterov)
            .field("betas", &self.betas)
            .field("eps", &self.eps)
            .field("alpha", &self.alpha)
            .field("centered", &self.centered)
            .field("amsgrad", &self.amsgrad)
            .finish()
    }
}

impl ParamGroup {
    /// A group of `params` using the optimizer's defaults.
    pub fn new(params: Vec<Tensor>) -> Self {
        ParamGroup {
            params,
            lr: SharedLr::new(0.0),
            lr_given: false,
            cycled_momentum: SharedMomentum::new(),
            weight_decay: None,
            momentum: None,
            dampening: None,
            nesterov: None,
            betas: None,
            eps: None,
            alpha: None,
            centered: None,
            amsgrad: None,
        }
    }
    /// Sets this group's learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = SharedLr::new(lr);
        self.lr_given = true;
        self
    }
    group_options! {
        /// Sets this group's weight decay.
        weight_decay: f64;
        /// Sets this group's momentum.
        momentum: f64;
        /// Sets this group's eps.
        eps: f64;
    }
    /// Sets this group's betas.
    pub fn betas(mut self, b1: f64, b2: f64) -> Self {
        self.betas = Some((b1, b2));
        self
    }
    /// The current learning rate, like `group["lr"]`.
    pub fn get_lr(&self) -> f64 {
        self.lr.get()
    }
    /// Replaces the learning rate, like `group["lr"] = lr`.
    pub fn set_lr(&self, lr: f64) {
        self.lr.set(lr)
    }
    /// The shared cell holding the learning rate (used by schedulers).
    pub fn lr_cell(&self) -> &SharedLr {
        &self.lr
    }
    /// The shared cell a momentum-cycling scheduler writes (see
    /// [`SharedMomentum`]).
    pub fn momentum_cell(&self) -> &SharedMomentum {
        &self.cycled_momentum
    }
    /// The momentum this group steps with: a cycling scheduler's value,
    /// else [`momentum`](ParamGroup::momentum), else `default` (the
    /// optimizer's).
    pub fn momentum_or(&self, default: f64) -> f64 {
        self.cycled_momentum
            .get()
            .unwrap_or(self.momentum.unwrap_or(default))
    }
    /// The betas this group steps with: [`betas`](ParamGroup::betas) (else
    /// `default`), the first replaced by a cycling scheduler's value.
    pub fn betas_or(&self, default: (f64, f64)) -> (f64, f64) {
        let (b1, b2) = self.betas.unwrap_or(default);
        (self.cycled_momentum.get().unwrap_or(b1), b2)
    }
}

/// Resolves the groups' learning rates against the optimizer default.
fn resolve_lrs(groups: &mut [ParamGroup], lr: f64) {
    for g in groups {
        if !g.lr_given {
            g.lr = SharedLr::new(lr);
            g.lr_given = true;
        }
    }
}

/// An optimizer, like `torch.optim.Optimizer`.
pub trait Optimizer {
    /// Performs one update of every parameter that has a gradient.
    fn step(&mut self);

    /// The parameter groups.
    fn param_groups(&self) -> &[ParamGroup];

    /// The parameter groups, mutably (to change options between steps).
    fn param_groups_mut(&mut self) -> &mut [ParamGroup];

    /// Clears every parameter's gradient (PyTorch's default
    /// `set_to_none=True`).
    fn zero_grad(&self) {
        for g in self.param_groups() {
            for p in &g.params {
                p.set_grad(None);
            }
        }
    }

    /// The first group's learning rate.
    fn lr(&self) -> f64 {
        self.param_groups().first().map_or(0.0, ParamGroup::get_lr)
    }

    /// Sets every group's learning rate.
    fn set_lr(&mut self, lr: f64) {
        for g in self.param_groups() {
            g.set_lr(lr);
        }
    }

    /// What a momentum-cycling scheduler drives in this optimizer's
    /// groups, or `None` when it has no momentum (LBFGS).
    fn momentum_kind(&self) -> Option<MomentumKind> {
        None
    }

    /// The shared learning-rate cells of every group, in order.
    fn lr_cells(&self) -> Vec<SharedLr> {
        self.param_groups()
            .iter()
            .map(|g| g.lr_cell().clone())
            .collect()
    }

    /// The optimizer's state with PyTorch's structure, like
    /// `optimizer.state_dict()`: `"state"` maps each parameter's index
    /// (numbered across groups) to its buffers (`momentum_buffer`;
    /// `step`, `exp_avg`, `exp_avg_sq`; `square_avg`, ...), and
    /// `"param_groups"` lists each group's hyper-parameters with its
    /// parameter indices under `"params"`. Tensors are the live buffers
    /// (save or copy them before stepping on).
    fn state_dict(&self) -> Dict;

    /// Restores a state from [`state_dict`](Optimizer::state_dict), from a
    /// kiln checkpoint or from PyTorch's `optimizer.state_dict()` (e.g. the
    /// `optimizer_state_dict` of a `.pth` checkpoint), like
    /// `optimizer.load_state_dict`: group hyper-parameters (learning rates
    /// included) and per-parameter buffers are replaced. Everything is
    /// checked first (group and parameter counts, buffer shapes, types);
    /// on any mismatch the optimizer is untouched and the error lists them
    /// all.
    fn load_state_dict(&mut self, state: &Dict) -> Result<(), LoadStateError>;
}

/// Per-parameter optimizer state: buffers keyed by parameter identity.
pub(crate) struct StateMap<S> {
    entries: std::collections::HashMap<usize, (Tensor, S)>,
}

impl<S> Default for StateMap<S> {
    fn default() -> Self {
        StateMap {
            entries: std::collections::HashMap::new(),
        }
    }
}

impl<S> StateMap<S> {
    pub(crate) fn get(&self, p: &Tensor) -> Option<&S> {
        self.entries.get(&p.impl_key()).map(|(_, s)| s)
    }
    /// Replaces every entry.
    pub(crate) fn replace(&mut self, entries: Vec<(Tensor, S)>) {
        self.entries = entries
            .into_iter()
            .map(|(p, s)| (p.impl_key(), (p, s)))
            .collect();
    }
    pub(crate) fn get_or_insert_with(&mut self, p: &Tensor, f: impl FnOnce() -> S) -> &mut S {
        // The tensor handle is kept so that its address is never reused.
        &mut self
            .entries
            .entry(p.impl_key())
            .or_insert_with(|| (p.shallow_clone(), f()))
            .1
    }
}

/// One element-wise update rule applied to a parameter, its gradient and
/// its state buffers, all as contiguous slices of the same length.
pub(crate) trait Kernel: Sync {
    fn run<T: num_traits::Float + Element>(&self, p: &mut [T], g: &[T], state: &mut [&mut [T]]);

    /// The same update as data, for a device backend's fused kernel
    /// (state in the order `run` takes it).
    fn fused(&self) -> crate::backend::OptimStep;
}

/// One optimizer step of one parameter: the learning rate, the group's
/// options and what else the rule needs.
pub(crate) struct Step {
    pub lr: f64,
    pub o: options::Options,
    pub rule: Rule,
}

/// The update rule of a [`Step`].
#[derive(Clone, Copy)]
pub(crate) enum Rule {
    /// SGD; `first`: the momentum buffer starts as the gradient.
    Sgd { first: bool },
    /// Adam, or AdamW when `decoupled`; `step` counts from 1.
    Adam { decoupled: bool, step: u64 },
    /// RMSprop.
    RmsProp,
}

impl Kernel for Step {
    fn run<T: num_traits::Float + Element>(&self, p: &mut [T], g: &[T], state: &mut [&mut [T]]) {
        let (lr, o) = (self.lr, &self.o);
        match self.rule {
            Rule::Sgd { first } => sgd::run(lr, o, first, p, g, state),
            Rule::Adam { decoupled, step } => adam::run(lr, o, decoupled, step, p, g, state),
            Rule::RmsProp => rmsprop::run(lr, o, p, g, state),
        }
    }

    fn fused(&self) -> OptimStep {
        let (lr, o) = (self.lr, &self.o);
        match self.rule {
            Rule::Sgd { first } => OptimStep::Sgd {
                lr,
                momentum: o.momentum,
                dampening: o.dampening,
                weight_decay: o.weight_decay,
                nesterov: o.nesterov,
                first,
            },
            Rule::Adam { decoupled, step } => OptimStep::Adam {
                lr,
                betas: o.betas,
                eps: o.eps,
                weight_decay: o.weight_decay,
                decoupled,
                step,
            },
            Rule::RmsProp => OptimStep::RmsProp {
                lr,
                alpha: o.alpha,
                eps: o.eps,
                weight_decay: o.weight_decay,
                momentum: o.momentum,
                centered: o.centered,
            },
        }
    }
}

/// Runs `k` over `p`'s data in place. CPU contiguous float32/float64
/// tensors are updated through their storage directly; device tensors by
/// the backend's fused kernel; anything else goes through a CPU copy that is
/// written back.
pub(crate) fn update_param<K: Kernel>(
    op: &str,
    p: &Tensor,
    grad: &Tensor,
    state: &[&Tensor],
    k: &K,
) {
    crate::ops::device::same_device(op, &[p, grad]);
    if backend::of(p.device()).fused_optimizers() {
        return update_param_device(op, p, grad, state, k);
    }
    let direct = |t: &Tensor| t.device() == Device::Cpu && t.is_contiguous();
    if !direct(p) || !state.iter().all(|s| direct(s)) {
        let cpu = |t: &Tensor| t.to_device(Device::Cpu).deep_copy();
        let pc = cpu(p);
        let sc: Vec<Tensor> = state.iter().map(|s| cpu(s)).collect();
        let sr: Vec<&Tensor> = sc.iter().collect();
        update_param(op, &pc, &grad.to_device(Device::Cpu), &sr, k);
        crate::autograd::no_grad(|| {
            p.copy_(&pc);
            for (s, c) in state.iter().zip(&sc) {
                s.copy_(c);
            }
        });
        return;
    }
    match p.dtype() {
        DType::F32 => run_direct::<f32, K>(op, p, grad, state, k),
        DType::F64 => run_direct::<f64, K>(op, p, grad, state, k),
        DType::F16 | DType::BF16 => run_half(op, p, grad, state, k),
        d => panic!("{op}: parameters of dtype {d} are not supported; use a floating-point dtype"),
    }
}

/// A float16 or bfloat16 parameter: PyTorch keeps its state buffers in
/// the parameter's dtype (checked with PyTorch 2.15 on the CPU for SGD,
/// Adam, AdamW and RMSprop), so they stay half here too; the update itself
/// is computed in float32 and rounded once per buffer (PyTorch rounds after
/// each of its ops, so results can differ in the last bit).
fn run_half<K: Kernel>(op: &str, p: &Tensor, grad: &Tensor, state: &[&Tensor], k: &K) {
    let f32_copy = |t: &Tensor| t.detach().to_dtype(DType::F32).deep_copy();
    let pc = f32_copy(p);
    let sc: Vec<Tensor> = state.iter().map(|s| f32_copy(s)).collect();
    let sr: Vec<&Tensor> = sc.iter().collect();
    run_direct::<f32, K>(op, &pc, &f32_copy(grad), &sr, k);
    write_back(p, state, &pc, &sc);
}

fn run_direct<T: num_traits::Float + Element, K: Kernel>(
    op: &str,
    p: &Tensor,
    grad: &Tensor,
    state: &[&Tensor],
    k: &K,
) {
    let grad = own_grad(op, p, grad, state, T::DTYPE);
    grad.with_slice::<T, _>(op, |g| {
        let mut pg = p.write_storage();
        let mut sg: Vec<_> = state.iter().map(|s| s.write_storage()).collect();
        let range = |t: &Tensor| t.layout().contiguous_range().expect("contiguous");
        let pd = &mut T::slice_mut(pg.cpu_mut(op)).expect("dtype checked")[range(p)];
        let mut sd: Vec<&mut [T]> = sg
            .iter_mut()
            .zip(state)
            .map(|(guard, s)| {
                &mut T::slice_mut(guard.cpu_mut(op)).unwrap_or_else(|| {
                    panic!(
                        "{op}: optimizer state has dtype {} but the parameter {}",
                        s.dtype(),
                        T::DTYPE
                    )
                })[range(s)]
            })
            .collect();
        run_split(k, pd, g, &mut sd);
    });
    // An in-place write, like PyTorch's `param.add_(...)`: a graph that
    // saved the parameter before the step fails its version check.
    bump_versions(p, state);
}

/// `k` over the slices, split across the CPU pool when they are long: an
/// update is a handful of flops per element on three or four streams, so a
/// large parameter's step is memory-bound and runs nearly twice as fast on
/// two cores (an MLP's 400k-element weight: about a fifth of its step).
fn run_split<T: num_traits::Float + Element, K: Kernel>(
    k: &K,
    p: &mut [T],
    g: &[T],
    state: &mut [&mut [T]],
) {
    use kiln_kernels::cpu::parallel::{num_threads, should_parallelize};
    use rayon::prelude::*;
    // One update costs about as much as four elementwise adds (it streams
    // the parameter, its gradient and up to three state buffers).
    if !should_parallelize(p.len(), 4) {
        return k.run(p, g, state);
    }
    // A few chunks per thread, each a whole number of cache lines.
    let chunk = p.len().div_ceil(2 * num_threads()).div_ceil(64) * 64;
    let mut states: Vec<_> = state.iter_mut().map(|s| s.chunks_mut(chunk)).collect();
    // One chunk of the parameter, of its gradient and of each state buffer.
    type Part<'a, T> = (&'a mut [T], &'a [T], Vec<&'a mut [T]>);
    let parts: Vec<Part<'_, T>> = p
        .chunks_mut(chunk)
        .zip(g.chunks(chunk))
        .map(|(p, g)| {
            let s = states
                .iter_mut()
                .map(|it| it.next().expect("same length"))
                .collect();
            (p, g, s)
        })
        .collect();
    parts
        .into_par_iter()
        .for_each(|(p, g, mut s)| k.run(p, g, &mut s));
}

/// `grad` checked against `p`'s shape, in `dtype`, and copied when it
/// aliases the parameter or a state buffer (whose storage the step locks).
fn own_grad(op: &str, p: &Tensor, grad: &Tensor, state: &[&Tensor], dtype: DType) -> Tensor {
    assert_eq!(
        grad.shape(),
        p.shape(),
        "{op}: gradient of shape {:?} does not match the parameter's shape {:?}",
        grad.shape(),
        p.shape()
    );
    let aliased = grad.shares_storage_with(p) || state.iter().any(|s| grad.shares_storage_with(s));
    if grad.dtype() != dtype {
        grad.to_dtype(dtype)
    } else if aliased {
        grad.deep_copy()
    } else {
        grad.shallow_clone()
    }
}

/// Copies the updated copies `pc` and `sc` back into the parameter and its
/// state buffers.
fn write_back(p: &Tensor, state: &[&Tensor], pc: &Tensor, sc: &[Tensor]) {
    crate::autograd::no_grad(|| {
        p.copy_(pc);
        for (s, c) in state.iter().zip(sc) {
            s.copy_(c);
        }
    });
}

fn bump_versions(p: &Tensor, state: &[&Tensor]) {
    p.bump_version();
    for s in state {
        s.bump_version();
    }
}

/// [`update_param`] for a parameter on a device: one fused kernel launch
/// of its backend, no host round-trip. The kernels need the parameter and its state
/// contiguous and of one dtype; others are updated through such copies,
/// written back.
fn update_param_device<K: Kernel>(op: &str, p: &Tensor, grad: &Tensor, state: &[&Tensor], k: &K) {
    let mut all = vec![p, grad];
    all.extend(state);
    crate::ops::device::same_device(op, &all);
    let grad = own_grad(op, p, grad, state, p.dtype());
    let dt = p.dtype();
    let direct = |t: &Tensor| t.is_contiguous() && t.dtype() == dt;
    if direct(p) && state.iter().all(|s| direct(s)) {
        backend::of(p.device()).optim_step(&k.fused(), p, &grad, state);
        return bump_versions(p, state);
    }
    let own = |t: &Tensor| t.detach().to_dtype(dt).deep_copy();
    let pc = own(p);
    let sc: Vec<Tensor> = state.iter().map(|s| own(s)).collect();
    backend::of(p.device()).optim_step(&k.fused(), &pc, &grad, &sc.iter().collect::<Vec<_>>());
    write_back(p, state, &pc, &sc);
}

/// A new zero state buffer shaped like `p` (same dtype and device).
pub(crate) fn zeros_state(p: &Tensor) -> Tensor {
    p.detach().zeros_like()
}

/// Converts an `f64` hyper-parameter to the element type.
#[inline]
pub(crate) fn c<T: num_traits::Float>(x: f64) -> T {
    T::from(x).expect("finite hyper-parameter")
}
