//! Indexing ops: `index_select`, `gather`, `scatter_add`, `index_add`,
//! `where_cond`, `masked_select`, `masked_fill`, `one_hot`. Each is
//! differentiable in its float inputs; the backwards pair up
//! (`gather` ↔ `scatter_add`, `index_select` ↔ `index_add`). Out-of-range
//! indices panic naming the op, the index and the size.

use super::binary::promote;
use super::device::same_device;
use crate::backend;
use crate::layout::{broadcast_shapes, normalize_dim};
use crate::{DType, Tensor, autograd};

fn check_index_dtype(op: &str, index: &Tensor) {
    if index.dtype() != DType::I64 {
        panic!(
            "{op}: expected index to have dtype int64, but got {} (shape {:?})",
            index.dtype(),
            index.shape()
        );
    }
}

/// `t`'s shape, with a 0-d tensor seen as `[1]`.
fn shape_1d(t: &Tensor) -> Vec<usize> {
    if t.dim() == 0 {
        vec![1]
    } else {
        t.shape().to_vec()
    }
}

/// Checks that `index` has `self`'s rank and fits inside `other` in every
/// dimension except `d` (the rule for gather/scatter).
fn check_gather_shapes(op: &str, index: &Tensor, other: &Tensor, d: usize, skip_d: bool) {
    if index.dim() != other.dim() {
        panic!(
            "{op}: index tensor must have the same number of dimensions as the input tensor (index shape {:?}, input shape {:?})",
            index.shape(),
            other.shape()
        );
    }
    for k in 0..index.dim() {
        if (k != d || !skip_d) && index.shape()[k] > other.shape()[k] {
            panic!(
                "{op}: size of index {:?} does not fit the tensor of shape {:?} at dimension {k}",
                index.shape(),
                other.shape()
            );
        }
    }
}

impl Tensor {
    /// The entries of `index` (1-D int64) along `dim`, like `torch.index_select`.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let x = Tensor::from([[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    /// let y = x.index_select(0, &Tensor::from([2i64, 0]));
    /// assert_eq!(y.to_vec::<f32>(), vec![5.0, 6.0, 1.0, 2.0]);
    /// ```
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Tensor {
        let op = "index_select";
        check_index_dtype(op, index);
        if index.dim() > 1 {
            panic!(
                "{op}: index must be a 0-D or 1-D tensor, got shape {:?}",
                index.shape()
            );
        }
        let d = normalize_dim(op, dim, self.dim());
        same_device(op, &[self, index]);
        let out = backend::of(self.device()).index_select(&self.detach(), d, index);
        let in_shape = self.shape().to_vec();
        Tensor::from_unary_saved(out, "IndexSelectBackward0", self, index, move |g, index| {
            let z = Tensor::zeros_opts(in_shape.as_slice(), (g.dtype(), &g.device()));
            let g = if in_shape.is_empty() {
                g.reshape_to(&[1])
            } else {
                g.shallow_clone()
            };
            let z1 = z.reshape_to(&shape_1d(&z));
            z1.index_add(d as isize, &index.reshape_to(&[index.numel()]), &g)
                .reshape_to(&in_shape)
        })
    }

    /// Adds the slices of `source` along `dim` into the positions `index`
    /// (1-D int64) names, out of place, like `torch.index_add`. Repeated
    /// indices accumulate.
    pub fn index_add(&self, dim: isize, index: &Tensor, source: &Tensor) -> Tensor {
        let op = "index_add";
        check_index_dtype(op, index);
        let d = normalize_dim(op, dim, self.dim());
        same_device(op, &[self, index, source]);
        let out = backend::of(self.device()).index_add(&self.detach(), d, index, &source.detach());
        from_add_at(
            out,
            "IndexAddBackward0",
            self,
            source,
            index,
            move |g, index, shape| g.index_select(d as isize, index).reshape_to(shape),
        )
    }

    /// `out[i][j][k] = self[i][index[i][j][k]][k]` for `dim = 1` (and so on
    /// for other dims), like `torch.gather`. `index` has `self`'s rank and
    /// the output has `index`'s shape.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let x = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]);
    /// let y = x.gather(1, &Tensor::from([[0i64, 0], [1, 0]]));
    /// assert_eq!(y.to_vec::<f32>(), vec![1.0, 1.0, 4.0, 3.0]);
    /// ```
    pub fn gather(&self, dim: isize, index: &Tensor) -> Tensor {
        let op = "gather";
        check_index_dtype(op, index);
        let d = normalize_dim(op, dim, self.dim());
        check_gather_shapes(op, index, self, d, true);
        same_device(op, &[self, index]);
        let out = backend::of(self.device()).gather(&self.detach(), d, index);
        let in_shape = self.shape().to_vec();
        Tensor::from_unary_saved(out, "GatherBackward0", self, index, move |g, index| {
            if in_shape.is_empty() {
                return g.sum();
            }
            let z = Tensor::zeros_opts(in_shape.as_slice(), (g.dtype(), &g.device()));
            z.scatter_add(d as isize, index, g)
        })
    }

    /// Adds `src`'s elements into a copy of `self` at the positions `index`
    /// names along `dim` (`out[i][index[i][j]] += src[i][j]` for `dim = 1`),
    /// like `torch.scatter_add`. Used by the backwards of `gather`, `max_dim`
    /// and `sort`.
    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Tensor {
        let op = "scatter_add";
        check_index_dtype(op, index);
        let d = normalize_dim(op, dim, self.dim());
        check_gather_shapes(op, index, self, d, true);
        check_gather_shapes(op, index, src, d, false);
        same_device(op, &[self, index, src]);
        let out = backend::of(self.device()).scatter_add(&self.detach(), d, index, &src.detach());
        from_add_at(
            out,
            "ScatterAddBackward0",
            self,
            src,
            index,
            move |g, index, shape| {
                let gathered = g.gather(d as isize, index);
                if gathered.shape() == shape {
                    gathered
                } else {
                    pad_to(&gathered, shape)
                }
            },
        )
    }

    /// Elementwise choice: `a` where `cond` is true, else `b`, with all
    /// three broadcast together, like `torch.where(cond, a, b)`. (Named
    /// `where_cond` because `where` is a Rust keyword; see also
    /// [`Tensor::where_`] for the method form `a.where_(cond, b)`.)
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let c = Tensor::from([true, false]);
    /// let y = Tensor::where_cond(&c, &Tensor::from([1.0f32, 2.0]), &Tensor::scalar(0.0f32));
    /// assert_eq!(y.to_vec::<f32>(), vec![1.0, 0.0]);
    /// ```
    pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
        let op = "where";
        same_device(op, &[cond, a, b]);
        let cond = match cond.dtype() {
            DType::Bool => cond.shallow_clone(),
            DType::U8 => cond.to_dtype(DType::Bool),
            other => panic!("{op}: expected condition to be a bool tensor, but got {other}"),
        };
        let shape = broadcast_shapes(cond.shape(), a.shape())
            .and_then(|s| broadcast_shapes(&s, b.shape()))
            .unwrap_or_else(|| {
                panic!(
                    "{op}: the shapes of condition {:?}, a {:?} and b {:?} cannot be broadcast together",
                    cond.shape(),
                    a.shape(),
                    b.shape()
                )
            });
        let dtype = promote(a.dtype(), b.dtype());
        let (ac, bc) = autograd::no_grad(|| (a.to_dtype(dtype), b.to_dtype(dtype)));
        let lc = cond.layout().broadcast_to(&shape).expect("broadcast");
        let la = ac.layout().broadcast_to(&shape).expect("broadcast");
        let lb = bc.layout().broadcast_to(&shape).expect("broadcast");
        let out = backend::of(ac.device()).where_((&cond, &lc), (&ac, &la), (&bc, &lb), &shape);
        let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
        Tensor::from_op_saved(
            out,
            "WhereBackward0",
            &[a, b],
            &[cond.shallow_clone()],
            move |g, need| {
                let zero = Tensor::zeros_opts([], (g.dtype(), &g.device()));
                vec![
                    need[0].then(|| Tensor::where_cond(&cond, g, &zero).sum_to(&sa)),
                    need[1].then(|| Tensor::where_cond(&cond, &zero, g).sum_to(&sb)),
                ]
            },
        )
    }

    /// `self` where `cond` is true, else `other`: PyTorch's method form
    /// `x.where(cond, y)`, the same as `Tensor::where_cond(cond, self, other)`.
    pub fn where_(&self, cond: &Tensor, other: &Tensor) -> Tensor {
        Tensor::where_cond(cond, self, other)
    }

    /// Fills the positions where `mask` (bool, broadcastable to `self`) is
    /// true with `value`, out of place, like `tensor.masked_fill`.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Tensor {
        let op = "masked_fill";
        if mask.dtype() != DType::Bool {
            panic!("{op}: expected a bool mask, but got {}", mask.dtype());
        }
        same_device(op, &[self, mask]);
        let lm = mask.layout().broadcast_to(self.shape()).unwrap_or_else(|| {
            panic!(
                "{op}: the mask of shape {:?} cannot be broadcast to the tensor's shape {:?}",
                mask.shape(),
                self.shape()
            )
        });
        let out = backend::of(self.device()).masked_fill(&self.detach(), mask, &lm, value);
        Tensor::from_unary_saved(out, "MaskedFillBackward0", self, mask, |g, mask| {
            let zero = Tensor::zeros_opts([], (g.dtype(), &g.device()));
            Tensor::where_cond(mask, &zero, g)
        })
    }

    /// The elements where `mask` is true (both broadcast), as a 1-D tensor
    /// in row-major order, like `torch.masked_select`.
    pub fn masked_select(&self, mask: &Tensor) -> Tensor {
        let op = "masked_select";
        if mask.dtype() != DType::Bool {
            panic!("{op}: expected a bool mask, but got {}", mask.dtype());
        }
        same_device(op, &[self, mask]);
        let shape = broadcast_shapes(self.shape(), mask.shape()).unwrap_or_else(|| {
            panic!(
                "{op}: the shapes of the tensor {:?} and the mask {:?} cannot be broadcast",
                self.shape(),
                mask.shape()
            )
        });
        let out = backend::of(self.device()).masked_select(&self.detach(), mask, &shape);
        let in_shape = self.shape().to_vec();
        let mask_b = mask.expand(&shape).contiguous();
        Tensor::from_unary_saved(
            out,
            "MaskedSelectBackward0",
            self,
            &mask_b,
            move |g, mask| masked_expand(g, mask).sum_to(&in_shape),
        )
    }

    /// One-hot encoding of an int64 tensor of class indices: a new last
    /// dimension of size `num_classes` (`-1`: one more than the largest
    /// value), like `torch.nn.functional.one_hot`. The result is int64.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let y = Tensor::from([0i64, 2]).one_hot(3);
    /// assert_eq!(y.to_vec::<i64>(), vec![1, 0, 0, 0, 0, 1]);
    /// ```
    pub fn one_hot(&self, num_classes: isize) -> Tensor {
        let op = "one_hot";
        if self.dtype() != DType::I64 {
            panic!(
                "{op}: one_hot is only applicable to index tensors (int64), got {}",
                self.dtype()
            );
        }
        let n = if num_classes >= 0 {
            num_classes as usize
        } else if self.numel() == 0 {
            0
        } else {
            // One number comes back from the device.
            (self.max().item() as i64 + 1).max(0) as usize
        };
        backend::of(self.device()).one_hot(self, n)
    }
}

/// Records `out`, `base` with `src`'s elements added at `index`
/// (`index_add`, `scatter_add`): the gradient passes to `base` unchanged,
/// and `src_grad(g, index, src_shape)` is `src`'s.
fn from_add_at(
    out: Tensor,
    name: &'static str,
    base: &Tensor,
    src: &Tensor,
    index: &Tensor,
    src_grad: impl Fn(&Tensor, &Tensor, &[usize]) -> Tensor + Send + Sync + 'static,
) -> Tensor {
    let saved = index.shallow_clone();
    let src_shape = src.shape().to_vec();
    Tensor::from_op_saved(
        out,
        name,
        &[base, src],
        &[index.shallow_clone()],
        move |g, need| {
            vec![
                Some(g.shallow_clone()),
                need[1].then(|| src_grad(g, &saved, &src_shape)),
            ]
        },
    )
}

/// Zeros of `mask`'s shape with `g`'s elements written, in order, where
/// `mask` is true: the backward of `masked_select`, itself differentiable
/// (its backward is `masked_select`).
fn masked_expand(g: &Tensor, mask: &Tensor) -> Tensor {
    let out = backend::of(g.device()).masked_scatter(&g.detach(), mask);
    Tensor::from_unary_saved(out, "MaskedScatterBackward0", g, mask, |gg, mask| {
        gg.masked_select(mask)
    })
}

/// `t` placed at the start of zeros of the larger `shape` (each dim of `t`
/// at most `shape`'s).
pub(super) fn pad_to(t: &Tensor, shape: &[usize]) -> Tensor {
    let z = Tensor::zeros_opts(shape, (t.dtype(), &t.device()));
    let mut view = z.shallow_clone();
    for (k, &n) in t.shape().iter().enumerate() {
        view = view.narrow(k as isize, 0, n);
    }
    autograd::no_grad(|| view.copy_(t));
    z
}
