//! In-place ops (`add_`, `mul_`, `copy_`, `fill_`, `zero_`). They write
//! through the tensor's view into the shared storage, so every view sees
//! the change. Like PyTorch, they refuse leaves that require grad while
//! grad mode is on (optimizers update parameters inside `no_grad`).

use crate::Tensor;
use crate::dtype::Element;
use crate::layout::Layout;
use crate::storage::CpuStorage;
use half::{bf16, f16};

/// The CPU's scalar functions of an in-place binary op (f32, f64).
pub(crate) type InplaceFns = (fn(f32, f32) -> f32, fn(f64, f64) -> f64);

fn check_inplace(op: &str, t: &Tensor) {
    if crate::autograd::is_grad_enabled() && t.requires_grad() {
        if t.is_leaf() {
            panic!(
                "{op}: a leaf tensor that requires grad is being used in an in-place operation; wrap the update in no_grad"
            );
        }
        panic!(
            "{op}: in-place operations on tensors that are part of an autograd graph are not supported; use the out-of-place op"
        );
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

fn apply_binary_(
    op: &str,
    t: &Tensor,
    other: &Tensor,
    f32f: fn(f32, f32) -> f32,
    f64f: fn(f64, f64) -> f64,
) {
    check_inplace(op, t);
    if t.device() != other.device() {
        panic!(
            "{op}: expected all tensors to be on the same device, but found {} and {}",
            t.device(),
            other.device()
        );
    }
    let other = &other.to_dtype(t.dtype());
    let ls = other.layout().broadcast_to(t.shape()).unwrap_or_else(|| {
        panic!(
            "{op}: output with shape {:?} doesn't match the broadcast shape of the other operand {:?}",
            t.shape(),
            other.shape()
        )
    });
    crate::backend::of(t.device()).binary_inplace(op, (f32f, f64f), t, other, &ls);
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

impl Tensor {
    /// `self += other` (broadcast into self's shape), like `tensor.add_`.
    pub fn add_(&self, other: &Tensor) {
        apply_binary_("add_", self, other, |a, b| a + b, |a, b| a + b);
    }

    /// `self -= other`, like `tensor.sub_`.
    pub fn sub_(&self, other: &Tensor) {
        apply_binary_("sub_", self, other, |a, b| a - b, |a, b| a - b);
    }

    /// `self *= other`, like `tensor.mul_`.
    pub fn mul_(&self, other: &Tensor) {
        apply_binary_("mul_", self, other, |a, b| a * b, |a, b| a * b);
    }

    /// `self /= other`, like `tensor.div_`.
    pub fn div_(&self, other: &Tensor) {
        apply_binary_("div_", self, other, |a, b| a / b, |a, b| a / b);
    }

    /// Copies `src` (broadcast to self's shape, converted to self's dtype)
    /// into self, like `tensor.copy_`.
    pub fn copy_(&self, src: &Tensor) {
        let src = if src.device() != self.device() {
            src.to_device(self.device())
        } else {
            src.clone()
        };
        apply_binary_("copy_", self, &src, |_, b| b, |_, b| b);
    }

    /// `self += alpha * other`, like `tensor.add_(other, alpha=...)`.
    pub fn add_scaled_(&self, other: &Tensor, alpha: f64) {
        if alpha == 1.0 {
            self.add_(other);
        } else {
            self.add_(&crate::autograd::no_grad(|| other.mul_scalar(alpha)));
        }
    }

    /// `self *= s`, like `tensor.mul_(s)`.
    pub fn mul_scalar_(&self, s: f64) {
        self.mul_(&self.scalar_like(s));
    }

    /// `self += s`, like `tensor.add_(s)`.
    pub fn add_scalar_(&self, s: f64) {
        self.add_(&self.scalar_like(s));
    }

    /// Sets every element to `value`, like `tensor.fill_`.
    pub fn fill_(&self, value: f64) {
        check_inplace("fill_", self);
        crate::backend::of(self.device()).fill(self, value);
    }

    /// Sets every element to zero, like `tensor.zero_`.
    pub fn zero_(&self) {
        self.fill_(0.0);
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
