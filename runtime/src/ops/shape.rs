//! View ops: they change the layout and share storage where PyTorch's do
//! (reshape copies only when the strides do not allow a view).

use crate::Tensor;
use crate::layout::normalize_dim;

/// Resolves a shape that may contain one `-1` against `numel`.
pub(crate) fn infer_shape(op: &str, shape: &[isize], numel: usize, from: &[usize]) -> Vec<usize> {
    let mut infer = None;
    let mut known = 1usize;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            -1 if infer.is_none() => infer = Some(i),
            -1 => panic!("{op}: only one dimension can be inferred (shape {shape:?})"),
            d if d < 0 => panic!("{op}: invalid shape dimension {d} in {shape:?}"),
            d => known *= d as usize,
        }
    }
    let mut out: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    match infer {
        Some(i) => {
            if known == 0 || !numel.is_multiple_of(known) {
                panic!(
                    "{op}: shape {shape:?} is invalid for input of size {numel} (shape {from:?})"
                );
            }
            out[i] = numel / known;
        }
        None if known != numel => {
            panic!("{op}: shape {shape:?} is invalid for input of size {numel} (shape {from:?})")
        }
        None => {}
    }
    out
}

impl Tensor {
    /// A tensor with the same data and a new shape (one entry may be -1),
    /// a view when the strides allow, like `tensor.reshape`.
    pub fn reshape(&self, shape: &[isize]) -> Tensor {
        let shape = infer_shape("reshape", shape, self.numel(), self.shape());
        self.reshape_to(&shape)
    }

    /// `reshape` with a fully known shape.
    pub fn reshape_to(&self, shape: &[usize]) -> Tensor {
        if shape == self.shape() {
            return self.shallow_clone();
        }
        let n: usize = shape.iter().product();
        if n != self.numel() {
            panic!(
                "reshape: shape {shape:?} is invalid for input of size {} (shape {:?})",
                self.numel(),
                self.shape()
            );
        }
        match self.layout().reshape_view(shape) {
            Some(l) => {
                let out = self.view_with_layout(l);
                let orig = self.shape().to_vec();
                Tensor::from_op(out, "ViewBackward0", &[self], move |g, _| {
                    vec![Some(g.reshape_to(&orig))]
                })
            }
            None => self.contiguous().reshape_to(shape),
        }
    }

    /// Like `reshape`, but panics when a copy would be needed, like `tensor.view`.
    pub fn view(&self, shape: &[isize]) -> Tensor {
        let shape = infer_shape("view", shape, self.numel(), self.shape());
        if self.layout().reshape_view(&shape).is_none() {
            panic!(
                "view: view size {shape:?} is not compatible with input tensor's size {:?} and stride {:?}; use reshape instead",
                self.shape(),
                self.stride()
            );
        }
        self.reshape_to(&shape)
    }

    /// Flattens dimensions `start_dim..=end_dim` into one, like `torch.flatten`.
    pub fn flatten(&self, start_dim: isize, end_dim: isize) -> Tensor {
        if self.dim() == 0 {
            return self.reshape_to(&[1]);
        }
        let s = normalize_dim("flatten", start_dim, self.dim());
        let e = normalize_dim("flatten", end_dim, self.dim());
        if s > e {
            panic!("flatten: start_dim {start_dim} cannot come after end_dim {end_dim}");
        }
        let mut shape = self.shape()[..s].to_vec();
        shape.push(self.shape()[s..=e].iter().product());
        shape.extend_from_slice(&self.shape()[e + 1..]);
        self.reshape_to(&shape)
    }

    /// Reorders dimensions, like `tensor.permute`.
    pub fn permute(&self, dims: &[isize]) -> Tensor {
        let rank = self.dim();
        if dims.len() != rank {
            panic!(
                "permute: number of dims in {dims:?} don't match the tensor's shape {:?}",
                self.shape()
            );
        }
        let dims: Vec<usize> = dims
            .iter()
            .map(|&d| normalize_dim("permute", d, rank))
            .collect();
        let mut seen = vec![false; rank];
        for &d in &dims {
            if std::mem::replace(&mut seen[d], true) {
                panic!("permute: repeated dim {d} in {dims:?}");
            }
        }
        let out = self.view_with_layout(self.layout().permute(&dims));
        let mut inverse = vec![0isize; rank];
        for (i, &d) in dims.iter().enumerate() {
            inverse[d] = i as isize;
        }
        Tensor::from_op(out, "PermuteBackward0", &[self], move |g, _| {
            vec![Some(g.permute(&inverse))]
        })
    }

    /// Swaps two dimensions, like `tensor.transpose`.
    pub fn transpose(&self, dim0: isize, dim1: isize) -> Tensor {
        let (a, b) = (
            normalize_dim("transpose", dim0, self.dim()),
            normalize_dim("transpose", dim1, self.dim()),
        );
        let out = self.view_with_layout(self.layout().transpose(a, b));
        Tensor::from_op(out, "TransposeBackward0", &[self], move |g, _| {
            vec![Some(g.transpose(a as isize, b as isize))]
        })
    }

    /// Transposes a matrix (≤ 2-D), like `tensor.t()`.
    pub fn t(&self) -> Tensor {
        match self.dim() {
            0 | 1 => self.shallow_clone(),
            2 => self.transpose(0, 1),
            _ => panic!(
                "t: expects a tensor with <= 2 dimensions, but got shape {:?}",
                self.shape()
            ),
        }
    }

    /// Inserts a size-1 dimension, like `tensor.unsqueeze`.
    pub fn unsqueeze(&self, dim: isize) -> Tensor {
        let d = normalize_dim("unsqueeze", dim, self.dim() + 1);
        let out = self.view_with_layout(self.layout().unsqueeze(d));
        Tensor::from_op(out, "UnsqueezeBackward0", &[self], move |g, _| {
            vec![Some(g.squeeze_dim(d as isize))]
        })
    }

    /// Removes every size-1 dimension, like `tensor.squeeze()`.
    pub fn squeeze(&self) -> Tensor {
        let dims: Vec<usize> = (0..self.dim()).filter(|&d| self.shape()[d] == 1).collect();
        self.squeeze_listed(&dims)
    }

    /// Removes `dim` if it has size 1 (else returns the tensor unchanged),
    /// like `tensor.squeeze(dim)`.
    pub fn squeeze_dim(&self, dim: isize) -> Tensor {
        if self.dim() == 0 {
            return self.shallow_clone();
        }
        let d = normalize_dim("squeeze", dim, self.dim());
        if self.shape()[d] != 1 {
            return self.shallow_clone();
        }
        self.squeeze_listed(&[d])
    }

    fn squeeze_listed(&self, dims: &[usize]) -> Tensor {
        if dims.is_empty() {
            return self.shallow_clone();
        }
        let out = self.view_with_layout(self.layout().squeeze(dims));
        let orig = self.shape().to_vec();
        Tensor::from_op(out, "SqueezeBackward0", &[self], move |g, _| {
            vec![Some(g.reshape_to(&orig))]
        })
    }

    /// Broadcasts to `shape` without copying (size-1 dims repeat), like
    /// `tensor.expand`.
    pub fn expand(&self, shape: &[usize]) -> Tensor {
        if shape == self.shape() {
            return self.shallow_clone();
        }
        let l = self.layout().broadcast_to(shape).unwrap_or_else(|| {
            panic!(
                "expand: the expanded size {shape:?} must match the existing size {:?} at non-singleton dimensions",
                self.shape()
            )
        });
        let out = self.view_with_layout(l);
        let orig = self.shape().to_vec();
        Tensor::from_op(out, "ExpandBackward0", &[self], move |g, _| {
            vec![Some(g.sum_to(&orig))]
        })
    }

    /// `expand` to another tensor's shape, like `tensor.expand_as`.
    pub fn expand_as(&self, other: &Tensor) -> Tensor {
        self.expand(other.shape())
    }

    /// The slice `start..start + length` of `dim`, as a view, like `tensor.narrow`.
    pub fn narrow(&self, dim: isize, start: usize, length: usize) -> Tensor {
        let d = normalize_dim("narrow", dim, self.dim());
        if start + length > self.shape()[d] {
            panic!(
                "narrow: start ({start}) + length ({length}) exceeds dimension size ({}) of dim {d} in shape {:?}",
                self.shape()[d],
                self.shape()
            );
        }
        let out = self.view_with_layout(self.layout().narrow(d, start, length));
        let orig = self.shape().to_vec();
        Tensor::from_op(out, "NarrowBackward0", &[self], move |g, _| {
            let z = Tensor::zeros_opts(orig.as_slice(), (g.dtype(), &g.device()));
            crate::autograd::no_grad(|| z.narrow(d as isize, start, length).copy_(g));
            vec![Some(z)]
        })
    }

    /// Index `index` of `dim`, removing that dimension (a view), like `tensor[i]`
    /// or `tensor.select(dim, i)`.
    pub fn select(&self, dim: isize, index: usize) -> Tensor {
        let d = normalize_dim("select", dim, self.dim());
        if index >= self.shape()[d] {
            panic!(
                "select: index {index} is out of bounds for dimension {d} with size {}",
                self.shape()[d]
            );
        }
        self.narrow(d as isize, index, 1).squeeze_dim(d as isize)
    }
}
