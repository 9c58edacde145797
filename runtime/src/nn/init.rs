//! Parameter initialisation, like `torch.nn.init`: every function fills
//! its tensor in place (without recording autograd history) using the
//! default generator with PyTorch's algorithms and PyTorch's arithmetic for
//! the bounds, so after the same [`manual_seed`](crate::manual_seed) the
//! values are bit-identical to `torch.nn.init`'s (see [`crate::rng`]).
//!
//! ```
//! use kiln_runtime::Tensor;
//! use kiln_runtime::nn::init::{self, FanMode, Nonlinearity};
//! let w = Tensor::zeros([64, 32]).requires_grad_(true);
//! init::kaiming_normal_(&w, 0.0, FanMode::FanOut, Nonlinearity::ReLU);
//! init::xavier_uniform_(&w, init::calculate_gain(Nonlinearity::Tanh, None));
//! assert!(w.requires_grad() && w.is_leaf());
//! ```

use crate::Tensor;
use crate::autograd::no_grad;

/// Which fan `kaiming_*` preserves the variance of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// Preserve the variance in the forward pass (PyTorch's default).
    FanIn,
    /// Preserve the variance in the backward pass.
    FanOut,
}

/// The nonlinearity a gain is computed for, like the strings PyTorch's
/// `calculate_gain` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `linear` and the conv variants: gain 1.
    Linear,
    /// `sigmoid`: gain 1.
    Sigmoid,
    /// `tanh`: gain 5/3.
    Tanh,
    /// `relu`: gain √2.
    ReLU,
    /// `leaky_relu`: gain √(2 / (1 + slope²)) (slope defaults to 0.01).
    LeakyReLU,
    /// `selu`: gain 3/4.
    SELU,
}

/// The recommended gain for `nonlinearity`, like `nn.init.calculate_gain`.
/// `param` is LeakyReLU's negative slope (default 0.01).
pub fn calculate_gain(nonlinearity: Nonlinearity, param: Option<f64>) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::ReLU => 2f64.sqrt(),
        Nonlinearity::LeakyReLU => {
            let slope = param.unwrap_or(0.01);
            (2.0 / (1.0 + slope * slope)).sqrt()
        }
        Nonlinearity::SELU => 0.75,
    }
}

/// `(fan_in, fan_out)` as PyTorch computes them: `size(1) · receptive
/// field` and `size(0) · receptive field`, where the receptive field is the
/// product of the dimensions after the first two. Panics below 2-D.
pub fn calculate_fan_in_and_fan_out(t: &Tensor) -> (usize, usize) {
    let s = t.shape();
    assert!(
        s.len() >= 2,
        "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions (shape {s:?})"
    );
    let receptive: usize = s[2..].iter().product();
    (s[1] * receptive, s[0] * receptive)
}

fn fan(t: &Tensor, mode: FanMode) -> usize {
    let (fan_in, fan_out) = calculate_fan_in_and_fan_out(t);
    match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    }
}

/// Fills with samples from `U(a, b)`, like `nn.init.uniform_`.
pub fn uniform_(t: &Tensor, a: f64, b: f64) {
    t.uniform_(a, b, None);
}

/// Fills with samples from `N(mean, std²)`, like `nn.init.normal_`.
pub fn normal_(t: &Tensor, mean: f64, std: f64) {
    t.normal_(mean, std, None);
}

/// Fills with `value`, like `nn.init.constant_`.
pub fn constant_(t: &Tensor, value: f64) {
    no_grad(|| t.fill_(value));
}

/// Fills with zeros, like `nn.init.zeros_`.
pub fn zeros_(t: &Tensor) {
    constant_(t, 0.0);
}

/// Fills with ones, like `nn.init.ones_`.
pub fn ones_(t: &Tensor) {
    constant_(t, 1.0);
}

/// Glorot uniform: `U(-a, a)` with `a = gain · √(6 / (fan_in + fan_out))`,
/// like `nn.init.xavier_uniform_`.
pub fn xavier_uniform_(t: &Tensor, gain: f64) {
    let (fi, fo) = calculate_fan_in_and_fan_out(t);
    // PyTorch's order of operations, so the bound has the same bits.
    let std = gain * (2.0 / (fi + fo) as f64).sqrt();
    let a = 3f64.sqrt() * std;
    uniform_(t, -a, a);
}

/// Glorot normal: `N(0, std²)` with `std = gain · √(2 / (fan_in +
/// fan_out))`, like `nn.init.xavier_normal_`.
pub fn xavier_normal_(t: &Tensor, gain: f64) {
    let (fi, fo) = calculate_fan_in_and_fan_out(t);
    normal_(t, 0.0, gain * (2.0 / (fi + fo) as f64).sqrt());
}

/// He uniform: `U(-b, b)` with `b = gain · √(3 / fan)` and `gain =
/// calculate_gain(nonlinearity, a)`, like `nn.init.kaiming_uniform_`
/// (PyTorch's defaults: `a = 0`, `FanIn`, `LeakyReLU`).
pub fn kaiming_uniform_(t: &Tensor, a: f64, mode: FanMode, nonlinearity: Nonlinearity) {
    if t.numel() == 0 {
        return;
    }
    let gain = calculate_gain(nonlinearity, Some(a));
    // PyTorch's order of operations, so the bound has the same bits.
    let std = gain / (fan(t, mode) as f64).sqrt();
    let bound = 3f64.sqrt() * std;
    uniform_(t, -bound, bound);
}

/// He normal: `N(0, std²)` with `std = gain / √fan`, like
/// `nn.init.kaiming_normal_`.
pub fn kaiming_normal_(t: &Tensor, a: f64, mode: FanMode, nonlinearity: Nonlinearity) {
    if t.numel() == 0 {
        return;
    }
    let gain = calculate_gain(nonlinearity, Some(a));
    normal_(t, 0.0, gain / (fan(t, mode) as f64).sqrt());
}
