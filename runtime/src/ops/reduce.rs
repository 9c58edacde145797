//! Sum and mean over any set of dimensions, and `sum_to` (the reduction
//! that undoes broadcasting in backward rules).

use crate::dtype::{Element, dispatch};
use crate::layout::{Layout, normalize_dim};
use crate::{DType, Tensor};

/// Which dimensions of a rank-`rank` tensor `dims` names (all when `None`).
pub(crate) fn reduce_mask(op: &str, dims: Option<&[isize]>, rank: usize) -> Vec<bool> {
    match dims {
        None => vec![true; rank],
        Some(ds) => {
            let mut mask = vec![false; rank];
            for &d in ds {
                let d = normalize_dim(op, d, rank);
                if mask[d] {
                    panic!("{op}: dim {d} appears multiple times in the list of dims");
                }
                mask[d] = true;
            }
            mask
        }
    }
}

/// How many elements of a `shape` tensor each reduction over `mask` combines.
pub(crate) fn reduced_count(shape: &[usize], mask: &[bool]) -> usize {
    shape
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(d, _)| d)
        .product()
}

/// Sums the elements of `data` (selected by `layout`) over the dimensions
/// in `mask`, into a contiguous buffer of the keepdim shape, accumulating
/// in f64.
pub(crate) fn sum_kernel<T: Element>(data: &[T], layout: &Layout, mask: &[bool]) -> Vec<f64> {
    let shape = layout.shape();
    let rank = shape.len();
    let out_shape: Vec<usize> = shape
        .iter()
        .zip(mask)
        .map(|(&d, &m)| if m { 1 } else { d })
        .collect();
    let mut out = vec![0f64; out_shape.iter().product()];
    if layout.numel() == 0 {
        return out;
    }
    if rank == 0 {
        out[0] = data[layout.offset()].to_f64();
        return out;
    }
    // Output offset strides: zero on reduced dimensions.
    let ostrides: Vec<usize> = crate::layout::contiguous_strides(&out_shape)
        .iter()
        .zip(mask)
        .map(|(&s, &m)| if m { 0 } else { s })
        .collect();
    let inner = shape[rank - 1];
    let istride = layout.strides()[rank - 1];
    let ostride = ostrides[rank - 1];
    let mut idx = vec![0usize; rank - 1];
    let mut ioff = layout.offset();
    let mut ooff = 0usize;
    let outer: usize = shape[..rank - 1].iter().product();
    for _ in 0..outer {
        if ostride == 0 {
            let mut acc = 0f64;
            if istride == 1 {
                for x in &data[ioff..ioff + inner] {
                    acc += x.to_f64();
                }
            } else {
                for i in 0..inner {
                    acc += data[ioff + i * istride].to_f64();
                }
            }
            out[ooff] += acc;
        } else {
            for i in 0..inner {
                out[ooff + i] += data[ioff + i * istride].to_f64();
            }
        }
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            ioff += layout.strides()[d];
            ooff += ostrides[d];
            if idx[d] < shape[d] {
                break;
            }
            ioff -= layout.strides()[d] * shape[d];
            ooff -= ostrides[d] * shape[d];
            idx[d] = 0;
        }
    }
    out
}

fn reduced_shape(shape: &[usize], mask: &[bool], keepdim: bool) -> Vec<usize> {
    shape
        .iter()
        .zip(mask)
        .filter_map(|(&d, &m)| match (m, keepdim) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

impl Tensor {
    /// Sums over `mask`'s dimensions, no autograd.
    fn sum_raw(&self, mask: &[bool], keepdim: bool) -> Tensor {
        let shape = reduced_shape(self.shape(), mask, keepdim);
        crate::backend::of(self.device()).sum(self, mask, &shape)
    }

    /// Sum of all elements (a 0-d tensor), like `tensor.sum()`.
    pub fn sum(&self) -> Tensor {
        self.sum_dims(None, false)
    }

    /// Sum over `dims` (all when `None`), keeping them as size 1 when
    /// `keepdim`, like `tensor.sum(dims, keepdim)`.
    pub fn sum_dims(&self, dims: Option<&[isize]>, keepdim: bool) -> Tensor {
        let mask = reduce_mask("sum", dims, self.dim());
        let out = self.sum_raw(&mask, keepdim);
        // PyTorch's names: `sum()` is SumBackward0, `sum(dims)` SumBackward1.
        let name = if dims.is_none() {
            "SumBackward0"
        } else {
            "SumBackward1"
        };
        self.reduction_node(out, name, &mask, None)
    }

    /// Records the sum or mean `out` of this tensor over `mask` in
    /// autograd: the gradient is the incoming one (divided by `count` for a
    /// mean) broadcast back over the reduced dimensions.
    fn reduction_node(
        &self,
        out: Tensor,
        name: &'static str,
        mask: &[bool],
        count: Option<f64>,
    ) -> Tensor {
        let in_shape = self.shape().to_vec();
        let keep_shape = reduced_shape(&in_shape, mask, true);
        Tensor::from_op(out, name, &[self], move |g, _| {
            let g = match count {
                Some(n) => g.div_scalar(n),
                None => g.shallow_clone(),
            };
            vec![Some(
                g.reshape_to(&keep_shape).expand(&in_shape).contiguous(),
            )]
        })
    }

    /// Sum over one dimension, like `tensor.sum(dim)`.
    pub fn sum_dim(&self, dim: isize, keepdim: bool) -> Tensor {
        self.sum_dims(Some(&[dim]), keepdim)
    }

    /// Mean of all elements, like `tensor.mean()`.
    pub fn mean(&self) -> Tensor {
        self.mean_dims(None, false)
    }

    /// Mean over `dims` (all when `None`), like `tensor.mean(dims, keepdim)`.
    pub fn mean_dims(&self, dims: Option<&[isize]>, keepdim: bool) -> Tensor {
        if !self.dtype().is_float() {
            panic!(
                "mean: could not infer output dtype. Input dtype must be floating point, but got {}",
                self.dtype()
            );
        }
        let mask = reduce_mask("mean", dims, self.dim());
        let count = reduced_count(self.shape(), &mask) as f64;
        let out = self.sum_raw(&mask, keepdim).div_scalar(count);
        // `mean()` is MeanBackward0, `mean(dims)` MeanBackward1, as in PyTorch.
        let name = if dims.is_none() {
            "MeanBackward0"
        } else {
            "MeanBackward1"
        };
        self.reduction_node(out, name, &mask, Some(count))
    }

    /// Mean over one dimension, like `tensor.mean(dim)`.
    pub fn mean_dim(&self, dim: isize, keepdim: bool) -> Tensor {
        self.mean_dims(Some(&[dim]), keepdim)
    }

    /// Sums a broadcast result back down to `shape` (the inverse of
    /// broadcasting `shape` up to `self.shape()`); used by backward rules.
    pub fn sum_to(&self, shape: &[usize]) -> Tensor {
        if self.shape() == shape {
            return self.shallow_clone();
        }
        let rank = self.dim();
        let lead = rank - shape.len();
        let mut dims: Vec<isize> = (0..lead as isize).collect();
        for (i, &d) in shape.iter().enumerate() {
            if d == 1 && self.shape()[lead + i] != 1 {
                dims.push((lead + i) as isize);
            }
        }
        let s = self.sum_dims(Some(&dims), true);
        s.reshape_to(shape)
    }
}

/// The CPU's sum over `mask`'s dimensions into `shape` (the kernel behind
/// [`Backend::sum`](crate::backend::Backend::sum) on the CPU).
pub(crate) fn sum_cpu(x: &Tensor, mask: &[bool], shape: &[usize]) -> Tensor {
    let shape = shape.to_vec();
    let g = x.read_storage();
    let l = x.layout();
    let acc = dispatch!(storage g.cpu("sum"), v => sum_kernel(v, l, mask));
    // Integer sums are int64, like PyTorch.
    let dtype = if x.dtype().is_float() {
        x.dtype()
    } else {
        DType::I64
    };
    let t = Tensor::from_vec(acc, shape);
    if dtype == DType::F64 {
        t
    } else {
        t.to_dtype(dtype)
    }
}
