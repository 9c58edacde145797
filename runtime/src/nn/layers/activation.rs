//! Activation layers: thin module wrappers over the tensor methods.

use crate::Tensor;
use crate::nn::Forward;
use crate::nn::module::py_float;

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, $label:literal, |$s:ident, $x:ident| $fwd:expr, extra_repr: $extra:expr) => {
        $(#[$doc])*
        #[derive(kiln_macros::Module)]
        #[module(crate = "crate", extra_repr = "Self::extra_repr_text")]
        pub struct $name {
            #[module(training)]
            training: bool,
        }

        impl $name {
            #[doc = concat!("A `", $label, "` layer.")]
            pub fn new() -> $name {
                $name { training: true }
            }

            /// What `print(model)` shows inside the parentheses (PyTorch's
            /// `extra_repr`).
            fn extra_repr_text(&self) -> String {
                $extra.to_string()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }

        impl Forward for $name {
            fn forward(&self, $x: &Tensor) -> Tensor {
                let $s = self;
                let _ = $s;
                $fwd
            }
        }

    };
}

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

activation!(
    /// `1 / (1 + e^-x)`, like `nn.Sigmoid`.
    Sigmoid, "Sigmoid", |s, x| x.sigmoid(), extra_repr: "");
activation!(
    /// Hyperbolic tangent, like `nn.Tanh`.
    Tanh, "Tanh", |s, x| x.tanh(), extra_repr: "");
activation!(
    /// `x · Φ(x)` (exact, erf-based), like `nn.GELU()`.
    GELU, "GELU", |s, x| x.gelu(), extra_repr: "approximate='none'");

/// `x` for `x > 0`, else `negative_slope · x`, like `nn.LeakyReLU`.
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "leaky_relu_extra_repr")]
pub struct LeakyReLU {
    /// Slope for negative inputs (PyTorch's default is 0.01).
    #[module(skip)]
    pub negative_slope: f64,
    #[module(training)]
    training: bool,
}

impl LeakyReLU {
    /// A leaky ReLU with `negative_slope`.
    pub fn new(negative_slope: f64) -> LeakyReLU {
        LeakyReLU {
            negative_slope,
            training: true,
        }
    }
}

impl Forward for LeakyReLU {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.leaky_relu(self.negative_slope)
    }
}

/// What `print(model)` shows inside [`LeakyReLU`]'s parentheses (PyTorch's
/// `extra_repr`).
fn leaky_relu_extra_repr(s: &LeakyReLU) -> String {
    format!("negative_slope={}", py_float(s.negative_slope))
}

/// `x` where `x > threshold`, else `value`, like `nn.Threshold`.
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "threshold_extra_repr")]
pub struct Threshold {
    /// The threshold.
    #[module(skip)]
    pub threshold: f64,
    /// The replacement value.
    #[module(skip)]
    pub value: f64,
    #[module(training)]
    training: bool,
}

impl Threshold {
    /// `Threshold(threshold, value)`.
    pub fn new(threshold: f64, value: f64) -> Threshold {
        Threshold {
            threshold,
            value,
            training: true,
        }
    }
}

impl Forward for Threshold {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.threshold(self.threshold, self.value)
    }
}

/// What `print(model)` shows inside [`Threshold`]'s parentheses (PyTorch's
/// `extra_repr`).
fn threshold_extra_repr(s: &Threshold) -> String {
    format!(
        "threshold={}, value={}",
        py_float(s.threshold),
        py_float(s.value)
    )
}

/// Softmax along `dim`, like `nn.Softmax(dim)`.
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "softmax_extra_repr")]
pub struct Softmax {
    /// The dimension normalised over.
    #[module(skip)]
    pub dim: isize,
    #[module(training)]
    training: bool,
}

impl Softmax {
    /// Softmax along `dim`.
    pub fn new(dim: isize) -> Softmax {
        Softmax {
            dim,
            training: true,
        }
    }
}

impl Forward for Softmax {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.softmax(self.dim)
    }
}

/// What `print(model)` shows inside [`Softmax`]'s parentheses (PyTorch's
/// `extra_repr`).
fn softmax_extra_repr(s: &Softmax) -> String {
    format!("dim={}", s.dim)
}

/// Log-softmax along `dim`, like `nn.LogSoftmax(dim)`.
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "log_softmax_extra_repr")]
pub struct LogSoftmax {
    /// The dimension normalised over.
    #[module(skip)]
    pub dim: isize,
    #[module(training)]
    training: bool,
}

impl LogSoftmax {
    /// Log-softmax along `dim`.
    pub fn new(dim: isize) -> LogSoftmax {
        LogSoftmax {
            dim,
            training: true,
        }
    }
}

impl Forward for LogSoftmax {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.log_softmax(self.dim)
    }
}

/// What `print(model)` shows inside [`LogSoftmax`]'s parentheses (PyTorch's
/// `extra_repr`).
fn log_softmax_extra_repr(s: &LogSoftmax) -> String {
    format!("dim={}", s.dim)
}
