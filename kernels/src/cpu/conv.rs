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
//! (the input plane *is* the column matrix). Two routes avoid im2col
//! where it costs as much as the product: Winograd for 3×3 layers with
//! many channels (`winograd.rs`) and direct kernels for layers with few
//! input channels (`conv_direct.rs`).
//!
//! Large batches are split across rayon's pool by image (each product then
//! runs single-threaded on a per-thread im2col buffer that is reused across
//! calls); small batches of large images run image after image with the
//! products themselves multi-threaded.

use std::any::TypeId;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::check_len;
use super::conv_direct::{self, DirectGeom, DirectShape};
use super::matmul::{Mat, gemm_mat};
use super::parallel::{PAR_THRESHOLD, num_threads, par_chunks_mut_map_with, zeroed};
use super::scratch::Scratch;
use super::winograd::{self, WinoGeom};
use crate::Float;

/// How convolutions are computed, chosen once per process from
/// `KILN_CONV_ALGO`: `auto` (the default) takes Winograd F(2×2, 3×3) for
/// 3×3, stride-1 layers with 16 or more channels, the direct kernels of
/// `conv_direct.rs` for the forward pass and weight gradient of `f32`
/// layers with few input channels, and
/// im2col + matrix product otherwise; `im2col` always takes the latter (to
/// compare, or to get im2col's rounding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Winograd or the direct kernels where they pay, im2col elsewhere.
    Auto,
    /// im2col + matrix product for every convolution.
    Im2col,
}

/// The process's [`ConvAlgorithm`] (read from `KILN_CONV_ALGO` on first use;
/// an unknown value panics naming the accepted ones).
pub fn conv_algorithm() -> ConvAlgorithm {
    static ALGO: std::sync::OnceLock<ConvAlgorithm> = std::sync::OnceLock::new();
    *ALGO.get_or_init(|| match std::env::var("KILN_CONV_ALGO").as_deref() {
        Err(_) | Ok("") | Ok("auto") => ConvAlgorithm::Auto,
        Ok("im2col") => ConvAlgorithm::Im2col,
        Ok(other) => panic!("KILN_CONV_ALGO={other:?}: expected \"auto\" or \"im2col\""),
    })
}

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
/// `kernel`-sized kernel: [`crate::window::output_size`] along each axis,
/// `(in + 2*pad - dilation*(k-1) - 1) / stride + 1`. `None` when that is not
/// positive or a stride, dilation or kernel size is zero.
pub fn conv2d_output_size(
    in_hw: [usize; 2],
    kernel: [usize; 2],
    p: &Conv2dParams,
) -> Option<[usize; 2]> {
    let axis = |d: usize| {
        crate::window::output_size(
            in_hw[d],
            kernel[d],
            p.stride[d],
            p.padding[d],
            p.dilation[d],
            false,
        )
    };
    Some([axis(0)?, axis(1)?])
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
    /// The Winograd geometry when this convolution takes that route (see
    /// [`winograd`](super::winograd) and [`conv_algorithm`]).
    fn winograd(&self) -> Option<WinoGeom> {
        let geo = WinoGeom {
            n: self.n,
            c: self.c,
            h: self.h,
            w: self.w,
            o: self.o,
            oh: self.oh,
            ow: self.ow,
            ph: self.ph,
            pw: self.pw,
        };
        let kernel = [self.kh, self.kw];
        let eligible = geo.eligible(kernel, [self.sh, self.sw], [self.dh, self.dw], self.groups);
        (eligible && conv_algorithm() == ConvAlgorithm::Auto).then_some(geo)
    }
    /// The direct geometry when this convolution takes that route (`f32`
    /// layers with few input channels: see [`conv_direct`]).
    fn direct<T: 'static>(&self) -> Option<DirectGeom> {
        if TypeId::of::<T>() != TypeId::of::<f32>() || conv_algorithm() != ConvAlgorithm::Auto {
            return None;
        }
        DirectGeom::new(DirectShape {
            c: self.c,
            h: self.h,
            w: self.w,
            o: self.o,
            kh: self.kh,
            kw: self.kw,
            oh: self.oh,
            ow: self.ow,
            stride: [self.sh, self.sw],
            padding: [self.ph, self.pw],
            dilation: [self.dh, self.dw],
            groups: self.groups,
        })
    }
    /// Panics naming `op` unless `grad_out` is this convolution's output
    /// gradient: shape `out_shape`, equal to the output's, and as many
    /// elements.
    fn check_grad_out<T>(&self, op: &str, grad_out: &[T], out_shape: [usize; 4]) {
        assert!(
            out_shape == self.out_shape(),
            "{op}: grad_out shape {out_shape:?} does not match the convolution's output shape {:?}",
            self.out_shape()
        );
        check_len(op, "grad_out", grad_out, out_shape);
    }
    /// Whether to spread images over the pool (products then serial).
    fn batch_parallel(&self) -> bool {
        let t = num_threads();
        t > 1 && self.n >= t && self.n.saturating_mul(self.macs_per_image()) >= CONV_PAR_THRESHOLD
    }
}

/// Multiply-adds per call from which images are spread across threads. A
/// whole pass (im2col + product + scatter) costs ~0.3 `PAR_THRESHOLD`
/// units per multiply-add single-threaded (LeNet conv2 forward: 7.7 M
/// multiply-adds in ~300 us), so this is the same amount of work as
/// `PAR_THRESHOLD` elementwise ops. LeNet's smallest pass (conv1 at batch
/// 64, 7.5 M) is far above it.
const CONV_PAR_THRESHOLD: usize = 3 * PAR_THRESHOLD;

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

/// `dst[r * ds + i] (op)= src[r * ss + i]` for `r < rows`, `i < N`, with
/// `N` known at compile time so each row is a few inline vector moves (a
/// `memcpy` call per 10-element im2col segment dominated the pass).
#[inline(always)]
fn rows_fixed<T: Float, const N: usize, const ADD: bool>(
    dst: &mut [T],
    ds: usize,
    src: &[T],
    ss: usize,
    rows: usize,
) {
    for r in 0..rows {
        let d: &mut [T; N] = (&mut dst[r * ds..r * ds + N]).try_into().expect("N");
        let s: &[T; N] = (&src[r * ss..r * ss + N]).try_into().expect("N");
        if ADD {
            for i in 0..N {
                d[i] = d[i] + s[i];
            }
        } else {
            *d = *s;
        }
    }
}

/// Copies (or with `ADD`, adds) `rows` runs of `len` elements from `src`
/// (runs `ss` apart) to `dst` (runs `ds` apart).
#[inline(always)]
fn rows_op<T: Float, const ADD: bool>(
    dst: &mut [T],
    ds: usize,
    src: &[T],
    ss: usize,
    rows: usize,
    len: usize,
) {
    macro_rules! fixed {
        ($($n:literal)*) => {
            match len {
                $($n => return rows_fixed::<T, $n, ADD>(dst, ds, src, ss, rows),)*
                _ => {}
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
    for r in 0..rows {
        let d = &mut dst[r * ds..r * ds + len];
        let s = &src[r * ss..r * ss + len];
        if ADD {
            add_run(d, s);
        } else {
            d.copy_from_slice(s);
        }
    }
}

/// Adds a run: `dst[i] += src[i]`.
#[inline(always)]
fn add_run<T: Float>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = *d + s;
    }
}

/// Fills one image's part of the column matrix from one group's input
/// planes `src` (`[cg, h, w]`): element `((c, ki, kj), p)` goes to
/// `cols[row * ld + p]`, `row` counting `(c, ki, kj)` (`cols` already starts
/// at the image's column offset).
fn im2col<T: Float>(g: &Geom, src: &[T], cols: &mut [T], ld: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::isa::avx512() {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { im2col_avx512(g, src, cols, ld) };
        }
        if super::isa::avx2_fma() {
            // SAFETY: the CPU has AVX2.
            return unsafe { im2col_avx2(g, src, cols, ld) };
        }
    }
    im2col_impl(g, src, cols, ld)
}

/// [`im2col`] compiled for AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn im2col_avx512<T: Float>(g: &Geom, src: &[T], cols: &mut [T], ld: usize) {
    im2col_impl(g, src, cols, ld)
}

/// [`im2col`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn im2col_avx2<T: Float>(g: &Geom, src: &[T], cols: &mut [T], ld: usize) {
    im2col_impl(g, src, cols, ld)
}

#[inline(always)]
fn im2col_impl<T: Float>(g: &Geom, src: &[T], cols: &mut [T], ld: usize) {
    let (h, w, oh, ow, pix) = (g.h, g.w, g.oh, g.ow, g.pix());
    let zero = T::zero();
    // Stride 1 with output width = input width: consecutive output rows
    // read consecutive input rows with the same shift, so a whole kernel
    // row is one contiguous copy; columns that fell outside the input are
    // re-zeroed afterwards.
    let flat = g.sw == 1 && g.sh == 1 && ow == w;
    let mut row_idx = 0;
    for c in 0..g.cg {
        let plane = &src[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            let y_off = (ki * g.dh) as isize - g.ph as isize;
            let (y_lo, y_hi) = valid_range(oh, g.sh, y_off, h);
            for kj in 0..g.kw {
                let row = &mut cols[row_idx * ld..row_idx * ld + pix];
                row_idx += 1;
                let x_off = (kj * g.dw) as isize - g.pw as isize;
                let (x_lo, x_hi) = valid_range(ow, g.sw, x_off, w);
                if y_lo == y_hi || x_lo == x_hi {
                    row.fill(zero);
                    continue;
                }
                row[..y_lo * ow].fill(zero);
                row[y_hi * ow..].fill(zero);
                if flat {
                    let (d0, d1) = (y_lo * ow + x_lo, (y_hi - 1) * ow + x_hi);
                    let s0 = (d0 as isize + y_off * w as isize + x_off) as usize;
                    row[d0..d1].copy_from_slice(&plane[s0..s0 + (d1 - d0)]);
                    for oy in y_lo..y_hi {
                        row[oy * ow..oy * ow + x_lo].fill(zero);
                        row[oy * ow + x_hi..(oy + 1) * ow].fill(zero);
                    }
                    continue;
                }
                if x_lo > 0 || x_hi < ow {
                    for oy in y_lo..y_hi {
                        row[oy * ow..oy * ow + x_lo].fill(zero);
                        row[oy * ow + x_hi..(oy + 1) * ow].fill(zero);
                    }
                }
                let x0 = ((x_lo * g.sw) as isize + x_off) as usize;
                let iy0 = ((y_lo * g.sh) as isize + y_off) as usize;
                let src = &plane[iy0 * w + x0..];
                let dst = &mut row[y_lo * ow + x_lo..];
                if g.sw == 1 {
                    rows_op::<T, false>(dst, ow, src, g.sh * w, y_hi - y_lo, x_hi - x_lo);
                    continue;
                }
                for r in 0..y_hi - y_lo {
                    let s = src[r * g.sh * w..].iter().step_by(g.sw);
                    for (d, s) in dst[r * ow..r * ow + x_hi - x_lo].iter_mut().zip(s) {
                        *d = *s;
                    }
                }
            }
        }
    }
}

/// Adds one image's part of a column matrix back onto one group's input
/// planes `dst` (the adjoint of [`im2col`], same addressing). The entries
/// of `cols` that correspond to padding are overwritten with zeros.
fn col2im<T: Float>(g: &Geom, cols: &mut [T], ld: usize, dst: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::isa::avx512() {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { col2im_avx512(g, cols, ld, dst) };
        }
        if super::isa::avx2_fma() {
            // SAFETY: the CPU has AVX2.
            return unsafe { col2im_avx2(g, cols, ld, dst) };
        }
    }
    col2im_impl(g, cols, ld, dst)
}

/// [`col2im`] compiled for AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn col2im_avx512<T: Float>(g: &Geom, cols: &mut [T], ld: usize, dst: &mut [T]) {
    col2im_impl(g, cols, ld, dst)
}

/// [`col2im`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn col2im_avx2<T: Float>(g: &Geom, cols: &mut [T], ld: usize, dst: &mut [T]) {
    col2im_impl(g, cols, ld, dst)
}

#[inline(always)]
fn col2im_impl<T: Float>(g: &Geom, cols: &mut [T], ld: usize, dst: &mut [T]) {
    let (h, w, oh, ow, pix) = (g.h, g.w, g.oh, g.ow, g.pix());
    let zero = T::zero();
    let flat = g.sw == 1 && g.sh == 1 && ow == w;
    let mut row_idx = 0;
    for c in 0..g.cg {
        let plane = &mut dst[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            let y_off = (ki * g.dh) as isize - g.ph as isize;
            let (y_lo, y_hi) = valid_range(oh, g.sh, y_off, h);
            for kj in 0..g.kw {
                let row = &mut cols[row_idx * ld..row_idx * ld + pix];
                row_idx += 1;
                let x_off = (kj * g.dw) as isize - g.pw as isize;
                let (x_lo, x_hi) = valid_range(ow, g.sw, x_off, w);
                if y_lo == y_hi || x_lo == x_hi {
                    continue;
                }
                if flat {
                    // Zero what belongs to padding, then one contiguous add.
                    for oy in y_lo..y_hi {
                        row[oy * ow..oy * ow + x_lo].fill(zero);
                        row[oy * ow + x_hi..(oy + 1) * ow].fill(zero);
                    }
                    let (d0, d1) = (y_lo * ow + x_lo, (y_hi - 1) * ow + x_hi);
                    let s0 = (d0 as isize + y_off * w as isize + x_off) as usize;
                    add_run(&mut plane[s0..s0 + (d1 - d0)], &row[d0..d1]);
                    continue;
                }
                let x0 = ((x_lo * g.sw) as isize + x_off) as usize;
                let iy0 = ((y_lo * g.sh) as isize + y_off) as usize;
                let dst = &mut plane[iy0 * w + x0..];
                let src = &row[y_lo * ow + x_lo..];
                if g.sw == 1 {
                    rows_op::<T, true>(dst, g.sh * w, src, ow, y_hi - y_lo, x_hi - x_lo);
                    continue;
                }
                for r in 0..y_hi - y_lo {
                    let d = dst[r * g.sh * w..].iter_mut().step_by(g.sw);
                    for (d, &s) in d.zip(&src[r * ow..r * ow + x_hi - x_lo]) {
                        *d = *d + s;
                    }
                }
            }
        }
    }
}

/// Output pixels from which one image alone makes an efficient product;
/// below it several images share one product (their columns side by side).
const MIN_PRODUCT_COLS: usize = 384;
/// Upper bound (bytes) on one chunk's column matrix, to stay in L2.
const MAX_CHUNK_BYTES: usize = 512 * 1024;

/// Images per chunk. Depends on the shapes only (not on the thread count),
/// so results are bit-identical whatever the pool size: a chunk's product
/// sums over `k` in an order fixed by its shape.
fn images_per_chunk<T>(g: &Geom) -> usize {
    let pix = g.pix().max(1);
    let want = MIN_PRODUCT_COLS.div_ceil(pix);
    let col_bytes = (g.ck() * pix * std::mem::size_of::<T>()).max(1);
    let fit = (MAX_CHUNK_BYTES / col_bytes).max(1);
    let mut nb = want.min(fit).min(g.n).max(1);
    // Prefer a chunk count that splits evenly over an even number of
    // threads (a 6/5 split of 11 chunks wastes ~10% on two cores).
    if g.n > nb {
        let mut b = nb;
        while b > 1 && !g.n.div_ceil(b).is_multiple_of(2) {
            b -= 1;
        }
        if b * 2 >= nb {
            nb = b;
        }
    }
    nb
}

/// A chunk of `nb` consecutive images starting at image `b0`.
struct Chunk {
    b0: usize,
    nb: usize,
}

/// Allocates the `n * per_image` output and runs `f(chunk, out_part, par)`
/// over image chunks, where `out_part` is the chunk's part of the output,
/// zeroed; in parallel (`par == false`: products serial) or serially
/// (`par == true`: products may use the pool).
///
/// Each chunk zeroes its own part right before using it, instead of one
/// serial `memset` of the whole output up front (~12% of LeNet's conv1
/// forward): the zeroing is split across threads and the part is still in
/// cache when the product writes it.
fn for_chunks<T: Float, F>(g: &Geom, per_image: usize, f: F) -> Vec<T>
where
    F: Fn(Chunk, &mut [T], bool) + Send + Sync,
{
    super::alloc::keep_freed_buffers();
    let len = g.n * per_image;
    if len == 0 {
        return Vec::new();
    }
    let nb = images_per_chunk::<T>(g);
    let mut out: Vec<T> = Vec::with_capacity(len);
    let run = |i: usize, part: &mut [MaybeUninit<T>], par: bool| {
        let part = zeroed(part);
        let c = Chunk {
            b0: i * nb,
            nb: part.len() / per_image,
        };
        f(c, part, par)
    };
    let spare = &mut out.spare_capacity_mut()[..len];
    if g.batch_parallel() && g.n > nb {
        spare
            .par_chunks_mut(nb * per_image)
            .enumerate()
            .for_each(|(i, part)| run(i, part, false));
    } else {
        for (i, part) in spare.chunks_mut(nb * per_image).enumerate() {
            run(i, part, true);
        }
    }
    // SAFETY: the chunks above cover `0..len` and `zeroed` initialised each
    // of them (a panic would have unwound past this point).
    unsafe { out.set_len(len) };
    out
}

/// Forward pass of one chunk of images into `out` (`[nb, o, oh, ow]`).
fn forward_chunk<T: Float>(
    g: &Geom,
    ch: Chunk,
    input: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
    par: bool,
) {
    let (ck, pix, hw) = (g.ck(), g.pix(), g.h * g.w);
    let (ii, oi) = (g.in_image(), g.out_image());
    let ld = ch.nb * pix;
    let direct = ch.nb == 1;
    let mut scratch = Scratch::<T>::take();
    let need = if direct && g.pointwise() {
        0
    } else {
        ck * ld + if direct { 0 } else { g.og * ld }
    };
    let (cols, tmp) = scratch
        .get(need)
        .split_at_mut(if need == 0 { 0 } else { ck * ld });
    for grp in 0..g.groups {
        let w_g = &weight[grp * g.og * ck..(grp + 1) * g.og * ck];
        let w_g = Mat::row_major(w_g, g.og, ck, ck);
        let in_g = |b: usize| &input[(ch.b0 + b) * ii + grp * g.cg * hw..][..g.cg * hw];
        let cols: &[T] = if direct && g.pointwise() {
            in_g(0)
        } else {
            for b in 0..ch.nb {
                im2col(g, in_g(b), &mut cols[b * pix..], ld);
            }
            cols
        };
        if direct {
            let out_g = &mut out[grp * g.og * pix..(grp + 1) * g.og * pix];
            if let Some(bias) = bias {
                for (o, plane) in out_g.chunks_exact_mut(pix).enumerate() {
                    plane.fill(bias[grp * g.og + o]);
                }
            }
            let out_g = Mat::row_major(out_g, g.og, pix, pix);
            gemm_mat(
                par,
                out_g,
                bias.is_some(),
                w_g,
                Mat::row_major(cols, ck, pix, pix),
            );
        } else {
            let cols = Mat::row_major(cols, ck, ld, ld);
            gemm_mat(
                par,
                Mat::row_major(&mut *tmp, g.og, ld, ld),
                false,
                w_g,
                cols,
            );
            for b in 0..ch.nb {
                for o in 0..g.og {
                    let src = &tmp[o * ld + b * pix..][..pix];
                    let dst = &mut out[b * oi + (grp * g.og + o) * pix..][..pix];
                    match bias {
                        Some(bias) => {
                            let bv = bias[grp * g.og + o];
                            for (d, &s) in dst.iter_mut().zip(src) {
                                *d = s + bv;
                            }
                        }
                        None => dst.copy_from_slice(src),
                    }
                }
            }
        }
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
    if g.n == 0 || g.out_image() == 0 {
        return vec![T::zero(); g.n * g.out_image()];
    }
    if let Some(wg) = g.winograd() {
        super::alloc::keep_freed_buffers();
        let mut out = vec![T::zero(); g.n * g.out_image()];
        winograd::forward(&wg, input, weight, bias, &mut out);
        return out;
    }
    if let Some(d) = g.direct::<T>() {
        let (input, ii) = (as_f32(input), g.in_image());
        let packed = conv_direct::pack_weight(&d, as_f32(weight));
        let bias = bias.map(as_f32);
        return for_chunks(&g, g.out_image(), |ch, out, _| {
            let images = &input[ch.b0 * ii..(ch.b0 + ch.nb) * ii];
            conv_direct::forward(&d, images, &packed, bias, as_f32_mut(out));
        });
    }
    for_chunks(&g, g.out_image(), |ch, o, par| {
        forward_chunk(&g, ch, input, weight, bias, o, par)
    })
}

/// What [`conv2d_forward_keeping`] keeps of a forward pass for
/// [`conv2d_backward_reusing`]: a Winograd layer's transformed weights and
/// input (about 4× the input's size), so that the backward pass does not
/// transform them again.
pub struct ConvKept<T: Float> {
    shapes: ([usize; 4], [usize; 4], Conv2dParams),
    transformed: winograd::Transformed<T>,
}

/// [`conv2d_forward`], also returning what the backward pass can reuse
/// (`None` for a layer that does not take the Winograd route).
///
/// # Panics
/// As [`conv2d_forward`].
pub fn conv2d_forward_keeping<T: Float>(
    input: &[T],
    in_shape: [usize; 4],
    weight: &[T],
    w_shape: [usize; 4],
    bias: Option<&[T]>,
    p: &Conv2dParams,
) -> (Vec<T>, Option<ConvKept<T>>) {
    const OP: &str = "conv2d_forward";
    let g = Geom::new(OP, in_shape, w_shape, p);
    let whole = input.len() == in_shape.iter().product::<usize>()
        && weight.len() == w_shape.iter().product::<usize>()
        && bias.is_none_or(|b| b.len() == g.o)
        && g.n > 0
        && g.out_image() > 0;
    match g.winograd() {
        Some(wg) if whole => {
            super::alloc::keep_freed_buffers();
            let mut out = vec![T::zero(); g.n * g.out_image()];
            let kept = winograd::forward_keeping(&wg, input, weight, bias, &mut out, true);
            let kept = kept.map(|transformed| ConvKept {
                shapes: (in_shape, w_shape, *p),
                transformed,
            });
            (out, kept)
        }
        // `conv2d_forward` checks the arguments and handles empty shapes.
        _ => (
            conv2d_forward(input, in_shape, weight, w_shape, bias, p),
            None,
        ),
    }
}

/// [`conv2d_backward_input_and_weight`] reusing a forward pass's
/// [`ConvKept`], which stands in for the forward's input and weight.
///
/// # Panics
/// As [`conv2d_backward_input_and_weight`], and if `kept` is from a
/// convolution of other shapes.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_reusing<T: Float>(
    kept: &ConvKept<T>,
    grad_out: &[T],
    out_shape: [usize; 4],
    in_shape: [usize; 4],
    w_shape: [usize; 4],
    p: &Conv2dParams,
) -> (Vec<T>, Vec<T>) {
    const OP: &str = "conv2d_backward";
    assert!(
        kept.shapes == (in_shape, w_shape, *p),
        "{OP}: kept transforms of input {:?}, weight {:?}, {:?} used for input {in_shape:?}, \
         weight {w_shape:?}, {p:?}",
        kept.shapes.0,
        kept.shapes.1,
        kept.shapes.2
    );
    let g = Geom::new(OP, in_shape, w_shape, p);
    g.check_grad_out(OP, grad_out, out_shape);
    let wg = g
        .winograd()
        .expect("kept transforms come from a Winograd layer");
    super::alloc::keep_freed_buffers();
    let mut gin = vec![T::zero(); g.n * g.in_image()];
    let mut gw = vec![T::zero(); w_shape.iter().product()];
    winograd::backward_reusing(&wg, grad_out, &kept.transformed, &mut gin, &mut gw);
    (gin, gw)
}

/// Input gradient of one chunk of images into `gin` (`[nb, c, h, w]`, zero
/// on entry).
fn backward_input_chunk<T: Float>(
    g: &Geom,
    ch: Chunk,
    gout: &[T],
    weight: &[T],
    gin: &mut [T],
    par: bool,
) {
    let (ck, pix, hw) = (g.ck(), g.pix(), g.h * g.w);
    let (ii, oi) = (g.in_image(), g.out_image());
    let ld = ch.nb * pix;
    let direct = ch.nb == 1;
    let mut scratch = Scratch::<T>::take();
    let need = if direct && g.pointwise() {
        0
    } else {
        ck * ld + if direct { 0 } else { g.og * ld }
    };
    let (dcols, tmp) = scratch
        .get(need)
        .split_at_mut(if need == 0 { 0 } else { ck * ld });
    for grp in 0..g.groups {
        let w_g = &weight[grp * g.og * ck..(grp + 1) * g.og * ck];
        let wt = Mat::row_major(w_g, g.og, ck, ck).t();
        let gout_g: &[T] = if direct {
            &gout[ch.b0 * oi + grp * g.og * pix..][..g.og * pix]
        } else {
            // Gather the chunk's output gradients side by side: [og, nb*pix].
            for b in 0..ch.nb {
                for o in 0..g.og {
                    let src = &gout[(ch.b0 + b) * oi + (grp * g.og + o) * pix..][..pix];
                    tmp[o * ld + b * pix..][..pix].copy_from_slice(src);
                }
            }
            tmp
        };
        if direct && g.pointwise() {
            let gin_g = &mut gin[grp * g.cg * hw..(grp + 1) * g.cg * hw];
            let gout_g = Mat::row_major(gout_g, g.og, pix, pix);
            gemm_mat(par, Mat::row_major(gin_g, ck, pix, pix), false, wt, gout_g);
            continue;
        }
        let gout_g = Mat::row_major(gout_g, g.og, ld, ld);
        gemm_mat(
            par,
            Mat::row_major(&mut *dcols, ck, ld, ld),
            false,
            wt,
            gout_g,
        );
        for b in 0..ch.nb {
            let gin_g = &mut gin[b * ii + grp * g.cg * hw..][..g.cg * hw];
            col2im(g, &mut dcols[b * pix..], ld, gin_g);
        }
    }
}

/// Both gradients of the convolution, of its input and of its weight (as
/// [`conv2d_backward_input`] and [`conv2d_backward_weight`] return them),
/// in one call: 3×3 layers on the Winograd path transform `grad_out` once
/// for the two.
///
/// # Panics
/// On inconsistent shapes or slice lengths.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_input_and_weight<T: Float>(
    grad_out: &[T],
    out_shape: [usize; 4],
    input: &[T],
    in_shape: [usize; 4],
    weight: &[T],
    w_shape: [usize; 4],
    p: &Conv2dParams,
) -> (Vec<T>, Vec<T>) {
    const OP: &str = "conv2d_backward";
    let g = Geom::new(OP, in_shape, w_shape, p);
    let whole = out_shape == g.out_shape()
        && grad_out.len() == out_shape.iter().product::<usize>()
        && input.len() == in_shape.iter().product::<usize>()
        && weight.len() == w_shape.iter().product::<usize>()
        && g.n > 0
        && g.in_image() > 0
        && g.out_image() > 0;
    match g.winograd() {
        Some(wg) if whole => {
            super::alloc::keep_freed_buffers();
            let mut gin = vec![T::zero(); g.n * g.in_image()];
            let mut gw = vec![T::zero(); w_shape.iter().product()];
            winograd::backward(&wg, grad_out, input, weight, &mut gin, &mut gw);
            (gin, gw)
        }
        // The separate passes check the arguments and handle empty shapes.
        _ => (
            conv2d_backward_input(grad_out, out_shape, weight, w_shape, in_shape, p),
            conv2d_backward_weight(grad_out, out_shape, input, in_shape, w_shape, p),
        ),
    }
}

/// The gradients [`conv2d_backward`] returns, each present when asked for.
#[derive(Debug)]
pub struct ConvGrads<T> {
    /// Of the input, `[n, c, h, w]`.
    pub input: Option<Vec<T>>,
    /// Of the weight, `[o, c/groups, kh, kw]`.
    pub weight: Option<Vec<T>>,
    /// Of the bias, `[o]`.
    pub bias: Option<Vec<T>>,
}

/// The gradients a training step asks for (`need`: input, weight, bias),
/// each computed the cheapest way the others allow: the input and weight
/// gradients of a Winograd layer share one transform of `grad_out`
/// ([`conv2d_backward_input_and_weight`]), and the weight and bias
/// gradients share the passes over it on the direct route
/// ([`conv2d_backward_weight_and_bias`]).
///
/// # Panics
/// On inconsistent shapes or slice lengths.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward<T: Float>(
    grad_out: &[T],
    out_shape: [usize; 4],
    input: &[T],
    in_shape: [usize; 4],
    weight: &[T],
    w_shape: [usize; 4],
    p: &Conv2dParams,
    need: [bool; 3],
) -> ConvGrads<T> {
    const OP: &str = "conv2d_backward";
    let g = Geom::new(OP, in_shape, w_shape, p);
    if need[0] && need[1] && g.winograd().is_some() {
        let (gi, gw) = conv2d_backward_input_and_weight(
            grad_out, out_shape, input, in_shape, weight, w_shape, p,
        );
        return ConvGrads {
            input: Some(gi),
            weight: Some(gw),
            bias: need[2].then(|| conv2d_backward_bias(grad_out, out_shape)),
        };
    }
    let gi =
        need[0].then(|| conv2d_backward_input(grad_out, out_shape, weight, w_shape, in_shape, p));
    let (gw, gb) = match (need[1], need[2]) {
        (true, true) => {
            let (gw, gb) =
                conv2d_backward_weight_and_bias(grad_out, out_shape, input, in_shape, w_shape, p);
            (Some(gw), Some(gb))
        }
        (true, false) => (
            Some(conv2d_backward_weight(
                grad_out, out_shape, input, in_shape, w_shape, p,
            )),
            None,
        ),
        (false, true) => (None, Some(conv2d_backward_bias(grad_out, out_shape))),
        (false, false) => (None, None),
    };
    ConvGrads {
        input: gi,
        weight: gw,
        bias: gb,
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
    g.check_grad_out(OP, grad_out, out_shape);
    check_len(OP, "weight", weight, w_shape);
    if g.n == 0 || g.in_image() == 0 || g.out_image() == 0 {
        return vec![T::zero(); g.n * g.in_image()];
    }
    if let Some(wg) = g.winograd() {
        super::alloc::keep_freed_buffers();
        let mut gin = vec![T::zero(); g.n * g.in_image()];
        winograd::backward_input(&wg, grad_out, weight, &mut gin);
        return gin;
    }
    for_chunks(&g, g.in_image(), |ch, gi, par| {
        backward_input_chunk(&g, ch, grad_out, weight, gi, par)
    })
}

/// Adds one chunk's weight gradient into `gwt` (per group, `[ck, og]`:
/// transposed).
fn backward_weight_chunk<T: Float>(
    g: &Geom,
    ch: Chunk,
    gout: &[T],
    input: &[T],
    gwt: &mut [T],
    par: bool,
) {
    let (ck, pix, hw) = (g.ck(), g.pix(), g.h * g.w);
    let (ii, oi) = (g.in_image(), g.out_image());
    let ld = ch.nb * pix;
    let direct = ch.nb == 1;
    // Layout of the product, by measurement (gemm 0.19, AVX-512, f32): with
    // 16 or more output channels, `grad_out` gathered transposed ([ld, og])
    // is 1.1x (LeNet conv2) to 9x (64 channels, 3x3x3 kernel) faster than
    // as is; below that (LeNet conv1: 6 channels) the plain layout is ~6x
    // faster than the transposed one.
    let transposed = g.og >= 16;
    let cols_len = if direct && g.pointwise() { 0 } else { ck * ld };
    let tmp_len = if direct && !transposed { 0 } else { g.og * ld };
    let mut scratch = Scratch::<T>::take();
    let (cols, tmp) = scratch.get(cols_len + tmp_len).split_at_mut(cols_len);
    for grp in 0..g.groups {
        let in_g = |b: usize| &input[(ch.b0 + b) * ii + grp * g.cg * hw..][..g.cg * hw];
        let cols: &[T] = if direct && g.pointwise() {
            in_g(0)
        } else {
            for b in 0..ch.nb {
                im2col(g, in_g(b), &mut cols[b * pix..], ld);
            }
            cols
        };
        let gout_b = |b: usize| &gout[(ch.b0 + b) * oi + grp * g.og * pix..][..g.og * pix];
        let gout_g = if transposed {
            // tmp[(b * pix + p) * og + o] = gout[b, o, p]
            for b in 0..ch.nb {
                let src = gout_b(b);
                for (p, row) in tmp[b * pix * g.og..(b + 1) * pix * g.og]
                    .chunks_exact_mut(g.og)
                    .enumerate()
                {
                    for (o, d) in row.iter_mut().enumerate() {
                        *d = src[o * pix + p];
                    }
                }
            }
            Mat::row_major(&*tmp, ld, g.og, g.og).t()
        } else if direct {
            Mat::row_major(gout_b(0), g.og, pix, pix)
        } else {
            for b in 0..ch.nb {
                let src = gout_b(b);
                for o in 0..g.og {
                    tmp[o * ld + b * pix..][..pix].copy_from_slice(&src[o * pix..][..pix]);
                }
            }
            Mat::row_major(&*tmp, g.og, ld, ld)
        };
        // `gwt` holds each group's gradient transposed, [ck, og]: with the
        // output-channel index contiguous the product packs less (10-20%
        // faster than writing [og, ck]).
        let gw_g = &mut gwt[grp * g.og * ck..(grp + 1) * g.og * ck];
        let gw_g = Mat::row_major(gw_g, ck, g.og, g.og).t();
        gemm_mat(
            par,
            gw_g,
            true,
            gout_g,
            Mat::row_major(cols, ck, ld, ld).t(),
        );
    }
}

/// Most partial weight gradients kept at once when reducing over the batch.
const MAX_WEIGHT_CHUNKS: usize = 16;
/// Budget (elements) for all partial weight gradients together.
const WEIGHT_PARTIALS_BUDGET: usize = 1 << 22;

/// Gradient of the convolution with respect to its weight: `grad_out` is
/// `[n, o, oh, ow]` (`out_shape`), `input` `[n, c, h, w]` (`in_shape`);
/// returns the gradient for a weight of shape `w_shape` (contiguous).
///
/// The batch is reduced in chunks fixed by the shapes alone (partial sums
/// added in chunk order), so the result is bit-identical whatever the
/// thread count.
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
    g.check_grad_out(OP, grad_out, out_shape);
    check_len(OP, "input", input, in_shape);
    backward_weight(&g, grad_out, input, false).0
}

/// The weight and bias gradients together ([`conv2d_backward_weight`],
/// [`conv2d_backward_bias`]): on the direct route (see
/// [`ConvAlgorithm`]) the bias sums are taken per chunk of images, while
/// that part of `grad_out` is in cache, instead of in a pass of their own.
///
/// # Panics
/// On inconsistent shapes or slice lengths.
pub fn conv2d_backward_weight_and_bias<T: Float>(
    grad_out: &[T],
    out_shape: [usize; 4],
    input: &[T],
    in_shape: [usize; 4],
    w_shape: [usize; 4],
    p: &Conv2dParams,
) -> (Vec<T>, Vec<T>) {
    const OP: &str = "conv2d_backward_weight";
    let g = Geom::new(OP, in_shape, w_shape, p);
    g.check_grad_out(OP, grad_out, out_shape);
    check_len(OP, "input", input, in_shape);
    let (gw, gb) = backward_weight(&g, grad_out, input, true);
    let gb = gb.unwrap_or_else(|| conv2d_backward_bias(grad_out, out_shape));
    (gw, gb)
}

/// The weight gradient (`[o, c/groups, kh, kw]`) of checked arguments and,
/// when `bias` is asked for and the route takes it along, the bias
/// gradient.
fn backward_weight<T: Float>(
    g: &Geom,
    grad_out: &[T],
    input: &[T],
    bias: bool,
) -> (Vec<T>, Option<Vec<T>>) {
    let wlen = g.o * g.ck();
    let mut gw = vec![T::zero(); wlen];
    if g.n == 0 || g.out_image() == 0 || wlen == 0 {
        return (gw, None);
    }
    if let Some(wg) = g.winograd() {
        winograd::backward_weight(&wg, grad_out, input, &mut gw);
        return (gw, None);
    }
    // Direct kernels take each partial sum's images in one call: a
    // register tile then sums over all of them before its lanes are
    // reduced and stored.
    let direct = g.direct::<T>();
    if whole_batch_weight_grad::<T>(g) && direct.is_none() {
        backward_weight_whole(g, grad_out, input, &mut gw);
        return (gw, None);
    }
    // A partial sum holds the weight gradient ([groups][ck][og]), then on
    // the direct route the bias gradient.
    let bias = bias && direct.is_some();
    let plen = wlen + if bias { g.o } else { 0 };
    let nb = match direct {
        Some(_) => g.n.div_ceil(MAX_WEIGHT_CHUNKS),
        None => images_per_chunk::<T>(g),
    };
    let n_chunks = g.n.div_ceil(nb);
    // Images are grouped into `parts` partial sums (each a run of chunks).
    let parts = n_chunks
        .min(MAX_WEIGHT_CHUNKS)
        .min((WEIGHT_PARTIALS_BUDGET / plen).max(1));
    let chunk = |ci: usize| Chunk {
        b0: ci * nb,
        nb: nb.min(g.n - ci * nb),
    };
    let run_chunk = |ch: Chunk, part: &mut [T], par| match &direct {
        Some(d) => {
            let (ii, oi) = (g.in_image(), g.out_image());
            let images = &as_f32(input)[ch.b0 * ii..(ch.b0 + ch.nb) * ii];
            let gout = &as_f32(grad_out)[ch.b0 * oi..(ch.b0 + ch.nb) * oi];
            let (gwt, gb) = as_f32_mut(part).split_at_mut(wlen);
            conv_direct::weight_grad(d, images, gout, gwt, bias.then_some(gb));
        }
        None => backward_weight_chunk(g, ch, grad_out, input, part, par),
    };
    let mut acc = vec![T::zero(); plen];
    if parts <= 1 {
        for ci in 0..n_chunks {
            run_chunk(chunk(ci), &mut acc, true);
        }
    } else {
        let per_part = n_chunks.div_ceil(parts);
        let parts = n_chunks.div_ceil(per_part);
        let par = g.batch_parallel();
        let run_part = |pi: usize| -> Vec<T> {
            let mut part = vec![T::zero(); plen];
            for ci in pi * per_part..((pi + 1) * per_part).min(n_chunks) {
                run_chunk(chunk(ci), &mut part, !par);
            }
            part
        };
        let partials: Vec<Vec<T>> = if par {
            (0..parts).into_par_iter().map(run_part).collect()
        } else {
            (0..parts).map(run_part).collect()
        };
        for part in &partials {
            add_run(&mut acc, part);
        }
    }
    // Back from [groups][ck][og] to [groups][og][ck] = [o, c/groups, kh, kw].
    let ck = g.ck();
    for grp in 0..g.groups {
        let src = &acc[grp * g.og * ck..(grp + 1) * g.og * ck];
        let dst = &mut gw[grp * g.og * ck..(grp + 1) * g.og * ck];
        for (j, row) in src.chunks_exact(g.og).enumerate() {
            for (o, &v) in row.iter().enumerate() {
                dst[o * ck + j] = v;
            }
        }
    }
    let gb = bias.then(|| acc[wlen..].to_vec());
    (gw, gb)
}

/// Upper bound (bytes) on the whole batch's column matrix for
/// [`backward_weight_whole`].
const MAX_WHOLE_BATCH_BYTES: usize = 24 << 20;

/// Weights per group from which [`backward_weight_whole`] pays off.
const MIN_WHOLE_BATCH_WEIGHTS: usize = 1 << 17;

/// Whether the weight gradient is one product over the whole batch
/// ([`backward_weight_whole`]) rather than per-chunk partial sums: for
/// large weights (the partial sums' zeroing, adding and transposing grow
/// with the weight count; `bench_ops`, batch 32, 2 threads: VGG's 3×3
/// 128→128 on 8×8 maps 33 → 21 ms, 256→256 on 4×4 39 → 18 ms, on 2×2
/// 20 → 7 ms forward + backward; 64→128 on 8×8, 74 k weights, is even, and
/// small layers such as 3→32 on 32×32 or LeNet's are faster chunked) whose
/// column matrix fits [`MAX_WHOLE_BATCH_BYTES`]. Depends on the shapes only.
fn whole_batch_weight_grad<T>(g: &Geom) -> bool {
    g.og * g.ck() >= MIN_WHOLE_BATCH_WEIGHTS
        && g.ck() * g.n * g.pix() * std::mem::size_of::<T>() <= MAX_WHOLE_BATCH_BYTES
}

/// The weight gradient as one product per group over the whole batch,
/// `dW[o, ck] = gout[o, (b, p)] @ cols[ck, (b, p)]^T`, written straight
/// into `gw` (`[o, c/groups, kh, kw]`, zero on entry).
///
/// The per-chunk path sums up to 16 partial gradients (each zeroed, then
/// added) and transposes the result; for VGG's deep layers (up to 590 k
/// weights, 4x4 or 2x2 maps) that bookkeeping cost as much as the product.
/// Here the column matrix and the gathered output gradient are filled in
/// parallel (by input channel and by output channel: disjoint row blocks)
/// and gemm spreads the one product over the pool. gemm splits a product
/// over its output only, never over `k`, so the sum over the batch runs in
/// one fixed order: results do not depend on the thread count.
fn backward_weight_whole<T: Float>(g: &Geom, gout: &[T], input: &[T], gw: &mut [T]) {
    let (ck, pix, hw) = (g.ck(), g.pix(), g.h * g.w);
    let (ii, oi) = (g.in_image(), g.out_image());
    let ld = g.n * pix;
    let taps = g.kh * g.kw;
    let mut scratch = Scratch::<T>::take();
    let (cols, tmp) = scratch.get(ck * ld + g.og * ld).split_at_mut(ck * ld);
    // One input channel of one group, as a geometry of its own.
    let one = Geom { cg: 1, ..*g };
    // Fill and multiply on the pool when the column matrix is large.
    let par = num_threads() > 1 && ck * ld >= PAR_THRESHOLD;
    for grp in 0..g.groups {
        let fill_cols = |c: usize, rows: &mut [T]| {
            for b in 0..g.n {
                let plane = &input[b * ii + (grp * g.cg + c) * hw..][..hw];
                im2col(&one, plane, &mut rows[b * pix..], ld);
            }
        };
        let gather = |o: usize, row: &mut [T]| {
            for b in 0..g.n {
                row[b * pix..(b + 1) * pix]
                    .copy_from_slice(&gout[b * oi + (grp * g.og + o) * pix..][..pix]);
            }
        };
        if par {
            cols.par_chunks_mut(taps * ld)
                .enumerate()
                .for_each(|(c, rows)| fill_cols(c, rows));
            tmp.par_chunks_mut(ld)
                .enumerate()
                .for_each(|(o, row)| gather(o, row));
        } else {
            cols.chunks_mut(taps * ld)
                .enumerate()
                .for_each(|(c, rows)| fill_cols(c, rows));
            tmp.chunks_mut(ld)
                .enumerate()
                .for_each(|(o, row)| gather(o, row));
        }
        let gw_g = &mut gw[grp * g.og * ck..(grp + 1) * g.og * ck];
        let gout_g = Mat::row_major(&*tmp, g.og, ld, ld);
        let cols_t = Mat::row_major(&*cols, ck, ld, ld).t();
        gemm_mat(
            par,
            Mat::row_major(gw_g, g.og, ck, ck),
            false,
            gout_g,
            cols_t,
        );
    }
}

/// `s` as `f32`s.
///
/// # Panics
/// Unless `T` is `f32` (callers check [`Geom::direct`] first).
fn as_f32<T: 'static>(s: &[T]) -> &[f32] {
    assert!(TypeId::of::<T>() == TypeId::of::<f32>(), "as_f32: not f32");
    // SAFETY: `T` is `f32`.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) }
}

/// `s` as mutable `f32`s (see [`as_f32`]).
fn as_f32_mut<T: 'static>(s: &mut [T]) -> &mut [f32] {
    assert!(
        TypeId::of::<T>() == TypeId::of::<f32>(),
        "as_f32_mut: not f32"
    );
    // SAFETY: `T` is `f32`.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
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
    if pix == 0 || n == 0 {
        return gb;
    }
    // Channels are independent: split them over threads when large (a
    // summed element costs ~0.5 `PAR_THRESHOLD` units).
    par_chunks_mut_map_with(&mut gb, (n * pix).div_ceil(2), |c0, gb| {
        for (i, acc) in gb.iter_mut().enumerate() {
            let ch = c0 + i;
            for b in 0..n {
                *acc = *acc + sum(&grad_out[(b * o + ch) * pix..(b * o + ch + 1) * pix]);
            }
        }
    });
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
