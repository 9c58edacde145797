//! Adam and AdamW.

use super::state::{load, save, step_tensor};
use super::{
    Kernel, LoadStateError, MomentumKind, Optimizer, ParamGroup, StateMap, c, resolve_lrs,
    update_param, zeros_state,
};
use crate::Tensor;
use crate::backend::OptimStep;
use crate::dtype::Element;
use crate::io::{Dict, Value};

/// Per-parameter Adam state.
struct AdamState {
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Option<Tensor>,
}

/// The shared implementation; `decoupled` selects AdamW.
struct AdamCore {
    groups: Vec<ParamGroup>,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
    decoupled: bool,
    state: StateMap<AdamState>,
}

struct AdamKernel {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    step: u64,
}

impl Kernel for AdamKernel {
    fn run<T: num_traits::Float + Element>(&self, p: &mut [T], g: &[T], state: &mut [&mut [T]]) {
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2 = 1.0 - self.beta2.powi(self.step as i32);
        let step_size = c::<T>(self.lr / bc1);
        let bc2_sqrt = c::<T>(bc2.sqrt());
        let (w1, b2, w2, eps) = (
            c::<T>(1.0 - self.beta1),
            c::<T>(self.beta2),
            c::<T>(1.0 - self.beta2),
            c::<T>(self.eps),
        );
        let wd = c::<T>(self.weight_decay);
        let decay = c::<T>(1.0 - self.lr * self.weight_decay);
        let l2 = !self.decoupled && self.weight_decay != 0.0;
        let shrink = self.decoupled && self.weight_decay != 0.0;
        let (m, rest) = state.split_first_mut().expect("exp_avg");
        let (v, rest) = rest.split_first_mut().expect("exp_avg_sq");
        let mut vmax = rest.first_mut();
        for i in 0..p.len() {
            let mut pi = p[i];
            if shrink {
                pi = pi * decay;
            }
            let gi = if l2 { g[i] + wd * pi } else { g[i] };
            let mi = m[i] + w1 * (gi - m[i]);
            let vi = v[i] * b2 + w2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            let vhat = match &mut vmax {
                Some(vm) => {
                    let x = vm[i].max(vi);
                    vm[i] = x;
                    x
                }
                None => vi,
            };
            let denom = vhat.sqrt() / bc2_sqrt + eps;
            p[i] = pi - step_size * (mi / denom);
        }
    }

    fn fused(&self) -> OptimStep {
        OptimStep::Adam {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
            step: self.step,
        }
    }
}

impl AdamCore {
    fn new(mut groups: Vec<ParamGroup>, lr: f64, weight_decay: f64, decoupled: bool) -> AdamCore {
        assert!(lr >= 0.0, "Adam: invalid learning rate: {lr}");
        resolve_lrs(&mut groups, lr);
        AdamCore {
            groups,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
            amsgrad: false,
            decoupled,
            state: StateMap::default(),
        }
    }

    fn state_dict(&self) -> Dict {
        save(
            &self.groups,
            |g| {
                let (b1, b2) = g.betas_or(self.betas);
                vec![
                    ("lr", Value::Float(g.get_lr())),
                    ("betas", Value::from(vec![b1, b2])),
                    ("eps", Value::Float(g.eps.unwrap_or(self.eps))),
                    (
                        "weight_decay",
                        Value::Float(g.weight_decay.unwrap_or(self.weight_decay)),
                    ),
                    ("amsgrad", Value::Bool(g.amsgrad.unwrap_or(self.amsgrad))),
                    ("maximize", Value::Bool(false)),
                    ("foreach", Value::None),
                    ("capturable", Value::Bool(false)),
                    ("differentiable", Value::Bool(false)),
                    ("fused", Value::None),
                    ("decoupled_weight_decay", Value::Bool(self.decoupled)),
                ]
            },
            |p| {
                self.state.get(p).map(|s| {
                    let mut e = vec![
                        ("step", step_tensor(s.step)),
                        ("exp_avg", Value::Tensor(s.exp_avg.shallow_clone())),
                        ("exp_avg_sq", Value::Tensor(s.exp_avg_sq.shallow_clone())),
                    ];
                    if let Some(m) = &s.max_exp_avg_sq {
                        e.push(("max_exp_avg_sq", Value::Tensor(m.shallow_clone())));
                    }
                    e
                })
            },
        )
    }

    fn load_state_dict(&mut self, sd: &Dict, name: &str) -> Result<(), LoadStateError> {
        let decoupled = self.decoupled;
        load(
            name,
            &mut self.groups,
            &mut self.state,
            sd,
            |pr, g, at| {
                pr.unsupported_flags(g, &["maximize", "capturable", "differentiable"], at);
                if let Some(Value::Bool(d)) = g.get("decoupled_weight_decay")
                    && *d != decoupled
                {
                    pr.push(format!(
                        "{at}[\"decoupled_weight_decay\"] is {d}: the state is {}'s, not {name}'s",
                        if *d { "AdamW" } else { "Adam" }
                    ));
                }
                let betas = match pr.floats(g, "betas", at).as_deref() {
                    Some(&[b1, b2]) => Some((b1, b2)),
                    Some(_) => {
                        pr.push(format!("{at}[\"betas\"] must hold two floats"));
                        None
                    }
                    None => None,
                };
                (
                    pr.float(g, "lr", at),
                    betas,
                    pr.float(g, "eps", at),
                    pr.float(g, "weight_decay", at),
                    pr.bool(g, "amsgrad", at),
                )
            },
            |pr, s, p, at| {
                let (step, m1, m2) = (
                    pr.step(s, at),
                    pr.required_buffer(s, "exp_avg", p, at),
                    pr.required_buffer(s, "exp_avg_sq", p, at),
                );
                let max_exp_avg_sq = pr.buffer(s, "max_exp_avg_sq", p, at);
                Some(AdamState {
                    step: step?,
                    exp_avg: m1?,
                    exp_avg_sq: m2?,
                    max_exp_avg_sq,
                })
            },
            |g, h| {
                // Every entry is `Some` once the checks passed.
                let (Some(lr), Some(betas), Some(eps), Some(wd), Some(amsgrad)) = h else {
                    return;
                };
                g.set_lr(lr);
                g.betas = Some(betas);
                g.momentum_cell().clear();
                g.eps = Some(eps);
                g.weight_decay = Some(wd);
                g.amsgrad = Some(amsgrad);
            },
        )
    }

    fn step(&mut self, name: &str) {
        for g in &self.groups {
            let (beta1, beta2) = g.betas_or(self.betas);
            let amsgrad = g.amsgrad.unwrap_or(self.amsgrad);
            let mut k = AdamKernel {
                lr: g.get_lr(),
                beta1,
                beta2,
                eps: g.eps.unwrap_or(self.eps),
                weight_decay: g.weight_decay.unwrap_or(self.weight_decay),
                decoupled: self.decoupled,
                step: 0,
            };
            for p in &g.params {
                let Some(grad) = p.grad() else { continue };
                let s = self.state.get_or_insert_with(p, || AdamState {
                    step: 0,
                    exp_avg: zeros_state(p),
                    exp_avg_sq: zeros_state(p),
                    max_exp_avg_sq: None,
                });
                if amsgrad && s.max_exp_avg_sq.is_none() {
                    s.max_exp_avg_sq = Some(zeros_state(p));
                }
                s.step += 1;
                k.step = s.step;
                let mut bufs = vec![&s.exp_avg, &s.exp_avg_sq];
                if amsgrad {
                    bufs.extend(s.max_exp_avg_sq.as_ref());
                }
                update_param(name, p, &grad, &bufs, &k);
            }
        }
    }
}

macro_rules! adam_type {
    ($(#[$doc:meta])* $name:ident, $label:literal, $decoupled:expr, $wd:expr) => {
        $(#[$doc])*
        pub struct $name(AdamCore);

        impl $name {
            #[doc = concat!("`", $label, "` over `params` with learning rate `lr` and PyTorch's defaults")]
            /// (betas (0.9, 0.999), eps 1e-8); chain the builder methods
            /// to change them.
            pub fn new(params: Vec<Tensor>, lr: f64) -> $name {
                $name::with_groups(vec![ParamGroup::new(params)], lr)
            }

            /// Several parameter groups; unset group options take the defaults.
            pub fn with_groups(groups: Vec<ParamGroup>, lr: f64) -> $name {
                $name(AdamCore::new(groups, lr, $wd, $decoupled))
            }

            /// Coefficients of the running averages of the gradient and its square.
            pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
                assert!((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2),
                    "{}: invalid betas ({beta1}, {beta2})", $label);
                self.0.betas = (beta1, beta2);
                self
            }

            /// Term added to the denominator.
            pub fn eps(mut self, eps: f64) -> Self {
                self.0.eps = eps;
                self
            }

            /// Weight decay.
            pub fn weight_decay(mut self, weight_decay: f64) -> Self {
                self.0.weight_decay = weight_decay;
                self
            }

            /// Use the AMSGrad variant.
            pub fn amsgrad(mut self, amsgrad: bool) -> Self {
                self.0.amsgrad = amsgrad;
                self
            }

            /// `state[param]["exp_avg"]`: running average of the gradient.
            pub fn exp_avg(&self, param: &Tensor) -> Option<Tensor> {
                self.0.state.get(param).map(|s| s.exp_avg.shallow_clone())
            }

            /// `state[param]["exp_avg_sq"]`: running average of its square.
            pub fn exp_avg_sq(&self, param: &Tensor) -> Option<Tensor> {
                self.0.state.get(param).map(|s| s.exp_avg_sq.shallow_clone())
            }

            /// `state[param]["max_exp_avg_sq"]` (AMSGrad only).
            pub fn max_exp_avg_sq(&self, param: &Tensor) -> Option<Tensor> {
                self.0.state.get(param).and_then(|s| s.max_exp_avg_sq.as_ref().map(Tensor::shallow_clone))
            }

            /// `state[param]["step"]`: updates applied to `param` so far.
            pub fn step_count(&self, param: &Tensor) -> u64 {
                self.0.state.get(param).map_or(0, |s| s.step)
            }
        }

        impl Optimizer for $name {
            fn step(&mut self) {
                self.0.step(concat!($label, ".step"));
            }
            group_accessors!(0.groups, MomentumKind::Beta1);
            fn state_dict(&self) -> Dict {
                self.0.state_dict()
            }
            fn load_state_dict(&mut self, state: &Dict) -> Result<(), LoadStateError> {
                self.0.load_state_dict(state, $label)
            }
        }
    };
}

adam_type!(
    /// Adam, like `torch.optim.Adam` (weight decay as an L2 term added to
    /// the gradient). With `t` the parameter's step count:
    ///
    /// ```text
    /// g ← g + weight_decay · p
    /// m ← m + (1 − β1)(g − m)
    /// v ← β2 v + (1 − β2) g²            (v̂ = max(v̂, v) with amsgrad)
    /// p ← p − lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
    /// ```
    Adam, "Adam", false, 0.0
);

adam_type!(
    /// AdamW, like `torch.optim.AdamW`: Adam with decoupled weight decay
    /// `p ← p · (1 − lr · weight_decay)` before the Adam update (default
    /// weight decay 0.01).
    AdamW, "AdamW", true, 1e-2
);
