//! The indexing primitives on CUDA tensors: the device kernels of
//! [`super::ops`] with the reshapes that give them the CPU's semantics
//! (0-d inputs, `index` smaller than the input outside `d`).

use super::backend::at_least_1d;
use super::ops;
use crate::layout::Layout;
use crate::{DType, Tensor, autograd};

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

/// `t` placed at the start of zeros of the larger `shape`.
fn pad_to(t: &Tensor, shape: &[usize]) -> Tensor {
    let z = Tensor::zeros_opts(shape, (t.dtype(), &t.device()));
    let mut view = z.shallow_clone();
    for (k, &n) in t.shape().iter().enumerate() {
        view = view.narrow(k as isize, 0, n);
    }
    autograd::no_grad(|| view.copy_(t));
    z
}

pub(super) fn index_select(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    let idx = index.reshape_to(&[index.numel()]);
    let out_shape = if x.dim() == 0 {
        index.shape().to_vec()
    } else {
        let mut s = x.shape().to_vec();
        s[d] = idx.numel();
        s
    };
    ops::index_select(&at_least_1d(x), d, &idx).reshape_to(&out_shape)
}

pub(super) fn index_add(x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Tensor {
    let op = "index_add";
    float_only(op, x);
    let x1 = at_least_1d(x);
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
    let src = autograd::no_grad(|| source.to_dtype(x.dtype())).reshape_to(&src_shape);
    let added = ops::index_add(x1.shape(), d, &idx, &src).reshape_to(x.shape());
    autograd::no_grad(|| x.add(&added))
}

pub(super) fn gather(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    if x.dim() == 0 {
        let flat = index.reshape_to(&[index.numel()]);
        return ops::gather(&x.reshape_to(&[1]), 0, &flat).reshape_to(index.shape());
    }
    // The kernel needs `x` of `index`'s shape outside `d`.
    let mut xv = x.shallow_clone();
    for k in (0..x.dim()).filter(|&k| k != d) {
        xv = xv.narrow(k as isize, 0, index.shape()[k]);
    }
    ops::gather(&xv, d, index)
}

pub(super) fn scatter_add(x: &Tensor, d: usize, index: &Tensor, src: &Tensor) -> Tensor {
    float_only("scatter_add", x);
    let srcc = autograd::no_grad(|| src.to_dtype(x.dtype()));
    let added = if x.dim() == 0 {
        let one = |t: &Tensor| t.reshape_to(&[1]);
        ops::scatter_add(&[1], 0, &one(index), &one(&srcc)).reshape_to(&[])
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
        let part = ops::scatter_add(&corner, d, index, &s);
        if corner == x.shape() {
            part
        } else {
            pad_to(&part, x.shape())
        }
    };
    autograd::no_grad(|| x.add(&added))
}

pub(super) fn masked_fill(x: &Tensor, mask: &Tensor, lm: &Layout, value: f64) -> Tensor {
    let fill = x.scalar_like(value);
    let lf = fill.layout().broadcast_to(x.shape()).expect("broadcast");
    super::where_((mask, lm), (&fill, &lf), (x, x.layout()), x.shape())
}

/// The positions where `mask` is true, read back to the host (one
/// synchronisation, as in PyTorch: the output's length depends on it).
fn true_positions(mask: &Tensor) -> Tensor {
    let keep: Vec<i64> = mask
        .to_vec::<bool>()
        .iter()
        .enumerate()
        .filter(|(_, m)| **m)
        .map(|(i, _)| i as i64)
        .collect();
    let n = keep.len();
    Tensor::from_vec(keep, [n]).to_device(mask.device())
}

pub(super) fn masked_select(x: &Tensor, mask: &Tensor, shape: &[usize]) -> Tensor {
    let idx = true_positions(&mask.expand(shape));
    let flat = x
        .expand(shape)
        .contiguous()
        .reshape_to(&[x.expand(shape).numel()]);
    index_select(&flat, 0, &idx)
}

pub(super) fn masked_scatter(g: &Tensor, mask: &Tensor) -> Tensor {
    let idx = true_positions(mask);
    let z = Tensor::zeros_opts([mask.numel()], (g.dtype(), &g.device()));
    index_add(&z, 0, &idx, g).reshape_to(mask.shape())
}

pub(super) fn one_hot(x: &Tensor, n: usize) -> Tensor {
    debug_assert_eq!(x.dtype(), DType::I64);
    ops::one_hot(x, n)
}
