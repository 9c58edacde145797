//! The test device, [`Device::Test`](crate::Device::Test): a second
//! backend that is not the CPU's but runs anywhere.
//!
//! Its tensors live in host memory of their own storage type
//! ([`TestStorage`]), so nothing treats them as CPU tensors: every op on
//! them takes the device-generic path a GPU tensor takes (the same-device
//! checks, `backend::of`, transfers with `.to(device)`, reading back for
//! `to_vec`). Each primitive copies its inputs into CPU tensors, runs the
//! CPU backend's kernel and copies the result back into test storage, so
//! results equal the CPU's exactly and any op that bypasses the backend
//! interface panics instead of silently reading host memory. The golden
//! and gradcheck suites run every case on it. It is slow (every
//! primitive copies) and meant for tests only.

use super::cpu::CpuBackend;
use super::{Backend, Conv2dParams, Grads3, OptimStep, Pool2dParams, PoolIndices, UnaryOp};
use crate::loss::PointLoss;
use crate::ops::binary::BinaryFns;
use crate::ops::inplace::InplaceFns;
use crate::storage::{CpuStorage, Storage};
use crate::{DType, Device, Layout, Tensor};

/// The elements of a test-device tensor: host memory that only the test
/// backend reads.
#[derive(Clone, Debug)]
pub struct TestStorage {
    ordinal: usize,
    data: CpuStorage,
}

impl TestStorage {
    /// The device's ordinal (`test:N`).
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when no element is held.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// `t` (on a test device) as a CPU tensor over a copy of its storage,
/// with the same layout.
fn cpu(t: &Tensor) -> Tensor {
    let g = t.read_storage();
    match &*g {
        Storage::Test(s) => Tensor::from_storage(Storage::Cpu(s.data.clone()), t.layout().clone()),
        _ => panic!("test backend: {} is not on a test device", t.device()),
    }
}

fn cpu_opt(t: Option<&Tensor>) -> Option<Tensor> {
    t.map(cpu)
}

/// A CPU result moved to the test device `ordinal` (no autograd).
fn back(t: Tensor, ordinal: usize) -> Tensor {
    let data = t.read_storage().cpu("test backend").clone();
    Tensor::from_storage(
        Storage::Test(TestStorage { ordinal, data }),
        t.layout().clone(),
    )
}

fn back_opt(t: Option<Tensor>, ordinal: usize) -> Option<Tensor> {
    t.map(|t| back(t, ordinal))
}

/// Writes the storage of the CPU copy `from` back into the test tensor `to`.
fn write_back(to: &Tensor, from: &Tensor) {
    let data = from.read_storage().cpu("test backend").clone();
    let mut g = to.write_storage();
    match &mut *g {
        Storage::Test(s) => s.data = data,
        _ => panic!("test backend: {} is not on a test device", to.device()),
    }
}

fn ord(t: &Tensor) -> usize {
    match t.device() {
        Device::Test(i) => i,
        d => panic!("test backend: {d} is not a test device"),
    }
}

/// Copies between the CPU and test devices.
pub(crate) fn transfer(t: &Tensor, to: Device) -> Tensor {
    match (t.device(), to) {
        (Device::Cpu, Device::Test(i)) => {
            let data = t.read_storage().cpu("to").gather(t.layout());
            Tensor::from_storage(
                Storage::Test(TestStorage { ordinal: i, data }),
                Layout::contiguous(t.shape()),
            )
        }
        (Device::Test(_), Device::Cpu) => CpuBackend.deep_copy(&cpu(t)),
        (Device::Test(_), Device::Test(_)) => transfer(&transfer(t, Device::Cpu), to),
        (from, to) => panic!("to: the test backend cannot copy from {from} to {to}"),
    }
}

/// The test device's implementation of [`Backend`]: the CPU's kernels
/// on copies.
pub(crate) struct TestBackend;

impl Backend for TestBackend {
    fn cast(&self, t: &Tensor, dtype: DType) -> Tensor {
        back(CpuBackend.cast(&cpu(t), dtype), ord(t))
    }

    fn deep_copy(&self, t: &Tensor) -> Tensor {
        back(CpuBackend.deep_copy(&cpu(t)), ord(t))
    }

    fn full(&self, shape: &[usize], value: f64, dtype: DType, device: Device) -> Tensor {
        let Device::Test(i) = device else {
            panic!("full: {device} is not a test device");
        };
        back(CpuBackend.full(shape, value, dtype, Device::Cpu), i)
    }

    fn fill(&self, t: &Tensor, value: f64) {
        let c = cpu(t);
        CpuBackend.fill(&c, value);
        write_back(t, &c);
    }

    fn binary_inplace(&self, op: &str, fns: InplaceFns, t: &Tensor, other: &Tensor, ls: &Layout) {
        let c = cpu(t);
        CpuBackend.binary_inplace(op, fns, &c, &cpu(other), ls);
        write_back(t, &c);
    }

    fn cat(&self, ts: &[Tensor], d: usize, out_shape: &[usize]) -> Tensor {
        let cs: Vec<Tensor> = ts.iter().map(cpu).collect();
        back(CpuBackend.cat(&cs, d, out_shape), ord(&ts[0]))
    }

    fn sum(&self, x: &Tensor, mask: &[bool], shape: &[usize]) -> Tensor {
        back(CpuBackend.sum(&cpu(x), mask, shape), ord(x))
    }

    fn sort(&self, x: &Tensor, d: usize, descending: bool) -> (Tensor, Tensor) {
        let (v, i) = CpuBackend.sort(&cpu(x), d, descending);
        (back(v, ord(x)), back(i, ord(x)))
    }

    fn max_min_dim(&self, x: &Tensor, d: usize, keepdim: bool, max: bool) -> (Tensor, Tensor) {
        let (v, i) = CpuBackend.max_min_dim(&cpu(x), d, keepdim, max);
        (back(v, ord(x)), back(i, ord(x)))
    }

    fn matmul(
        &self,
        (a, la): (&Tensor, &Layout),
        (b, lb): (&Tensor, &Layout),
        out_shape: &[usize],
    ) -> Tensor {
        let out = CpuBackend.matmul((&cpu(a), la), (&cpu(b), lb), out_shape);
        back(out, ord(a))
    }

    fn unary(&self, op: UnaryOp, x: &Tensor) -> Tensor {
        back(CpuBackend.unary(op, &cpu(x)), ord(x))
    }

    fn scaled_grad(&self, op: UnaryOp, g: &Tensor, x: &Tensor) -> Tensor {
        back(CpuBackend.scaled_grad(op, &cpu(g), &cpu(x)), ord(g))
    }

    fn binary(
        &self,
        op: &str,
        fns: &BinaryFns,
        (a, la): (&Tensor, &Layout),
        (b, lb): (&Tensor, &Layout),
        shape: &[usize],
    ) -> Tensor {
        let out = CpuBackend.binary(op, fns, (&cpu(a), la), (&cpu(b), lb), shape);
        back(out, ord(a))
    }

    fn compare(
        &self,
        op: &str,
        f: fn(f64, f64) -> bool,
        (a, la): (&Tensor, &Layout),
        (b, lb): (&Tensor, &Layout),
        shape: &[usize],
    ) -> Tensor {
        let out = CpuBackend.compare(op, f, (&cpu(a), la), (&cpu(b), lb), shape);
        back(out, ord(a))
    }

    fn softmax(&self, x: &Tensor, dim: usize, log: bool) -> Tensor {
        back(CpuBackend.softmax(&cpu(x), dim, log), ord(x))
    }

    fn softmax_backward(&self, y: &Tensor, g: &Tensor, dim: usize, log: bool) -> Tensor {
        back(
            CpuBackend.softmax_backward(&cpu(y), &cpu(g), dim, log),
            ord(y),
        )
    }

    fn conv2d(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Tensor {
        let b = cpu_opt(bias);
        back(CpuBackend.conv2d(&cpu(x), &cpu(w), b.as_ref(), p), ord(x))
    }

    fn conv2d_backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        g: &Tensor,
        p: &Conv2dParams,
        need: [bool; 3],
    ) -> Grads3 {
        let (dx, dw, db) = CpuBackend.conv2d_backward(&cpu(x), &cpu(w), &cpu(g), p, need);
        let o = ord(x);
        (back_opt(dx, o), back_opt(dw, o), back_opt(db, o))
    }

    fn max_pool2d(&self, x: &Tensor, p: &Pool2dParams) -> (Tensor, PoolIndices) {
        let (y, idx) = CpuBackend.max_pool2d(&cpu(x), p);
        (back(y, ord(x)), idx)
    }

    fn max_pool2d_backward(
        &self,
        g: &Tensor,
        indices: &PoolIndices,
        in_shape: &[usize],
        p: &Pool2dParams,
    ) -> Tensor {
        back(
            CpuBackend.max_pool2d_backward(&cpu(g), indices, in_shape, p),
            ord(g),
        )
    }

    fn avg_pool2d(&self, x: &Tensor, p: &Pool2dParams, count_include_pad: bool) -> Tensor {
        back(CpuBackend.avg_pool2d(&cpu(x), p, count_include_pad), ord(x))
    }

    fn avg_pool2d_backward(
        &self,
        g: &Tensor,
        in_shape: &[usize],
        p: &Pool2dParams,
        count_include_pad: bool,
    ) -> Tensor {
        let gx = CpuBackend.avg_pool2d_backward(&cpu(g), in_shape, p, count_include_pad);
        back(gx, ord(g))
    }

    fn adaptive_avg_pool2d(&self, x: &Tensor, out_hw: [usize; 2]) -> Tensor {
        back(CpuBackend.adaptive_avg_pool2d(&cpu(x), out_hw), ord(x))
    }

    fn adaptive_avg_pool2d_backward(&self, g: &Tensor, in_shape: &[usize]) -> Tensor {
        back(
            CpuBackend.adaptive_avg_pool2d_backward(&cpu(g), in_shape),
            ord(g),
        )
    }

    fn batch_norm(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        running_mean: Option<&Tensor>,
        running_var: Option<&Tensor>,
        training: bool,
        momentum: f64,
        eps: f64,
    ) -> (Tensor, Tensor, Tensor) {
        let (w, b) = (cpu_opt(weight), cpu_opt(bias));
        let (rm, rv) = (cpu_opt(running_mean), cpu_opt(running_var));
        let (y, mean, invstd) = CpuBackend.batch_norm(
            &cpu(x),
            w.as_ref(),
            b.as_ref(),
            rm.as_ref(),
            rv.as_ref(),
            training,
            momentum,
            eps,
        );
        for (orig, copy) in [(running_mean, &rm), (running_var, &rv)] {
            if let (Some(o), Some(c)) = (orig, copy) {
                write_back(o, c);
            }
        }
        let o = ord(x);
        (back(y, o), back(mean, o), back(invstd, o))
    }

    fn batch_norm_backward(
        &self,
        x: &Tensor,
        g: &Tensor,
        weight: Option<&Tensor>,
        mean: &Tensor,
        invstd: &Tensor,
        training: bool,
        need: [bool; 3],
    ) -> Grads3 {
        let w = cpu_opt(weight);
        let (dx, dw, db) = CpuBackend.batch_norm_backward(
            &cpu(x),
            &cpu(g),
            w.as_ref(),
            &cpu(mean),
            &cpu(invstd),
            training,
            need,
        );
        let o = ord(x);
        (back_opt(dx, o), back_opt(dw, o), back_opt(db, o))
    }

    fn layer_norm(
        &self,
        x: &Tensor,
        d: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Option<(Tensor, Tensor)> {
        let (w, b) = (cpu_opt(weight), cpu_opt(bias));
        let (y, stats) = CpuBackend.layer_norm(&cpu(x), d, w.as_ref(), b.as_ref(), eps)?;
        Some((back(y, ord(x)), back(stats, ord(x))))
    }

    fn layer_norm_backward(
        &self,
        x: &Tensor,
        g: &Tensor,
        weight: Option<&Tensor>,
        stats: &Tensor,
        wshape: &[usize],
        need: [bool; 3],
    ) -> Grads3 {
        let w = cpu_opt(weight);
        let (dx, dw, db) =
            CpuBackend.layer_norm_backward(&cpu(x), &cpu(g), w.as_ref(), &cpu(stats), wshape, need);
        let o = ord(x);
        (back_opt(dx, o), back_opt(dw, o), back_opt(db, o))
    }

    fn index_select(&self, x: &Tensor, d: usize, index: &Tensor) -> Tensor {
        back(CpuBackend.index_select(&cpu(x), d, &cpu(index)), ord(x))
    }

    fn index_add(&self, x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Tensor {
        let out = CpuBackend.index_add(&cpu(x), d, &cpu(index), &cpu(source));
        back(out, ord(x))
    }

    fn gather(&self, x: &Tensor, d: usize, index: &Tensor) -> Tensor {
        back(CpuBackend.gather(&cpu(x), d, &cpu(index)), ord(x))
    }

    fn scatter_add(&self, x: &Tensor, d: usize, index: &Tensor, src: &Tensor) -> Tensor {
        back(
            CpuBackend.scatter_add(&cpu(x), d, &cpu(index), &cpu(src)),
            ord(x),
        )
    }

    fn where_(
        &self,
        cond: &Tensor,
        lc: &Layout,
        a: &Tensor,
        la: &Layout,
        b: &Tensor,
        lb: &Layout,
        shape: &[usize],
    ) -> Tensor {
        let out = CpuBackend.where_(&cpu(cond), lc, &cpu(a), la, &cpu(b), lb, shape);
        back(out, ord(a))
    }

    fn masked_fill(&self, x: &Tensor, mask: &Tensor, lm: &Layout, value: f64) -> Tensor {
        back(
            CpuBackend.masked_fill(&cpu(x), &cpu(mask), lm, value),
            ord(x),
        )
    }

    fn masked_select(&self, x: &Tensor, mask: &Tensor, shape: &[usize]) -> Tensor {
        back(CpuBackend.masked_select(&cpu(x), &cpu(mask), shape), ord(x))
    }

    fn masked_scatter(&self, g: &Tensor, mask: &Tensor) -> Tensor {
        back(CpuBackend.masked_scatter(&cpu(g), &cpu(mask)), ord(g))
    }

    fn one_hot(&self, x: &Tensor, n: usize) -> Tensor {
        back(CpuBackend.one_hot(&cpu(x), n), ord(x))
    }

    fn embedding(&self, weight: &Tensor, idx: &Tensor) -> Tensor {
        back(CpuBackend.embedding(&cpu(weight), &cpu(idx)), ord(weight))
    }

    fn embedding_backward(&self, g: &Tensor, idx: &Tensor, v: usize) -> Tensor {
        back(CpuBackend.embedding_backward(&cpu(g), &cpu(idx), v), ord(g))
    }

    fn fused_optimizers(&self) -> bool {
        false
    }

    fn optim_step(&self, step: &OptimStep, p: &Tensor, _g: &Tensor, _state: &[&Tensor]) {
        // `optim::update_param` runs the host loop on CPU copies instead.
        panic!(
            "{step:?}: the test device has no fused optimizer kernel (parameter {:?})",
            p.shape()
        )
    }

    fn cross_entropy(
        &self,
        x: &Tensor,
        t: &Tensor,
        w: Option<&Tensor>,
        ignore: i64,
        eps: f64,
    ) -> (Tensor, Tensor) {
        let wc = cpu_opt(w);
        let (l, ws) = CpuBackend.cross_entropy(&cpu(x), &cpu(t), wc.as_ref(), ignore, eps);
        (back(l, ord(x)), back(ws, ord(x)))
    }

    fn cross_entropy_backward(
        &self,
        x: &Tensor,
        t: &Tensor,
        w: Option<&Tensor>,
        ignore: i64,
        eps: f64,
        gl: &Tensor,
    ) -> Tensor {
        let wc = cpu_opt(w);
        let gx =
            CpuBackend.cross_entropy_backward(&cpu(x), &cpu(t), wc.as_ref(), ignore, eps, &cpu(gl));
        back(gx, ord(x))
    }

    fn nll_loss(
        &self,
        x: &Tensor,
        t: &Tensor,
        w: Option<&Tensor>,
        ignore: i64,
    ) -> (Tensor, Tensor) {
        let wc = cpu_opt(w);
        let (l, ws) = CpuBackend.nll_loss(&cpu(x), &cpu(t), wc.as_ref(), ignore);
        (back(l, ord(x)), back(ws, ord(x)))
    }

    fn nll_loss_backward(
        &self,
        x: &Tensor,
        t: &Tensor,
        w: Option<&Tensor>,
        ignore: i64,
        gl: &Tensor,
    ) -> Tensor {
        let wc = cpu_opt(w);
        back(
            CpuBackend.nll_loss_backward(&cpu(x), &cpu(t), wc.as_ref(), ignore, &cpu(gl)),
            ord(x),
        )
    }

    fn point_loss(&self, kind: PointLoss, x: &Tensor, t: &Tensor) -> Tensor {
        back(CpuBackend.point_loss(kind, &cpu(x), &cpu(t)), ord(x))
    }

    fn point_loss_backward(&self, kind: PointLoss, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let (dx, dt) = CpuBackend.point_loss_backward(kind, &cpu(x), &cpu(t));
        (back(dx, ord(x)), back(dt, ord(x)))
    }
}
