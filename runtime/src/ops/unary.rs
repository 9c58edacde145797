//! Elementwise unary math ops and comparisons.

use super::binary::map_float;
use super::device::same_device;
use crate::{DType, Tensor};

impl Tensor {
    /// Negation, like `-tensor`.
    pub fn neg(&self) -> Tensor {
        let out = map_float("neg", self);
        Tensor::from_op(out, "NegBackward0", &[self], |g, _| vec![Some(g.neg())])
    }

    /// `e^x`, like `torch.exp`.
    pub fn exp(&self) -> Tensor {
        let out = map_float("exp", self);
        let (x, y) = (self.shallow_clone(), out.shallow_clone());
        Tensor::from_op_saved(
            out,
            "ExpBackward0",
            &[self],
            &[x.shallow_clone(), y.shallow_clone()],
            move |g, _| {
                // The saved output has no history; recompute it from the input
                // when the backward itself is being recorded (create_graph).
                if crate::autograd::is_grad_enabled() {
                    vec![Some(g.mul(&x.exp()))]
                } else {
                    vec![Some(g.mul(&y))]
                }
            },
        )
    }

    /// Natural logarithm, like `torch.log`.
    pub fn log(&self) -> Tensor {
        let out = map_float("log", self);
        Tensor::from_unary_saved(out, "LogBackward0", self, self, |g, x| g.div(x))
    }

    /// `x^exponent` elementwise, like `tensor.pow(2.5)`.
    pub fn pow_scalar(&self, exponent: f64) -> Tensor {
        let out = if exponent == 2.0 {
            map_float(crate::backend::UnaryOp::Pow(2.0), self)
        } else {
            map_float(crate::backend::UnaryOp::Pow(exponent), self)
        };
        Tensor::from_unary_saved(out, "PowBackward0", self, self, move |g, x| {
            let d = if exponent == 2.0 {
                x.mul_scalar(2.0)
            } else {
                x.pow_scalar(exponent - 1.0).mul_scalar(exponent)
            };
            g.mul(&d)
        })
    }
}

impl Tensor {
    fn compare(&self, op: &str, other: &Tensor, f: fn(f64, f64) -> bool) -> Tensor {
        same_device(op, &[self, other]);
        let (la, lb, shape) = super::binary::broadcast_layouts(op, self, other);
        let dtype = super::binary::promote(self.dtype(), other.dtype());
        let (a, b) = (self.to_dtype(dtype), other.to_dtype(dtype));
        crate::backend::of(a.device()).compare(op, f, (&a, &la), (&b, &lb), &shape)
    }

    /// `self == other` elementwise (bool tensor), like `torch.eq`.
    #[allow(clippy::should_implement_trait)]
    pub fn eq(&self, other: &Tensor) -> Tensor {
        self.compare("eq", other, |a, b| a == b)
    }

    /// `self != other` elementwise, like `torch.ne`.
    #[allow(clippy::should_implement_trait)]
    pub fn ne(&self, other: &Tensor) -> Tensor {
        self.compare("ne", other, |a, b| a != b)
    }

    /// `self < other` elementwise, like `torch.lt`.
    #[allow(clippy::should_implement_trait)]
    pub fn lt(&self, other: &Tensor) -> Tensor {
        self.compare("lt", other, |a, b| a < b)
    }

    /// `self <= other` elementwise, like `torch.le`.
    #[allow(clippy::should_implement_trait)]
    pub fn le(&self, other: &Tensor) -> Tensor {
        self.compare("le", other, |a, b| a <= b)
    }

    /// `self > other` elementwise, like `torch.gt`.
    #[allow(clippy::should_implement_trait)]
    pub fn gt(&self, other: &Tensor) -> Tensor {
        self.compare("gt", other, |a, b| a > b)
    }

    /// `self >= other` elementwise, like `torch.ge`.
    #[allow(clippy::should_implement_trait)]
    pub fn ge(&self, other: &Tensor) -> Tensor {
        self.compare("ge", other, |a, b| a >= b)
    }

    /// Compares with a scalar: `self == s`.
    pub fn eq_scalar(&self, s: f64) -> Tensor {
        self.eq(&self.f64_scalar_like(s))
    }

    /// Compares with a scalar: `self > s`.
    pub fn gt_scalar(&self, s: f64) -> Tensor {
        self.gt(&self.f64_scalar_like(s))
    }

    /// Compares with a scalar: `self < s`.
    pub fn lt_scalar(&self, s: f64) -> Tensor {
        self.lt(&self.f64_scalar_like(s))
    }

    /// Logical and of two bool tensors (broadcast).
    pub fn logical_and(&self, other: &Tensor) -> Tensor {
        same_device("logical_and", &[self, other]);
        // Nonzero is true, through uint8 like PyTorch.
        let (a, b) = (self.to_dtype(DType::U8), other.to_dtype(DType::U8));
        let op = "logical_and";
        let (la, lb, shape) = super::binary::broadcast_layouts(op, &a, &b);
        let f = |x: f64, y: f64| x != 0.0 && y != 0.0;
        crate::backend::of(a.device()).compare(op, f, (&a, &la), (&b, &lb), &shape)
    }
}
