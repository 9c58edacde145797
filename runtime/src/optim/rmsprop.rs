//! RMSprop.

use super::options::Opt::{Alpha, Centered, Eps, Momentum, WeightDecay};
use super::options::{Format, Groups, Options};
use super::state::step_tensor;
use super::{MomentumKind, Optimizer, ParamGroup, Rule, Step, c, update_param, zeros_state};
use crate::Tensor;
use crate::dtype::Element;
use crate::io::{Dict, Value};
use crate::optim::LoadStateError;

/// RMSprop's state dicts: PyTorch's `torch.optim.RMSprop` group keys.
const FORMAT: Format = Format {
    name: "RMSprop",
    options: &[Momentum, Alpha, Eps, Centered, WeightDecay],
    flags: &["capturable", "foreach", "maximize", "differentiable"],
    decoupled: None,
};

/// RMSprop, like `torch.optim.RMSprop` (defaults: alpha 0.99, eps 1e-8,
/// no weight decay, no momentum, not centered):
///
/// ```text
/// g ← g + weight_decay · p
/// s ← α s + (1 − α) g²
/// if centered: ḡ ← ḡ + (1 − α)(g − ḡ);  d ← √(s − ḡ²) + eps   else d ← √s + eps
/// if momentum > 0: b ← momentum · b + g / d;  p ← p − lr · b
/// else:            p ← p − lr · g / d
/// ```
pub struct RMSprop {
    core: Groups<RmsState>,
}

struct RmsState {
    step: u64,
    square_avg: Tensor,
    momentum_buffer: Option<Tensor>,
    grad_avg: Option<Tensor>,
}

impl RMSprop {
    group_constructors!(
        RMSprop, "RMSprop", Options::default(), |core| RMSprop { core };
        /// RMSprop over `params` with learning rate `lr`.
        new;
        /// Several parameter groups; unset group options take the defaults.
        with_groups;
    );

    setters! {
        in core.defaults;
        /// Smoothing constant (default 0.99).
        alpha: f64;
        /// Term added to the denominator (default 1e-8).
        eps: f64;
        /// L2 penalty (default 0).
        weight_decay: f64;
        /// Momentum factor (default 0).
        momentum: f64;
        /// Normalise by the centered second moment (default false).
        centered: bool;
    }

    /// `state[param]["square_avg"]`.
    pub fn square_avg(&self, param: &Tensor) -> Option<Tensor> {
        self.core
            .state
            .get(param)
            .map(|s| s.square_avg.shallow_clone())
    }
    /// `state[param]["momentum_buffer"]` (momentum > 0 only).
    pub fn momentum_buffer(&self, param: &Tensor) -> Option<Tensor> {
        self.core
            .state
            .get(param)
            .and_then(|s| s.momentum_buffer.as_ref().map(Tensor::shallow_clone))
    }
    /// `state[param]["grad_avg"]` (centered only).
    pub fn grad_avg(&self, param: &Tensor) -> Option<Tensor> {
        self.core
            .state
            .get(param)
            .and_then(|s| s.grad_avg.as_ref().map(Tensor::shallow_clone))
    }
    /// `state[param]["step"]`.
    pub fn step_count(&self, param: &Tensor) -> u64 {
        self.core.state.get(param).map_or(0, |s| s.step)
    }
}

/// RMSprop's update of one parameter with the options `o` (`state` holds
/// `square_avg`, then the momentum buffer when momentum is on, then
/// `grad_avg` when centered).
pub(super) fn run<T: num_traits::Float + Element>(
    lr: f64,
    o: &Options,
    p: &mut [T],
    g: &[T],
    state: &mut [&mut [T]],
) {
    let (lr, a, w, eps, wd, mom) = (
        c::<T>(lr),
        c::<T>(o.alpha),
        c::<T>(1.0 - o.alpha),
        c::<T>(o.eps),
        c::<T>(o.weight_decay),
        c::<T>(o.momentum),
    );
    let use_wd = o.weight_decay != 0.0;
    let (sq, rest) = state.split_first_mut().expect("square_avg");
    let (mut buf, rest) = if o.momentum > 0.0 {
        let (b, r) = rest.split_first_mut().expect("momentum_buffer");
        (Some(b), r)
    } else {
        (None, rest)
    };
    let mut gavg = if o.centered { rest.first_mut() } else { None };
    for i in 0..p.len() {
        let gi = if use_wd { g[i] + wd * p[i] } else { g[i] };
        let s = sq[i] * a + w * gi * gi;
        sq[i] = s;
        let avg = match &mut gavg {
            Some(ga) => {
                let m = ga[i] + w * (gi - ga[i]);
                ga[i] = m;
                (s - m * m).sqrt() + eps
            }
            None => s.sqrt() + eps,
        };
        match &mut buf {
            Some(b) => {
                let v = b[i] * mom + gi / avg;
                b[i] = v;
                p[i] = p[i] - lr * v;
            }
            None => p[i] = p[i] - lr * (gi / avg),
        }
    }
}

impl Optimizer for RMSprop {
    fn step(&mut self) {
        for g in &self.core.groups {
            let o = g.options(&self.core.defaults);
            let k = Step {
                lr: g.get_lr(),
                o,
                rule: Rule::RmsProp,
            };
            for p in &g.params {
                let Some(grad) = p.grad() else { continue };
                let s = self.core.state.get_or_insert_with(p, || RmsState {
                    step: 0,
                    square_avg: zeros_state(p),
                    momentum_buffer: None,
                    grad_avg: None,
                });
                if o.momentum > 0.0 && s.momentum_buffer.is_none() {
                    s.momentum_buffer = Some(zeros_state(p));
                }
                if o.centered && s.grad_avg.is_none() {
                    s.grad_avg = Some(zeros_state(p));
                }
                s.step += 1;
                let mut bufs = vec![&s.square_avg];
                if o.momentum > 0.0 {
                    bufs.extend(s.momentum_buffer.as_ref());
                }
                if o.centered {
                    bufs.extend(s.grad_avg.as_ref());
                }
                update_param("RMSprop.step", p, &grad, &bufs, &k);
            }
        }
    }

    group_accessors!(core.groups, MomentumKind::Momentum);

    fn state_dict(&self) -> Dict {
        self.core.save(&FORMAT, |s| {
            let mut e = vec![
                ("step", step_tensor(s.step)),
                ("square_avg", Value::Tensor(s.square_avg.shallow_clone())),
            ];
            if let Some(b) = &s.momentum_buffer {
                e.push(("momentum_buffer", Value::Tensor(b.shallow_clone())));
            }
            if let Some(a) = &s.grad_avg {
                e.push(("grad_avg", Value::Tensor(a.shallow_clone())));
            }
            e
        })
    }

    fn load_state_dict(&mut self, sd: &Dict) -> Result<(), LoadStateError> {
        self.core.load(&FORMAT, sd, |pr, s, p, at| {
            let (step, sq) = (pr.step(s, at), pr.required_buffer(s, "square_avg", p, at));
            let momentum_buffer = pr.buffer(s, "momentum_buffer", p, at);
            let grad_avg = pr.buffer(s, "grad_avg", p, at);
            Some(RmsState {
                step: step?,
                square_avg: sq?,
                momentum_buffer,
                grad_avg,
            })
        })
    }
}
