//! 2-D convolution, NCHW, with PyTorch's semantics (cross-correlation,
//! zero padding, stride, dilation, groups).
//!
//! Every pass is im2col (or col2im) plus a matrix product per image and
//! group, laid out so the product needs no transposition copy:
//!
//! * forward: `out[o, p] = W[o, ck] @ cols[ck, p]` (+ bias),
//! * input gradient: `dcols[ck, p] = W^T @ gout[o, p]`, then col2im,
//! * weight gradient: `dW[o, ck] += gout[o, p] @ cols^T`,
//!
//! where `ck` runs over `(c, kh, kw)` of one group and `p` over output
//! pixels. A 1×1 kernel with stride 1 and no padding skips im2col entirely
//! (the input plane *is* the column matrix).
//!
//! Large batches are split across rayon's pool by image (each product then
//! runs single-threaded on a per-thread im2col buffer that is reused across
//! calls); small batches of large images run image after image with the
//! products themselves multi-threaded.

use rayon::prelude::*;

use super::matmul::{gemm, gemm_serial};
use super::parallel::num_threads;
use super::scratch::Scratch;
use crate::Float;

/// Hyper-parameters of a 2-D convolution, per spatial dimension `[h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Step between output positions.
    pub stride: [usize; 2],
    /// Zeros added on both sides of the input.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
    /// Number of channel groups; input and output channels must divide by it.
    pub groups: usize,
}

impl Default for Conv2dParams {
    /// Stride 1, no padding, no dilation, one group (PyTorch's defaults).
    fn default() -> Self {
        Conv2dParams {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Output spatial size `[oh, ow]` of a convolution of an `in_hw` input with a
/// `kernel`-sized kernel: `(in + 2*pad - dilation*(k-1) - 1) / stride + 1`.
/// `None` when that is not positive or a stride, dilation or kernel size is
/// zero.
pub fn conv2d_output_size(
    in_hw: [usize; 2],
    kernel: [usize; 2],
    p: &Conv2dParams,
) -> Option<[usize; 2]> {
    let mut out = [0; 2];
    for d in 0..2 {
        if p.stride[d] == 0 || p.dilation[d] == 0 || kernel[d] == 0 {
            return None;
        }
        let span = p.dilation[d] * (kernel[d] - 1) + 1;
        let padded = in_hw[d] + 2 * p.padding[d];
        if padded < span {
            return None;
        }
        out[d] = (padded - span) / p.stride[d] + 1;
    }
    Some(out)
}

/// Validated geometry of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    groups: usize,
    cg: usize,
    og: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
}

impl Geom {
    fn new(op: &str, in_shape: [usize; 4], w_shape: [usize; 4], p: &Conv2dParams) -> Geom {
        let [n, c, h, w] = in_shape;
        let [o, cg, kh, kw] = w_shape;
        let groups = p.groups;
        assert!(groups > 0, "{op}: groups must be positive");
        assert!(
            c % groups == 0 && o % groups == 0,
            "{op}: input channels ({c}) and output channels ({o}) must be divisible by \
             groups ({groups})"
        );
        assert!(
            cg * groups == c,
            "{op}: weight {w_shape:?} expects {} input channels ({cg} per group x {groups} \
             groups) but input {in_shape:?} has {c}",
            cg * groups
        );
        let [oh, ow] = conv2d_output_size([h, w], [kh, kw], p).unwrap_or_else(|| {
            panic!(
                "{op}: input {in_shape:?} with kernel {kh}x{kw} and {p:?} gives a \
                 non-positive output size"
            )
        });
        Geom {
            n,
            c,
            h,
            w,
            o,
            groups,
            cg,
            og: o / groups,
            kh,
            kw,
            oh,
            ow,
            sh: p.stride[0],
            sw: p.stride[1],
            ph: p.padding[0],
            pw: p.padding[1],
            dh: p.dilation[0],
            dw: p.dilation[1],
        }
    }

    /// Rows of the column matrix: `(c, kh, kw)` of one group.
    fn ck(&self) -> usize {
        self.cg * self.kh * self.kw
    }
    /// Output pixels per plane.
    fn pix(&self) -> usize {
        self.oh * self.ow
    }
    fn in_image(&self) -> usize {
        self.c * self.h * self.w
    }
    fn out_image(&self) -> usize {
        self.o * self.pix()
    }
    fn out_shape(&self) -> [usize; 4] {
        [self.n, self.o, self.oh, self.ow]
    }
    /// The input plane is already the column matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }
    /// Multiply-adds of one image's product (all groups).
    fn macs_per_image(&self) -> usize {
        self.o * self.ck() * self.pix()
    }
    /// Whether to spread images over the pool (products then serial).
    fn batch_parallel(&self) -> bool {
        let t = num_threads();
        t > 1 && self.n >= t && self.n.saturating_mul(self.macs_per_image()) >= CONV_PAR_THRESHOLD
    }
}

/// Multiply-adds per call from which images are spread across threads.
/// LeNet's smallest pass (conv1 at batch 64) is ~7.5 M; splitting pays from
/// well below that (a 2-thread split costs a few microseconds).
const CONV_PAR_THRESHOLD: usize = 1 << 18;

/// `(first, end)` output indices whose input position `i*stride + off`
/// falls inside `0..len`, clamped to `0..out`.
#[inline]
fn valid_range(out: usize, stride: usize, off: isize, len: usize) -> (usize, usize) {
    let lo = if off >= 0 {
        0
    } else {
        off.unsigned_abs().div_ceil(stride)
    };
    let last = len as isize - 1 - off;
    let hi = if last < 0 {
        0
    } else {
        last as usize / stride + 1
    };
    let lo = lo.min(out);
    (lo, hi.min(out).max(lo))
}

/// Fills `cols[(c, ki, kj), (oy, ox)]` from one group's input planes.
fn im2col<T: Float>(g: &Geom, src: &[T], cols: &mut [T]) {
    let (h, w, oh, ow, pix) = (g.h, g.w, g.oh, g.ow, g.pix());
    let zero = T::zero();
    let mut rows = cols.chunks_exact_mut(pix);
    for c in 0..g.cg {
        let plane = &src[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            let y_off = (ki * g.dh) as isize - g.ph as isize;
            let (y_lo, y_hi) = valid_range(oh, g.sh, y_off, h);
            for kj in 0..g.kw {
                let row = rows.next().expect("im2col: column buffer too small");
                let x_off = (kj * g.dw) as isize - g.pw as isize;
                let (x_lo, x_hi) = valid_range(ow, g.sw, x_off, w);
                row[..y_lo * ow].fill(zero);
                row[y_hi * ow..].fill(zero);
                for oy in y_lo..y_hi {
                    let iy = (oy * g.sh) as isize + y_off;
                    let src_row = &plane[iy as usize * w..(iy as usize + 1) * w];
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    out[..x_lo].fill(zero);
                    out[x_hi..].fill(zero);
                    if x_lo == x_hi {
                        continue;
                    }
                    let x0 = ((x_lo * g.sw) as isize + x_off) as usize;
                    if g.sw == 1 {
                        out[x_lo..x_hi].copy_from_slice(&src_row[x0..x0 + (x_hi - x_lo)]);
                    } else {
                        for (d, s) in out[x_lo..x_hi]
                            .iter_mut()
                            .zip(src_row[x0..].iter().step_by(g.sw))
                        {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// Adds `cols[(c, ki, kj), (oy, ox)]` back onto one group's input planes
/// (the adjoint of [`im2col`]).
fn col2im<T: Float>(g: &Geom, cols: &[T], dst: &mut [T]) {
    let (h, w, oh, ow, pix) = (g.h, g.w, g.oh, g.ow, g.pix());
    let mut rows = cols.chunks_exact(pix);
    for c in 0..g.cg {
        let plane = &mut dst[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            let y_off = (ki * g.dh) as isize - g.ph as isize;
            let (y_lo, y_hi) = valid_range(oh, g.sh, y_off, h);
            for kj in 0..g.kw {
                let row = rows.next().expect("col2im: column buffer too small");
                let x_off = (kj * g.dw) as isize - g.pw as isize;
                let (x_lo, x_hi) = valid_range(ow, g.sw, x_off, w);
                if x_lo == x_hi {
                    continue;
                }
                let x0 = ((x_lo * g.sw) as isize + x_off) as usize;
                for oy in y_lo..y_hi {
                    let iy = (oy * g.sh) as isize + y_off;
                    let dst_row = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    let src = &row[oy * ow + x_lo..oy * ow + x_hi];
                    if g.sw == 1 {
                        for (d, &s) in dst_row[x0..x0 + src.len()].iter_mut().zip(src) {
                            *d = *d + s;
                        }
                    } else {
                        for (d, &s) in dst_row[x0..].iter_mut().step_by(g.sw).zip(src) {
                            *d = *d + s;
                        }
                    }
                }
            }
        }
    }
}

/// `dst = acc? dst : 0 + lhs @ rhs`, multi-threaded only if `par`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn mm<T: Float>(
    par: bool,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    d: (isize, isize),
    acc: bool,
    lhs: &[T],
    l: (isize, isize),
    rhs: &[T],
    r: (isize, isize),
) {
    if par {
        gemm(m, n, k, dst, d.0, d.1, acc, lhs, l.0, l.1, rhs, r.0, r.1);
    } else {
        gemm_serial(m, n, k, dst, d.0, d.1, acc, lhs, l.0, l.1, rhs, r.0, r.1);
    }
}

fn check_len<T>(op: &str, what: &str, s: &[T], shape: [usize; 4]) {
    let want: usize = shape.iter().product();
    assert!(
        s.len() == want,
        "{op}: {what} has {} elements but shape {shape:?} needs {want}",
        s.len()
    );
}

/// One image's forward pass into `out` (`[o, oh, ow]`).
fn forward_image<T: Float>(
    g: &Geom,
    input: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
    par: bool,
) {
    let (ck, pix, hw) = (g.ck(), g.pix(), g.h * g.w);
    let mut scratch = Scratch::<T>::take();
    for grp in 0..g.groups {
        let in_g = &input[grp * g.cg * hw..(grp + 1) * g.cg * hw];
        let out_g = &mut out[grp * g.og * pix..(grp + 1) * g.og * pix];
        let w_g = &weight[grp * g.og * ck..(grp + 1) * g.og * ck];
        if let Some(b) = bias {
            for (o, plane) in out_g.chunks_exact_mut(pix).enumerate() {
                plane.fill(b[grp * g.og + o]);
            }
        }
        let cols: &[T] = if g.pointwise() {
            in_g
        } else {
            let cols = scratch.get(ck * pix);
            im2col(g, in_g, cols);
            cols
        };
        mm(
            par,
            g.og,
            pix,
            ck,
            out_g,
            (pix as isize, 1),
            bias.is_some(),
            w_g,
            (ck as isize, 1),
            cols,
            (pix as isize, 1),
        );
    }
}

/// Forward convolution: `input` `[n, c, h, w]`, `weight` `[o, c/groups, kh,
/// kw]`, optional `bias` `[o]`; returns the output `[n, o, oh, ow]`
/// (contiguous), sizes per [`conv2d_output_size`].
///
/// # Panics
/// On inconsistent shapes or slice lengths, or a non-positive output size.
pub fn conv2d_forward<T: Float>(
    input: &[T],
    in_shape: [usize; 4],
    weight: &[T],
    w_shape: [usize; 4],
    bias: Option<&[T]>,
    p: &Conv2dParams,
) -> Vec<T> {
    const OP: &str = "conv2d_forward";
    let g = Geom::new(OP, in_shape, w_shape, p);
    check_len(OP, "input", input, in_shape);
    check_len(OP, "weight", weight, w_shape);
    if let Some(b) = bias {
        assert!(
            b.len() == g.o,
            "{OP}: bias has {} elements but there are {} output channels",
            b.len(),
            g.o
        );
    }
    let mut out = vec![T::zero(); g.n * g.out_image()];
    if g.n == 0 || g.out_image() == 0 {
        return out;
    }
    let (ii, oi) = (g.in_image(), g.out_image());
    if g.batch_parallel() {
        out.par_chunks_mut(oi).enumerate().for_each(|(b, o)| {
            forward_image(&g, &input[b * ii..(b + 1) * ii], weight, bias, o, false)
        });
    } else {
        for (b, o) in out.chunks_exact_mut(oi).enumerate() {
            forward_image(&g, &input[b * ii..(b + 1) * ii], weight, bias, o, true);
        }
    }
    out
}

/// One image's input gradient into `gin` (`[c, h, w]`, zero on entry).
fn backward_input_image<T: Float>(g: &Geom, gout: &[T], weight: &[T], gin: &mut [T], par: bool) {
    let (ck, pix, hw) = (g.ck(), g.pix(), g.h * g.w);
    let mut scratch = Scratch::<T>::take();
    for grp in 0..g.groups {
        let gout_g = &gout[grp * g.og * pix..(grp + 1) * g.og * pix];
        let w_g = &weight[grp * g.og * ck..(grp + 1) * g.og * ck];
        let gin_g = &mut gin[grp * g.cg * hw..(grp + 1) * g.cg * hw];
        // W_g^T is [ck, og] with row stride 1 and column stride ck.
        if g.pointwise() {
            mm(
                par,
                ck,
                pix,
                g.og,
                gin_g,
                (pix as isize, 1),
                false,
                w_g,
                (1, ck as isize),
                gout_g,
                (pix as isize, 1),
            );
        } else {
            let dcols = scratch.get(ck * pix);
            mm(
                par,
                ck,
                pix,
                g.og,
                dcols,
                (pix as isize, 1),
                false,
                w_g,
                (1, ck as isize),
                gout_g,
                (pix as isize, 1),
            );
            col2im(g, dcols, gin_g);
        }
    }
}

/// Gradient of the convolution with respect to its input: `grad_out` is
/// `[n, o, oh, ow]` (`out_shape`), `weight` `[o, c/groups, kh, kw]`;
/// returns the gradient for an input of shape `in_shape` (contiguous).
///
/// # Panics
/// On inconsistent shapes or slice lengths.
pub fn conv2d_backward_input<T: Float>(
    grad_out: &[T],
    out_shape: [usize; 4],
    weight: &[T],
    w_shape: [usize; 4],
    in_shape: [usize; 4],
    p: &Conv2dParams,
) -> Vec<T> {
    const OP: &str = "conv2d_backward_input";
    let g = Geom::new(OP, in_shape, w_shape, p);
    assert!(
        out_shape == g.out_shape(),
        "{OP}: grad_out shape {out_shape:?} does not match the convolution's output shape {:?}",
        g.out_shape()
    );
    check_len(OP, "grad_out", grad_out, out_shape);
    check_len(OP, "weight", weight, w_shape);
    let mut gin = vec![T::zero(); g.n * g.in_image()];
    if g.n == 0 || g.in_image() == 0 || g.out_image() == 0 {
        return gin;
    }
    let (ii, oi) = (g.in_image(), g.out_image());
    if g.batch_parallel() {
        gin.par_chunks_mut(ii).enumerate().for_each(|(b, gi)| {
            backward_input_image(&g, &grad_out[b * oi..(b + 1) * oi], weight, gi, false)
        });
    } else {
        for (b, gi) in gin.chunks_exact_mut(ii).enumerate() {
            backward_input_image(&g, &grad_out[b * oi..(b + 1) * oi], weight, gi, true);
        }
    }
    gin
}

/// Adds one image's weight gradient into `gw` (`[o, ck]`).
fn backward_weight_image<T: Float>(
    g: &Geom,
    gout: &[T],
    input: &[T],
    gw: &mut [T],
    scratch: &mut Scratch<T>,
    par: bool,
) {
    let (ck, pix, hw) = (g.ck(), g.pix(), g.h * g.w);
    for grp in 0..g.groups {
        let gout_g = &gout[grp * g.og * pix..(grp + 1) * g.og * pix];
        let in_g = &input[grp * g.cg * hw..(grp + 1) * g.cg * hw];
        let gw_g = &mut gw[grp * g.og * ck..(grp + 1) * g.og * ck];
        let cols: &[T] = if g.pointwise() {
            in_g
        } else {
            let cols = scratch.get(ck * pix);
            im2col(g, in_g, cols);
            cols
        };
        // cols^T is [pix, ck] with row stride 1 and column stride pix.
        mm(
            par,
            g.og,
            ck,
            pix,
            gw_g,
            (ck as isize, 1),
            true,
            gout_g,
            (pix as isize, 1),
            cols,
            (1, pix as isize),
        );
    }
}

/// Most partial weight gradients kept at once when reducing over the batch.
const MAX_WEIGHT_CHUNKS: usize = 8;
/// Budget (elements) for all partial weight gradients together.
const WEIGHT_PARTIALS_BUDGET: usize = 1 << 22;

/// Gradient of the convolution with respect to its weight: `grad_out` is
/// `[n, o, oh, ow]` (`out_shape`), `input` `[n, c, h, w]` (`in_shape`);
/// returns the gradient for a weight of shape `w_shape` (contiguous).
///
/// The batch is reduced in a number of chunks that depends only on the
/// shapes, so the result is bit-identical whatever the thread count.
///
/// # Panics
/// On inconsistent shapes or slice lengths.
pub fn conv2d_backward_weight<T: Float>(
    grad_out: &[T],
    out_shape: [usize; 4],
    input: &[T],
    in_shape: [usize; 4],
    w_shape: [usize; 4],
    p: &Conv2dParams,
) -> Vec<T> {
    const OP: &str = "conv2d_backward_weight";
    let g = Geom::new(OP, in_shape, w_shape, p);
    assert!(
        out_shape == g.out_shape(),
        "{OP}: grad_out shape {out_shape:?} does not match the convolution's output shape {:?}",
        g.out_shape()
    );
    check_len(OP, "grad_out", grad_out, out_shape);
    check_len(OP, "input", input, in_shape);
    let wlen: usize = w_shape.iter().product();
    let mut gw = vec![T::zero(); wlen];
    if g.n == 0 || g.out_image() == 0 || wlen == 0 {
        return gw;
    }
    let (ii, oi) = (g.in_image(), g.out_image());
    let chunks =
        g.n.min(MAX_WEIGHT_CHUNKS)
            .min((WEIGHT_PARTIALS_BUDGET / wlen).max(1));
    if chunks <= 1 {
        let mut scratch = Scratch::<T>::take();
        for b in 0..g.n {
            let (go, inp) = (
                &grad_out[b * oi..(b + 1) * oi],
                &input[b * ii..(b + 1) * ii],
            );
            backward_weight_image(&g, go, inp, &mut gw, &mut scratch, true);
        }
        return gw;
    }
    let per_chunk = g.n.div_ceil(chunks);
    let chunks = g.n.div_ceil(per_chunk);
    let par = g.batch_parallel();
    let run_chunk = |ci: usize| -> Vec<T> {
        let mut part = vec![T::zero(); wlen];
        let mut scratch = Scratch::<T>::take();
        for b in ci * per_chunk..((ci + 1) * per_chunk).min(g.n) {
            let (go, inp) = (
                &grad_out[b * oi..(b + 1) * oi],
                &input[b * ii..(b + 1) * ii],
            );
            backward_weight_image(&g, go, inp, &mut part, &mut scratch, !par);
        }
        part
    };
    let parts: Vec<Vec<T>> = if par {
        (0..chunks).into_par_iter().map(run_chunk).collect()
    } else {
        (0..chunks).map(run_chunk).collect()
    };
    for part in &parts {
        for (d, &s) in gw.iter_mut().zip(part) {
            *d = *d + s;
        }
    }
    gw
}

/// Gradient of the convolution with respect to its bias: the sum of
/// `grad_out` (`[n, o, oh, ow]`) over everything but the channel; returns
/// `[o]`.
///
/// # Panics
/// If `grad_out`'s length does not match `out_shape`.
pub fn conv2d_backward_bias<T: Float>(grad_out: &[T], out_shape: [usize; 4]) -> Vec<T> {
    check_len("conv2d_backward_bias", "grad_out", grad_out, out_shape);
    let [n, o, oh, ow] = out_shape;
    let pix = oh * ow;
    let mut gb = vec![T::zero(); o];
    if pix == 0 {
        return gb;
    }
    for b in 0..n {
        for (ch, acc) in gb.iter_mut().enumerate() {
            let plane = &grad_out[(b * o + ch) * pix..(b * o + ch + 1) * pix];
            *acc = *acc + sum(plane);
        }
    }
    gb
}

/// Sum with 8 independent accumulators (vectorisable, and more accurate
/// than one running sum).
fn sum<T: Float>(xs: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let mut it = xs.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            acc[i] = acc[i] + c[i];
        }
    }
    let mut s = it.remainder().iter().fold(T::zero(), |a, &x| a + x);
    for a in acc {
        s = s + a;
    }
    s
}
