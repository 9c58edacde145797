//! Elementwise math: `sqrt`, `abs`, `clamp`, `pow` with a tensor exponent,
//! `sin`, `cos`, `reciprocal`, `sign`, `square`, `erf`.
//!
//! Backward rules take a fused single-pass kernel when no graph of the
//! backward is being recorded, and ordinary differentiable tensor ops that
//! recompute from the input when `create_graph` asks for higher-order
//! gradients.

use super::binary::{BinaryFns, broadcast_binary};
use super::device::is_cuda;
use super::kernel::{scaled_grad, unary, unary_int, zip2};
use crate::backend::UnaryOp;
use crate::{Tensor, autograd};

/// `2 / sqrt(pi)`, the derivative of `erf` at 0.
const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

fn sign_f32(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0 // keeps NaN, maps ±0 to 0
    }
}

fn sign_f64(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0
    }
}

fn clamp_val<T: PartialOrd + Copy>(x: T, lo: Option<T>, hi: Option<T>) -> T {
    let y = match lo {
        Some(l) if x < l => l,
        _ => x,
    };
    match hi {
        Some(h) if y > h => h,
        _ => y,
    }
}

impl Tensor {
    /// Square root, like `torch.sqrt`. Integer tensors give float32.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// assert_eq!(Tensor::from([4.0f32, 9.0]).sqrt().to_vec::<f32>(), vec![2.0, 3.0]);
    /// ```
    pub fn sqrt(&self) -> Tensor {
        let out = unary("sqrt", self, f32::sqrt, f64::sqrt);
        let (x, y) = (self.clone(), out.clone());
        Tensor::from_op(out, "SqrtBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                g.div(&x.sqrt().mul_scalar(2.0))
            } else {
                zip2("sqrt", g, &y, |g, y| g / (2.0 * y), |g, y| g / (2.0 * y))
            })]
        })
    }

    /// Absolute value, like `torch.abs`; the gradient at 0 is 0.
    pub fn abs(&self) -> Tensor {
        let out = unary_int("abs", self, f32::abs, f64::abs, i64::wrapping_abs);
        let x = self.clone();
        Tensor::from_op(out, "AbsBackward0", &[self], move |g, _| {
            vec![Some(scaled_grad(
                "AbsBackward0",
                g,
                &x,
                sign_f32,
                sign_f64,
                Tensor::sign,
            ))]
        })
    }

    /// Sign (-1, 0 or 1), like `torch.sign`; its gradient is zero.
    pub fn sign(&self) -> Tensor {
        let out = unary_int("sign", self, sign_f32, sign_f64, i64::signum);
        Tensor::from_op(out, "SignBackward0", &[self], |g, _| {
            vec![Some(g.zeros_like())]
        })
    }

    /// Clamps every element into `[min, max]` (either bound optional), like
    /// `torch.clamp`. NaN stays NaN; when `min > max` everything becomes
    /// `max`. The gradient passes where `min <= x <= max` (inclusive).
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let t = Tensor::from([-2.0f32, 0.5, 3.0]).clamp(Some(-1.0), Some(1.0));
    /// assert_eq!(t.to_vec::<f32>(), vec![-1.0, 0.5, 1.0]);
    /// ```
    pub fn clamp(&self, min: Option<f64>, max: Option<f64>) -> Tensor {
        if min.is_none() && max.is_none() {
            panic!("clamp: at least one of 'min' or 'max' must not be None");
        }
        let (lo32, hi32) = (min.map(|v| v as f32), max.map(|v| v as f32));
        let (loi, hii) = (min.map(|v| v as i64), max.map(|v| v as i64));
        let kind = match (min, max) {
            // min > max: everything becomes max, like PyTorch.
            (Some(lo), Some(hi)) => UnaryOp::Clamp(lo.min(hi), hi),
            (Some(lo), None) => UnaryOp::ClampMin(lo),
            _ => UnaryOp::ClampMax(max.unwrap_or(f64::INFINITY)),
        };
        let out = unary_int(
            kind,
            self,
            move |x| clamp_val(x, lo32, hi32),
            move |x| clamp_val(x, min, max),
            move |x| clamp_val(x, loi, hii),
        );
        let x = self.clone();
        let (lo, hi) = (
            min.unwrap_or(f64::NEG_INFINITY),
            max.unwrap_or(f64::INFINITY),
        );
        let (lo32, hi32) = (lo as f32, hi as f32);
        Tensor::from_op(out, "ClampBackward1", &[self], move |g, _| {
            vec![Some(scaled_grad(
                "ClampBackward1",
                g,
                &x,
                move |x| ((x >= lo32 && x <= hi32) as u8) as f32,
                move |x| ((x >= lo && x <= hi) as u8) as f64,
                move |x: &Tensor| {
                    let inside = x.ge(&x.scalar_like(lo));
                    inside
                        .logical_and(&x.le(&x.scalar_like(hi)))
                        .to_dtype(x.dtype())
                },
            ))]
        })
    }

    /// `clamp(min, None)`, like `torch.clamp_min`.
    pub fn clamp_min(&self, min: f64) -> Tensor {
        self.clamp(Some(min), None)
    }

    /// `clamp(None, max)`, like `torch.clamp_max`.
    pub fn clamp_max(&self, max: f64) -> Tensor {
        self.clamp(None, Some(max))
    }

    /// `self ^ exponent` elementwise with broadcasting, like `torch.pow`
    /// with a tensor exponent. The exponent's gradient `y * ln(x)` is taken
    /// as 0 where `x == 0` and the exponent is non-negative (PyTorch's rule).
    pub fn pow(&self, exponent: &Tensor) -> Tensor {
        let fns = BinaryFns {
            f32: f32::powf,
            f64: f64::powf,
            i64: Some(|a: i64, b: i64| {
                if b < 0 {
                    panic!("pow: integers to negative integer powers are not allowed");
                }
                a.wrapping_pow(b as u32)
            }),
        };
        let out = broadcast_binary("pow", self, exponent, &fns);
        let (a, b) = (self.clone(), exponent.clone());
        Tensor::from_op(out, "PowBackward1", &[self, exponent], move |g, need| {
            let ga = need[0].then(|| {
                let d = b.mul(&a.pow(&b.add_scalar(-1.0)));
                g.mul(&d).sum_to(a.shape())
            });
            let gb = need[1].then(|| {
                let d = a.pow(&b).mul(&a.log());
                let zero_base = a.eq_scalar(0.0).logical_and(&b.ge(&b.zeros_like()));
                let d = Tensor::where_cond(&zero_base, &d.zeros_like(), &d);
                g.mul(&d).sum_to(b.shape())
            });
            vec![ga, gb]
        })
    }

    /// Sine, like `torch.sin`.
    pub fn sin(&self) -> Tensor {
        let out = unary("sin", self, f32::sin, f64::sin);
        let x = self.clone();
        Tensor::from_op(out, "SinBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                g.mul(&x.cos())
            } else {
                zip2("sin", g, &x, |g, x| g * x.cos(), |g, x| g * x.cos())
            })]
        })
    }

    /// Cosine, like `torch.cos`.
    pub fn cos(&self) -> Tensor {
        let out = unary("cos", self, f32::cos, f64::cos);
        let x = self.clone();
        Tensor::from_op(out, "CosBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                g.mul(&x.sin()).neg()
            } else {
                zip2("cos", g, &x, |g, x| -g * x.sin(), |g, x| -g * x.sin())
            })]
        })
    }

    /// `1 / x`, like `torch.reciprocal`.
    pub fn reciprocal(&self) -> Tensor {
        let out = unary("reciprocal", self, |x| 1.0 / x, |x| 1.0 / x);
        let (x, y) = (self.clone(), out.clone());
        Tensor::from_op(out, "ReciprocalBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                g.div(&x.mul(&x)).neg()
            } else {
                zip2("reciprocal", g, &y, |g, y| -g * y * y, |g, y| -g * y * y)
            })]
        })
    }

    /// `x * x`, like `torch.square`.
    pub fn square(&self) -> Tensor {
        let out = unary_int("square", self, |x| x * x, |x| x * x, |x| x.wrapping_mul(x));
        let x = self.clone();
        Tensor::from_op(out, "PowBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                g.mul(&x).mul_scalar(2.0)
            } else {
                zip2("square", g, &x, |g, x| 2.0 * g * x, |g, x| 2.0 * g * x)
            })]
        })
    }

    /// The error function, like `torch.erf` (accurate to about one ulp).
    pub fn erf(&self) -> Tensor {
        let out = unary(
            "erf",
            self,
            |x| super::erf::erf(x as f64) as f32,
            super::erf::erf,
        );
        let x = self.clone();
        Tensor::from_op(out, "ErfBackward0", &[self], move |g, _| {
            vec![Some(if autograd::is_grad_enabled() || is_cuda(g) {
                g.mul(&x.mul(&x).neg().exp().mul_scalar(TWO_OVER_SQRT_PI))
            } else {
                zip2(
                    "erf",
                    g,
                    &x,
                    |g, x| g * (TWO_OVER_SQRT_PI as f32) * (-x * x).exp(),
                    |g, x| g * TWO_OVER_SQRT_PI * (-x * x).exp(),
                )
            })]
        })
    }
}
