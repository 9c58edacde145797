//! Activations as tensor methods: `relu`, `sigmoid`, `tanh`, `gelu` (exact
//! and tanh-approximated), `leaky_relu`, `threshold`, `softmax`,
//! `log_softmax`. Derivatives at kinks follow PyTorch (`relu'(0) = 0`,
//! threshold passes the gradient only where `x > threshold`).

use super::kernel::{float_result_dtype, scaled_grad, unary, unary_int};
use crate::backend::{self, UnaryOp};
use crate::layout::normalize_dim;
use crate::{Tensor, autograd};

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const GELU_C: f64 = 0.044715;

impl Tensor {
    /// `max(x, 0)`, like `torch.relu`; the gradient at 0 is 0.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let y = Tensor::from([-1.0f32, 0.0, 2.0]).relu();
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.0, 2.0]);
    /// ```
    pub fn relu(&self) -> Tensor {
        let out = unary_int("relu", self);
        let y = out.shallow_clone();
        Tensor::from_unary_saved(out, "ReluBackward0", self, &y, |g, y| {
            scaled_grad("ReluBackward0", UnaryOp::Relu, g, y)
        })
    }

    /// `1 / (1 + e^-x)`, like `torch.sigmoid`.
    pub fn sigmoid(&self) -> Tensor {
        let out = unary("sigmoid", self);
        Tensor::from_unary_saved(out, "SigmoidBackward0", self, self, |g, x| {
            let s = x.sigmoid();
            g.mul(&s.mul(&s.rsub_scalar(1.0)))
        })
    }

    /// Hyperbolic tangent, like `torch.tanh`.
    pub fn tanh(&self) -> Tensor {
        let out = unary("tanh", self);
        Tensor::from_unary_saved(out, "TanhBackward0", self, self, |g, x| {
            let t = x.tanh();
            g.mul(&t.mul(&t).rsub_scalar(1.0))
        })
    }

    /// GELU with the exact normal CDF, `x * Φ(x)`, like `torch.nn.functional.gelu`
    /// (PyTorch's default `approximate='none'`).
    pub fn gelu(&self) -> Tensor {
        let out = unary("gelu", self);
        Tensor::from_unary_saved(out, "GeluBackward0", self, self, |g, x| {
            let cdf = x
                .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
                .erf()
                .add_scalar(1.0)
                .mul_scalar(0.5);
            let pdf = x.mul(x).mul_scalar(-0.5).exp().mul_scalar(INV_SQRT_2PI);
            g.mul(&cdf.add(&x.mul(&pdf)))
        })
    }

    /// GELU with the tanh approximation, like `gelu(x, approximate='tanh')`.
    pub fn gelu_tanh(&self) -> Tensor {
        let out = unary("gelu_tanh", self);
        Tensor::from_unary_saved(out, "GeluBackward0", self, self, |g, x| {
            let x2 = x.mul(x);
            let inner = x
                .add(&x2.mul(x).mul_scalar(GELU_C))
                .mul_scalar(SQRT_2_OVER_PI);
            let t = inner.tanh();
            let left = t.add_scalar(1.0).mul_scalar(0.5);
            let dinner = x2
                .mul_scalar(3.0 * GELU_C)
                .add_scalar(1.0)
                .mul_scalar(SQRT_2_OVER_PI);
            let right = x
                .mul(&t.mul(&t).rsub_scalar(1.0))
                .mul(&dinner)
                .mul_scalar(0.5);
            g.mul(&left.add(&right))
        })
    }

    /// `x` where `x > 0`, else `negative_slope * x`, like `torch.nn.functional.leaky_relu`.
    pub fn leaky_relu(&self, negative_slope: f64) -> Tensor {
        let out = unary(UnaryOp::LeakyRelu(negative_slope), self);
        Tensor::from_unary_saved(out, "LeakyReluBackward0", self, self, move |g, x| {
            scaled_grad(
                "LeakyReluBackward0",
                UnaryOp::LeakyRelu(negative_slope),
                g,
                x,
            )
        })
    }

    /// `x` where `x > threshold`, else `value`, like
    /// `torch.nn.functional.threshold`; the gradient passes where `x > threshold`.
    pub fn threshold(&self, threshold: f64, value: f64) -> Tensor {
        let out = unary_int(UnaryOp::Threshold { threshold, value }, self);
        Tensor::from_unary_saved(out, "ThresholdBackward0", self, self, move |g, x| {
            scaled_grad(
                "ThresholdBackward0",
                UnaryOp::Threshold { threshold, value },
                g,
                x,
            )
        })
    }

    /// Softmax along `dim` (negative counts from the end), numerically
    /// stable, like `torch.softmax`. Fastest when `dim` is the last one.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let p = Tensor::from([[1.0f32, 1.0], [0.0, 0.0]]).softmax(-1);
    /// assert_eq!(p.to_vec::<f32>(), vec![0.5; 4]);
    /// ```
    pub fn softmax(&self, dim: isize) -> Tensor {
        let d = normalize_dim("softmax", dim, self.dim());
        softmax_op(self, d, false)
    }

    /// `log(softmax(x))` along `dim`, computed stably as `x - logsumexp(x)`,
    /// like `torch.log_softmax`.
    pub fn log_softmax(&self, dim: isize) -> Tensor {
        let d = normalize_dim("log_softmax", dim, self.dim());
        softmax_op(self, d, true)
    }
}

/// Softmax (or log-softmax when `log`) along `d` by the backend's fused
/// kernel, with its backward: the fused backward kernel, or the
/// differentiable form when the backward itself is recorded
/// (create_graph).
fn softmax_op(x: &Tensor, d: usize, log: bool) -> Tensor {
    let xd = autograd::no_grad(|| x.detach().to_dtype(float_result_dtype(x.dtype())));
    let out = backend::of(x.device()).softmax(&xd, d, log);
    let (xc, y) = (x.shallow_clone(), out.shallow_clone());
    let name = if log {
        "LogSoftmaxBackward0"
    } else {
        "SoftmaxBackward0"
    };
    Tensor::from_op_saved(
        out,
        name,
        &[x],
        &[xc.shallow_clone(), y.shallow_clone()],
        move |g, _| {
            let di = d as isize;
            vec![Some(if autograd::is_grad_enabled() {
                let s = xc.softmax(di);
                if log {
                    g.sub(&s.mul(&g.sum_dim(di, true)))
                } else {
                    s.mul(&g.sub(&g.mul(&s).sum_dim(di, true)))
                }
            } else {
                let g = g.to_dtype(y.dtype());
                backend::of(g.device()).softmax_backward(&y, &g, d, log)
            })]
        },
    )
}
