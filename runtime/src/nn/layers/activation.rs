//! Activation layers: thin module wrappers over the tensor methods.

use crate::Tensor;
use crate::nn::Forward;
use crate::nn::module::py_float;

/// `max(0, x)`, like `nn.ReLU`. [`ReLU::inplace`] records PyTorch's
/// `inplace=True` (printed as `ReLU(inplace=True)`); the result is computed
/// out of place either way, which gives the same values and gradients.
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "relu_extra_repr")]
pub struct ReLU {
    /// PyTorch's `inplace` flag, kept for printing.
    #[module(skip)]
    pub inplace: bool,
    #[module(training)]
    training: bool,
}

fn relu_extra_repr(s: &ReLU) -> String {
    if s.inplace {
        "inplace=True".to_string()
    } else {
        String::new()
    }
}

impl ReLU {
    /// A `ReLU` layer (`inplace=False`).
    pub fn new() -> ReLU {
        ReLU {
            inplace: false,
            training: true,
        }
    }

    /// Sets the `inplace` flag, like `nn.ReLU(inplace=True)`.
    pub fn inplace(mut self, inplace: bool) -> ReLU {
        self.inplace = inplace;
        self
    }
}

impl Default for ReLU {
    fn default() -> Self {
        ReLU::new()
    }
}

impl Forward for ReLU {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.relu()
    }
}

layer! {
    /// `1 / (1 + e^-x)`, like `nn.Sigmoid`.
    pub struct Sigmoid {}
    /// A `Sigmoid` layer.
    fn new;
    forward: |_, x| x.sigmoid();
    extra_repr: |_| "";
}

layer! {
    /// Hyperbolic tangent, like `nn.Tanh`.
    pub struct Tanh {}
    /// A `Tanh` layer.
    fn new;
    forward: |_, x| x.tanh();
    extra_repr: |_| "";
}

layer! {
    /// `x · Φ(x)` (exact, erf-based), like `nn.GELU()`.
    pub struct GELU {}
    /// A `GELU` layer.
    fn new;
    forward: |_, x| x.gelu();
    extra_repr: |_| "approximate='none'";
}

layer! {
    /// `x` for `x > 0`, else `negative_slope · x`, like `nn.LeakyReLU`.
    pub struct LeakyReLU {
        /// Slope for negative inputs (PyTorch's default is 0.01).
        negative_slope: f64,
    }
    /// A leaky ReLU with `negative_slope`.
    fn new;
    forward: |s, x| x.leaky_relu(s.negative_slope);
    extra_repr: |s| format!("negative_slope={}", py_float(s.negative_slope));
}

layer! {
    /// `x` where `x > threshold`, else `value`, like `nn.Threshold`.
    pub struct Threshold {
        /// The threshold.
        threshold: f64,
        /// The replacement value.
        value: f64,
    }
    /// `Threshold(threshold, value)`.
    fn new;
    forward: |s, x| x.threshold(s.threshold, s.value);
    extra_repr: |s| format!(
        "threshold={}, value={}",
        py_float(s.threshold),
        py_float(s.value)
    );
}

layer! {
    /// Softmax along `dim`, like `nn.Softmax(dim)`.
    pub struct Softmax {
        /// The dimension normalised over.
        dim: isize,
    }
    /// Softmax along `dim`.
    fn new;
    forward: |s, x| x.softmax(s.dim);
    extra_repr: |s| format!("dim={}", s.dim);
}

layer! {
    /// Log-softmax along `dim`, like `nn.LogSoftmax(dim)`.
    pub struct LogSoftmax {
        /// The dimension normalised over.
        dim: isize,
    }
    /// Log-softmax along `dim`.
    fn new;
    forward: |s, x| x.log_softmax(s.dim);
    extra_repr: |s| format!("dim={}", s.dim);
}
