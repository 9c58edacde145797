//! CUDA backend (feature `cuda`): device storage, NVRTC-compiled kernels,
//! cuBLAS matrix products and a caching allocator.
//!
//! The functions here take and return plain tensors (no autograd: the ops
//! in `crate::ops` record the graph and call these for CUDA tensors). Their
//! outputs are new contiguous tensors on the inputs' device. Misuse panics
//! naming the op, like the CPU ops; a device that cannot be used panics
//! with `"CUDA device cuda:N is not available: <reason>"`. Fallible device
//! queries ([`device_count`], [`memory_stats`], [`synchronize`]) return
//! [`CudaError`].
//!
//! Kernels run on one stream per device; reading a tensor back to the host
//! (`to_vec`, `item`, `.to(&Device::Cpu)`) waits for it, and is where an
//! index out of range found by a kernel is reported (see `validate`): ops
//! never wait for the GPU themselves.

mod alloc;
mod backend;
mod device;
mod index;
mod launch;
mod ops;
mod storage;
mod validate;

pub use crate::backend::{Conv2dParams, Pool2dParams};
pub use alloc::MemoryStats;
pub(crate) use backend::CudaBackend;
pub use device::{CudaDevice, device_count};
pub use kiln_kernels::cuda as sources;
pub use launch::{KernelSignature, MAX_DIMS, PtxParam, kernel_signatures};
pub use ops::*;
pub use storage::CudaStorage;
pub(crate) use validate::ErrFlag;

use crate::backend::{Operand, UnaryOp};
use crate::dtype::dispatch;
use crate::layout::Layout;
use crate::storage::{CpuStorage, Storage};
use crate::{DType, Device, Tensor};
use launch::Grid;
use launch::binary::{BinaryArgs, InplaceArgs};
use launch::copy::{AssignArgs, CopyArgs, FillArgs, WhereArgs};
use launch::reduce::{ArgReduceArgs, SumArgs};
use launch::unary::{PredicateArgs, UnaryArgs};
use launch::{Name, Strided};
use std::sync::Arc;

/// Why a CUDA operation could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaError(String);

impl CudaError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        CudaError(msg.into())
    }

    pub(crate) fn driver(e: cudarc::driver::DriverError) -> Self {
        CudaError(format!("CUDA driver error: {e:?}"))
    }

    /// The same error phrased as "CUDA device cuda:N is not available".
    pub(crate) fn on_device(self, ordinal: usize) -> Self {
        if self.0.starts_with("CUDA device cuda:") {
            return self;
        }
        CudaError(format!(
            "CUDA device cuda:{ordinal} is not available: {}",
            self.0
        ))
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CudaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CudaError {}

/// True when a CUDA driver with at least one device can be used. Never
/// panics (a missing driver library is detected before cudarc loads it).
pub fn is_available() -> bool {
    device_count().is_ok()
}

/// The device `cuda:ordinal`, or why it cannot be used.
pub fn try_device(ordinal: usize) -> Result<Arc<CudaDevice>, CudaError> {
    CudaDevice::get(ordinal)
}

/// The device `cuda:ordinal`; panics with "CUDA device cuda:N is not
/// available: &lt;reason&gt;" when it cannot be used.
pub fn device(ordinal: usize) -> Arc<CudaDevice> {
    CudaDevice::get(ordinal).unwrap_or_else(|e| panic!("{}", e.on_device(ordinal)))
}

/// The allocator counters of `cuda:ordinal`.
pub fn memory_stats(ordinal: usize) -> Result<MemoryStats, CudaError> {
    Ok(CudaDevice::get(ordinal)?.alloc.stats())
}

/// Waits for the device's queued work, then returns its cached free
/// blocks to the driver, like `torch.cuda.empty_cache()`.
pub fn empty_cache(ordinal: usize) -> Result<(), CudaError> {
    let dev = CudaDevice::get(ordinal)?;
    dev.synchronize()?;
    dev.alloc.empty_cache();
    Ok(())
}

/// Waits until all queued work on `cuda:ordinal` has finished, like
/// `torch.cuda.synchronize()`.
pub fn synchronize(ordinal: usize) -> Result<(), CudaError> {
    CudaDevice::get(ordinal)?.synchronize()
}

// ----- helpers ----------------------------------------------------------------

/// Unwraps a device result inside op `op`, panicking with the reason.
pub(crate) fn check<T>(op: &str, r: Result<T, CudaError>) -> T {
    r.unwrap_or_else(|e| panic!("{op}: {e}"))
}

/// The kernel suffix of a dtype.
pub(crate) fn sfx(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::I64 => "i64",
        DType::I32 => "i32",
        DType::I16 => "i16",
        DType::U8 => "u8",
        DType::Bool => "bool",
    }
}

/// The CUDA storage behind a guard, panicking naming `op` for CPU data.
pub(crate) fn cuda<'a>(op: &str, s: &'a Storage) -> &'a CudaStorage {
    match s {
        Storage::Cuda(c) => c,
        _ => panic!(
            "{op}: expected all tensors to be on the same CUDA device, but found a tensor on \
             another device"
        ),
    }
}

/// The device a CUDA tensor lives on.
pub(crate) fn device_of(op: &str, t: &Tensor) -> Arc<CudaDevice> {
    let dev = cuda(op, &t.read_storage()).device().clone();
    check(op, dev.bind());
    dev
}

/// Panics naming `op` unless every tensor is on `dev`'s device.
pub(crate) fn same_device(op: &str, dev: &CudaDevice, ts: &[&Tensor]) {
    for t in ts {
        if t.device() != Device::Cuda(dev.ordinal()) {
            panic!(
                "{op}: expected all tensors to be on the same device, but found at least two devices, cuda:{} and {}",
                dev.ordinal(),
                t.device()
            );
        }
    }
}

/// New uninitialised contiguous storage on `dev`.
pub(crate) fn alloc(op: &str, dev: &Arc<CudaDevice>, dtype: DType, n: usize) -> CudaStorage {
    check(op, CudaStorage::alloc(dev, dtype, n))
}

/// Wraps contiguous device storage as a tensor of `shape`.
pub(crate) fn wrap(s: CudaStorage, shape: &[usize]) -> Tensor {
    Tensor::from_storage(Storage::Cuda(s), Layout::contiguous(shape))
}

/// Device pointer of a tensor's element 0 of storage plus its strided view.
pub(crate) fn view(op: &str, s: &Storage, l: &Layout) -> (u64, Strided) {
    (cuda(op, s).ptr(), Strided::new(op, l))
}

/// A contiguous copy of `t` seen through `l` (a view of `t`'s storage).
pub(crate) fn copy_view(op: &str, t: &Tensor, l: &Layout) -> Tensor {
    let dev = device_of(op, t);
    let n = l.numel();
    let out = alloc(op, &dev, t.dtype(), n);
    {
        let g = t.read_storage();
        let (x, lx) = view(op, &g, l);
        let args = CopyArgs {
            n: n as i64,
            x,
            lx,
            out: out.ptr(),
        };
        args.launch(op, &dev, ("copy", t.dtype()), Grid::Each(n));
    }
    wrap(out, l.shape())
}

/// `t` itself when contiguous at offset 0, else a contiguous copy.
pub(crate) fn contiguous(t: &Tensor) -> Tensor {
    if t.is_contiguous() && t.layout().offset() == 0 {
        return t.shallow_clone();
    }
    copy_view("contiguous", t, t.layout())
}

/// Fills contiguous storage with zeros.
pub(crate) fn zero(op: &str, dev: &CudaDevice, s: &CudaStorage) {
    let bytes = s.len() * s.dtype().size_in_bytes();
    if bytes > 0 {
        // SAFETY: the range lies inside the block; ordered on the stream.
        check(
            op,
            unsafe {
                cudarc::driver::result::memset_d8_async(s.ptr(), 0, bytes, dev.stream().cu_stream())
            }
            .map_err(CudaError::driver),
        );
    }
}

// ----- core hooks called by crate::ops -----------------------------------------

/// Converts to `dtype` (contiguous output).
pub fn cast(t: &Tensor, dtype: DType) -> Tensor {
    if dtype == t.dtype() {
        return deep_copy(t);
    }
    let dev = device_of("to_dtype", t);
    let n = t.numel();
    let out = alloc("to_dtype", &dev, dtype, n);
    {
        let g = t.read_storage();
        let (x, lx) = view("to_dtype", &g, t.layout());
        let args = CopyArgs {
            n: n as i64,
            x,
            lx,
            out: out.ptr(),
        };
        let stem = format!("cast_{}", sfx(t.dtype()));
        let name = match (t.dtype(), dtype) {
            (DType::F32, DType::F16) => Name::Exact("cast_f32_f16_direct"),
            (DType::F32, DType::BF16) => Name::Exact("cast_f32_bf16_direct"),
            (_, d) => Name::Typed(&stem, d),
        };
        args.launch("to_dtype", &dev, name, Grid::Each(n));
    }
    wrap(out, t.shape())
}

/// Copies a tensor between host and device or between devices (no
/// autograd). Panics when the target device cannot be used.
pub fn transfer(t: &Tensor, to: Device) -> Tensor {
    match (t.device(), to) {
        (a, b) if a == b => t.shallow_clone(),
        (Device::Cpu, Device::Cuda(i)) => {
            let dev = device(i);
            let host = t.read_storage().cpu("to").gather(t.layout());
            let out = alloc("to", &dev, host.dtype(), host.len());
            upload(&dev, &host, &out);
            wrap(out, t.shape())
        }
        (Device::Cuda(_), Device::Cpu) => Tensor::from_cpu(download(t), t.shape()),
        (Device::Cuda(_), Device::Cuda(j)) => {
            let _ = device(j);
            transfer(&transfer(t, Device::Cpu), Device::Cuda(j))
        }
        (from, to) => unreachable!("to: {from} to {to} is not a CUDA transfer"),
    }
}

fn upload(dev: &CudaDevice, host: &CpuStorage, dst: &CudaStorage) {
    if host.is_empty() {
        return;
    }
    let stream = dev.stream().cu_stream();
    // SAFETY: `dst` holds exactly host.len() elements of the same size;
    // the pageable source is staged before the call returns.
    let r = unsafe {
        dispatch!(storage host, v => cudarc::driver::result::memcpy_htod_async(dst.ptr(), v.as_slice(), stream))
    };
    check("to", r.map_err(CudaError::driver));
}

/// The elements of a CUDA tensor as contiguous host storage (waits).
fn download(t: &Tensor) -> CpuStorage {
    let c = contiguous(t);
    let dev = device_of("to", &c);
    let g = c.read_storage();
    let s = cuda("to", &g);
    let off = c.layout().offset();
    let n = c.numel();
    let mut out = CpuStorage::zeros(
        if c.dtype() == DType::Bool {
            DType::U8
        } else {
            c.dtype()
        },
        n,
    );
    if n > 0 {
        let stream = dev.stream().cu_stream();
        // SAFETY: `out` has room for n elements of the source's size; the
        // stream is synchronised before the data is used.
        let r = unsafe {
            dispatch!(storage &mut out, v => cudarc::driver::result::memcpy_dtoh_async(v.as_mut_slice(), s.ptr_at(off), stream))
        };
        check("to", r.map_err(CudaError::driver));
        check("to", dev.synchronize());
    }
    match out {
        CpuStorage::U8(v) if c.dtype() == DType::Bool => {
            CpuStorage::Bool(v.into_iter().map(|b| b != 0).collect())
        }
        o => o,
    }
}

/// A contiguous copy with its own storage.
pub fn deep_copy(t: &Tensor) -> Tensor {
    copy_view("clone", t, t.layout())
}

/// `value` everywhere: a new contiguous tensor on `cuda:ordinal`.
pub fn full(shape: &[usize], value: f64, dtype: DType, ordinal: usize) -> Tensor {
    let dev = device(ordinal);
    let n: usize = shape.iter().product();
    let mut out = alloc("full", &dev, dtype, n);
    fill(&mut out, &Layout::contiguous(shape), value);
    wrap(out, shape)
}

/// Broadcast binary op (`add sub mul div maximum minimum pow atan2`) of two
/// same-dtype tensors whose layouts already have the output shape.
pub(crate) fn binary(op: &str, a: Operand, b: Operand, out_shape: &[usize]) -> Tensor {
    let dt = a.0.dtype();
    let ok = match dt {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => {
            matches!(
                op,
                "add" | "sub" | "mul" | "div" | "maximum" | "minimum" | "pow" | "atan2"
            )
        }
        DType::I64 | DType::I32 | DType::I16 | DType::U8 => {
            matches!(op, "add" | "sub" | "mul" | "maximum" | "minimum")
        }
        DType::Bool => false,
    };
    if !ok {
        panic!("{op}: not supported for {dt} tensors");
    }
    launch_binary(op, &format!("binary_{op}"), a, b, dt, out_shape)
}

/// Comparison (`eq ne lt le gt ge`) or logical op (`logical_and`,
/// `logical_or`, `logical_xor`) of broadcast same-dtype operands; bool output.
pub(crate) fn compare(op: &str, a: Operand, b: Operand, out_shape: &[usize]) -> Tensor {
    let kernel = match op {
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => format!("cmp_{op}"),
        "logical_and" | "logical_or" | "logical_xor" => op.to_string(),
        _ => panic!("{op}: not a comparison"),
    };
    launch_binary(op, &kernel, a, b, DType::Bool, out_shape)
}

/// Runs the binary-family kernel stem `kernel` for the operands' dtype
/// on two broadcast operands into a new `dtype` tensor of `out_shape`.
fn launch_binary(
    op: &str,
    kernel: &str,
    (a, la): Operand,
    (b, lb): Operand,
    dtype: DType,
    out_shape: &[usize],
) -> Tensor {
    let dev = device_of(op, a);
    same_device(op, &dev, &[b]);
    let n: usize = out_shape.iter().product();
    let out = alloc(op, &dev, dtype, n);
    {
        let (ga, gb) = (a.read_storage(), b.read_storage());
        let ((pa, la), (pb, lb)) = (view(op, &ga, la), view(op, &gb, lb));
        let args = BinaryArgs {
            n: n as i64,
            a: pa,
            la,
            b: pb,
            lb,
            out: out.ptr(),
        };
        args.launch(op, &dev, (kernel, a.dtype()), Grid::Each(n));
    }
    wrap(out, out_shape)
}

/// `cond ? a : b` elementwise; all three layouts already have the output
/// shape, `cond` is bool, `a`/`b` share a dtype.
pub(crate) fn where_(
    (cond, lc): Operand,
    (a, la): Operand,
    (b, lb): Operand,
    out_shape: &[usize],
) -> Tensor {
    let op = "where";
    let dev = device_of(op, a);
    same_device(op, &dev, &[cond, b]);
    assert_eq!(
        cond.dtype(),
        DType::Bool,
        "where: condition must be a bool tensor, got {}",
        cond.dtype()
    );
    let n: usize = out_shape.iter().product();
    let out = alloc(op, &dev, a.dtype(), n);
    {
        let (gc, ga, gb) = (cond.read_storage(), a.read_storage(), b.read_storage());
        let ((pc, lc), (pa, la), (pb, lb)) =
            (view(op, &gc, lc), view(op, &ga, la), view(op, &gb, lb));
        let args = WhereArgs {
            n: n as i64,
            cond: pc,
            lc,
            a: pa,
            la,
            b: pb,
            lb,
            out: out.ptr(),
        };
        args.launch(op, &dev, ("where", a.dtype()), Grid::Each(n));
    }
    wrap(out, out_shape)
}

/// Elementwise unary op into a new contiguous tensor of the same dtype.
pub fn unary(op: UnaryOp, t: &Tensor) -> Tensor {
    let name = op.name();
    let dt = t.dtype();
    let ok = match dt {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => !matches!(op, UnaryOp::Other(_)),
        DType::I64 | DType::I32 | DType::I16 | DType::U8 => op.has_int_kernel(),
        DType::Bool => false,
    };
    if !ok {
        match (op, dt) {
            (UnaryOp::Other(_), d) if d.is_float() => {
                panic!("{name}: no CUDA kernel for this op yet; move the tensor to the CPU")
            }
            (_, DType::I64) => {
                panic!("{name}: not supported for int64 tensors; convert with to_dtype(DType::F32)")
            }
            _ => panic!("{name}: not supported for {dt} tensors"),
        }
    }
    let dev = device_of(name, t);
    let n = t.numel();
    let out = alloc(name, &dev, dt, n);
    {
        let g = t.read_storage();
        let (x, lx) = view(name, &g, t.layout());
        let (p, q) = op.params();
        let args = UnaryArgs {
            n: n as i64,
            x,
            lx,
            out: out.ptr(),
            p,
            q,
        };
        args.launch(name, &dev, (&*format!("unary_{name}"), dt), Grid::Each(n));
    }
    wrap(out, t.shape())
}

/// Logical not (bool output), or `isnan` / `isfinite` of a float tensor.
pub fn predicate(op: &str, t: &Tensor) -> Tensor {
    let dev = device_of(op, t);
    if !(op == "logical_not" || matches!(op, "isnan" | "isfinite") && t.dtype().is_float()) {
        panic!("{op}: not supported for {} tensors", t.dtype());
    }
    let n = t.numel();
    let out = alloc(op, &dev, DType::Bool, n);
    {
        let g = t.read_storage();
        let (x, lx) = view(op, &g, t.layout());
        let args = PredicateArgs {
            n: n as i64,
            x,
            lx,
            out: out.ptr(),
        };
        args.launch(op, &dev, (op, t.dtype()), Grid::Each(n));
    }
    wrap(out, t.shape())
}

/// Permutes `t`'s layout to [kept..., reduced...]; returns it with the
/// number of outputs and the reduction length.
fn reduce_view(t: &Tensor, mask: &[bool]) -> (Layout, usize, usize) {
    let l = t.layout();
    let mut perm: Vec<usize> = (0..l.rank()).filter(|&d| !mask[d]).collect();
    perm.extend((0..l.rank()).filter(|&d| mask[d]));
    let n_out: usize = (0..l.rank())
        .filter(|&d| !mask[d])
        .map(|d| l.shape()[d])
        .product();
    let n_red: usize = (0..l.rank())
        .filter(|&d| mask[d])
        .map(|d| l.shape()[d])
        .product();
    (l.permute(&perm), n_out, n_red)
}

/// The grid and kernel stem of a reduction `{kernel}_block` (a block per
/// output, for long reductions) or `{kernel}_thread`.
fn reduce_grid(kernel: &str, n_out: usize, n_red: usize) -> (String, Grid) {
    if n_red > 32 {
        let grid = Grid::Rows {
            rows: n_out,
            len: n_red,
        };
        (format!("{kernel}_block"), grid)
    } else {
        (format!("{kernel}_thread"), Grid::Each(n_out))
    }
}

/// Sum over the dimensions where `mask` is true into a contiguous tensor
/// of `out_shape` (the reduced shape, with or without kept size-1 dims).
/// Float tensors keep their dtype (accumulating in f64); integer and bool
/// tensors sum to int64, like PyTorch.
pub fn sum(t: &Tensor, mask: &[bool], out_shape: &[usize]) -> Tensor {
    sum_scaled(t, mask, out_shape, 1.0)
}

/// `sum(...) * scale` in one pass (`mean` with scale = 1/count).
pub fn sum_scaled(t: &Tensor, mask: &[bool], out_shape: &[usize], scale: f64) -> Tensor {
    let dev = device_of("sum", t);
    let out_dt = if t.dtype().is_float() {
        t.dtype()
    } else {
        DType::I64
    };
    let (l, n_out, n_red) = reduce_view(t, mask);
    let out = alloc("sum", &dev, out_dt, n_out);
    {
        let g = t.read_storage();
        let (x, lx) = view("sum", &g, &l);
        let args = SumArgs {
            n_out: n_out as i64,
            n_red: n_red as i64,
            x,
            lx,
            out: out.ptr(),
            scale,
        };
        let (stem, grid) = reduce_grid("sum", n_out, n_red);
        args.launch("sum", &dev, (&*stem, t.dtype()), grid);
    }
    wrap(out, out_shape)
}

/// Max or min (`op` = "max" / "min") over dimension `dim`: values and
/// int64 indices (first extreme; NaN propagates), with `dim` kept as size
/// 1 when `keepdim`.
pub fn max_min_dim(op: &str, t: &Tensor, dim: usize, keepdim: bool) -> (Tensor, Tensor) {
    assert!(
        matches!(op, "max" | "min"),
        "max_min_dim: op must be max or min"
    );
    if t.dtype() == DType::Bool {
        panic!("{op}: not supported for bool tensors");
    }
    let dev = device_of(op, t);
    let mut mask = vec![false; t.dim()];
    if t.dim() > 0 {
        mask[dim] = true;
    }
    let (l, n_out, n_red) = reduce_view(t, &mask);
    if n_red == 0 {
        panic!(
            "{op}: cannot reduce over a zero-size dimension (shape {:?})",
            t.shape()
        );
    }
    let vals = alloc(op, &dev, t.dtype(), n_out);
    let idx = alloc(op, &dev, DType::I64, n_out);
    {
        let g = t.read_storage();
        let (x, lx) = view(op, &g, &l);
        let args = ArgReduceArgs {
            n_out: n_out as i64,
            n_red: n_red as i64,
            x,
            lx,
            out: vals.ptr(),
            idx: idx.ptr(),
        };
        let (stem, grid) = reduce_grid(op, n_out, n_red);
        args.launch(op, &dev, (&*stem, t.dtype()), grid);
    }
    let mut shape = t.shape().to_vec();
    if t.dim() > 0 {
        if keepdim {
            shape[dim] = 1;
        } else {
            shape.remove(dim);
        }
    }
    (wrap(vals, &shape), wrap(idx, &shape))
}

/// In-place `t op= other` through `t`'s view (`op` = "add_", "sub_",
/// "mul_", "div_", "copy_"); `other` has `t`'s dtype and `lo` is its
/// layout broadcast to `t`'s shape.
pub fn binary_inplace(op: &str, t: &Tensor, other: &Tensor, lo: &Layout) {
    let dev = device_of(op, t);
    same_device(op, &dev, &[other]);
    if other.shares_storage_with(t) {
        // Aliased source: read it into its own buffer first.
        let tmp = copy_view(op, other, lo);
        let l = tmp.layout().clone();
        return binary_inplace(op, t, &tmp, &l);
    }
    let dt = t.dtype();
    let n = t.numel();
    let gs = other.read_storage();
    let gd = t.write_storage();
    let (dst, ld) = view(op, &gd, t.layout());
    let (src, ls) = view(op, &gs, lo);
    match op {
        "copy_" => {
            let args = AssignArgs {
                n: n as i64,
                dst,
                ld,
                src,
                ls,
            };
            args.launch(op, &dev, ("assign", dt), Grid::Each(n))
        }
        "add_" | "sub_" | "mul_" | "div_" => {
            let args = InplaceArgs {
                n: n as i64,
                dst,
                ld,
                src,
                ls,
            };
            let stem = format!("inplace_{}", &op[..op.len() - 1]);
            args.launch(op, &dev, (&*stem, dt), Grid::Each(n))
        }
        _ => panic!("{op}: not an in-place op"),
    }
}

/// Sets every element of the view `l` of `s` to `value`.
pub fn fill(s: &mut CudaStorage, l: &Layout, value: f64) {
    let dev = s.device().clone();
    check("fill_", dev.bind());
    let n = l.numel();
    let args = FillArgs {
        n: n as i64,
        dst: s.ptr(),
        ld: Strided::new("fill_", l),
        value,
    };
    args.launch("fill_", &dev, ("fill", s.dtype()), Grid::Each(n));
}

/// Copies `src` (same dtype and device, shape of the view) into the view
/// `dst_layout` of `dst`'s storage: the strided assignment behind `cat`,
/// `stack` and slice writes.
pub fn assign(dst: &Tensor, dst_layout: &Layout, src: &Tensor) {
    let op = "assign";
    let dev = device_of(op, dst);
    same_device(op, &dev, &[src]);
    assert_eq!(dst_layout.shape(), src.shape(), "assign: shape mismatch");
    let src = if src.shares_storage_with(dst) {
        deep_copy(src)
    } else {
        src.shallow_clone()
    };
    let n = src.numel();
    let gs = src.read_storage();
    let gd = dst.write_storage();
    let (pd, ld) = view(op, &gd, dst_layout);
    let (ps, ls) = view(op, &gs, src.layout());
    let args = AssignArgs {
        n: n as i64,
        dst: pd,
        ld,
        src: ps,
        ls,
    };
    args.launch(op, &dev, ("assign", dst.dtype()), Grid::Each(n));
}

/// Concatenates same-dtype tensors on one device along `dim`.
pub fn cat(ts: &[&Tensor], dim: usize) -> Tensor {
    let first = ts
        .first()
        .expect("cat: expected a non-empty list of tensors");
    let dev = device_of("cat", first);
    same_device("cat", &dev, ts);
    let mut shape = first.shape().to_vec();
    shape[dim] = ts.iter().map(|t| t.shape()[dim]).sum();
    let out = wrap(
        alloc("cat", &dev, first.dtype(), shape.iter().product()),
        &shape,
    );
    let mut start = 0;
    for t in ts {
        let len = t.shape()[dim];
        let l = out.layout().narrow(dim, start, len);
        assign(&out, &l, t);
        start += len;
    }
    out
}

// ----- matrix products ---------------------------------------------------------

/// A row-major operand of a batched product: the matrix at `ptr` (+ i *
/// `stride` for batch i) with leading dimension `ld`, used as stored or
/// transposed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat {
    pub ptr: u64,
    pub ld: usize,
    pub trans: bool,
    pub stride: usize,
}

/// `C[i] = beta * C[i] + A[i] @ B[i]` for i in 0..batch, all row-major
/// (`m x k` times `k x n`), through cuBLAS's strided batched GemmEx
/// (f16/bf16 with f32 accumulation on tensor cores).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    op: &str,
    dev: &CudaDevice,
    dtype: DType,
    (m, n, k): (usize, usize, usize),
    a: Mat,
    b: Mat,
    c: Mat,
    batch: usize,
    beta: f64,
) {
    use cudarc::cublas::{result as cr, sys as cs};
    if m == 0 || n == 0 || batch == 0 {
        return;
    }
    let guard = check(op, dev.blas());
    let h = *guard.as_ref().expect("cuBLAS handle created").handle();
    let t = |x: bool| {
        if x {
            cs::cublasOperation_t::CUBLAS_OP_T
        } else {
            cs::cublasOperation_t::CUBLAS_OP_N
        }
    };
    let i = |v: usize| -> i32 {
        i32::try_from(v)
            .unwrap_or_else(|_| panic!("{op}: matrix dimension {v} exceeds cuBLAS's 32-bit limit"))
    };
    // Row-major C = A B is column-major C^T = B^T A^T.
    let (ta, tb) = (t(b.trans), t(a.trans));
    let (mm, nn, kk) = (i(n), i(m), i(k));
    let (lda, ldb, ldc) = (i(b.ld.max(1)), i(a.ld.max(1)), i(c.ld.max(1)));
    let (sa, sb, sc) = (b.stride as i64, a.stride as i64, c.stride as i64);
    let bc = i(batch);
    use cs::cublasComputeType_t::{CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_64F};
    use cs::cudaDataType::{CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F, CUDA_R_64F};
    // Storage type and compute type; f16/bf16 accumulate in f32 (tensor
    // cores). GemmEx with (32F, COMPUTE_32F) is sgemm, (64F, COMPUTE_64F)
    // dgemm.
    let (ty, compute) = match dtype {
        DType::F32 => (CUDA_R_32F, CUBLAS_COMPUTE_32F),
        DType::F64 => (CUDA_R_64F, CUBLAS_COMPUTE_64F),
        DType::F16 => (CUDA_R_16F, CUBLAS_COMPUTE_32F),
        DType::BF16 => (CUDA_R_16BF, CUBLAS_COMPUTE_32F),
        d => panic!(
            "{op}: not supported for {d} tensors on CUDA (\"addmm_cuda\" has no integer kernel)"
        ),
    };
    // alpha and beta in the compute type.
    let (al64, be64, al32, be32) = (1f64, beta, 1f32, beta as f32);
    let (al, be): (*const std::ffi::c_void, *const std::ffi::c_void) = if dtype == DType::F64 {
        (&al64 as *const f64 as _, &be64 as *const f64 as _)
    } else {
        (&al32 as *const f32 as _, &be32 as *const f32 as _)
    };
    // SAFETY: pointers are live device blocks sized for the described
    // matrices of `ty`; alpha/beta point to host scalars of the compute
    // type; the handle is bound to the device's stream.
    let r = unsafe {
        cr::gemm_strided_batched_ex(
            h,
            ta,
            tb,
            mm,
            nn,
            kk,
            al,
            b.ptr as *const _,
            ty,
            lda,
            sa,
            a.ptr as *const _,
            ty,
            ldb,
            sb,
            be,
            c.ptr as *mut _,
            ty,
            ldc,
            sc,
            bc,
            compute,
            cs::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    };
    check(
        op,
        r.map_err(|e| CudaError::new(format!("cuBLAS gemm failed: {e:?}"))),
    );
}

/// How a `rows x cols` matrix with strides (rs, cs) can be passed to cuBLAS
/// (as stored row-major or transposed), if at all.
fn gemm_operand(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<(bool, usize)> {
    if cols == 1 || cs == 1 {
        let ld = if rows == 1 { cols } else { rs };
        if ld >= cols.max(1) {
            return Some((false, ld));
        }
    }
    if rows == 1 || rs == 1 {
        let ld = if cols == 1 { rows } else { cs };
        if ld >= rows.max(1) {
            return Some((true, ld));
        }
    }
    None
}

/// The single stride that steps through the batch dimensions of `l` (all
/// but the last two) in row-major order, if there is one.
fn batch_stride(l: &Layout) -> Option<usize> {
    let r = l.rank();
    let dims: Vec<(usize, usize)> = l.shape()[..r - 2]
        .iter()
        .zip(&l.strides()[..r - 2])
        .filter(|(d, _)| **d != 1)
        .map(|(&d, &s)| (d, s))
        .collect();
    for w in dims.windows(2) {
        if w[0].1 != w[1].1 * w[1].0 {
            return None;
        }
    }
    Some(dims.last().map_or(0, |x| x.1))
}

/// Batched matrix product `a[..., m, k] @ b[..., k, n]` where `la`/`lb` are
/// the operands' layouts broadcast to the common batch shape.
pub(crate) fn matmul((a, la): Operand, (b, lb): Operand, out_shape: &[usize]) -> Tensor {
    let op = "matmul";
    let dev = device_of(op, a);
    same_device(op, &dev, &[b]);
    let dt = a.dtype();
    if !dt.is_float() {
        panic!("{op}: not supported for {dt} tensors on CUDA");
    }
    let r = la.rank();
    let (m, k, n) = (la.shape()[r - 2], la.shape()[r - 1], lb.shape()[r - 1]);
    let batch: usize = out_shape[..out_shape.len() - 2].iter().product();
    let mut out = alloc(op, &dev, dt, batch * m * n);
    if k == 0 {
        fill(&mut out, &Layout::contiguous(out_shape), 0.0);
        return wrap(out, out_shape);
    }
    // Operands cuBLAS cannot read in place are copied contiguous first.
    let prep = |t: &Tensor, l: &Layout, rows: usize, cols: usize| -> (Tensor, Mat) {
        let st = l.strides();
        if let (Some(stride), Some((trans, ld))) = (
            batch_stride(l),
            gemm_operand(rows, cols, st[r - 2], st[r - 1]),
        ) {
            let ptr = cuda(op, &t.read_storage()).ptr_at(l.offset());
            return (
                t.shallow_clone(),
                Mat {
                    ptr,
                    ld,
                    trans,
                    stride,
                },
            );
        }
        let c = copy_view(op, t, l);
        let ptr = cuda(op, &c.read_storage()).ptr();
        (
            c,
            Mat {
                ptr,
                ld: cols,
                trans: false,
                stride: rows * cols,
            },
        )
    };
    let (_ka, ma) = prep(a, la, m, k);
    let (_kb, mb) = prep(b, lb, k, n);
    let mc = Mat {
        ptr: out.ptr(),
        ld: n,
        trans: false,
        stride: m * n,
    };
    {
        let (_ga, _gb) = (a.read_storage(), b.read_storage());
        gemm(op, &dev, dt, (m, n, k), ma, mb, mc, batch, 0.0);
    }
    wrap(out, out_shape)
}
