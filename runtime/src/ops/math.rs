//! Elementwise math: `sqrt`, `abs`, `clamp`, `pow` with a tensor exponent,
//! `sin`, `cos`, `reciprocal`, `sign`, `square`, `erf`.
//!
//! Backward rules take a fused single-pass kernel when no graph of the
//! backward is being recorded, and ordinary differentiable tensor ops that
//! recompute from the input when `create_graph` asks for higher-order
//! gradients.

use super::binary::{BinaryFns, broadcast_binary};

use super::kernel::{scaled_grad, unary, unary_int};
use crate::Tensor;
use crate::backend::UnaryOp;

/// `2 / sqrt(pi)`, the derivative of `erf` at 0.
const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

impl Tensor {
    /// Square root, like `torch.sqrt`. Integer tensors give float32.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// assert_eq!(Tensor::from([4.0f32, 9.0]).sqrt().to_vec::<f32>(), vec![2.0, 3.0]);
    /// ```
    pub fn sqrt(&self) -> Tensor {
        let out = unary("sqrt", self);
        Tensor::from_unary_saved(out, "SqrtBackward0", self, self, |g, x| {
            g.div(&x.sqrt().mul_scalar(2.0))
        })
    }

    /// Absolute value, like `torch.abs`; the gradient at 0 is 0.
    pub fn abs(&self) -> Tensor {
        let out = unary_int("abs", self);
        Tensor::from_unary_saved(out, "AbsBackward0", self, self, |g, x| {
            scaled_grad("AbsBackward0", UnaryOp::Abs, g, x)
        })
    }

    /// Sign (-1, 0 or 1), like `torch.sign`; its gradient is zero.
    pub fn sign(&self) -> Tensor {
        let out = unary_int("sign", self);
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
        let kind = match (min, max) {
            // min > max: everything becomes max, like PyTorch.
            (Some(lo), Some(hi)) => UnaryOp::Clamp(lo.min(hi), hi),
            (Some(lo), None) => UnaryOp::ClampMin(lo),
            _ => UnaryOp::ClampMax(max.unwrap_or(f64::INFINITY)),
        };
        let out = unary_int(kind, self);
        let (lo, hi) = (
            min.unwrap_or(f64::NEG_INFINITY),
            max.unwrap_or(f64::INFINITY),
        );
        Tensor::from_unary_saved(out, "ClampBackward1", self, self, move |g, x| {
            scaled_grad("ClampBackward1", UnaryOp::Clamp(lo, hi), g, x)
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
        Tensor::from_binary_saved(out, "PowBackward1", self, exponent, |g, need, a, b| {
            let ga = need[0].then(|| {
                let d = b.mul(&a.pow(&b.add_scalar(-1.0)));
                g.mul(&d).sum_to(a.shape())
            });
            let gb = need[1].then(|| {
                let d = a.pow(b).mul(&a.log());
                let zero_base = a.eq_scalar(0.0).logical_and(&b.ge(&b.zeros_like()));
                let d = Tensor::where_cond(&zero_base, &d.zeros_like(), &d);
                g.mul(&d).sum_to(b.shape())
            });
            vec![ga, gb]
        })
    }

    /// Sine, like `torch.sin`.
    pub fn sin(&self) -> Tensor {
        let out = unary("sin", self);
        Tensor::from_unary_saved(out, "SinBackward0", self, self, |g, x| g.mul(&x.cos()))
    }

    /// Cosine, like `torch.cos`.
    pub fn cos(&self) -> Tensor {
        let out = unary("cos", self);
        Tensor::from_unary_saved(out, "CosBackward0", self, self, |g, x| {
            g.mul(&x.sin()).neg()
        })
    }

    /// `1 / x`, like `torch.reciprocal`.
    pub fn reciprocal(&self) -> Tensor {
        let out = unary("reciprocal", self);
        Tensor::from_unary_saved(out, "ReciprocalBackward0", self, self, |g, x| {
            g.div(&x.mul(x)).neg()
        })
    }

    /// `x * x`, like `torch.square`.
    pub fn square(&self) -> Tensor {
        let out = unary_int("square", self);
        Tensor::from_unary_saved(out, "PowBackward0", self, self, |g, x| {
            g.mul(x).mul_scalar(2.0)
        })
    }

    /// The error function, like `torch.erf` (accurate to about one ulp).
    pub fn erf(&self) -> Tensor {
        let out = unary("erf", self);
        Tensor::from_unary_saved(out, "ErfBackward0", self, self, |g, x| {
            g.mul(&x.mul(x).neg().exp().mul_scalar(TWO_OVER_SQRT_PI))
        })
    }
}
