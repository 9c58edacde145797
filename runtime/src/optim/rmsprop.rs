//! RMSprop.

use super::state::{load, save, step_tensor};
use super::{
    Kernel, LoadStateError, MomentumKind, Optimizer, ParamGroup, StateMap, c, resolve_lrs,
    update_param, zeros_state,
};
use crate::Tensor;
use crate::backend::OptimStep;
use crate::dtype::Element;
use crate::io::{Dict, Value};

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
    groups: Vec<ParamGroup>,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    momentum: f64,
    centered: bool,
    state: StateMap<RmsState>,
}

struct RmsState {
    step: u64,
    square_avg: Tensor,
    momentum_buffer: Option<Tensor>,
    grad_avg: Option<Tensor>,
}

impl RMSprop {
    /// RMSprop over `params` with learning rate `lr`.
    pub fn new(params: Vec<Tensor>, lr: f64) -> RMSprop {
        RMSprop::with_groups(vec![ParamGroup::new(params)], lr)
    }

    /// Several parameter groups; unset group options take the defaults.
    pub fn with_groups(mut groups: Vec<ParamGroup>, lr: f64) -> RMSprop {
        assert!(lr >= 0.0, "RMSprop: invalid learning rate: {lr}");
        resolve_lrs(&mut groups, lr);
        RMSprop {
            groups,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            state: StateMap::default(),
        }
    }

    /// Smoothing constant (default 0.99).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }
    /// Term added to the denominator (default 1e-8).
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// L2 penalty (default 0).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
    /// Momentum factor (default 0).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    /// Normalise by the centered second moment (default false).
    pub fn centered(mut self, centered: bool) -> Self {
        self.centered = centered;
        self
    }

    /// `state[param]["square_avg"]`.
    pub fn square_avg(&self, param: &Tensor) -> Option<Tensor> {
        self.state.get(param).map(|s| s.square_avg.shallow_clone())
    }
    /// `state[param]["momentum_buffer"]` (momentum > 0 only).
    pub fn momentum_buffer(&self, param: &Tensor) -> Option<Tensor> {
        self.state
            .get(param)
            .and_then(|s| s.momentum_buffer.as_ref().map(Tensor::shallow_clone))
    }
    /// `state[param]["grad_avg"]` (centered only).
    pub fn grad_avg(&self, param: &Tensor) -> Option<Tensor> {
        self.state
            .get(param)
            .and_then(|s| s.grad_avg.as_ref().map(Tensor::shallow_clone))
    }
    /// `state[param]["step"]`.
    pub fn step_count(&self, param: &Tensor) -> u64 {
        self.state.get(param).map_or(0, |s| s.step)
    }
}

struct RmsKernel {
    lr: f64,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    momentum: f64,
    centered: bool,
}

impl Kernel for RmsKernel {
    fn run<T: num_traits::Float + Element>(&self, p: &mut [T], g: &[T], state: &mut [&mut [T]]) {
        let (lr, a, w, eps, wd, mom) = (
            c::<T>(self.lr),
            c::<T>(self.alpha),
            c::<T>(1.0 - self.alpha),
            c::<T>(self.eps),
            c::<T>(self.weight_decay),
            c::<T>(self.momentum),
        );
        let use_wd = self.weight_decay != 0.0;
        let (sq, rest) = state.split_first_mut().expect("square_avg");
        let (mut buf, rest) = if self.momentum > 0.0 {
            let (b, r) = rest.split_first_mut().expect("momentum_buffer");
            (Some(b), r)
        } else {
            (None, rest)
        };
        let mut gavg = if self.centered {
            rest.first_mut()
        } else {
            None
        };
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

    fn fused(&self) -> OptimStep {
        OptimStep::RmsProp {
            lr: self.lr,
            alpha: self.alpha,
            eps: self.eps,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            centered: self.centered,
        }
    }
}

impl Optimizer for RMSprop {
    fn step(&mut self) {
        for g in &self.groups {
            let k = RmsKernel {
                lr: g.get_lr(),
                alpha: g.alpha.unwrap_or(self.alpha),
                eps: g.eps.unwrap_or(self.eps),
                weight_decay: g.weight_decay.unwrap_or(self.weight_decay),
                momentum: g.momentum_or(self.momentum),
                centered: g.centered.unwrap_or(self.centered),
            };
            for p in &g.params {
                let Some(grad) = p.grad() else { continue };
                let s = self.state.get_or_insert_with(p, || RmsState {
                    step: 0,
                    square_avg: zeros_state(p),
                    momentum_buffer: None,
                    grad_avg: None,
                });
                if k.momentum > 0.0 && s.momentum_buffer.is_none() {
                    s.momentum_buffer = Some(zeros_state(p));
                }
                if k.centered && s.grad_avg.is_none() {
                    s.grad_avg = Some(zeros_state(p));
                }
                s.step += 1;
                let mut bufs = vec![&s.square_avg];
                if k.momentum > 0.0 {
                    bufs.extend(s.momentum_buffer.as_ref());
                }
                if k.centered {
                    bufs.extend(s.grad_avg.as_ref());
                }
                update_param("RMSprop.step", p, &grad, &bufs, &k);
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
                    ("alpha", Value::Float(g.alpha.unwrap_or(self.alpha))),
                    ("eps", Value::Float(g.eps.unwrap_or(self.eps))),
                    ("centered", Value::Bool(g.centered.unwrap_or(self.centered))),
                    (
                        "weight_decay",
                        Value::Float(g.weight_decay.unwrap_or(self.weight_decay)),
                    ),
                    ("capturable", Value::Bool(false)),
                    ("foreach", Value::None),
                    ("maximize", Value::Bool(false)),
                    ("differentiable", Value::Bool(false)),
                ]
            },
            |p| {
                self.state.get(p).map(|s| {
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
            },
        )
    }

    fn load_state_dict(&mut self, sd: &Dict) -> Result<(), LoadStateError> {
        load(
            "RMSprop",
            &mut self.groups,
            &mut self.state,
            sd,
            |pr, g, at| {
                pr.unsupported_flags(g, &["maximize", "capturable", "differentiable"], at);
                (
                    pr.float(g, "lr", at),
                    pr.float(g, "momentum", at),
                    pr.float(g, "alpha", at),
                    pr.float(g, "eps", at),
                    pr.bool(g, "centered", at),
                    pr.float(g, "weight_decay", at),
                )
            },
            |pr, s, p, at| {
                let (step, sq) = (pr.step(s, at), pr.required_buffer(s, "square_avg", p, at));
                let momentum_buffer = pr.buffer(s, "momentum_buffer", p, at);
                let grad_avg = pr.buffer(s, "grad_avg", p, at);
                Some(RmsState {
                    step: step?,
                    square_avg: sq?,
                    momentum_buffer,
                    grad_avg,
                })
            },
            |g, h| {
                // Every entry is `Some` once the checks passed.
                let (Some(lr), Some(mom), Some(alpha), Some(eps), Some(centered), Some(wd)) = h
                else {
                    return;
                };
                g.set_lr(lr);
                g.momentum = Some(mom);
                g.momentum_cell().clear();
                g.alpha = Some(alpha);
                g.eps = Some(eps);
                g.centered = Some(centered);
                g.weight_decay = Some(wd);
            },
        )
    }
}
