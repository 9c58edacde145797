//! Stochastic gradient descent with momentum, dampening, Nesterov and
//! weight decay.

use super::state::{load, save};
use super::{
    Kernel, LoadStateError, MomentumKind, Optimizer, ParamGroup, StateMap, c, resolve_lrs,
    update_param, zeros_state,
};
use crate::Tensor;
use crate::backend::OptimStep;
use crate::dtype::Element;
use crate::io::{Dict, Value};

/// SGD, like `torch.optim.SGD`. For each parameter with gradient `g`:
///
/// ```text
/// g ← g + weight_decay · p
/// if momentum ≠ 0:
///     b ← g                                   (first step)
///     b ← momentum · b + (1 − dampening) · g  (later steps)
///     g ← g + momentum · b   if nesterov, else  g ← b
/// p ← p − lr · g
/// ```
pub struct SGD {
    groups: Vec<ParamGroup>,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    state: StateMap<Tensor>,
}

impl SGD {
    /// Plain SGD over `params` with learning rate `lr`; chain
    /// `.momentum(..)`, `.dampening(..)`, `.nesterov(..)`,
    /// `.weight_decay(..)` to set the defaults.
    pub fn new(params: Vec<Tensor>, lr: f64) -> SGD {
        SGD::with_groups(vec![ParamGroup::new(params)], lr)
    }

    /// SGD over several parameter groups; options a group leaves unset
    /// take the defaults (`lr` here, the rest from the builder methods).
    pub fn with_groups(mut groups: Vec<ParamGroup>, lr: f64) -> SGD {
        assert!(lr >= 0.0, "SGD: invalid learning rate: {lr}");
        resolve_lrs(&mut groups, lr);
        SGD {
            groups,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            state: StateMap::default(),
        }
    }

    /// Momentum factor (default 0).
    pub fn momentum(mut self, momentum: f64) -> Self {
        assert!(momentum >= 0.0, "SGD: invalid momentum value: {momentum}");
        self.momentum = momentum;
        self
    }

    /// Dampening for momentum (default 0).
    pub fn dampening(mut self, dampening: f64) -> Self {
        self.dampening = dampening;
        self
    }

    /// L2 penalty (default 0).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        assert!(
            weight_decay >= 0.0,
            "SGD: invalid weight_decay value: {weight_decay}"
        );
        self.weight_decay = weight_decay;
        self
    }

    /// Nesterov momentum (default false; needs momentum > 0 and zero
    /// dampening, checked at each step).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// The momentum buffer of `param`, like
    /// `optimizer.state[param]["momentum_buffer"]`.
    pub fn momentum_buffer(&self, param: &Tensor) -> Option<Tensor> {
        self.state.get(param).map(Tensor::shallow_clone)
    }
}

struct SgdKernel {
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    first: bool,
}

impl Kernel for SgdKernel {
    fn run<T: num_traits::Float + Element>(&self, p: &mut [T], g: &[T], state: &mut [&mut [T]]) {
        let (lr, wd) = (c::<T>(self.lr), c::<T>(self.weight_decay));
        let (mom, damp) = (c::<T>(self.momentum), c::<T>(1.0 - self.dampening));
        let use_wd = self.weight_decay != 0.0;
        match state.first_mut() {
            None => {
                for (p, &g) in p.iter_mut().zip(g) {
                    let g = if use_wd { g + wd * *p } else { g };
                    *p = *p - lr * g;
                }
            }
            Some(buf) => {
                for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                    let g = if use_wd { g + wd * *p } else { g };
                    *b = if self.first { g } else { *b * mom + damp * g };
                    let d = if self.nesterov { g + mom * *b } else { *b };
                    *p = *p - lr * d;
                }
            }
        }
    }

    fn fused(&self) -> OptimStep {
        OptimStep::Sgd {
            lr: self.lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            first: self.first,
        }
    }
}

impl Optimizer for SGD {
    fn step(&mut self) {
        for g in &self.groups {
            let momentum = g.momentum_or(self.momentum);
            let dampening = g.dampening.unwrap_or(self.dampening);
            let nesterov = g.nesterov.unwrap_or(self.nesterov);
            if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                panic!("SGD: Nesterov momentum requires a momentum and zero dampening");
            }
            let mut k = SgdKernel {
                lr: g.get_lr(),
                momentum,
                dampening,
                nesterov,
                weight_decay: g.weight_decay.unwrap_or(self.weight_decay),
                first: false,
            };
            for p in &g.params {
                let Some(grad) = p.grad() else { continue };
                if momentum == 0.0 {
                    update_param("SGD.step", p, &grad, &[], &k);
                } else {
                    k.first = self.state.get(p).is_none();
                    let buf = self.state.get_or_insert_with(p, || zeros_state(p));
                    update_param("SGD.step", p, &grad, &[buf], &k);
                }
            }
        }
    }

    group_accessors!(groups, MomentumKind::Momentum);

    fn state_dict(&self) -> Dict {
        save(
            &self.groups,
            |g| {
                vec![
                    ("lr", Value::Float(g.get_lr())),
                    ("momentum", Value::Float(g.momentum_or(self.momentum))),
                    (
                        "dampening",
                        Value::Float(g.dampening.unwrap_or(self.dampening)),
                    ),
                    (
                        "weight_decay",
                        Value::Float(g.weight_decay.unwrap_or(self.weight_decay)),
                    ),
                    ("nesterov", Value::Bool(g.nesterov.unwrap_or(self.nesterov))),
                    ("maximize", Value::Bool(false)),
                    ("foreach", Value::None),
                    ("differentiable", Value::Bool(false)),
                    ("fused", Value::None),
                ]
            },
            |p| {
                self.state
                    .get(p)
                    .map(|b| vec![("momentum_buffer", Value::Tensor(b.shallow_clone()))])
            },
        )
    }

    fn load_state_dict(&mut self, sd: &Dict) -> Result<(), LoadStateError> {
        load(
            "SGD",
            &mut self.groups,
            &mut self.state,
            sd,
            |pr, g, at| {
                pr.unsupported_flags(g, &["maximize", "differentiable"], at);
                (
                    pr.float(g, "lr", at),
                    pr.float(g, "momentum", at),
                    pr.float(g, "dampening", at),
                    pr.float(g, "weight_decay", at),
                    pr.bool(g, "nesterov", at),
                )
            },
            |pr, s, p, at| pr.buffer(s, "momentum_buffer", p, at),
            |g, h| {
                // Every entry is `Some` once the checks passed.
                let (Some(lr), Some(mom), Some(damp), Some(wd), Some(nest)) = h else {
                    return;
                };
                g.set_lr(lr);
                g.momentum = Some(mom);
                g.momentum_cell().clear();
                g.dampening = Some(damp);
                g.weight_decay = Some(wd);
                g.nesterov = Some(nest);
            },
        )
    }
}
