//! Joining and splitting: `cat`, `stack`, `split`, `split_size`, `chunk`,
//! plus `repeat` and `flip`. Splits are views (`narrow`), so they share
//! storage with the input like PyTorch's.

use super::binary::promote;
use super::kernel::split_at_dim;
use crate::dtype::dispatch;
use crate::layout::normalize_dim;
use crate::{Tensor, autograd};

/// Concatenates same-dtype tensors along `d` into a new contiguous tensor
/// (no autograd); `shapes` are already checked.
fn cat_raw(ts: &[Tensor], d: usize, out_shape: &[usize]) -> Tensor {
    crate::backend::of(ts[0].device()).cat(ts, d, out_shape)
}

/// The CPU's concatenation kernel (see [`cat_raw`]).
pub(crate) fn cat_cpu(ts: &[Tensor], d: usize, out_shape: &[usize]) -> Tensor {
    let dtype = ts[0].dtype();
    let (outer, total, inner) = split_at_dim(out_shape, d);
    dispatch!(all dtype, T => {
        let mut out = vec![T::default(); outer * total * inner];
        let mut col = 0;
        for t in ts {
            let sz = t.shape()[d];
            let chunk = sz * inner;
            if chunk > 0 {
                t.with_slice::<T, _>("cat", |v| {
                    for (o, src) in v.chunks_exact(chunk).enumerate() {
                        let start = o * total * inner + col * inner;
                        out[start..start + chunk].copy_from_slice(src);
                    }
                });
            }
            col += sz;
        }
        Tensor::from_vec(out, out_shape)
    })
}

impl Tensor {
    /// Concatenates `tensors` along an existing dimension `dim`, like
    /// `torch.cat`. All must have the same rank and equal sizes except in
    /// `dim`; dtypes are promoted to a common one.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let a = Tensor::from([[1.0f32, 2.0]]);
    /// let b = Tensor::from([[3.0f32, 4.0]]);
    /// assert_eq!(Tensor::cat(&[&a, &b], 0).shape(), &[2, 2]);
    /// assert_eq!(Tensor::cat(&[&a, &b], -1).to_vec::<f32>(), vec![1.0, 2.0, 3.0, 4.0]);
    /// ```
    pub fn cat(tensors: &[&Tensor], dim: isize) -> Tensor {
        if tensors.is_empty() {
            panic!("cat: expected a non-empty list of tensors");
        }
        let first = tensors[0];
        if first.dim() == 0 {
            panic!("cat: zero-dimensional tensor (at position 0) cannot be concatenated");
        }
        let rank = first.dim();
        let d = normalize_dim("cat", dim, rank);
        let mut out_shape = first.shape().to_vec();
        out_shape[d] = 0;
        let mut dtype = first.dtype();
        for (i, t) in tensors.iter().enumerate() {
            let ok = t.dim() == rank
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(k, (a, b))| k == d || a == b);
            if !ok {
                panic!(
                    "cat: sizes of tensors must match except in dimension {d}; expected shape {:?} (except dim {d}) but got {:?} for tensor number {i} in the list",
                    first.shape(),
                    t.shape()
                );
            }
            if t.device() != first.device() {
                panic!(
                    "cat: expected all tensors to be on the same device, but found {} and {}",
                    first.device(),
                    t.device()
                );
            }
            out_shape[d] += t.shape()[d];
            dtype = promote(dtype, t.dtype());
        }
        let cast: Vec<Tensor> =
            autograd::no_grad(|| tensors.iter().map(|t| t.to_dtype(dtype)).collect());
        let out = cat_raw(&cast, d, &out_shape);
        let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[d]).collect();
        let dtypes: Vec<_> = tensors.iter().map(|t| t.dtype()).collect();
        Tensor::from_op(out, "CatBackward0", tensors, move |g, need| {
            let mut start = 0;
            sizes
                .iter()
                .zip(need)
                .zip(&dtypes)
                .map(|((&n, &need), &dt)| {
                    let r = need.then(|| g.narrow(d as isize, start, n).to_dtype(dt));
                    start += n;
                    r
                })
                .collect()
        })
    }

    /// Stacks same-shape tensors along a new dimension `dim`, like `torch.stack`.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let a = Tensor::from([1.0f32, 2.0]);
    /// let s = Tensor::stack(&[&a, &a, &a], 1);
    /// assert_eq!(s.shape(), &[2, 3]);
    /// ```
    pub fn stack(tensors: &[&Tensor], dim: isize) -> Tensor {
        if tensors.is_empty() {
            panic!("stack: expected a non-empty list of tensors");
        }
        let shape = tensors[0].shape();
        for (i, t) in tensors.iter().enumerate() {
            if t.shape() != shape {
                panic!(
                    "stack: expects each tensor to be equal size, but got {:?} at entry 0 and {:?} at entry {i}",
                    shape,
                    t.shape()
                );
            }
        }
        let d = normalize_dim("stack", dim, tensors[0].dim() + 1);
        let out = autograd::no_grad(|| {
            let us: Vec<Tensor> = tensors.iter().map(|t| t.unsqueeze(d as isize)).collect();
            let refs: Vec<&Tensor> = us.iter().collect();
            Tensor::cat(&refs, d as isize)
        });
        let dtypes: Vec<_> = tensors.iter().map(|t| t.dtype()).collect();
        Tensor::from_op(out, "StackBackward0", tensors, move |g, need| {
            need.iter()
                .zip(&dtypes)
                .enumerate()
                .map(|(i, (&n, &dt))| n.then(|| g.select(d as isize, i).to_dtype(dt)))
                .collect()
        })
    }

    /// Splits into consecutive pieces of the given `sizes` along `dim`
    /// (views), like `torch.split(x, [s0, s1, ...], dim)`. The sizes must
    /// add up to the dimension's size.
    pub fn split(&self, sizes: &[usize], dim: isize) -> Vec<Tensor> {
        let d = normalize_dim("split", dim, self.dim());
        let n = self.shape()[d];
        let total: usize = sizes.iter().sum();
        if total != n {
            panic!(
                "split: split sizes {sizes:?} must sum exactly to the size {n} of dimension {d} (shape {:?})",
                self.shape()
            );
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&s| {
                let t = self.narrow(d as isize, start, s);
                start += s;
                t
            })
            .collect()
    }

    /// Splits into pieces of `split_size` along `dim` (the last may be
    /// smaller), like `torch.split(x, split_size, dim)`.
    pub fn split_size(&self, split_size: usize, dim: isize) -> Vec<Tensor> {
        let d = normalize_dim("split_size", dim, self.dim());
        let n = self.shape()[d];
        if split_size == 0 {
            if n == 0 {
                return vec![self.shallow_clone()];
            }
            panic!("split_size: split_size must be positive for a non-empty dimension");
        }
        let mut sizes = vec![split_size; n / split_size];
        if !n.is_multiple_of(split_size) || n == 0 {
            sizes.push(n % split_size);
        }
        self.split(&sizes, d as isize)
    }

    /// Splits into `chunks` pieces of `ceil(size / chunks)` along `dim`
    /// (possibly fewer pieces), like `torch.chunk`.
    pub fn chunk(&self, chunks: usize, dim: isize) -> Vec<Tensor> {
        if chunks == 0 {
            panic!("chunk: number of chunks must be positive");
        }
        let d = normalize_dim("chunk", dim, self.dim());
        let n = self.shape()[d];
        self.split_size(n.div_ceil(chunks).max(1), d as isize)
    }

    /// Tiles the tensor `repeats[i]` times along each dimension (leading
    /// new dimensions when `repeats` is longer than the rank), like
    /// `tensor.repeat`.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let t = Tensor::from([1.0f32, 2.0]).repeat(&[2, 2]);
    /// assert_eq!(t.to_vec::<f32>(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    /// ```
    pub fn repeat(&self, repeats: &[usize]) -> Tensor {
        if repeats.len() < self.dim() {
            panic!(
                "repeat: number of repeat dims {} can not be smaller than number of tensor dims {} (shape {:?})",
                repeats.len(),
                self.dim(),
                self.shape()
            );
        }
        let lead = repeats.len() - self.dim();
        let shape: Vec<usize> = std::iter::repeat_n(1, lead)
            .chain(self.shape().iter().copied())
            .collect();
        let mut interleaved = Vec::with_capacity(2 * shape.len());
        let mut expanded = Vec::with_capacity(2 * shape.len());
        let mut final_shape = Vec::with_capacity(shape.len());
        for (&s, &r) in shape.iter().zip(repeats) {
            interleaved.extend([1, s]);
            expanded.extend([r, s]);
            final_shape.push(r * s);
        }
        self.reshape_to(&interleaved)
            .expand(&expanded)
            .contiguous()
            .reshape_to(&final_shape)
    }

    /// Reverses the order of elements along each of `dims`, like `torch.flip`.
    pub fn flip(&self, dims: &[isize]) -> Tensor {
        let mut out = self.shallow_clone();
        for &dim in dims {
            let d = normalize_dim("flip", dim, self.dim());
            if self.dim() == 0 {
                continue;
            }
            let n = self.shape()[d] as i64;
            let rev = Tensor::from_vec((0..n).rev().collect::<Vec<i64>>(), [n as usize])
                .to_device(self.device());
            out = out.index_select(d as isize, &rev);
        }
        out
    }
}
