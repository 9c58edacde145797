//! Stochastic gradient descent with momentum, dampening, Nesterov and
//! weight decay.

use super::options::Opt::{Dampening, Momentum, Nesterov, WeightDecay};
use super::options::{Format, Groups, Options};
use super::{MomentumKind, Optimizer, ParamGroup, Rule, Step, c, update_param, zeros_state};
use crate::Tensor;
use crate::dtype::Element;
use crate::io::{Dict, Value};
use crate::optim::LoadStateError;

/// SGD's state dicts: PyTorch's `torch.optim.SGD` group keys.
const FORMAT: Format = Format {
    name: "SGD",
    options: &[Momentum, Dampening, WeightDecay, Nesterov],
    flags: &["maximize", "foreach", "differentiable", "fused"],
    decoupled: None,
};

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
    /// The momentum buffers are the state.
    core: Groups<Tensor>,
}

impl SGD {
    group_constructors!(
        SGD, "SGD", Options::default(), |core| SGD { core };
        /// Plain SGD over `params` with learning rate `lr`; chain
        /// `.momentum(..)`, `.dampening(..)`, `.nesterov(..)`,
        /// `.weight_decay(..)` to set the defaults.
        new;
        /// SGD over several parameter groups; options a group leaves unset
        /// take the defaults (`lr` here, the rest from the builder methods).
        with_groups;
    );

    setters! {
        in core.defaults;
        /// Momentum factor (default 0).
        momentum: f64 => assert!(momentum >= 0.0, "SGD: invalid momentum value: {momentum}");
        /// Dampening for momentum (default 0).
        dampening: f64;
        /// L2 penalty (default 0).
        weight_decay: f64 => assert!(
            weight_decay >= 0.0,
            "SGD: invalid weight_decay value: {weight_decay}"
        );
        /// Nesterov momentum (default false; needs momentum > 0 and zero
        /// dampening, checked at each step).
        nesterov: bool;
    }

    /// The momentum buffer of `param`, like
    /// `optimizer.state[param]["momentum_buffer"]`.
    pub fn momentum_buffer(&self, param: &Tensor) -> Option<Tensor> {
        self.core.state.get(param).map(Tensor::shallow_clone)
    }
}

/// SGD's update of one parameter with the options `o` (`first`: the
/// momentum buffer starts as the gradient; `state` holds it when momentum
/// is on).
pub(super) fn run<T: num_traits::Float + Element>(
    lr: f64,
    o: &Options,
    first: bool,
    p: &mut [T],
    g: &[T],
    state: &mut [&mut [T]],
) {
    let (lr, wd) = (c::<T>(lr), c::<T>(o.weight_decay));
    let (mom, damp) = (c::<T>(o.momentum), c::<T>(1.0 - o.dampening));
    let use_wd = o.weight_decay != 0.0;
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
                *b = if first { g } else { *b * mom + damp * g };
                let d = if o.nesterov { g + mom * *b } else { *b };
                *p = *p - lr * d;
            }
        }
    }
}

impl Optimizer for SGD {
    fn step(&mut self) {
        let state = &mut self.core.state;
        for g in &self.core.groups {
            let o = g.options(&self.core.defaults);
            if o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0) {
                panic!("SGD: Nesterov momentum requires a momentum and zero dampening");
            }
            let step = |first| Step {
                lr: g.get_lr(),
                o,
                rule: Rule::Sgd { first },
            };
            for p in &g.params {
                let Some(grad) = p.grad() else { continue };
                if o.momentum == 0.0 {
                    update_param("SGD.step", p, &grad, &[], &step(false));
                } else {
                    let first = state.get(p).is_none();
                    let buf = state.get_or_insert_with(p, || zeros_state(p));
                    update_param("SGD.step", p, &grad, &[buf], &step(first));
                }
            }
        }
    }

    group_accessors!(core.groups, MomentumKind::Momentum);

    fn state_dict(&self) -> Dict {
        self.core.save(&FORMAT, |buf| {
            vec![("momentum_buffer", Value::Tensor(buf.shallow_clone()))]
        })
    }

    fn load_state_dict(&mut self, sd: &Dict) -> Result<(), LoadStateError> {
        self.core.load(&FORMAT, sd, |pr, s, p, at| {
            pr.buffer(s, "momentum_buffer", p, at)
        })
    }
}
