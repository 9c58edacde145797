//! Adam and AdamW.

use super::options::Opt::{Amsgrad, Betas, Eps, WeightDecay};
use super::options::{Format, Groups, Options};
use super::state::step_tensor;
use super::{MomentumKind, Optimizer, ParamGroup, Rule, Step, c, update_param, zeros_state};
use crate::Tensor;
use crate::dtype::Element;
use crate::io::{Dict, Value};
use crate::optim::LoadStateError;

/// Per-parameter Adam state.
struct AdamState {
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Option<Tensor>,
}

impl AdamState {
    /// The state dict entries.
    fn entries(&self) -> Vec<(&'static str, Value)> {
        let mut e = vec![
            ("step", step_tensor(self.step)),
            ("exp_avg", Value::Tensor(self.exp_avg.shallow_clone())),
            ("exp_avg_sq", Value::Tensor(self.exp_avg_sq.shallow_clone())),
        ];
        if let Some(m) = &self.max_exp_avg_sq {
            e.push(("max_exp_avg_sq", Value::Tensor(m.shallow_clone())));
        }
        e
    }
}

/// The shared implementation; `decoupled` selects AdamW.
struct AdamCore {
    core: Groups<AdamState>,
    decoupled: bool,
}

/// Adam's update of one parameter with the options `o` (AdamW's when
/// `decoupled`; `step` counts from 1; `state` holds `exp_avg`, `exp_avg_sq`
/// and, with AMSGrad, `max_exp_avg_sq`).
pub(super) fn run<T: num_traits::Float + Element>(
    lr: f64,
    o: &Options,
    decoupled: bool,
    step: u64,
    p: &mut [T],
    g: &[T],
    state: &mut [&mut [T]],
) {
    let ((beta1, beta2), eps, weight_decay) = (o.betas, o.eps, o.weight_decay);
    let bc1 = 1.0 - beta1.powi(step as i32);
    let bc2 = 1.0 - beta2.powi(step as i32);
    let step_size = c::<T>(lr / bc1);
    let bc2_sqrt = c::<T>(bc2.sqrt());
    let (w1, b2, w2, eps) = (
        c::<T>(1.0 - beta1),
        c::<T>(beta2),
        c::<T>(1.0 - beta2),
        c::<T>(eps),
    );
    let wd = c::<T>(weight_decay);
    let decay = c::<T>(1.0 - lr * weight_decay);
    let l2 = !decoupled && weight_decay != 0.0;
    let shrink = decoupled && weight_decay != 0.0;
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

impl AdamCore {
    fn load_state_dict(&mut self, sd: &Dict, format: &Format) -> Result<(), LoadStateError> {
        self.core.load(format, sd, |pr, s, p, at| {
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
        })
    }

    fn step(&mut self, name: &str) {
        for g in &self.core.groups {
            let o = g.options(&self.core.defaults);
            let kernel = |step| Step {
                lr: g.get_lr(),
                o,
                rule: Rule::Adam {
                    decoupled: self.decoupled,
                    step,
                },
            };
            for p in &g.params {
                let Some(grad) = p.grad() else { continue };
                let s = self.core.state.get_or_insert_with(p, || AdamState {
                    step: 0,
                    exp_avg: zeros_state(p),
                    exp_avg_sq: zeros_state(p),
                    max_exp_avg_sq: None,
                });
                if o.amsgrad && s.max_exp_avg_sq.is_none() {
                    s.max_exp_avg_sq = Some(zeros_state(p));
                }
                s.step += 1;
                let k = kernel(s.step);
                let mut bufs = vec![&s.exp_avg, &s.exp_avg_sq];
                if o.amsgrad {
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
            /// The state dicts' format.
            const FORMAT: Format = Format {
                name: $label,
                options: &[Betas, Eps, WeightDecay, Amsgrad],
                flags: &["maximize", "foreach", "capturable", "differentiable", "fused"],
                decoupled: Some($decoupled),
            };

            group_constructors!(
                $name,
                "Adam",
                Options { weight_decay: $wd, ..Options::default() },
                |core| $name(AdamCore { core, decoupled: $decoupled });
                #[doc = concat!("`", $label, "` over `params` with learning rate `lr` and PyTorch's defaults")]
                /// (betas (0.9, 0.999), eps 1e-8); chain the builder methods
                /// to change them.
                new;
                /// Several parameter groups; unset group options take the defaults.
                with_groups;
            );

            /// Coefficients of the running averages of the gradient and its square.
            pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
                assert!((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2),
                    "{}: invalid betas ({beta1}, {beta2})", $label);
                self.0.core.defaults.betas = (beta1, beta2);
                self
            }

            /// Term added to the denominator.
            pub fn eps(mut self, eps: f64) -> Self {
                self.0.core.defaults.eps = eps;
                self
            }

            /// Weight decay.
            pub fn weight_decay(mut self, weight_decay: f64) -> Self {
                self.0.core.defaults.weight_decay = weight_decay;
                self
            }

            /// Use the AMSGrad variant.
            pub fn amsgrad(mut self, amsgrad: bool) -> Self {
                self.0.core.defaults.amsgrad = amsgrad;
                self
            }

            /// `state[param]["exp_avg"]`: running average of the gradient.
            pub fn exp_avg(&self, param: &Tensor) -> Option<Tensor> {
                self.0.core.state.get(param).map(|s| s.exp_avg.shallow_clone())
            }

            /// `state[param]["exp_avg_sq"]`: running average of its square.
            pub fn exp_avg_sq(&self, param: &Tensor) -> Option<Tensor> {
                self.0.core.state.get(param).map(|s| s.exp_avg_sq.shallow_clone())
            }

            /// `state[param]["max_exp_avg_sq"]` (AMSGrad only).
            pub fn max_exp_avg_sq(&self, param: &Tensor) -> Option<Tensor> {
                self.0.core.state.get(param).and_then(|s| s.max_exp_avg_sq.as_ref().map(Tensor::shallow_clone))
            }

            /// `state[param]["step"]`: updates applied to `param` so far.
            pub fn step_count(&self, param: &Tensor) -> u64 {
                self.0.core.state.get(param).map_or(0, |s| s.step)
            }
        }

        impl Optimizer for $name {
            fn step(&mut self) {
                self.0.step(concat!($label, ".step"));
            }
            group_accessors!(0.core.groups, MomentumKind::Beta1);
            fn state_dict(&self) -> Dict {
                self.0.core.save(&Self::FORMAT, AdamState::entries)
            }
            fn load_state_dict(&mut self, state: &Dict) -> Result<(), LoadStateError> {
                self.0.load_state_dict(state, &Self::FORMAT)
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
