//! The CUDA paths of the tensor ops (feature `cuda`). Each op sends its
//! CUDA tensors here after the shared checks (`cuda_return!`); the
//! functions run the backend kernels of `crate::backend::cuda` and record
//! the same backward rule as the CPU path, written in tensor ops or device
//! kernels so that the backward stays on the device too.

use crate::backend::UnaryOp;
use crate::backend::cuda as kc;
use crate::layout::Layout;
use crate::{DType, Tensor, autograd};

/// `t` as a 1-element 1-D tensor when it is 0-d (the kernels index a
/// dimension), else `t` itself.
fn at_least_1d(t: &Tensor) -> Tensor {
    if t.dim() == 0 {
        t.reshape_to(&[1])
    } else {
        t.clone()
    }
}

// ----- elementwise -----------------------------------------------------------

/// An elementwise op with the CPU helpers' dtype rules: float tensors keep
/// their dtype; int64 stays int64 when `keep_int` (the op's int kernel
/// must exist); everything else is computed in float32.
pub(crate) fn unary(op: UnaryOp, x: &Tensor, keep_int: bool) -> Tensor {
    if x.dtype().is_float() || (keep_int && x.dtype() == DType::I64) {
        kc::unary(op, x)
    } else {
        kc::unary(op, &autograd::no_grad(|| x.to_dtype(DType::F32)))
    }
}

/// `g * s(x)` recorded as an op of `g` alone (see
/// [`super::kernel::scaled_grad`]), with the factor `s(x)` from tensor ops.
pub(crate) fn scaled_grad<D>(name: &'static str, g: &Tensor, x: &Tensor, factor: D) -> Tensor
where
    D: Fn(&Tensor) -> Tensor + Copy + Send + Sync + 'static,
{
    let out = autograd::no_grad(|| g.mul(&factor(x)));
    let x = x.detach();
    Tensor::from_op(out, name, &[g], move |gg, _| {
        vec![Some(scaled_grad(name, gg, &x, factor))]
    })
}

/// A logical op (`logical_and`, ...) of broadcast operands read as
/// nonzero-is-true through uint8, like the CPU path.
pub(crate) fn logical(op: &str, a: &Tensor, b: &Tensor) -> Tensor {
    let (a, b) = (a.to_dtype(DType::U8), b.to_dtype(DType::U8));
    let (la, lb, shape) = super::binary::broadcast_layouts(op, &a, &b);
    kc::compare(op, &a, &la, &b, &lb, &shape)
}

// ----- softmax -----------------------------------------------------------------

/// Softmax (or log-softmax when `log`) along `d`, with its backward.
pub(crate) fn softmax(x: &Tensor, d: usize, log: bool) -> Tensor {
    let xd = autograd::no_grad(|| {
        x.detach()
            .to_dtype(super::kernel::float_result_dtype(x.dtype()))
    });
    let out = kc::softmax(&at_least_1d(&xd), d, log).reshape_to(x.shape());
    let (xc, y) = (x.clone(), out.clone());
    let name = if log {
        "LogSoftmaxBackward0"
    } else {
        "SoftmaxBackward0"
    };
    Tensor::from_op(out, name, &[x], move |g, _| {
        let di = d as isize;
        vec![Some(if autograd::is_grad_enabled() {
            // Recorded (create_graph): the CPU path's differentiable form.
            let s = xc.softmax(di);
            if log {
                g.sub(&s.mul(&g.sum_dim(di, true)))
            } else {
                s.mul(&g.sub(&g.mul(&s).sum_dim(di, true)))
            }
        } else {
            let g = at_least_1d(&g.to_dtype(y.dtype()));
            kc::softmax_backward(&at_least_1d(&y), &g, d, log).reshape_to(y.shape())
        })]
    })
}

// ----- selection -----------------------------------------------------------------

/// `where(cond, a, b)` of operands already promoted to `ac`/`bc` and
/// broadcastable to `shape`, with the CPU path's backward.
pub(crate) fn where_cond(
    cond: &Tensor,
    a: &Tensor,
    b: &Tensor,
    ac: &Tensor,
    bc: &Tensor,
    shape: &[usize],
) -> Tensor {
    let l = |t: &Tensor| t.layout().broadcast_to(shape).expect("broadcast");
    let out = kc::where_(cond, &l(cond), ac, &l(ac), bc, &l(bc), shape);
    let (sa, sb, cond) = (a.shape().to_vec(), b.shape().to_vec(), cond.clone());
    Tensor::from_op(out, "WhereBackward0", &[a, b], move |g, need| {
        let zero = g.scalar_like(0.0);
        vec![
            need[0].then(|| Tensor::where_cond(&cond, g, &zero).sum_to(&sa)),
            need[1].then(|| Tensor::where_cond(&cond, &zero, g).sum_to(&sb)),
        ]
    })
}

/// `x` with `value` where `mask` (its layout `lm` broadcast to `x`) is true.
pub(crate) fn masked_fill(x: &Tensor, mask: &Tensor, lm: &Layout, value: f64) -> Tensor {
    let fill = x.scalar_like(value);
    let lf = fill.layout().broadcast_to(x.shape()).expect("broadcast");
    let out = kc::where_(mask, lm, &fill, &lf, x, x.layout(), x.shape());
    let mask = mask.clone();
    Tensor::from_op(out, "MaskedFillBackward0", &[x], move |g, _| {
        vec![Some(Tensor::where_cond(&mask, &g.scalar_like(0.0), g))]
    })
}

/// The elements of `x` where `mask` is true (both broadcast to `shape`),
/// 1-D. The output's length depends on the mask, so the mask is read back
/// to the host (one synchronisation, as in PyTorch); the gather itself and
/// the gradient (through `index_select`) stay on the device.
pub(crate) fn masked_select(x: &Tensor, mask: &Tensor, shape: &[usize]) -> Tensor {
    let keep: Vec<i64> = mask
        .expand(shape)
        .to_vec::<bool>()
        .iter()
        .enumerate()
        .filter(|(_, m)| **m)
        .map(|(i, _)| i as i64)
        .collect();
    let n = keep.len();
    let idx = Tensor::from_vec(keep, [n]).to_device(x.device());
    x.expand(shape).reshape(&[-1]).index_select(0, &idx)
}

// ----- indexing --------------------------------------------------------------------

/// `x.index_select(d, index)` (`index` 0-d or 1-D int64), with the
/// `index_add` backward.
pub(crate) fn index_select(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    let idx = index.reshape_to(&[index.numel()]);
    let x1 = at_least_1d(&x.detach());
    let out_shape = if x.dim() == 0 {
        index.shape().to_vec()
    } else {
        let mut s = x.shape().to_vec();
        s[d] = idx.numel();
        s
    };
    let out = kc::index_select(&x1, d, &idx).reshape_to(&out_shape);
    let (in_shape, in1) = (x.shape().to_vec(), x1.shape().to_vec());
    Tensor::from_op(out, "IndexSelectBackward0", &[x], move |g, _| {
        let mut gshape = in1.clone();
        gshape[d] = idx.numel();
        let g1 = g.reshape_to(&gshape);
        vec![Some(if autograd::is_grad_enabled() {
            let z = Tensor::zeros_opts(in1.as_slice(), (g.dtype(), &g.device()));
            z.index_add(d as isize, &idx, &g1).reshape_to(&in_shape)
        } else {
            kc::index_add(&in1, d, &idx, &g1).reshape_to(&in_shape)
        })]
    })
}

/// Panics naming `op` for the integer and bool dtypes, which have no
/// atomic-add kernel.
fn float_only(op: &str, t: &Tensor) {
    if !t.dtype().is_float() {
        panic!(
            "{op}: not supported for {} tensors on {}",
            t.dtype(),
            t.device()
        );
    }
}

/// `x.index_add(d, index, source)` out of place, with the CPU path's checks
/// and backward.
pub(crate) fn index_add(x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Tensor {
    let op = "index_add";
    float_only(op, x);
    let x1 = at_least_1d(&x.detach());
    let k = index.numel();
    let mut src_shape = x1.shape().to_vec();
    src_shape[d] = k;
    if at_least_1d(source).shape() != src_shape.as_slice() || index.dim() > 1 {
        panic!(
            "{op}: source of shape {:?} does not match the input of shape {:?} with {k} indices along dim {d}",
            source.shape(),
            x.shape()
        );
    }
    let idx = index.reshape_to(&[k]);
    let src = autograd::no_grad(|| source.detach().to_dtype(x.dtype())).reshape_to(&src_shape);
    let added = kc::index_add(x1.shape(), d, &idx, &src).reshape_to(x.shape());
    let out = autograd::no_grad(|| x.detach().add(&added));
    let src_shape = source.shape().to_vec();
    Tensor::from_op(out, "IndexAddBackward0", &[x, source], move |g, need| {
        vec![
            Some(g.clone()),
            need[1].then(|| g.index_select(d as isize, &idx).reshape_to(&src_shape)),
        ]
    })
}

/// `x.gather(d, index)` (shapes already checked: `index` fits inside `x`
/// outside `d`), with the `scatter_add` backward.
pub(crate) fn gather(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    let out = if x.dim() == 0 {
        let flat = index.reshape_to(&[index.numel()]);
        kc::gather(&x.detach().reshape_to(&[1]), 0, &flat).reshape_to(index.shape())
    } else {
        // The kernel needs `x` of `index`'s shape outside `d`.
        let mut xv = x.detach();
        for k in (0..x.dim()).filter(|&k| k != d) {
            xv = xv.narrow(k as isize, 0, index.shape()[k]);
        }
        kc::gather(&xv, d, index)
    };
    let in_shape = x.shape().to_vec();
    let index = index.clone();
    Tensor::from_op(out, "GatherBackward0", &[x], move |g, _| {
        if in_shape.is_empty() {
            return vec![Some(g.sum())];
        }
        let z = Tensor::zeros_opts(in_shape.as_slice(), (g.dtype(), &g.device()));
        vec![Some(z.scatter_add(d as isize, &index, g))]
    })
}

/// `x.scatter_add(d, index, src)` out of place (shapes already checked:
/// `index` fits inside `x` outside `d` and inside `src`), with the CPU
/// path's backward.
pub(crate) fn scatter_add(x: &Tensor, d: usize, index: &Tensor, src: &Tensor) -> Tensor {
    float_only("scatter_add", x);
    let srcc = autograd::no_grad(|| src.detach().to_dtype(x.dtype()));
    let added = if x.dim() == 0 {
        let one = |t: &Tensor| t.reshape_to(&[1]);
        kc::scatter_add(&[1], 0, &one(index), &one(&srcc)).reshape_to(&[])
    } else {
        // The kernel reads `src` and writes the output with `index`'s shape
        // outside `d`: narrow `src`, scatter into that corner of the
        // output, then place the corner into zeros of the full shape.
        let mut s = srcc;
        let mut corner = x.shape().to_vec();
        for (k, c) in corner.iter_mut().enumerate() {
            s = s.narrow(k as isize, 0, index.shape()[k]);
            if k != d {
                *c = index.shape()[k];
            }
        }
        let part = kc::scatter_add(&corner, d, index, &s);
        if corner == x.shape() {
            part
        } else {
            super::index::pad_to(&part, x.shape())
        }
    };
    let out = autograd::no_grad(|| x.detach().add(&added));
    let index = index.clone();
    let src_shape = src.shape().to_vec();
    Tensor::from_op(out, "ScatterAddBackward0", &[x, src], move |g, need| {
        let gs = need[1].then(|| {
            let gathered = g.gather(d as isize, &index);
            if gathered.shape() == src_shape.as_slice() {
                gathered
            } else {
                super::index::pad_to(&gathered, &src_shape)
            }
        });
        vec![Some(g.clone()), gs]
    })
}

/// One-hot encoding of int64 class indices; `num_classes < 0` reads the
/// largest index back to the host (one synchronisation).
pub(crate) fn one_hot(t: &Tensor, num_classes: isize) -> Tensor {
    let n = if num_classes >= 0 {
        num_classes as usize
    } else if t.numel() == 0 {
        0
    } else {
        (t.max().item() as i64 + 1).max(0) as usize
    };
    kc::one_hot(t, n)
}
