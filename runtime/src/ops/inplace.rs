//! In-place ops (`add_`, `mul_`, `copy_`, `fill_`, `zero_`). They write
//! through the tensor's view into the shared storage, so every view sees
//! the change, and bump the storage's version counter (`Tensor::version`),
//! which autograd checks for the tensors it saved.
//!
//! With grad mode on, an in-place op on a tensor in a graph (or with an
//! operand that requires grad) is recorded as PyTorch records it: the op's
//! node replaces the tensor's `grad_fn`, chained to the old one
//! (`rebase_history`); on a view of such a tensor the view's base gets a
//! `CopySlices` node and the view an `AsStridedBackward0` on top of it
//! (see [`rebase_history`]). Leaves that require grad, and views of them,
//! are refused outside `no_grad` (optimizers update parameters inside it).

use crate::Tensor;
use crate::autograd::{self, Node, SavedVersion};
use crate::dtype::{DType, Element};
use crate::layout::Layout;
use crate::storage::CpuStorage;
use half::{bf16, f16};
use std::sync::Arc;

/// The CPU's scalar functions of an in-place binary op (f32, f64).
pub(crate) type InplaceFns = (fn(f32, f32) -> f32, fn(f64, f64) -> f64);

/// Checks that op `op` may change `t` in place with operands `others`,
/// and says whether autograd must record it: grad mode is on and `t` or
/// an operand requires grad. Panics, as PyTorch does, for a leaf that
/// requires grad and for a view of one.
pub(crate) fn begin_inplace(op: &str, t: &Tensor, others: &[&Tensor]) -> bool {
    if !autograd::is_grad_enabled() {
        return false;
    }
    if t.is_leaf() && t.requires_grad() {
        panic!(
            "{op}: a leaf Variable that requires grad is being used in an in-place operation (wrap the update in no_grad)"
        );
    }
    if let Some(base) = t.view_base()
        && base.is_leaf()
        && base.requires_grad()
    {
        panic!(
            "{op}: a view of a leaf Variable that requires grad is being used in an in-place operation (wrap the update in no_grad)"
        );
    }
    t.requires_grad() || others.iter().any(|o| o.requires_grad())
}

/// For in-place writes that autograd does not record (`i_set`): the leaf
/// checks of [`begin_inplace`], and a panic when the write would need
/// recording (the tensor is part of a graph and grad mode is on).
pub(crate) fn check_inplace(op: &str, t: &Tensor) {
    if begin_inplace(op, t, &[]) {
        panic!(
            "{op}: the tensor (shape {:?}) is part of an autograd graph, and this in-place write is not recorded by autograd; use the out-of-place op (i_put) or write under no_grad",
            t.shape()
        );
    }
}

/// Records the in-place op `name`, already applied to `t`, in autograd:
/// PyTorch's `rebase_history`. `backward` is the op's rule over the inputs
/// `[t as it was, others...]`; `saved` lists the tensors it reads (their
/// versions are checked before it runs).
///
/// On a plain tensor the op's node becomes `t`'s `grad_fn`, with `t`'s old
/// history as its first input. On a view of a tensor `base` (one made by a
/// recorded view op), `base` gets a `CopySlices` node: its gradient is the
/// incoming one with the view's region replaced by the op's gradient for
/// the view's old value, and its other inputs get the op's gradients; the
/// view's `grad_fn` becomes an `AsStridedBackward0` of `base`'s new
/// history. (Other views of `base` made before the op keep their old
/// history, as they do in PyTorch until they are next used.)
pub(crate) fn rebase_history(
    t: &Tensor,
    name: &'static str,
    others: &[&Tensor],
    saved: &[Tensor],
    backward: impl Fn(&Tensor, &[bool]) -> Vec<Option<Tensor>> + Send + Sync + 'static,
) {
    let saved: Vec<SavedVersion> = saved.iter().map(|s| SavedVersion::new(s, false)).collect();
    let other_edges = others.iter().map(|o| o.edge());
    let Some(base) = t.view_base() else {
        let edges = std::iter::once(t.edge()).chain(other_edges).collect();
        let node = Node::new(name, edges, Box::new(backward)).with_saved(saved);
        t.set_grad_fn(Some(Arc::new(node)));
        return;
    };
    if !base.is_contiguous() || t.layout().offset() < base.layout().offset() {
        panic!(
            "{}: in-place on a view of a non-contiguous tensor that is part of an autograd graph is not supported (view {:?}, base {:?})",
            name,
            t.shape(),
            base.shape()
        );
    }
    // The view's elements as a layout over a contiguous tensor of the
    // base's shape (a gradient of the base).
    let region = Layout::new(
        t.shape().to_vec(),
        t.stride().to_vec(),
        t.layout().offset() - base.layout().offset(),
    );
    let edges = std::iter::once(base.edge()).chain(other_edges).collect();
    let r = region.clone();
    let copy_slices = move |g: &Tensor, need: &[bool]| {
        let grad_base = g.deep_copy();
        let view = grad_base.view_with_layout(r.clone());
        let mut needs = need.to_vec();
        needs[0] = true;
        let mut grads = backward(&view.deep_copy(), &needs);
        autograd::no_grad(|| match grads[0].take() {
            Some(gv) => view.copy_(&gv),
            None => view.zero_(),
        });
        grads[0] = Some(grad_base);
        grads
    };
    let node = Node::new("CopySlices", edges, Box::new(copy_slices)).with_saved(saved);
    base.set_grad_fn(Some(Arc::new(node)));
    let base_shape = base.shape().to_vec();
    let as_strided = move |g: &Tensor, _: &[bool]| {
        let opts = (g.dtype(), &g.device());
        let grad_base = Tensor::zeros_opts(base_shape.clone(), opts);
        autograd::no_grad(|| grad_base.view_with_layout(region.clone()).copy_(g));
        vec![Some(grad_base)]
    };
    let node = Node::new(
        "AsStridedBackward0",
        vec![base.edge()],
        Box::new(as_strided),
    );
    t.set_grad_fn(Some(Arc::new(node)));
}

/// `g` reduced to the shape, dtype and device of an operand `o` that was
/// broadcast into an in-place op's output.
fn grad_for(g: &Tensor, o: &Tensor) -> Tensor {
    let r = g.sum_to(o.shape());
    let r = if r.dtype() != o.dtype() {
        r.to_dtype(o.dtype())
    } else {
        r
    };
    if r.device() != o.device() {
        r.to(&o.device())
    } else {
        r
    }
}

/// `g`'s values in dtype `d` (a gradient for the in-place output itself).
fn as_dtype(g: Tensor, d: DType) -> Tensor {
    if g.dtype() == d { g } else { g.to_dtype(d) }
}

/// What an operand looks like to the backward of an in-place op on `t`:
/// itself, or a copy taken before the write when it aliases `t`.
fn operand(t: &Tensor, o: &Tensor) -> Tensor {
    if o.shares_storage_with(t) {
        o.detach().deep_copy()
    } else {
        o.shallow_clone()
    }
}

/// `dst[i] = f(dst[i], src[i])` over `dst`'s layout, with `src` already
/// broadcast to it.
fn zip_into<T: Copy>(dst: &mut [T], ld: &Layout, src: &[T], ls: &Layout, f: impl Fn(T, T) -> T) {
    match (ld.contiguous_range(), ls.contiguous_range()) {
        (Some(rd), Some(rs)) => {
            for (d, &s) in dst[rd].iter_mut().zip(&src[rs]) {
                *d = f(*d, s);
            }
        }
        _ => {
            for (od, os) in ld.offsets().zip(ls.offsets()) {
                dst[od] = f(dst[od], src[os]);
            }
        }
    }
}

/// Writes `t = f(t, other)` (broadcast into `t`'s shape, converted to
/// its dtype) and bumps `t`'s version; no autograd.
fn write_binary(
    op: &str,
    t: &Tensor,
    other: &Tensor,
    f32f: fn(f32, f32) -> f32,
    f64f: fn(f64, f64) -> f64,
) {
    if t.device() != other.device() {
        panic!(
            "{op}: expected all tensors to be on the same device, but found {} and {}",
            t.device(),
            other.device()
        );
    }
    let other = &autograd::no_grad(|| other.to_dtype(t.dtype()));
    let ls = other.layout().broadcast_to(t.shape()).unwrap_or_else(|| {
        panic!(
            "{op}: output with shape {:?} doesn't match the broadcast shape of the other operand {:?}",
            t.shape(),
            other.shape()
        )
    });
    crate::backend::of(t.device()).binary_inplace(op, (f32f, f64f), t, other, &ls);
    t.bump_version();
}

/// The CPU's in-place kernel: `t = f(t, other)` with `other` read through
/// `ls` (broadcast to `t`), in `t`'s dtype.
pub(crate) fn apply_binary_cpu(
    op: &str,
    (f32f, f64f): InplaceFns,
    t: &Tensor,
    other: &Tensor,
    ls: &Layout,
) {
    let ls = ls.clone();
    if other.shares_storage_with(t) {
        // Aliased source (e.g. `x.add_(&x)`): read it into its own buffer first.
        let copy = other.read_storage().cpu(op).gather(&ls);
        let tmp = Tensor::from_cpu(copy, t.shape());
        let lt = tmp.layout().clone();
        return apply_binary_cpu(op, (f32f, f64f), t, &tmp, &lt);
    }
    let gs = other.read_storage();
    let mut g = t.write_storage();
    let ld = t.layout().clone();
    match (g.cpu_mut(op), gs.cpu(op)) {
        (CpuStorage::F32(d), CpuStorage::F32(s)) => zip_into(d, &ld, s, &ls, f32f),
        (CpuStorage::F64(d), CpuStorage::F64(s)) => zip_into(d, &ld, s, &ls, f64f),
        (CpuStorage::F16(d), CpuStorage::F16(s)) => zip_into(d, &ld, s, &ls, |a, b| {
            f16::from_f32(f32f(a.to_f32(), b.to_f32()))
        }),
        (CpuStorage::BF16(d), CpuStorage::BF16(s)) => zip_into(d, &ld, s, &ls, |a, b| {
            bf16::from_f32(f32f(a.to_f32(), b.to_f32()))
        }),
        (CpuStorage::I64(d), CpuStorage::I64(s)) => {
            zip_into(d, &ld, s, &ls, |a, b| f64f(a as f64, b as f64) as i64)
        }
        (CpuStorage::I32(d), CpuStorage::I32(s)) => {
            zip_into(d, &ld, s, &ls, |a, b| f64f(a as f64, b as f64) as i32)
        }
        (CpuStorage::I16(d), CpuStorage::I16(s)) => {
            zip_into(d, &ld, s, &ls, |a, b| f64f(a as f64, b as f64) as i16)
        }
        (CpuStorage::U8(d), CpuStorage::U8(s)) => {
            zip_into(d, &ld, s, &ls, |a, b| f64f(a as f64, b as f64) as u8)
        }
        (CpuStorage::Bool(d), CpuStorage::Bool(s)) => zip_into(d, &ld, s, &ls, |a, b| {
            f64f(a as u8 as f64, b as u8 as f64) != 0.0
        }),
        (d, _) => panic!("{op}: unsupported dtype {}", d.dtype()),
    }
}

fn fill_layout<T: Copy>(dst: &mut [T], l: &Layout, v: T) {
    match l.contiguous_range() {
        Some(r) => dst[r].fill(v),
        None => {
            for o in l.offsets() {
                dst[o] = v;
            }
        }
    }
}

fn add_f32(a: f32, b: f32) -> f32 {
    a + b
}
fn add_f64(a: f64, b: f64) -> f64 {
    a + b
}
fn mul_f32(a: f32, b: f32) -> f32 {
    a * b
}
fn mul_f64(a: f64, b: f64) -> f64 {
    a * b
}

/// An elementwise binary op on f32 elements.
type BinaryF32 = fn(f32, f32) -> f32;
/// An elementwise binary op on f64 elements.
type BinaryF64 = fn(f64, f64) -> f64;
/// The gradient of self's old value in `mul_`/`div_`: `(g, other)`.
type ScaleGrad = fn(&Tensor, &Tensor) -> Tensor;
/// The other operand's gradient in `mul_`/`div_`: `(g, old self, other)`.
type ScaleGradOther = fn(&Tensor, &Tensor, &Tensor) -> Tensor;

impl Tensor {
    /// `self += other` (broadcast into self's shape), like `tensor.add_`.
    ///
    /// On a tensor in a graph it is recorded like PyTorch's:
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let a = Tensor::ones([3]).requires_grad_(true);
    /// let b = &a * 2.0;
    /// b.add_(&Tensor::full([3], 2.0));
    /// assert_eq!(b.grad_fn().unwrap().name(), "AddBackward0");
    /// b.sum().backward();
    /// assert_eq!(a.grad().unwrap().to_vec::<f32>(), vec![2.0; 3]);
    /// ```
    pub fn add_(&self, other: &Tensor) {
        self.add_scaled_(other, 1.0);
    }

    /// `self -= other`, like `tensor.sub_`.
    pub fn sub_(&self, other: &Tensor) {
        let record = begin_inplace("sub_", self, &[other]);
        write_binary("sub_", self, other, |a, b| a - b, |a, b| a - b);
        if record {
            let o = other.detach();
            rebase_history(self, "SubBackward0", &[other], &[], move |g, need| {
                vec![
                    Some(g.shallow_clone()),
                    need[1].then(|| grad_for(&g.neg(), &o)),
                ]
            });
        }
    }

    /// `self *= other`, like `tensor.mul_`.
    pub fn mul_(&self, other: &Tensor) {
        let grads: (ScaleGrad, ScaleGradOther) = (|g, o| g.mul(o), |g, x, _| g.mul(x));
        self.scale_("mul_", "MulBackward0", other, (mul_f32, mul_f64), grads);
    }

    /// `self /= other`, like `tensor.div_`.
    pub fn div_(&self, other: &Tensor) {
        let grads: (ScaleGrad, ScaleGradOther) =
            (|g, o| g.div(o), |g, x, o| g.mul(x).div(&o.mul(o)).neg());
        self.scale_(
            "div_",
            "DivBackward0",
            other,
            (|a, b| a / b, |a, b| a / b),
            grads,
        );
    }

    /// `mul_` or `div_` (`f` on f32 and f64 elements), recorded as `name`:
    /// `grads.0(g, other)` is the gradient of self's old value and
    /// `grads.1(g, old self, other)` the other operand's.
    fn scale_(
        &self,
        op: &'static str,
        name: &'static str,
        other: &Tensor,
        f: (BinaryF32, BinaryF64),
        grads: (ScaleGrad, ScaleGradOther),
    ) {
        let record = begin_inplace(op, self, &[other]);
        // The old value, for the other operand's gradient.
        let orig = (record && other.requires_grad()).then(|| self.detach().deep_copy());
        let o = operand(self, other);
        write_binary(op, self, other, f.0, f.1);
        if record {
            let saved = [o.shallow_clone()];
            let (grad_self, grad_other) = grads;
            rebase_history(self, name, &[other], &saved, move |g, need| {
                vec![
                    need[0].then(|| as_dtype(grad_self(g, &o), g.dtype())),
                    match (&orig, need[1]) {
                        (Some(x), true) => Some(grad_for(&grad_other(g, x, &o), &o)),
                        _ => None,
                    },
                ]
            });
        }
    }

    /// Copies `src` (broadcast to self's shape, converted to self's dtype)
    /// into self, like `tensor.copy_`.
    pub fn copy_(&self, src: &Tensor) {
        let record = begin_inplace("copy_", self, &[src]);
        let moved = if src.device() != self.device() {
            autograd::no_grad(|| src.to_device(self.device()))
        } else {
            src.shallow_clone()
        };
        write_binary("copy_", self, &moved, |_, b| b, |_, b| b);
        if record {
            let s = src.detach();
            rebase_history(self, "CopyBackwards", &[src], &[], move |g, need| {
                vec![Some(g.zeros_like()), need[1].then(|| grad_for(g, &s))]
            });
        }
    }

    /// `self += alpha * other`, like `tensor.add_(other, alpha=...)`.
    pub fn add_scaled_(&self, other: &Tensor, alpha: f64) {
        let record = begin_inplace("add_", self, &[other]);
        if alpha == 1.0 {
            write_binary("add_", self, other, add_f32, add_f64);
        } else {
            let scaled = autograd::no_grad(|| other.mul_scalar(alpha));
            write_binary("add_", self, &scaled, add_f32, add_f64);
        }
        if record {
            let o = other.detach();
            rebase_history(self, "AddBackward0", &[other], &[], move |g, need| {
                vec![
                    Some(g.shallow_clone()),
                    need[1].then(|| {
                        if alpha == 1.0 {
                            grad_for(g, &o)
                        } else {
                            grad_for(&g.mul_scalar(alpha), &o)
                        }
                    }),
                ]
            });
        }
    }

    /// `self *= s`, like `tensor.mul_(s)`.
    pub fn mul_scalar_(&self, s: f64) {
        let record = begin_inplace("mul_", self, &[]);
        write_binary("mul_", self, &self.scalar_like(s), mul_f32, mul_f64);
        if record {
            rebase_history(self, "MulBackward0", &[], &[], move |g, _| {
                vec![Some(g.mul_scalar(s))]
            });
        }
    }

    /// `self += s`, like `tensor.add_(s)`.
    pub fn add_scalar_(&self, s: f64) {
        let record = begin_inplace("add_", self, &[]);
        write_binary("add_", self, &self.scalar_like(s), add_f32, add_f64);
        if record {
            rebase_history(self, "AddBackward0", &[], &[], |g, _| {
                vec![Some(g.shallow_clone())]
            });
        }
    }

    /// Sets every element to `value`, like `tensor.fill_`.
    pub fn fill_(&self, value: f64) {
        self.fill_named("fill_", "FillBackward2", value);
    }

    /// Sets every element to zero, like `tensor.zero_`.
    pub fn zero_(&self) {
        self.fill_named("zero_", "ZeroBackward0", 0.0);
    }

    fn fill_named(&self, op: &str, node: &'static str, value: f64) {
        let record = begin_inplace(op, self, &[]);
        crate::backend::of(self.device()).fill(self, value);
        self.bump_version();
        if record {
            rebase_history(self, node, &[], &[], |g, _| vec![Some(g.zeros_like())]);
        }
    }

    /// Writes `values` (row-major, converted) into this tensor in place.
    pub fn assign_from_slice<T: Element>(&self, values: &[T]) {
        assert_eq!(
            values.len(),
            self.numel(),
            "assign_from_slice: length mismatch for shape {:?}",
            self.shape()
        );
        self.copy_(&Tensor::from_slice(values, self.shape()));
    }
}

/// The CPU's fill kernel: every element `t`'s layout selects set to `value`.
pub(crate) fn fill_cpu(t: &Tensor, value: f64) {
    let mut g = t.write_storage();
    let l = t.layout().clone();
    match g.cpu_mut("fill_") {
        CpuStorage::F32(d) => fill_layout(d, &l, value as f32),
        CpuStorage::F64(d) => fill_layout(d, &l, value),
        CpuStorage::F16(d) => fill_layout(d, &l, f16::from_f64(value)),
        CpuStorage::BF16(d) => fill_layout(d, &l, bf16::from_f64(value)),
        CpuStorage::I64(d) => fill_layout(d, &l, value as i64),
        CpuStorage::I32(d) => fill_layout(d, &l, value as i32),
        CpuStorage::I16(d) => fill_layout(d, &l, value as i16),
        CpuStorage::U8(d) => fill_layout(d, &l, value as u8),
        CpuStorage::Bool(d) => fill_layout(d, &l, value != 0.0),
    }
}
