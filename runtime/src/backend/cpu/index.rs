//! Indexing kernels on the CPU: `index_select`, `index_add`, `gather`,
//! `scatter_add`, `where`, `masked_fill`, `masked_select` (and its
//! scatter-back) and `one_hot`, for every dtype. Out-of-range indices
//! panic naming the op, the index and the size.

use crate::backend::Operand;
use crate::dtype::Element;
use crate::dtype::dispatch;
use crate::layout::{Layout, contiguous_strides};
use crate::nn::functional::util::with_raw;
use crate::ops::kernel::split_at_dim;
use crate::{Tensor, autograd};

/// Validates one index value against a dimension's size.
#[inline]
fn checked(op: &str, j: i64, d: usize, size: usize) -> usize {
    if j < 0 || j as usize >= size {
        panic!("{op}: index {j} is out of bounds for dimension {d} with size {size}");
    }
    j as usize
}

/// Copies `t`'s elements of type `T` in row-major order into a new vector.
fn owned_vec<T: Element>(op: &str, t: &Tensor) -> Vec<T> {
    t.with_slice::<T, _>(op, |v| v.to_vec())
}

/// `t`'s shape, with a 0-d tensor seen as `[1]`.
fn shape_1d(t: &Tensor) -> Vec<usize> {
    if t.dim() == 0 {
        vec![1]
    } else {
        t.shape().to_vec()
    }
}

/// The slices along dimension `d` of `x` (a 0-d tensor seen as `[1]`)
/// that `index` picks: `x` as `[outer, n, inner]`, the checked indices,
/// and the shape of the picked slices (`x`'s with `idx.len()` at `d`).
struct Slices {
    outer: usize,
    n: usize,
    inner: usize,
    idx: Vec<usize>,
    picked_shape: Vec<usize>,
}

impl Slices {
    fn new(op: &str, x: &Tensor, d: usize, index: &Tensor) -> Slices {
        let mut picked_shape = shape_1d(x);
        let (outer, n, inner) = split_at_dim(&picked_shape, d);
        let idx: Vec<usize> =
            index.with_slice::<i64, _>(op, |v| v.iter().map(|&j| checked(op, j, d, n)).collect());
        picked_shape[d] = idx.len();
        Slices {
            outer,
            n,
            inner,
            idx,
            picked_shape,
        }
    }
}

pub(super) fn index_select(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    let (op, this) = ("index_select", x);
    let sl = Slices::new(op, this, d, index);
    let (outer, n, inner) = (sl.outer, sl.n, sl.inner);
    let out_shape = if this.dim() == 0 {
        index.shape().to_vec()
    } else {
        sl.picked_shape.clone()
    };
    dispatch!(all this.dtype(), T => {
        let v = this.with_slice::<T, _>(op, |x| {
            let mut out = Vec::with_capacity(outer * sl.idx.len() * inner);
            for o in 0..outer {
                for &j in &sl.idx {
                    let s = (o * n + j) * inner;
                    out.extend_from_slice(&x[s..s + inner]);
                }
            }
            out
        });
        Tensor::from_vec(v, out_shape)
    })
}

pub(super) fn index_add(x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Tensor {
    let (op, this) = ("index_add", x);
    let Slices {
        outer,
        n,
        inner,
        idx,
        picked_shape,
    } = Slices::new(op, this, d, index);
    if shape_1d(source) != picked_shape || index.dim() > 1 {
        panic!(
            "{op}: source of shape {:?} does not match the input of shape {:?} with {} indices along dim {d}",
            source.shape(),
            this.shape(),
            idx.len()
        );
    }
    let dtype = this.dtype();
    let src = autograd::no_grad(|| source.to_dtype(dtype));
    dispatch!(numeric op, dtype, T => {
        let mut out = owned_vec::<T>(op, this);
        src.with_slice::<T, _>(op, |s| {
            for o in 0..outer {
                for (j, &t) in idx.iter().enumerate() {
                    let dst = &mut out[(o * n + t) * inner..(o * n + t + 1) * inner];
                    let srow = &s[(o * idx.len() + j) * inner..(o * idx.len() + j + 1) * inner];
                    for (a, &b) in dst.iter_mut().zip(srow) {
                        *a += b;
                    }
                }
            }
        });
        Tensor::from_vec(out, this.shape())
    })
}

pub(super) fn gather(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    let (op, this) = ("gather", x);
    if this.dim() == 0 {
        let j = index.with_slice::<i64, _>(op, |v| v.to_vec());
        for &j in &j {
            checked(op, j, 0, 1);
        }
        this.expand(index.shape()).contiguous().detach()
    } else {
        let n = this.shape()[d];
        let stride_d = this.stride()[d];
        let mut strides = this.stride().to_vec();
        strides[d] = 0;
        let walk = Layout::new(index.shape().to_vec(), strides, this.layout().offset());
        dispatch!(all this.dtype(), T => {
            let v: Vec<T> = index.with_slice::<i64, _>(op, |idx| {
                with_raw::<T, _>(op, this, |x| {
                    walk.offsets()
                        .zip(idx)
                        .map(|(o, &j)| x[o + checked(op, j, d, n) * stride_d])
                        .collect()
                })
            });
            Tensor::from_vec(v, index.shape())
        })
    }
}

pub(super) fn scatter_add(x: &Tensor, d: usize, index: &Tensor, src: &Tensor) -> Tensor {
    let (op, this) = ("scatter_add", x);
    let dtype = this.dtype();
    let srcc = autograd::no_grad(|| src.to_dtype(dtype));
    if this.dim() == 0 {
        autograd::no_grad(|| {
            let idx = index.with_slice::<i64, _>(op, |v| v.to_vec());
            for &j in &idx {
                checked(op, j, 0, 1);
            }
            if idx.is_empty() {
                this.deep_copy()
            } else {
                this.add(&srcc.reshape_to(&[]))
            }
        })
    } else {
        let n = this.shape()[d];
        let mut ostrides = contiguous_strides(this.shape());
        let stride_d = ostrides[d];
        ostrides[d] = 0;
        let owalk = Layout::new(index.shape().to_vec(), ostrides, 0);
        let swalk = Layout::new(
            index.shape().to_vec(),
            srcc.stride().to_vec(),
            srcc.layout().offset(),
        );
        dispatch!(numeric op, dtype, T => {
            let mut out = owned_vec::<T>(op, this);
            index.with_slice::<i64, _>(op, |idx| {
                with_raw::<T, _>(op, &srcc, |s| {
                    for ((oo, so), &j) in owalk.offsets().zip(swalk.offsets()).zip(idx) {
                        let t = oo + checked(op, j, d, n) * stride_d;
                        out[t] += s[so];
                    }
                })
            });
            Tensor::from_vec(out, this.shape())
        })
    }
}

pub(super) fn where_(
    (cond, lc): Operand,
    (ac, la): Operand,
    (bc, lb): Operand,
    shape: &[usize],
) -> Tensor {
    let (op, dtype, shape) = ("where", ac.dtype(), shape.to_vec());
    dispatch!(all dtype, T => {
        let v: Vec<T> = with_raw::<bool, _>(op, cond, |c| {
            with_raw::<T, _>(op, ac, |x| {
                with_raw::<T, _>(op, bc, |y| {
                    match (lc.contiguous_range(), la.contiguous_range(), lb.contiguous_range()) {
                        (Some(rc), Some(ra), Some(rb)) => c[rc]
                            .iter()
                            .zip(&x[ra])
                            .zip(&y[rb])
                            .map(|((&c, &x), &y)| if c { x } else { y })
                            .collect(),
                        _ => lc
                            .offsets()
                            .zip(la.offsets())
                            .zip(lb.offsets())
                            .map(|((oc, oa), ob)| if c[oc] { x[oa] } else { y[ob] })
                            .collect(),
                    }
                })
            })
        });
        Tensor::from_vec(v, shape.clone())
    })
}

pub(super) fn masked_fill(x: &Tensor, mask: &Tensor, lm: &Layout, value: f64) -> Tensor {
    let (op, this) = ("masked_fill", x);
    let ls = this.layout().clone();
    dispatch!(all this.dtype(), T => {
        let fill = T::from_f64(value);
        let v: Vec<T> = with_raw::<bool, _>(op, mask, |m| {
            with_raw::<T, _>(op, this, |x| {
                ls.offsets()
                    .zip(lm.offsets())
                    .map(|(ox, om)| if m[om] { fill } else { x[ox] })
                    .collect()
            })
        });
        Tensor::from_vec(v, this.shape())
    })
}

pub(super) fn masked_select(x: &Tensor, mask: &Tensor, shape: &[usize]) -> Tensor {
    let (op, this) = ("masked_select", x);
    let lx = this.layout().broadcast_to(shape).expect("broadcast");
    let lm = mask.layout().broadcast_to(shape).expect("broadcast");
    dispatch!(all this.dtype(), T => {
        let v: Vec<T> = with_raw::<bool, _>(op, mask, |m| {
            with_raw::<T, _>(op, this, |x| {
                lx.offsets()
                    .zip(lm.offsets())
                    .filter(|&(_, om)| m[om])
                    .map(|(ox, _)| x[ox])
                    .collect()
            })
        });
        let n = v.len();
        Tensor::from_vec(v, [n])
    })
}

pub(super) fn masked_scatter(g: &Tensor, mask: &Tensor) -> Tensor {
    let op = "masked_select_backward";
    dispatch!(all g.dtype(), T => {
        let mut out = vec![T::default(); mask.numel()];
        mask.with_slice::<bool, _>(op, |m| {
            g.with_slice::<T, _>(op, |src| {
                let mut it = src.iter();
                for (o, _) in out.iter_mut().zip(m).filter(|(_, m)| **m) {
                    *o = *it.next().expect("mask count matches the gradient's length");
                }
            })
        });
        Tensor::from_vec(out, mask.shape())
    })
}

pub(super) fn one_hot(x: &Tensor, n: usize) -> Tensor {
    let (op, this) = ("one_hot", x);
    let vals = this.to_vec::<i64>();
    let mut out = vec![0i64; vals.len() * n];
    for (i, &v) in vals.iter().enumerate() {
        if v < 0 {
            panic!("{op}: class values must be non-negative, got {v}");
        }
        if v as usize >= n {
            panic!("{op}: class values must be smaller than num_classes ({n}), got {v}");
        }
        out[i * n + v as usize] = 1;
    }
    let mut shape = this.shape().to_vec();
    shape.push(n);
    Tensor::from_vec(out, shape)
}
