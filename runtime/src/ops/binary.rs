//! Elementwise binary ops with NumPy/PyTorch broadcasting, their scalar
//! forms, and the `+ - * /` operators.

use crate::Tensor;
use crate::dtype::DType;
use crate::layout::{Layout, broadcast_shapes};

/// Applies `f` to broadcast-aligned elements of `a` and `b`, whose layouts
/// already have the output's shape (zero strides where broadcast).
pub(crate) fn binary_map<T: Copy, U>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    f: impl Fn(T, T) -> U,
) -> Vec<U> {
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        return a[ra].iter().zip(&b[rb]).map(|(&x, &y)| f(x, y)).collect();
    }
    let n = la.numel();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let rank = la.rank();
    let shape = la.shape();
    let inner = shape[rank - 1];
    let (sa, sb) = (la.strides()[rank - 1], lb.strides()[rank - 1]);
    let mut idx = vec![0usize; rank - 1];
    let (mut oa, mut ob) = (la.offset(), lb.offset());
    let outer: usize = shape[..rank - 1].iter().product();
    for _ in 0..outer {
        match (sa, sb) {
            (1, 1) => out.extend(
                a[oa..oa + inner]
                    .iter()
                    .zip(&b[ob..ob + inner])
                    .map(|(&x, &y)| f(x, y)),
            ),
            (1, 0) => {
                let y = b[ob];
                out.extend(a[oa..oa + inner].iter().map(|&x| f(x, y)));
            }
            (0, 1) => {
                let x = a[oa];
                out.extend(b[ob..ob + inner].iter().map(|&y| f(x, y)));
            }
            _ => out.extend((0..inner).map(|i| f(a[oa + i * sa], b[ob + i * sb]))),
        }
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            oa += la.strides()[d];
            ob += lb.strides()[d];
            if idx[d] < shape[d] {
                break;
            }
            oa -= la.strides()[d] * shape[d];
            ob -= lb.strides()[d] * shape[d];
            idx[d] = 0;
        }
    }
    out
}

/// The dtype two operands are computed in (PyTorch's type promotion,
/// simplified: the "wider" kind wins, floats over integers over bool).
pub(crate) fn promote(a: DType, b: DType) -> DType {
    fn rank(d: DType) -> u8 {
        match d {
            DType::Bool => 0,
            DType::U8 => 1,
            DType::I16 => 2,
            DType::I32 => 3,
            DType::I64 => 4,
            DType::BF16 => 5,
            DType::F16 => 6,
            DType::F32 => 7,
            DType::F64 => 8,
        }
    }
    if a == b {
        a
    } else if (a == DType::F16 && b == DType::BF16) || (a == DType::BF16 && b == DType::F16) {
        DType::F32
    } else if rank(a) >= rank(b) {
        a
    } else {
        b
    }
}

/// The elementwise functions of one binary op, per element type (the
/// CPU's kernels; device backends run the kernel of the op's name).
pub(crate) struct BinaryFns {
    pub f32: fn(f32, f32) -> f32,
    pub f64: fn(f64, f64) -> f64,
    pub i64: Option<fn(i64, i64) -> i64>,
}

/// Broadcasts `a` and `b` and applies `fns` (no autograd). Panics naming
/// `op` and both shapes when they do not broadcast.
pub(crate) fn broadcast_binary(op: &str, a: &Tensor, b: &Tensor, fns: &BinaryFns) -> Tensor {
    let (la, lb, shape) = broadcast_layouts(op, a, b);
    let dtype = promote(a.dtype(), b.dtype());
    let (a, b) = (a.to_dtype(dtype), b.to_dtype(dtype));
    if a.device() != b.device() {
        panic!(
            "{op}: expected all tensors to be on the same device, but found {} and {}",
            a.device(),
            b.device()
        );
    }
    crate::backend::of(a.device()).binary(op, fns, (&a, &la), (&b, &lb), &shape)
}

/// The layouts of `a` and `b` broadcast to their common shape.
pub(crate) fn broadcast_layouts(op: &str, a: &Tensor, b: &Tensor) -> (Layout, Layout, Vec<usize>) {
    let shape = broadcast_shapes(a.shape(), b.shape()).unwrap_or_else(|| {
        panic!(
            "{op}: the size of tensor a {:?} must match the size of tensor b {:?} (shapes cannot be broadcast)",
            a.shape(),
            b.shape()
        )
    });
    let la = a.layout().broadcast_to(&shape).expect("broadcastable");
    let lb = b.layout().broadcast_to(&shape).expect("broadcastable");
    (la, lb, shape)
}

/// Applies `op` elementwise in the tensor's own dtype (no autograd);
/// int64 tensors need an op with an integer form, other integer and bool
/// tensors panic naming the op.
pub(crate) fn map_float(op: impl Into<crate::backend::UnaryOp>, t: &Tensor) -> Tensor {
    crate::backend::of(t.device()).unary(op.into(), t)
}

impl Tensor {
    /// Elementwise sum with broadcasting, like `torch.add`.
    pub fn add(&self, other: &Tensor) -> Tensor {
        let fns = BinaryFns {
            f32: |a, b| a + b,
            f64: |a, b| a + b,
            i64: Some(|a, b| a.wrapping_add(b)),
        };
        let out = broadcast_binary("add", self, other, &fns);
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Tensor::from_op(out, "AddBackward0", &[self, other], move |g, _| {
            vec![Some(g.sum_to(&sa)), Some(g.sum_to(&sb))]
        })
    }

    /// Elementwise difference with broadcasting, like `torch.sub`.
    pub fn sub(&self, other: &Tensor) -> Tensor {
        let fns = BinaryFns {
            f32: |a, b| a - b,
            f64: |a, b| a - b,
            i64: Some(|a, b| a.wrapping_sub(b)),
        };
        let out = broadcast_binary("sub", self, other, &fns);
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Tensor::from_op(out, "SubBackward0", &[self, other], move |g, need| {
            vec![Some(g.sum_to(&sa)), need[1].then(|| g.neg().sum_to(&sb))]
        })
    }

    /// Elementwise product with broadcasting, like `torch.mul`.
    pub fn mul(&self, other: &Tensor) -> Tensor {
        let fns = BinaryFns {
            f32: |a, b| a * b,
            f64: |a, b| a * b,
            i64: Some(|a, b| a.wrapping_mul(b)),
        };
        let out = broadcast_binary("mul", self, other, &fns);
        Tensor::from_binary_saved(out, "MulBackward0", self, other, |g, need, a, b| {
            vec![
                need[0].then(|| g.mul(b).sum_to(a.shape())),
                need[1].then(|| g.mul(a).sum_to(b.shape())),
            ]
        })
    }

    /// Elementwise quotient with broadcasting (true division), like `torch.div`.
    pub fn div(&self, other: &Tensor) -> Tensor {
        let (a, b) = if self.dtype().is_float() || other.dtype().is_float() {
            (self.shallow_clone(), other.shallow_clone())
        } else {
            (self.to_dtype(DType::F32), other.to_dtype(DType::F32))
        };
        let fns = BinaryFns {
            f32: |a, b| a / b,
            f64: |a, b| a / b,
            i64: None,
        };
        let out = broadcast_binary("div", &a, &b, &fns);
        Tensor::from_op_saved(
            out,
            "DivBackward0",
            &[self, other],
            &[a.shallow_clone(), b.shallow_clone()],
            move |g, need| {
                vec![
                    need[0].then(|| g.div(&b).sum_to(a.shape())),
                    need[1].then(|| g.mul(&a).div(&b.mul(&b)).neg().sum_to(b.shape())),
                ]
            },
        )
    }

    /// Elementwise maximum with broadcasting, like `torch.maximum`; the
    /// gradient goes to the larger input (split evenly on ties).
    pub fn maximum(&self, other: &Tensor) -> Tensor {
        let fns = BinaryFns {
            f32: f32::max,
            f64: f64::max,
            i64: Some(|a: i64, b: i64| a.max(b)),
        };
        let out = broadcast_binary("maximum", self, other, &fns);
        Tensor::from_binary_saved(out, "MaximumBackward0", self, other, |g, _, a, b| {
            let ga = g.mul(
                &a.gt(b)
                    .to_dtype(g.dtype())
                    .add(&a.eq(b).to_dtype(g.dtype()).mul_scalar(0.5)),
            );
            let gb = g.sub(&ga);
            vec![Some(ga.sum_to(a.shape())), Some(gb.sum_to(b.shape()))]
        })
    }

    /// Elementwise minimum with broadcasting, like `torch.minimum`.
    pub fn minimum(&self, other: &Tensor) -> Tensor {
        self.neg().maximum(&other.neg()).neg()
    }

    /// Adds a scalar, like `tensor + 2.5`.
    pub fn add_scalar(&self, s: f64) -> Tensor {
        let out = map_float(crate::backend::UnaryOp::AddScalar(s), self);
        Tensor::from_op(out, "AddBackward0", &[self], |g, _| {
            vec![Some(g.shallow_clone())]
        })
    }

    /// Multiplies by a scalar, like `tensor * 2.5`.
    pub fn mul_scalar(&self, s: f64) -> Tensor {
        let out = map_float(crate::backend::UnaryOp::MulScalar(s), self);
        Tensor::from_op(out, "MulBackward0", &[self], move |g, _| {
            vec![Some(g.mul_scalar(s))]
        })
    }

    /// Subtracts a scalar.
    pub fn sub_scalar(&self, s: f64) -> Tensor {
        self.add_scalar(-s)
    }

    /// Divides by a scalar.
    pub fn div_scalar(&self, s: f64) -> Tensor {
        self.mul_scalar(1.0 / s)
    }

    /// `s - self`, like `2.0 - tensor`.
    pub fn rsub_scalar(&self, s: f64) -> Tensor {
        self.neg().add_scalar(s)
    }
}

/// Implements `op` for every owned/borrowed pairing of tensors and for
/// tensor–scalar pairs.
macro_rules! operator {
    ($trait:ident, $method:ident, $tensor_fn:ident, $scalar_fn:expr) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$tensor_fn(self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$tensor_fn(&self, &rhs)
            }
        }
        impl std::ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$tensor_fn(&self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$tensor_fn(self, &rhs)
            }
        }
        impl std::ops::$trait<f64> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f64) -> Tensor {
                #[allow(clippy::redundant_closure_call)]
                ($scalar_fn)(self, rhs)
            }
        }
        impl std::ops::$trait<f64> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f64) -> Tensor {
                #[allow(clippy::redundant_closure_call)]
                ($scalar_fn)(&self, rhs)
            }
        }
        impl std::ops::$trait<&Tensor> for f64 {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$tensor_fn(&rhs.scalar_like(self), rhs)
            }
        }
        impl std::ops::$trait<Tensor> for f64 {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$tensor_fn(&rhs.scalar_like(self), &rhs)
            }
        }
    };
}

operator!(Add, add, add, |t: &Tensor, s| t.add_scalar(s));
operator!(Sub, sub, sub, |t: &Tensor, s| t.sub_scalar(s));
operator!(Mul, mul, mul, |t: &Tensor, s| t.mul_scalar(s));
operator!(Div, div, div, |t: &Tensor, s| t.div_scalar(s));

impl std::ops::Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl std::ops::Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}
