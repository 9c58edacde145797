//! Activations as tensor methods: `relu`, `sigmoid`, `tanh`, `gelu` (exact
//! and tanh-approximated), `leaky_relu`, `threshold`, `softmax`,
//! `log_softmax`. Derivatives at kinks follow PyTorch (`relu'(0) = 0`,
//! threshold passes the gradient only where `x > threshold`).

use super::device::{cuda_return, is_cuda};
use super::kernel::{float_kernel1, float_kernel2, scaled_grad, unary, unary_int, zip2};
use crate::backend::UnaryOp;
use crate::layout::normalize_dim;
use crate::{Tensor, autograd};
use num_traits::Float;
use rayon::prelude::*;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const GELU_C: f64 = 0.044715;

fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + super::erf::erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

fn gelu_grad_f64(x: f64) -> f64 {
    let cdf = 0.5 * (1.0 + super::erf::erf(x * std::f64::consts::FRAC_1_SQRT_2));
    cdf + x * INV_SQRT_2PI * (-0.5 * x * x).exp()
}

fn gelu_tanh_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_C * x * x * x)).tanh())
}

fn gelu_tanh_grad_f64(x: f64) -> f64 {
    let t = (SQRT_2_OVER_PI * (x + GELU_C * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x)
}

fn gelu_tanh_f32(x: f32) -> f32 {
    let k = SQRT_2_OVER_PI as f32;
    let c = GELU_C as f32;
    0.5 * x * (1.0 + (k * (x + c * x * x * x)).tanh())
}

fn gelu_tanh_grad_f32(x: f32) -> f32 {
    let (k, c) = (SQRT_2_OVER_PI as f32, GELU_C as f32);
    let t = (k * (x + c * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * c * x * x)
}

// ----- row kernels for softmax / log_softmax (one row = the reduced dim) ----

fn row_max<T: Float>(x: &[T]) -> T {
    // A NaN in the row makes every output NaN through `exp(NaN - m)`.
    x.iter()
        .fold(T::neg_infinity(), |m, &v| if v > m { v } else { m })
}

fn softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    let m = row_max(x);
    let mut s = T::zero();
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (v - m).exp();
        s = s + *o;
    }
    let inv = T::one() / s;
    for o in y.iter_mut() {
        *o = *o * inv;
    }
}

fn log_softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    let m = row_max(x);
    let s = x.iter().fold(T::zero(), |s, &v| s + (v - m).exp());
    let lse = m + s.ln();
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v - lse;
    }
}

fn softmax_bw_row<T: Float>(g: &[T], y: &[T], gx: &mut [T]) {
    let dot = g.iter().zip(y).fold(T::zero(), |s, (&a, &b)| s + a * b);
    for ((o, &gv), &yv) in gx.iter_mut().zip(g).zip(y) {
        *o = yv * (gv - dot);
    }
}

fn log_softmax_bw_row<T: Float>(g: &[T], y: &[T], gx: &mut [T]) {
    let sg = g.iter().fold(T::zero(), |s, &a| s + a);
    for ((o, &gv), &yv) in gx.iter_mut().zip(g).zip(y) {
        *o = gv - yv.exp() * sg;
    }
}

/// Applies `f` to each length-`n` row of `x`, in parallel when large.
fn rows1<T: Float + Send + Sync>(x: &[T], n: usize, f: fn(&[T], &mut [T])) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    if n == 0 {
        return out;
    }
    if x.len() >= super::kernel::PAR_MIN && x.len() > n {
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(o, r)| f(r, o));
    } else {
        out.chunks_mut(n)
            .zip(x.chunks(n))
            .for_each(|(o, r)| f(r, o));
    }
    out
}

/// Applies `f` to each pair of length-`n` rows of `a` and `b`.
fn rows2<T: Float + Send + Sync>(
    a: &[T],
    b: &[T],
    n: usize,
    f: fn(&[T], &[T], &mut [T]),
) -> Vec<T> {
    let mut out = vec![T::zero(); a.len()];
    if n == 0 {
        return out;
    }
    if a.len() >= super::kernel::PAR_MIN && a.len() > n {
        out.par_chunks_mut(n)
            .zip(a.par_chunks(n).zip(b.par_chunks(n)))
            .for_each(|(o, (r, s))| f(r, s, o));
    } else {
        for (o, (r, s)) in out.chunks_mut(n).zip(a.chunks(n).zip(b.chunks(n))) {
            f(r, s, o);
        }
    }
    out
}

/// Runs a row kernel along `dim`: directly when `dim` is the last
/// dimension, else on a copy with `dim` moved last.
fn along_dim(
    op: &str,
    x: &Tensor,
    dim: usize,
    f32k: fn(&[f32], &mut [f32]),
    f64k: fn(&[f64], &mut [f64]),
) -> Tensor {
    let last = x.dim().saturating_sub(1);
    if dim != last {
        let xt = x.transpose(dim as isize, last as isize);
        let yt = along_dim(op, &xt, last, f32k, f64k);
        return yt.transpose(dim as isize, last as isize).contiguous();
    }
    let n = x.shape().last().copied().unwrap_or(1);
    float_kernel1(op, x, |v| rows1(v, n, f32k), |v| rows1(v, n, f64k))
}

/// Two-input form of [`along_dim`] for the backward kernels.
fn along_dim2(
    op: &str,
    g: &Tensor,
    y: &Tensor,
    dim: usize,
    f32k: fn(&[f32], &[f32], &mut [f32]),
    f64k: fn(&[f64], &[f64], &mut [f64]),
) -> Tensor {
    let last = g.dim().saturating_sub(1);
    if dim != last {
        let (gt, yt) = (
            g.transpose(dim as isize, last as isize),
            y.transpose(dim as isize, last as isize),
        );
        let r = along_dim2(op, &gt, &yt, last, f32k, f64k);
        return r.transpose(dim as isize, last as isize).contiguous();
    }
    let n = g.shape().last().copied().unwrap_or(1);
    float_kernel2(
        op,
        g,
        y,
        |a, b| rows2(a, b, n, f32k),
        |a, b| rows2(a, b, n, f64k),
    )
}

impl Tensor {
    /// `max(x, 0)`, like `torch.relu`; the gradient at 0 is 0.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let y = Tensor::from([-1.0f32, 0.0, 2.0]).relu();
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.0, 2.0]);
    /// ```
    pub fn relu(&self) -> Tensor {
        let out = unary_int(
            "relu",
            self,
            |x| if x < 0.0 { 0.0 } else { x },
            |x| if x < 0.0 { 0.0 } else { x },
            |x| x.max(0),
        );
        let y = out.clone();
        Tensor::from_op(out, "ReluBackward0", &[self], move |g, _| {
            vec![Some(scaled_grad(
                "ReluBackward0",
                g,
                &y,
                |y| (y > 0.0) as u8 as f32,
                |y| (y > 0.0) as u8 as f64,
                // relu's output is >= 0 (or NaN): its sign is the mask.
                |y: &Tensor| y.sign(),
            ))]
        })
    }

    /// `1 / (1 + e^-x)`, like `torch.sigmoid`.
    pub fn sigmoid(&self) -> Tensor {
        let out = unary(
            "sigmoid",
            self,
            |x| 1.0 / (1.0 + (-x).exp()),
            |x| 1.0 / (1.0 + (-x).exp()),
        );
        let (x, y) = (self.clone(), out.clone());
        Tensor::from_op(out, "SigmoidBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                let s = x.sigmoid();
                g.mul(&s.mul(&s.rsub_scalar(1.0)))
            } else {
                zip2(
                    "sigmoid",
                    g,
                    &y,
                    |g, y| g * y * (1.0 - y),
                    |g, y| g * y * (1.0 - y),
                )
            })]
        })
    }

    /// Hyperbolic tangent, like `torch.tanh`.
    pub fn tanh(&self) -> Tensor {
        let out = unary("tanh", self, f32::tanh, f64::tanh);
        let (x, y) = (self.clone(), out.clone());
        Tensor::from_op(out, "TanhBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                let t = x.tanh();
                g.mul(&t.mul(&t).rsub_scalar(1.0))
            } else {
                zip2(
                    "tanh",
                    g,
                    &y,
                    |g, y| g * (1.0 - y * y),
                    |g, y| g * (1.0 - y * y),
                )
            })]
        })
    }

    /// GELU with the exact normal CDF, `x * Φ(x)`, like `torch.nn.functional.gelu`
    /// (PyTorch's default `approximate='none'`).
    pub fn gelu(&self) -> Tensor {
        let out = unary("gelu", self, |x| gelu_f64(x as f64) as f32, gelu_f64);
        let x = self.clone();
        Tensor::from_op(out, "GeluBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                let cdf = x
                    .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
                    .erf()
                    .add_scalar(1.0)
                    .mul_scalar(0.5);
                let pdf = x.mul(&x).mul_scalar(-0.5).exp().mul_scalar(INV_SQRT_2PI);
                g.mul(&cdf.add(&x.mul(&pdf)))
            } else {
                zip2(
                    "gelu",
                    g,
                    &x,
                    |g, x| g * gelu_grad_f64(x as f64) as f32,
                    |g, x| g * gelu_grad_f64(x),
                )
            })]
        })
    }

    /// GELU with the tanh approximation, like `gelu(x, approximate='tanh')`.
    pub fn gelu_tanh(&self) -> Tensor {
        let out = unary("gelu_tanh", self, gelu_tanh_f32, gelu_tanh_f64);
        let x = self.clone();
        Tensor::from_op(out, "GeluBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                let x2 = x.mul(&x);
                let inner = x
                    .add(&x2.mul(&x).mul_scalar(GELU_C))
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
            } else {
                zip2(
                    "gelu_tanh",
                    g,
                    &x,
                    |g, x| g * gelu_tanh_grad_f32(x),
                    |g, x| g * gelu_tanh_grad_f64(x),
                )
            })]
        })
    }

    /// `x` where `x > 0`, else `negative_slope * x`, like `torch.nn.functional.leaky_relu`.
    pub fn leaky_relu(&self, negative_slope: f64) -> Tensor {
        let s32 = negative_slope as f32;
        let out = unary(
            UnaryOp::LeakyRelu(negative_slope),
            self,
            move |x| if x > 0.0 { x } else { x * s32 },
            move |x| if x > 0.0 { x } else { x * negative_slope },
        );
        let x = self.clone();
        Tensor::from_op(out, "LeakyReluBackward0", &[self], move |g, _| {
            vec![Some(scaled_grad(
                "LeakyReluBackward0",
                g,
                &x,
                move |x| if x > 0.0 { 1.0 } else { s32 },
                move |x| if x > 0.0 { 1.0 } else { negative_slope },
                move |x: &Tensor| {
                    let (one, slope) = (x.scalar_like(1.0), x.scalar_like(negative_slope));
                    Tensor::where_cond(&x.gt_scalar(0.0), &one, &slope)
                },
            ))]
        })
    }

    /// `x` where `x > threshold`, else `value`, like
    /// `torch.nn.functional.threshold`; the gradient passes where `x > threshold`.
    pub fn threshold(&self, threshold: f64, value: f64) -> Tensor {
        let (t32, v32) = (threshold as f32, value as f32);
        let (ti, vi) = (threshold, value as i64);
        let out = unary_int(
            UnaryOp::Threshold { threshold, value },
            self,
            move |x| if x <= t32 { v32 } else { x },
            move |x| if x <= threshold { value } else { x },
            move |x| if (x as f64) <= ti { vi } else { x },
        );
        let x = self.clone();
        Tensor::from_op(out, "ThresholdBackward0", &[self], move |g, _| {
            vec![Some(scaled_grad(
                "ThresholdBackward0",
                g,
                &x,
                move |x| if x <= t32 { 0.0 } else { 1.0 },
                move |x| if x <= threshold { 0.0 } else { 1.0 },
                move |x: &Tensor| {
                    let (zero, one) = (x.scalar_like(0.0), x.scalar_like(1.0));
                    Tensor::where_cond(&x.le(&x.scalar_like(threshold)), &zero, &one)
                },
            ))]
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
        cuda_return!(self, super::cuda::softmax(self, d, false));
        let out = autograd::no_grad(|| {
            along_dim("softmax", self, d, softmax_row::<f32>, softmax_row::<f64>)
        });
        let (x, y) = (self.clone(), out.clone());
        Tensor::from_op(out, "SoftmaxBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() {
                let s = x.softmax(d as isize);
                s.mul(&g.sub(&g.mul(&s).sum_dim(d as isize, true)))
            } else {
                along_dim2(
                    "softmax_backward",
                    g,
                    &y,
                    d,
                    softmax_bw_row::<f32>,
                    softmax_bw_row::<f64>,
                )
            })]
        })
    }

    /// `log(softmax(x))` along `dim`, computed stably as `x - logsumexp(x)`,
    /// like `torch.log_softmax`.
    pub fn log_softmax(&self, dim: isize) -> Tensor {
        let d = normalize_dim("log_softmax", dim, self.dim());
        cuda_return!(self, super::cuda::softmax(self, d, true));
        let out = autograd::no_grad(|| {
            along_dim(
                "log_softmax",
                self,
                d,
                log_softmax_row::<f32>,
                log_softmax_row::<f64>,
            )
        });
        let (x, y) = (self.clone(), out.clone());
        Tensor::from_op(out, "LogSoftmaxBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() {
                g.sub(&x.softmax(d as isize).mul(&g.sum_dim(d as isize, true)))
            } else {
                along_dim2(
                    "log_softmax_backward",
                    g,
                    &y,
                    d,
                    log_softmax_bw_row::<f32>,
                    log_softmax_bw_row::<f64>,
                )
            })]
        })
    }
}
