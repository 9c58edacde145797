//! Neural-network ops on CUDA tensors: softmax, losses, convolution,
//! pooling, batch norm, indexing and optimizer updates, forward and
//! backward. Each takes plain tensors (no autograd) on one device and
//! returns new contiguous tensors; inputs that are not contiguous are
//! copied first. Optimizer updates write their parameter and state
//! tensors in place.

use super::launch::batchnorm::{
    BnAccToArgs, BnApplyArgs, BnBwdApplyArgs, BnBwdReduceArgs, BnRunningStatsArgs, BnStatsArgs,
};
use super::launch::conv::ColArgs;
use super::launch::copy::AddBiasArgs;
use super::launch::index::{AddAtArgs, OneHotArgs, TakeArgs};
use super::launch::loss::{CrossEntropyBwdArgs, CrossEntropyFwdArgs, NllBwdArgs, NllFwdArgs};
use super::launch::optim::{AdamArgs, RmspropArgs, SgdArgs};
use super::launch::pool::{AdaptivePoolArgs, AvgPoolArgs, MaxPoolBwdArgs, MaxPoolFwdArgs};
use super::launch::softmax::{SoftmaxBwdArgs, SoftmaxFwdArgs};
use super::launch::{Conv2dGeom, Grid, PoolGeom};
use super::{Conv2dParams, Pool2dParams};
use super::{
    CudaDevice, ErrFlag, Mat, alloc, contiguous, cuda, device_of, gemm, same_device, sum, wrap,
    zero,
};
use crate::backend::{BatchNormArgs, BatchNormSaved, ClassLoss, Grads3};
use crate::{DType, Tensor};
use std::sync::Arc;

/// Device address of a contiguous tensor's first element.
fn ptr(op: &str, t: &Tensor) -> u64 {
    assert!(t.is_contiguous(), "{op}: expected a contiguous tensor");
    cuda(op, &t.read_storage()).ptr_at(t.layout().offset())
}

/// Address of an optional tensor (0, a null pointer, when absent).
fn opt_ptr(op: &str, t: Option<&Tensor>) -> u64 {
    t.map_or(0, |t| ptr(op, t))
}

fn float_only(op: &str, t: &Tensor) {
    if !t.dtype().is_float() {
        panic!("{op}: expected a floating point tensor, got {}", t.dtype());
    }
}

/// (outer, len, inner) of `shape` around `dim`.
fn split3(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim],
        shape[dim + 1..].iter().product(),
    )
}

// ----- softmax -------------------------------------------------------------------

/// Softmax (or log-softmax when `log`) along `dim`.
pub fn softmax(x: &Tensor, dim: usize, log: bool) -> Tensor {
    let op = if log { "log_softmax" } else { "softmax" };
    float_only(op, x);
    let dev = device_of(op, x);
    let x = contiguous(x);
    let (outer, len, inner) = split3(x.shape(), dim);
    let y = alloc(op, &dev, x.dtype(), x.numel());
    let args = SoftmaxFwdArgs {
        outer: outer as i64,
        len: len as i64,
        inner: inner as i64,
        x: ptr(op, &x),
        y: y.ptr(),
        log: log as i32,
    };
    let rows = outer * inner;
    args.launch(
        op,
        &dev,
        ("softmax_fwd", x.dtype()),
        Grid::Rows { rows, len },
    );
    wrap(y, x.shape())
}

/// Gradient of softmax / log-softmax along `dim` from its output `y` and
/// the output's gradient `gy`.
pub fn softmax_backward(y: &Tensor, gy: &Tensor, dim: usize, log: bool) -> Tensor {
    let op = if log {
        "log_softmax_backward"
    } else {
        "softmax_backward"
    };
    let dev = device_of(op, y);
    same_device(op, &dev, &[gy]);
    let (y, gy) = (contiguous(y), contiguous(gy));
    let (outer, len, inner) = split3(y.shape(), dim);
    let gx = alloc(op, &dev, y.dtype(), y.numel());
    let args = SoftmaxBwdArgs {
        outer: outer as i64,
        len: len as i64,
        inner: inner as i64,
        y: ptr(op, &y),
        gy: ptr(op, &gy),
        gx: gx.ptr(),
        log: log as i32,
    };
    let rows = outer * inner;
    args.launch(
        op,
        &dev,
        ("softmax_bwd", y.dtype()),
        Grid::Rows { rows, len },
    );
    wrap(gx, y.shape())
}

// ----- losses --------------------------------------------------------------------

fn check_targets(
    op: &str,
    logits: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
) -> (usize, usize) {
    float_only(op, logits);
    assert_eq!(
        logits.dim(),
        2,
        "{op}: expected [N, C] scores, got shape {:?}",
        logits.shape()
    );
    assert_eq!(
        target.dtype(),
        DType::I64,
        "{op}: expected int64 class indices, got {}",
        target.dtype()
    );
    let (n, c) = (logits.shape()[0], logits.shape()[1]);
    assert_eq!(
        target.shape(),
        &[n],
        "{op}: expected target of shape [{n}], got {:?}",
        target.shape()
    );
    if let Some(w) = weight {
        assert_eq!(
            w.shape(),
            &[c],
            "{op}: expected weight of shape [{c}], got {:?}",
            w.shape()
        );
    }
    (n, c)
}

/// A class loss's operands, checked and contiguous, on one device.
struct ClassRows {
    n: usize,
    c: usize,
    dev: Arc<CudaDevice>,
    x: Tensor,
    t: Tensor,
    w: Option<Tensor>,
}

impl ClassRows {
    fn new(op: &str, x: &Tensor, l: &ClassLoss) -> ClassRows {
        let (n, c) = check_targets(op, x, &l.target, l.weight.as_ref());
        let dev = device_of(op, x);
        same_device(op, &dev, &[&l.target]);
        ClassRows {
            n,
            c,
            dev,
            x: contiguous(x),
            t: contiguous(&l.target),
            w: l.weight.as_ref().map(contiguous),
        }
    }

    /// The pointers of the scores, targets and (null when absent) class
    /// weights.
    fn ptrs(&self, op: &str) -> (u64, u64, u64) {
        let w = opt_ptr(op, self.w.as_ref());
        (ptr(op, &self.x), ptr(op, &self.t), w)
    }
}

/// Fused cross-entropy of `[N, C]` scores (or NLL of log-probabilities)
/// against int64 class indices: per-sample losses `[N]` and per-sample
/// weights `[N]` (`weight[target]`, 0 for ignored samples), so that the
/// mean is `loss.sum() / w.sum()`.
pub fn class_loss(x: &Tensor, l: &ClassLoss) -> (Tensor, Tensor) {
    let op = l.name();
    let r = ClassRows::new(op, x, l);
    let (n, c, dt) = (r.n, r.c, r.x.dtype());
    let loss = alloc(op, &r.dev, dt, n);
    let wsum = alloc(op, &r.dev, dt, n);
    let err = ErrFlag::new(op, &r.dev);
    let (x, target, weight) = r.ptrs(op);
    let (n64, c64, ignore) = (n as i64, c as i64, l.ignore);
    let (loss_p, wsum_p, err_p) = (loss.ptr(), wsum.ptr(), err.ptr());
    match l.smoothing {
        Some(eps) => {
            let args = CrossEntropyFwdArgs {
                n: n64,
                c: c64,
                x,
                target,
                weight,
                ignore,
                eps,
                loss: loss_p,
                wsum: wsum_p,
                err: err_p,
            };
            let grid = Grid::Rows { rows: n, len: c };
            args.launch(op, &r.dev, ("cross_entropy_fwd", dt), grid)
        }
        None => {
            let args = NllFwdArgs {
                n: n64,
                c: c64,
                logp: x,
                target,
                weight,
                ignore,
                loss: loss_p,
                wsum: wsum_p,
                err: err_p,
            };
            args.launch(op, &r.dev, ("nll_fwd", dt), Grid::Each(n))
        }
    }
    err.check_later(op, format!("target out of bounds for {c} classes"));
    (wrap(loss, &[n]), wrap(wsum, &[n]))
}

/// Gradient of [`class_loss`]'s per-sample losses with respect to the
/// scores, given the per-sample loss gradients `gloss` `[N]`.
pub fn class_loss_backward(x: &Tensor, l: &ClassLoss, gloss: &Tensor) -> Tensor {
    let op = l.name();
    let r = ClassRows::new(op, x, l);
    let (n, c, dt) = (r.n, r.c, r.x.dtype());
    let g = contiguous(gloss);
    let gx = alloc(op, &r.dev, dt, n * c);
    let (x, target, weight) = r.ptrs(op);
    let (n64, c64, ignore, gloss) = (n as i64, c as i64, l.ignore, ptr(op, &g));
    match l.smoothing {
        Some(eps) => {
            let args = CrossEntropyBwdArgs {
                n: n64,
                c: c64,
                x,
                target,
                weight,
                ignore,
                eps,
                gloss,
                gx: gx.ptr(),
            };
            let grid = Grid::Rows { rows: n, len: c };
            args.launch(op, &r.dev, ("cross_entropy_bwd", dt), grid)
        }
        None => {
            let args = NllBwdArgs {
                n: n64,
                c: c64,
                target,
                weight,
                ignore,
                gloss,
                glogp: gx.ptr(),
            };
            args.launch(op, &r.dev, ("nll_bwd", dt), Grid::Each(n * c))
        }
    }
    wrap(gx, &[n, c])
}

// ----- convolution ------------------------------------------------------------------

/// Output size of a convolution/pooling window along one axis
/// ([`kiln_kernels::window::output_size`]).
fn out_len(op: &str, input: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> usize {
    kiln_kernels::window::output_size(input, k, s, p, d, ceil).unwrap_or_else(|| {
        panic!(
            "{op}: kernel size {k} (stride {s}, dilation {d}) is larger than the padded input \
             size {}, or a size is zero",
            input + 2 * p
        )
    })
}

fn conv_geom(op: &str, x: &[usize], w: &[usize], p: &Conv2dParams) -> Conv2dGeom {
    assert!(
        x.len() == 4 && w.len() == 4,
        "{op}: expected 4-D input and weight, got {x:?} and {w:?}"
    );
    let g = p.groups;
    assert!(
        g > 0 && x[1] == w[1] * g && w[0].is_multiple_of(g),
        "{op}: weight {w:?} (groups {g}) does not match input {x:?}: expected input channels {} ",
        w[1] * g
    );
    let oh = out_len(
        op,
        x[2],
        w[2],
        p.stride[0],
        p.padding[0],
        p.dilation[0],
        false,
    );
    let ow = out_len(
        op,
        x[3],
        w[3],
        p.stride[1],
        p.padding[1],
        p.dilation[1],
        false,
    );
    Conv2dGeom {
        c: x[1] as i64,
        h: x[2] as i64,
        w: x[3] as i64,
        kh: w[2] as i64,
        kw: w[3] as i64,
        sh: p.stride[0] as i64,
        sw: p.stride[1] as i64,
        ph: p.padding[0] as i64,
        pw: p.padding[1] as i64,
        dh: p.dilation[0] as i64,
        dw: p.dilation[1] as i64,
        oh: oh as i64,
        ow: ow as i64,
    }
}

/// Images per im2col chunk, keeping the column buffer under 256 MiB.
fn chunk(n: usize, col_elems_per_image: usize, elem: usize) -> usize {
    const LIMIT: usize = 256 << 20;
    (LIMIT / (col_elems_per_image * elem).max(1)).clamp(1, n.max(1))
}

/// 2-D convolution of NCHW `x` with `[OC, C/groups, KH, KW]` weights and an
/// optional bias, as im2col + cuBLAS gemm (batched over images).
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Tensor {
    let op = "conv2d";
    float_only(op, x);
    let dev = device_of(op, x);
    same_device(op, &dev, &[weight]);
    let g = conv_geom(op, x.shape(), weight.shape(), p);
    let (x, w) = (contiguous(x), contiguous(weight));
    let dt = x.dtype();
    let (n, oc) = (x.shape()[0], w.shape()[0]);
    let (ohw, groups) = ((g.oh * g.ow) as usize, p.groups);
    let ckk = (g.c * g.kh * g.kw) as usize;
    let (ckk_g, oc_g) = (ckk / groups, oc / groups);
    let out = alloc(op, &dev, dt, n * oc * ohw);
    let nb = chunk(n, ckk * ohw, dt.size_in_bytes());
    let col = alloc(op, &dev, dt, nb * ckk * ohw);
    let es = dt.size_in_bytes() as u64;
    let (xp, wp) = (ptr(op, &x), ptr(op, &w));
    let img = (g.c * g.h * g.w) as u64;
    let mut b0 = 0;
    while b0 < n {
        let cnt = nb.min(n - b0);
        let args = ColArgs {
            nb: cnt as i64,
            src: xp + b0 as u64 * img * es,
            dst: col.ptr(),
            g,
        };
        args.launch(op, &dev, ("im2col", dt), Grid::Each(cnt * ckk * ohw));
        for gi in 0..groups {
            let am = Mat {
                ptr: wp + (gi * oc_g * ckk_g) as u64 * es,
                ld: ckk_g,
                trans: false,
                stride: 0,
            };
            let bm = Mat {
                ptr: col.ptr() + (gi * ckk_g * ohw) as u64 * es,
                ld: ohw,
                trans: false,
                stride: ckk * ohw,
            };
            let cm = Mat {
                ptr: out.ptr() + ((b0 * oc + gi * oc_g) * ohw) as u64 * es,
                ld: ohw,
                trans: false,
                stride: oc * ohw,
            };
            gemm(op, &dev, dt, (oc_g, ohw, ckk_g), am, bm, cm, cnt, 0.0);
        }
        b0 += cnt;
    }
    if let Some(b) = bias {
        same_device(op, &dev, &[b]);
        assert_eq!(
            b.shape(),
            &[oc],
            "{op}: expected bias of shape [{oc}], got {:?}",
            b.shape()
        );
        let b = contiguous(b);
        let args = AddBiasArgs {
            total: (n * oc * ohw) as i64,
            out: out.ptr(),
            bias: ptr(op, &b),
            c: oc as i64,
            s: ohw as i64,
        };
        args.launch(op, &dev, ("add_bias", dt), Grid::Each(n * oc * ohw));
    }
    wrap(out, &[n, oc, g.oh as usize, g.ow as usize])
}

/// Gradients of [`conv2d`] with respect to the input, weight and bias
/// (each computed only when its `need` flag is set).
pub fn conv2d_backward(
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    p: &Conv2dParams,
    need: [bool; 3],
) -> (Option<Tensor>, Option<Tensor>, Option<Tensor>) {
    let op = "conv2d_backward";
    let dev = device_of(op, x);
    same_device(op, &dev, &[weight, grad_out]);
    let g = conv_geom(op, x.shape(), weight.shape(), p);
    let (x, w, gy) = (contiguous(x), contiguous(weight), contiguous(grad_out));
    let dt = x.dtype();
    let (n, oc) = (x.shape()[0], w.shape()[0]);
    let (ohw, groups) = ((g.oh * g.ow) as usize, p.groups);
    let ckk = (g.c * g.kh * g.kw) as usize;
    let (ckk_g, oc_g) = (ckk / groups, oc / groups);
    let es = dt.size_in_bytes() as u64;
    let img = (g.c * g.h * g.w) as usize;
    let (xp, wp, gp) = (ptr(op, &x), ptr(op, &w), ptr(op, &gy));
    let nb = chunk(n, ckk * ohw, dt.size_in_bytes());
    let col = alloc(op, &dev, dt, nb * ckk * ohw);
    let gx = need[0].then(|| alloc(op, &dev, dt, x.numel()));
    let gw = need[1].then(|| {
        let s = alloc(op, &dev, dt, w.numel());
        zero(op, &dev, &s);
        s
    });
    let mut b0 = 0;
    while (gx.is_some() || gw.is_some()) && b0 < n {
        let cnt = nb.min(n - b0);
        if let Some(gw) = &gw {
            let args = ColArgs {
                nb: cnt as i64,
                src: xp + (b0 * img) as u64 * es,
                dst: col.ptr(),
                g,
            };
            args.launch(op, &dev, ("im2col", dt), Grid::Each(cnt * ckk * ohw));
            // gW[g] += gy[b, g] @ col[b, g]^T for each image of the chunk.
            for bi in 0..cnt {
                for gi in 0..groups {
                    let am = Mat {
                        ptr: gp + (((b0 + bi) * oc + gi * oc_g) * ohw) as u64 * es,
                        ld: ohw,
                        trans: false,
                        stride: 0,
                    };
                    let bm = Mat {
                        ptr: col.ptr() + ((bi * ckk + gi * ckk_g) * ohw) as u64 * es,
                        ld: ohw,
                        trans: true,
                        stride: 0,
                    };
                    let cm = Mat {
                        ptr: gw.ptr() + (gi * oc_g * ckk_g) as u64 * es,
                        ld: ckk_g,
                        trans: false,
                        stride: 0,
                    };
                    gemm(op, &dev, dt, (oc_g, ckk_g, ohw), am, bm, cm, 1, 1.0);
                }
            }
        }
        if let Some(gx) = &gx {
            // dcol[b, g] = W[g]^T @ gy[b, g], then col2im.
            for gi in 0..groups {
                let am = Mat {
                    ptr: wp + (gi * oc_g * ckk_g) as u64 * es,
                    ld: ckk_g,
                    trans: true,
                    stride: 0,
                };
                let bm = Mat {
                    ptr: gp + ((b0 * oc + gi * oc_g) * ohw) as u64 * es,
                    ld: ohw,
                    trans: false,
                    stride: oc * ohw,
                };
                let cm = Mat {
                    ptr: col.ptr() + (gi * ckk_g * ohw) as u64 * es,
                    ld: ohw,
                    trans: false,
                    stride: ckk * ohw,
                };
                gemm(op, &dev, dt, (ckk_g, ohw, oc_g), am, bm, cm, cnt, 0.0);
            }
            let args = ColArgs {
                nb: cnt as i64,
                src: col.ptr(),
                dst: gx.ptr() + (b0 * img) as u64 * es,
                g,
            };
            args.launch(op, &dev, ("col2im", dt), Grid::Each(cnt * img));
        }
        b0 += cnt;
    }
    let gb = need[2].then(|| sum(&gy, &[true, false, true, true], &[oc]));
    (
        gx.map(|s| wrap(s, x.shape())),
        gw.map(|s| wrap(s, w.shape())),
        gb,
    )
}

// ----- pooling -------------------------------------------------------------------

fn pool_geom(op: &str, x: &[usize], p: &Pool2dParams) -> PoolGeom {
    assert!(
        x.len() == 4,
        "{op}: expected a 4-D NCHW input, got shape {x:?}"
    );
    for a in 0..2 {
        // PyTorch's rule, on the dilated window: pad <= ((k - 1) * d + 1) / 2.
        let span = p.dilation[a] * p.kernel[a].saturating_sub(1) + 1;
        assert!(
            p.padding[a] <= span / 2,
            "{op}: pad should be at most half of effective kernel size, got padding {:?}, kernel {:?} and dilation {:?}",
            p.padding,
            p.kernel,
            p.dilation
        );
    }
    let oh = out_len(
        op,
        x[2],
        p.kernel[0],
        p.stride[0],
        p.padding[0],
        p.dilation[0],
        p.ceil_mode,
    );
    let ow = out_len(
        op,
        x[3],
        p.kernel[1],
        p.stride[1],
        p.padding[1],
        p.dilation[1],
        p.ceil_mode,
    );
    PoolGeom {
        h: x[2] as i64,
        w: x[3] as i64,
        oh: oh as i64,
        ow: ow as i64,
        kh: p.kernel[0] as i64,
        kw: p.kernel[1] as i64,
        sh: p.stride[0] as i64,
        sw: p.stride[1] as i64,
        ph: p.padding[0] as i64,
        pw: p.padding[1] as i64,
        dh: p.dilation[0] as i64,
        dw: p.dilation[1] as i64,
    }
}

fn pool_out(x: &[usize], g: &PoolGeom) -> Vec<usize> {
    vec![x[0], x[1], g.oh as usize, g.ow as usize]
}

/// Max pooling: output and int64 argmax indices (flat `h * W + w` within
/// each plane, like PyTorch's `return_indices`).
pub fn max_pool2d(x: &Tensor, p: &Pool2dParams) -> (Tensor, Tensor) {
    let op = "max_pool2d";
    float_only(op, x);
    let dev = device_of(op, x);
    let g = pool_geom(op, x.shape(), p);
    let x = contiguous(x);
    let shape = pool_out(x.shape(), &g);
    let planes = shape[0] * shape[1];
    let n: usize = shape.iter().product();
    let (y, idx) = (
        alloc(op, &dev, x.dtype(), n),
        alloc(op, &dev, DType::I64, n),
    );
    let args = MaxPoolFwdArgs {
        planes: planes as i64,
        x: ptr(op, &x),
        y: y.ptr(),
        idx: idx.ptr(),
        g,
    };
    args.launch(op, &dev, ("max_pool2d_fwd", x.dtype()), Grid::Each(n));
    (wrap(y, &shape), wrap(idx, &shape))
}

/// Gradient of [`max_pool2d`] with respect to its input of `input_shape`.
pub fn max_pool2d_backward(
    grad_out: &Tensor,
    indices: &Tensor,
    input_shape: &[usize],
    p: &Pool2dParams,
) -> Tensor {
    let op = "max_pool2d_backward";
    let dev = device_of(op, grad_out);
    same_device(op, &dev, &[indices]);
    let g = pool_geom(op, input_shape, p);
    let (gy, idx) = (contiguous(grad_out), contiguous(indices));
    let planes = input_shape[0] * input_shape[1];
    let n: usize = input_shape.iter().product();
    let gx = alloc(op, &dev, gy.dtype(), n);
    let args = MaxPoolBwdArgs {
        planes: planes as i64,
        gy: ptr(op, &gy),
        idx: ptr(op, &idx),
        gx: gx.ptr(),
        g,
    };
    args.launch(op, &dev, ("max_pool2d_bwd", gy.dtype()), Grid::Each(n));
    wrap(gx, input_shape)
}

/// Average pooling with PyTorch's `count_include_pad` and
/// `divisor_override` (0 for none).
pub fn avg_pool2d(
    x: &Tensor,
    p: &Pool2dParams,
    count_include_pad: bool,
    divisor_override: usize,
) -> Tensor {
    let op = "avg_pool2d";
    float_only(op, x);
    let g = pool_geom(op, x.shape(), p);
    let avg = Some((count_include_pad, divisor_override));
    pool_map(op, "avg_pool2d_fwd", x, g, &pool_out(x.shape(), &g), avg)
}

/// Gradient of [`avg_pool2d`] with respect to its input of `input_shape`.
pub fn avg_pool2d_backward(
    grad_out: &Tensor,
    input_shape: &[usize],
    p: &Pool2dParams,
    count_include_pad: bool,
    divisor_override: usize,
) -> Tensor {
    let op = "avg_pool2d_backward";
    let g = pool_geom(op, input_shape, p);
    let avg = Some((count_include_pad, divisor_override));
    pool_map(op, "avg_pool2d_bwd", grad_out, g, input_shape, avg)
}

/// Runs the pooling kernel `name` (average pooling when `avg` gives its
/// `count_include_pad, divisor_override`, else adaptive average pooling)
/// from `src` into a new tensor of `out_shape`, a thread per destination
/// element.
fn pool_map(
    op: &str,
    name: &str,
    src: &Tensor,
    g: PoolGeom,
    out_shape: &[usize],
    avg: Option<(bool, usize)>,
) -> Tensor {
    let dev = device_of(op, src);
    let src = contiguous(src);
    let n: usize = out_shape.iter().product();
    let dst = alloc(op, &dev, src.dtype(), n);
    let (planes, s, d) = (
        (out_shape[0] * out_shape[1]) as i64,
        ptr(op, &src),
        dst.ptr(),
    );
    let kernel = (name, src.dtype());
    match avg {
        Some((count_include_pad, divisor_override)) => {
            let args = AvgPoolArgs {
                planes,
                src: s,
                dst: d,
                g,
                count_include_pad: count_include_pad as i32,
                divisor_override: divisor_override as i64,
            };
            args.launch(op, &dev, kernel, Grid::Each(n))
        }
        None => {
            let args = AdaptivePoolArgs {
                planes,
                src: s,
                dst: d,
                g,
            };
            args.launch(op, &dev, kernel, Grid::Each(n))
        }
    }
    wrap(dst, out_shape)
}

fn adaptive_geom(x: &[usize], out: [usize; 2]) -> PoolGeom {
    PoolGeom {
        h: x[2] as i64,
        w: x[3] as i64,
        oh: out[0] as i64,
        ow: out[1] as i64,
        ..Default::default()
    }
}

/// Adaptive average pooling of NCHW `x` to `out_hw`.
pub fn adaptive_avg_pool2d(x: &Tensor, out_hw: [usize; 2]) -> Tensor {
    let op = "adaptive_avg_pool2d";
    float_only(op, x);
    assert!(
        x.dim() == 4,
        "{op}: expected a 4-D NCHW input, got shape {:?}",
        x.shape()
    );
    let g = adaptive_geom(x.shape(), out_hw);
    pool_map(
        op,
        "adaptive_avg_pool2d_fwd",
        x,
        g,
        &pool_out(x.shape(), &g),
        None,
    )
}

/// Gradient of [`adaptive_avg_pool2d`] with respect to its input.
pub fn adaptive_avg_pool2d_backward(grad_out: &Tensor, input_shape: &[usize]) -> Tensor {
    let op = "adaptive_avg_pool2d_backward";
    let g = adaptive_geom(input_shape, [grad_out.shape()[2], grad_out.shape()[3]]);
    pool_map(
        op,
        "adaptive_avg_pool2d_bwd",
        grad_out,
        g,
        input_shape,
        None,
    )
}

// ----- batch norm -------------------------------------------------------------------

/// The dtype batch-norm statistics are kept in for `dt`.
fn stat_dtype(dt: DType) -> DType {
    if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

fn bn_dims(op: &str, x: &Tensor) -> (usize, usize, usize) {
    assert!(
        x.dim() >= 2,
        "{op}: expected at least 2-D input (N, C, ...), got shape {:?}",
        x.shape()
    );
    (x.shape()[0], x.shape()[1], x.shape()[2..].iter().product())
}

/// Batch norm over dimension 1 of `x` (`[N, C, ...]`). In training mode
/// the batch statistics are used and the running buffers (when given) are
/// updated in place with `momentum` (unbiased variance); in eval mode the
/// running buffers are used. Returns the output and the saved mean and
/// 1/sqrt(var + eps) (f32, or f64 for f64 input) for the backward.
pub fn batch_norm(x: &Tensor, args: &BatchNormArgs) -> (Tensor, BatchNormSaved) {
    let op = "batch_norm";
    let (running_mean, running_var) = (args.running_mean, args.running_var);
    let (training, eps) = (args.training, args.eps);
    float_only(op, x);
    let dev = device_of(op, x);
    let (n, c, s) = bn_dims(op, x);
    let x = contiguous(x);
    let dt = x.dtype();
    let mean = alloc(op, &dev, stat_dtype(dt), c);
    let invstd = alloc(op, &dev, stat_dtype(dt), c);
    if training {
        assert!(
            n * s > 1,
            "{op}: expected more than 1 value per channel when training, got input of shape {:?}",
            x.shape()
        );
        let stats = BnStatsArgs {
            n: n as i64,
            c: c as i64,
            s: s as i64,
            x: ptr(op, &x),
            mean: mean.ptr(),
            invstd: invstd.ptr(),
            running_mean: opt_ptr(op, running_mean),
            running_var: opt_ptr(op, running_var),
            momentum: args.momentum,
            eps,
        };
        let grid = Grid::Rows {
            rows: c,
            len: n * s,
        };
        stats.launch(op, &dev, ("bn_stats", dt), grid);
    } else {
        let (rm, rv) = (
            running_mean.expect("batch_norm: eval mode needs running_mean"),
            running_var.expect("batch_norm: eval mode needs running_var"),
        );
        let stats = BnRunningStatsArgs {
            c: c as i64,
            running_mean: ptr(op, rm),
            running_var: ptr(op, rv),
            eps,
            mean: mean.ptr(),
            invstd: invstd.ptr(),
        };
        stats.launch(op, &dev, ("bn_running_stats", dt), Grid::Each(c));
    }
    let (w, b) = (args.weight.map(contiguous), args.bias.map(contiguous));
    let y = alloc(op, &dev, dt, x.numel());
    let apply = BnApplyArgs {
        total: x.numel() as i64,
        c: c as i64,
        s: s as i64,
        x: ptr(op, &x),
        mean: mean.ptr(),
        invstd: invstd.ptr(),
        weight: opt_ptr(op, w.as_ref()),
        bias: opt_ptr(op, b.as_ref()),
        y: y.ptr(),
    };
    apply.launch(op, &dev, ("bn_apply", dt), Grid::Each(x.numel()));
    let (mean, invstd) = (wrap(mean, &[c]), wrap(invstd, &[c]));
    let saved = BatchNormSaved {
        mean,
        invstd,
        training,
    };
    (wrap(y, x.shape()), saved)
}

/// Gradients of [`batch_norm`] with respect to the input, weight and bias
/// (each when its `need` flag is set), from the saved statistics.
pub fn batch_norm_backward(
    x: &Tensor,
    grad_out: &Tensor,
    weight: Option<&Tensor>,
    saved: &BatchNormSaved,
    need: [bool; 3],
) -> Grads3 {
    let op = "batch_norm_backward";
    let (save_mean, save_invstd) = (&saved.mean, &saved.invstd);
    let dev = device_of(op, x);
    same_device(op, &dev, &[grad_out, save_mean, save_invstd]);
    let (n, c, s) = bn_dims(op, x);
    let (x, gy, w) = (contiguous(x), contiguous(grad_out), weight.map(contiguous));
    let dt = x.dtype();
    let (mp, ip) = (ptr(op, save_mean), ptr(op, save_invstd));
    let sum_dy = alloc(op, &dev, stat_dtype(dt), c);
    let sum_dy_xhat = alloc(op, &dev, stat_dtype(dt), c);
    let (xp, gyp) = (ptr(op, &x), ptr(op, &gy));
    let reduce = BnBwdReduceArgs {
        n: n as i64,
        c: c as i64,
        s: s as i64,
        x: xp,
        gy: gyp,
        mean: mp,
        invstd: ip,
        sum_dy: sum_dy.ptr(),
        sum_dy_xhat: sum_dy_xhat.ptr(),
    };
    let grid = Grid::Rows {
        rows: c,
        len: n * s,
    };
    reduce.launch(op, &dev, ("bn_bwd_reduce", dt), grid);
    let gx = need[0].then(|| {
        let gx = alloc(op, &dev, dt, x.numel());
        let apply = BnBwdApplyArgs {
            total: x.numel() as i64,
            c: c as i64,
            s: s as i64,
            x: xp,
            gy: gyp,
            mean: mp,
            invstd: ip,
            weight: opt_ptr(op, w.as_ref()),
            sum_dy: sum_dy.ptr(),
            sum_dy_xhat: sum_dy_xhat.ptr(),
            training: saved.training as i32,
            gx: gx.ptr(),
        };
        apply.launch(op, &dev, ("bn_bwd_apply", dt), Grid::Each(x.numel()));
        wrap(gx, x.shape())
    });
    let to_t = |src: &super::CudaStorage| {
        let out = alloc(op, &dev, dt, c);
        let args = BnAccToArgs {
            n: c as i64,
            acc: src.ptr(),
            out: out.ptr(),
        };
        args.launch(op, &dev, ("bn_acc_to", dt), Grid::Each(c));
        wrap(out, &[c])
    };
    let gw = need[1].then(|| to_t(&sum_dy_xhat));
    let gb = need[2].then(|| to_t(&sum_dy));
    (gx, gw, gb)
}

// ----- indexing ----------------------------------------------------------------------

fn index_check(op: &str, idx: &Tensor) {
    assert_eq!(
        idx.dtype(),
        DType::I64,
        "{op}: expected int64 indices, got {}",
        idx.dtype()
    );
}

/// `x.index_select(dim, idx)` (1-D int64 indices; negative count from the
/// end). Also the embedding lookup (`dim` = 0).
pub fn index_select(x: &Tensor, dim: usize, idx: &Tensor) -> Tensor {
    take_at("index_select", x, dim, idx)
}

/// The elements of `x` at `idx` along `dim`, by the kernel `op`:
/// `index_select` (1-D `idx`, a slice of `x` per index) or `gather`
/// (`idx` of `x`'s shape outside `dim`, an element per index).
fn take_at(op: &str, x: &Tensor, dim: usize, idx: &Tensor) -> Tensor {
    index_check(op, idx);
    let dev = device_of(op, x);
    same_device(op, &dev, &[idx]);
    let (x, ix) = (contiguous(x), contiguous(idx));
    let (outer, d, inner) = split3(x.shape(), dim);
    let (k, shape) = if op == "index_select" {
        let mut shape = x.shape().to_vec();
        shape[dim] = ix.numel();
        (ix.numel(), shape)
    } else {
        let k = ix.shape()[dim];
        assert_eq!(
            split3(ix.shape(), dim),
            (outer, k, inner),
            "{op}: index shape {:?} does not match input {:?} outside dim {dim}",
            ix.shape(),
            x.shape()
        );
        (k, ix.shape().to_vec())
    };
    let out = alloc(op, &dev, x.dtype(), outer * k * inner);
    let err = ErrFlag::new(op, &dev);
    let args = TakeArgs {
        outer: outer as i64,
        dim: d as i64,
        inner: inner as i64,
        x: ptr(op, &x),
        idx: ptr(op, &ix),
        k: k as i64,
        out: out.ptr(),
        err: err.ptr(),
    };
    args.launch(op, &dev, (op, x.dtype()), Grid::Each(outer * k * inner));
    index_error(op, err, dim, d);
    wrap(out, &shape)
}

/// `zeros(shape).index_add_(dim, idx, src)`: the backward of
/// [`index_select`] and of embeddings (atomic adds; float dtypes).
pub fn index_add(shape: &[usize], dim: usize, idx: &Tensor, src: &Tensor) -> Tensor {
    add_at("index_add", shape, dim, idx, src)
}

/// `zeros(shape)` plus `src` added at `idx` along `dim` by the atomic-add
/// kernel `op`: `index_add` (1-D `idx`, a slice of `src` per index) or
/// `scatter_add` (`idx` of `src`'s shape, an element per index).
fn add_at(op: &str, shape: &[usize], dim: usize, idx: &Tensor, src: &Tensor) -> Tensor {
    index_check(op, idx);
    float_only(op, src);
    let dev = device_of(op, src);
    same_device(op, &dev, &[idx]);
    let (src, ix) = (contiguous(src), contiguous(idx));
    let (outer, d, inner) = split3(shape, dim);
    let (k, threads) = if op == "index_add" {
        (ix.numel(), outer * ix.numel() * inner)
    } else {
        (ix.shape()[dim], ix.numel())
    };
    let out = alloc(op, &dev, src.dtype(), outer * d * inner);
    zero(op, &dev, &out);
    let err = ErrFlag::new(op, &dev);
    let args = AddAtArgs {
        outer: outer as i64,
        dim: d as i64,
        inner: inner as i64,
        dst: out.ptr(),
        idx: ptr(op, &ix),
        k: k as i64,
        src: ptr(op, &src),
        err: err.ptr(),
    };
    args.launch(op, &dev, (op, src.dtype()), Grid::Each(threads));
    index_error(op, err, dim, d);
    wrap(out, shape)
}

/// Reports an index outside dimension `dim` (of size `d`) flagged in `err`.
fn index_error(op: &str, err: ErrFlag, dim: usize, d: usize) {
    err.check_later(
        op,
        format!("index out of range for dimension {dim} of size {d}"),
    );
}

/// `torch.gather(x, dim, idx)` where `idx` has `x`'s shape except along
/// `dim` (callers narrow `x` first where PyTorch allows smaller indices).
pub fn gather(x: &Tensor, dim: usize, idx: &Tensor) -> Tensor {
    take_at("gather", x, dim, idx)
}

/// `zeros(shape).scatter_add_(dim, idx, src)`: the backward of [`gather`].
pub fn scatter_add(shape: &[usize], dim: usize, idx: &Tensor, src: &Tensor) -> Tensor {
    add_at("scatter_add", shape, dim, idx, src)
}

/// One-hot encoding of int64 class indices: shape `idx.shape() + [classes]`.
pub fn one_hot(idx: &Tensor, classes: usize) -> Tensor {
    let op = "one_hot";
    index_check(op, idx);
    let dev = device_of(op, idx);
    let ix = contiguous(idx);
    let n = ix.numel();
    let out = alloc(op, &dev, DType::I64, n * classes);
    let err = ErrFlag::new(op, &dev);
    let args = OneHotArgs {
        n: n as i64,
        classes: classes as i64,
        idx: ptr(op, &ix),
        out: out.ptr(),
        err: err.ptr(),
    };
    args.launch(op, &dev, ("one_hot", DType::I64), Grid::Each(n * classes));
    err.check_later(op, format!("class values must be in [0, {classes})"));
    let mut shape = ix.shape().to_vec();
    shape.push(classes);
    wrap(out, &shape)
}

// ----- optimizer updates ----------------------------------------------------------

fn update_check(op: &str, dev: &Arc<CudaDevice>, p: &Tensor, others: &[Option<&Tensor>]) {
    float_only(op, p);
    assert!(p.is_contiguous(), "{op}: parameters must be contiguous");
    for t in others.iter().flatten() {
        same_device(op, dev, &[t]);
        assert_eq!(
            t.shape(),
            p.shape(),
            "{op}: state shape {:?} does not match parameter {:?}",
            t.shape(),
            p.shape()
        );
        assert_eq!(
            t.dtype(),
            p.dtype(),
            "{op}: state dtype {} does not match parameter {}",
            t.dtype(),
            p.dtype()
        );
        assert!(
            t.is_contiguous(),
            "{op}: optimizer state must be contiguous"
        );
    }
}

/// SGD step in place, like `torch.optim.SGD`: `buf` is the momentum buffer
/// (None when momentum is 0); `first_step` initialises it with the gradient.
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    param: &Tensor,
    grad: &Tensor,
    buf: Option<&Tensor>,
    lr: f64,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
    maximize: bool,
    first_step: bool,
) {
    let op = "sgd";
    let dev = device_of(op, param);
    let g = contiguous(grad);
    update_check(op, &dev, param, &[Some(&g), buf]);
    let args = SgdArgs {
        n: param.numel() as i64,
        p: ptr(op, param),
        g: ptr(op, &g),
        buf: opt_ptr(op, buf),
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov: nesterov as i32,
        maximize: maximize as i32,
        first_step: first_step as i32,
    };
    args.launch(op, &dev, ("sgd", param.dtype()), Grid::Each(param.numel()));
}

/// Adam / AdamW (`decoupled`) step in place, like `torch.optim.Adam`:
/// `step` is the 1-based step count after this update; `max_exp_avg_sq`
/// is given for amsgrad.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    max_exp_avg_sq: Option<&Tensor>,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    maximize: bool,
    step: u64,
) {
    let op = if decoupled { "adamw" } else { "adam" };
    let dev = device_of(op, param);
    let g = contiguous(grad);
    update_check(
        op,
        &dev,
        param,
        &[Some(&g), Some(exp_avg), Some(exp_avg_sq), max_exp_avg_sq],
    );
    let bc1 = 1.0 - betas.0.powi(step as i32);
    let bc2 = 1.0 - betas.1.powi(step as i32);
    let args = AdamArgs {
        n: param.numel() as i64,
        p: ptr(op, param),
        g: ptr(op, &g),
        m: ptr(op, exp_avg),
        v: ptr(op, exp_avg_sq),
        vmax: opt_ptr(op, max_exp_avg_sq),
        lr,
        beta1: betas.0,
        beta2: betas.1,
        eps,
        weight_decay,
        decoupled: decoupled as i32,
        maximize: maximize as i32,
        bc1,
        bc2,
    };
    args.launch(op, &dev, ("adam", param.dtype()), Grid::Each(param.numel()));
}

/// RMSprop step in place, like `torch.optim.RMSprop`: `momentum_buf` when
/// momentum > 0, `grad_avg` when centered.
#[allow(clippy::too_many_arguments)]
pub fn rmsprop_step(
    param: &Tensor,
    grad: &Tensor,
    square_avg: &Tensor,
    momentum_buf: Option<&Tensor>,
    grad_avg: Option<&Tensor>,
    lr: f64,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    momentum: f64,
    maximize: bool,
) {
    let op = "rmsprop";
    let dev = device_of(op, param);
    let g = contiguous(grad);
    update_check(
        op,
        &dev,
        param,
        &[Some(&g), Some(square_avg), momentum_buf, grad_avg],
    );
    let args = RmspropArgs {
        n: param.numel() as i64,
        p: ptr(op, param),
        g: ptr(op, &g),
        sq: ptr(op, square_avg),
        buf: opt_ptr(op, momentum_buf),
        gavg: opt_ptr(op, grad_avg),
        lr,
        alpha,
        eps,
        weight_decay,
        momentum,
        maximize: maximize as i32,
    };
    args.launch(
        op,
        &dev,
        ("rmsprop", param.dtype()),
        Grid::Each(param.numel()),
    );
}

#[cfg(test)]
mod tests {
    use super::out_len;

    #[test]
    fn window_counts_match_pytorch() {
        assert_eq!(out_len("t", 28, 5, 1, 2, 1, false), 28);
        assert_eq!(out_len("t", 7, 2, 2, 0, 1, false), 3);
        assert_eq!(out_len("t", 7, 2, 2, 0, 1, true), 4);
        assert_eq!(out_len("t", 6, 3, 2, 1, 1, true), 4);
        assert_eq!(out_len("t", 5, 2, 2, 1, 1, true), 3);
    }
}
