//! Order-based reductions: `max_dim`/`min_dim` (values and indices),
//! `max`/`min` over everything, `argmax`/`argmin`, stable `sort` and
//! `argsort`, plus `var`/`std`. Gradients of the selecting reductions flow
//! back to the chosen elements through `scatter_add`.

use super::kernel::split_at_dim;
use crate::Tensor;
use crate::dtype::Element;
use crate::dtype::dispatch;
use crate::layout::normalize_dim;
use std::cmp::Ordering;

/// Orders like `partial_cmp`, with NaN above everything (PyTorch's sort
/// and max treat NaN as the largest value).
fn nan_last<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    match a.partial_cmp(b) {
        Some(o) => o,
        #[allow(clippy::eq_op)]
        None => (a != a).cmp(&(b != b)),
    }
}

/// Index (first occurrence) and value of the best element along the middle
/// axis of `x` viewed as `[outer, n, inner]`; `better(a, b)` says `a` beats `b`.
fn arg_reduce<T: Element>(
    x: &[T],
    (outer, n, inner): (usize, usize, usize),
    better: impl Fn(T, T) -> bool,
) -> (Vec<T>, Vec<i64>) {
    let mut vals = Vec::with_capacity(outer * inner);
    let mut idx = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        let block = &x[o * n * inner..(o + 1) * n * inner];
        if inner == 1 {
            let (mut bi, mut bv) = (0usize, block[0]);
            for (j, &v) in block.iter().enumerate().skip(1) {
                if better(v, bv) {
                    bi = j;
                    bv = v;
                }
            }
            vals.push(bv);
            idx.push(bi as i64);
        } else {
            let start = vals.len();
            vals.extend_from_slice(&block[..inner]);
            idx.resize(start + inner, 0);
            for j in 1..n {
                let row = &block[j * inner..(j + 1) * inner];
                for (i, &v) in row.iter().enumerate() {
                    if better(v, vals[start + i]) {
                        vals[start + i] = v;
                        idx[start + i] = j as i64;
                    }
                }
            }
        }
    }
    (vals, idx)
}

#[allow(clippy::eq_op)]
fn is_nan<T: PartialOrd>(v: T) -> bool {
    v != v
}

fn beats_max<T: PartialOrd + Copy>(a: T, b: T) -> bool {
    (a > b || is_nan(a)) && !is_nan(b)
}

fn beats_min<T: PartialOrd + Copy>(a: T, b: T) -> bool {
    (a < b || is_nan(a)) && !is_nan(b)
}

/// Stable sort of each `[outer, n, inner]` column along the middle axis.
fn sort_kernel<T: Element>(
    x: &[T],
    (outer, n, inner): (usize, usize, usize),
    descending: bool,
) -> (Vec<T>, Vec<i64>) {
    let mut vals = vec![T::default(); x.len()];
    let mut idx = vec![0i64; x.len()];
    let mut perm: Vec<usize> = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            let key = |j: usize| &x[base + j * inner];
            perm.clear();
            perm.extend(0..n);
            if descending {
                perm.sort_by(|&a, &b| nan_last(key(b), key(a)));
            } else {
                perm.sort_by(|&a, &b| nan_last(key(a), key(b)));
            }
            for (k, &j) in perm.iter().enumerate() {
                vals[base + k * inner] = *key(j);
                idx[base + k * inner] = j as i64;
            }
        }
    }
    (vals, idx)
}

fn out_shape(shape: &[usize], d: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if s.is_empty() {
        return s;
    }
    if keepdim {
        s[d] = 1;
    } else {
        s.remove(d);
    }
    s
}

impl Tensor {
    /// `(values, indices)` of the best element along `d` (no autograd).
    fn arg_reduce_raw(&self, op: &str, d: usize, keepdim: bool, max: bool) -> (Tensor, Tensor) {
        let shape = if self.dim() == 0 {
            vec![1]
        } else {
            self.shape().to_vec()
        };
        let dims = split_at_dim(&shape, d);
        if dims.1 == 0 {
            panic!(
                "{op}: expected reduction dim {d} to have non-zero size (shape {:?})",
                self.shape()
            );
        }
        crate::backend::of(self.device()).max_min_dim(self, d, keepdim, max)
    }

    fn max_min_dim(&self, dim: isize, keepdim: bool, max: bool) -> (Tensor, Tensor) {
        let op = if max { "max" } else { "min" };
        let d = normalize_dim(op, dim, self.dim());
        let (values, indices) = self.arg_reduce_raw(op, d, keepdim, max);
        let in_shape = self.shape().to_vec();
        let name = if max { "MaxBackward0" } else { "MinBackward0" };
        let values = Tensor::from_unary_saved(values, name, self, &indices, move |g, idx| {
            select_backward(g, idx, &in_shape, d, keepdim)
        });
        (values, indices)
    }

    /// The largest value along `dim` and its index (the first one on
    /// ties), like `torch.max(x, dim, keepdim)`. The gradient goes to the
    /// chosen element.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let (v, i) = Tensor::from([[1.0f32, 5.0, 2.0], [7.0, 0.0, 7.0]]).max_dim(1, false);
    /// assert_eq!(v.to_vec::<f32>(), vec![5.0, 7.0]);
    /// assert_eq!(i.to_vec::<i64>(), vec![1, 0]);
    /// ```
    pub fn max_dim(&self, dim: isize, keepdim: bool) -> (Tensor, Tensor) {
        self.max_min_dim(dim, keepdim, true)
    }

    /// The smallest value along `dim` and its index, like `torch.min(x, dim, keepdim)`.
    pub fn min_dim(&self, dim: isize, keepdim: bool) -> (Tensor, Tensor) {
        self.max_min_dim(dim, keepdim, false)
    }

    /// Index of the largest value along `dim` (int64, first on ties), like `torch.argmax`.
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Tensor {
        let d = normalize_dim("argmax", dim, self.dim());
        self.arg_reduce_raw("argmax", d, keepdim, true).1
    }

    /// Index of the smallest value along `dim` (int64), like `torch.argmin`.
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Tensor {
        let d = normalize_dim("argmin", dim, self.dim());
        self.arg_reduce_raw("argmin", d, keepdim, false).1
    }

    fn max_min_all(&self, max: bool) -> Tensor {
        let op = if max { "max" } else { "min" };
        if self.numel() == 0 {
            panic!(
                "{op}: expected a non-empty tensor to reduce over all elements (shape {:?})",
                self.shape()
            );
        }
        let flat = self.reshape_to(&[self.numel()]).detach();
        let (v, _) = flat.arg_reduce_raw(op, 0, false, max);
        let (x, y) = (self.shallow_clone(), v.shallow_clone());
        let name = if max { "MaxBackward1" } else { "MinBackward1" };
        Tensor::from_op_saved(
            v,
            name,
            &[self],
            &[x.shallow_clone(), y.shallow_clone()],
            move |g, _| {
                // Split evenly between tied elements, like PyTorch.
                let mask = x.detach().eq(&y).to_dtype(g.dtype());
                let count = mask.sum();
                vec![Some(mask.div(&count).mul(g))]
            },
        )
    }

    /// The largest element (0-d), like `tensor.max()`; ties share the gradient.
    pub fn max(&self) -> Tensor {
        self.max_min_all(true)
    }

    /// The smallest element (0-d), like `tensor.min()`.
    pub fn min(&self) -> Tensor {
        self.max_min_all(false)
    }

    /// Sorts along `dim` (stable; NaN counts as largest), returning
    /// `(values, indices)`, like `torch.sort(x, dim, descending, stable=True)`.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let (v, i) = Tensor::from([3.0f32, 1.0, 2.0]).sort(0, false);
    /// assert_eq!(v.to_vec::<f32>(), vec![1.0, 2.0, 3.0]);
    /// assert_eq!(i.to_vec::<i64>(), vec![1, 2, 0]);
    /// ```
    pub fn sort(&self, dim: isize, descending: bool) -> (Tensor, Tensor) {
        let d = normalize_dim("sort", dim, self.dim());
        let (values, indices) = crate::backend::of(self.device()).sort(self, d, descending);
        let in_shape = self.shape().to_vec();
        let values =
            Tensor::from_unary_saved(values, "SortBackward0", self, &indices, move |g, idx| {
                select_backward(g, idx, &in_shape, d, true)
            });
        (values, indices)
    }

    /// The indices that sort along `dim`, like `torch.argsort(stable=True)`.
    pub fn argsort(&self, dim: isize, descending: bool) -> Tensor {
        crate::autograd::no_grad(|| self.sort(dim, descending).1)
    }

    /// Variance over `dims` (all when `None`), with Bessel's correction when
    /// `unbiased`, like `torch.var(x, dims, unbiased, keepdim)`.
    pub fn var_dims(&self, dims: Option<&[isize]>, unbiased: bool, keepdim: bool) -> Tensor {
        if !self.dtype().is_float() {
            panic!(
                "var: input dtype must be floating point, but got {}",
                self.dtype()
            );
        }
        let mask = super::reduce::reduce_mask("var", dims, self.dim());
        let n = super::reduce::reduced_count(self.shape(), &mask);
        let centered = self.sub(&self.mean_dims(dims, true));
        let ss = centered.mul(&centered).sum_dims(dims, keepdim);
        let denom = n as f64 - if unbiased { 1.0 } else { 0.0 };
        ss.div_scalar(denom.max(0.0))
    }

    /// Variance of all elements, like `tensor.var(unbiased=...)`.
    pub fn var(&self, unbiased: bool) -> Tensor {
        self.var_dims(None, unbiased, false)
    }

    /// Variance along one dimension, like `tensor.var(dim, unbiased, keepdim)`.
    pub fn var_dim(&self, dim: isize, unbiased: bool, keepdim: bool) -> Tensor {
        self.var_dims(Some(&[dim]), unbiased, keepdim)
    }

    /// Standard deviation over `dims`, like `torch.std(x, dims, unbiased, keepdim)`.
    pub fn std_dims(&self, dims: Option<&[isize]>, unbiased: bool, keepdim: bool) -> Tensor {
        self.var_dims(dims, unbiased, keepdim).sqrt()
    }

    /// Standard deviation of all elements, like `tensor.std(unbiased=...)`.
    pub fn std(&self, unbiased: bool) -> Tensor {
        self.std_dims(None, unbiased, false)
    }

    /// Standard deviation along one dimension.
    pub fn std_dim(&self, dim: isize, unbiased: bool, keepdim: bool) -> Tensor {
        self.std_dims(Some(&[dim]), unbiased, keepdim)
    }
}

/// The gradient of a reduction that selected `indices` along `d`: the
/// output gradient scattered back into zeros of the input's shape.
fn select_backward(
    g: &Tensor,
    indices: &Tensor,
    in_shape: &[usize],
    d: usize,
    keepdim: bool,
) -> Tensor {
    if in_shape.is_empty() {
        return g.reshape_to(&[]);
    }
    let (g, idx) = if keepdim {
        (g.shallow_clone(), indices.shallow_clone())
    } else {
        (g.unsqueeze(d as isize), indices.unsqueeze(d as isize))
    };
    let z = Tensor::zeros_opts(in_shape, (g.dtype(), &g.device()));
    z.scatter_add(d as isize, &idx, &g)
}

/// The CPU's max/min along `d` with the argmax/argmin (the kernel behind
/// [`Backend::max_min_dim`](crate::backend::Backend::max_min_dim)).
pub(crate) fn max_min_dim_cpu(x: &Tensor, d: usize, keepdim: bool, max: bool) -> (Tensor, Tensor) {
    let op = if max { "max" } else { "min" };
    let shape = if x.dim() == 0 {
        vec![1]
    } else {
        x.shape().to_vec()
    };
    let dims = split_at_dim(&shape, d);
    let os = out_shape(x.shape(), d, keepdim);
    dispatch!(all x.dtype(), T => {
        let (v, i) = x.with_slice::<T, _>(op, |x| {
            if max {
                arg_reduce(x, dims, beats_max::<T>)
            } else {
                arg_reduce(x, dims, beats_min::<T>)
            }
        });
        (Tensor::from_vec(v, os.clone()), Tensor::from_vec(i, os))
    })
}

/// The CPU's stable sort along `d` (the kernel behind
/// [`Backend::sort`](crate::backend::Backend::sort)).
pub(crate) fn sort_cpu(x: &Tensor, d: usize, descending: bool) -> (Tensor, Tensor) {
    let shape = if x.dim() == 0 {
        vec![1]
    } else {
        x.shape().to_vec()
    };
    let dims = split_at_dim(&shape, d);
    dispatch!(all x.dtype(), T => {
        let (v, i) = x.with_slice::<T, _>("sort", |v| sort_kernel(v, dims, descending));
        (Tensor::from_vec(v, x.shape()), Tensor::from_vec(i, x.shape()))
    })
}
