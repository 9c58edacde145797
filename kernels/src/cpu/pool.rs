//! 2-D pooling over NCHW data with PyTorch's semantics: max (with argmax
//! indices), average (`count_include_pad`, `ceil_mode`, `divisor_override`)
//! and adaptive average.
//!
//! Every `(n, c)` plane is independent; planes are spread over rayon's pool
//! when the total work is large enough.

use rayon::prelude::*;

use super::check_len;
use super::parallel::{par_blocks_alloc, should_parallelize, zeroed};
use crate::Float;

/// Output length of one pooled dimension, exactly as PyTorch computes it:
/// [`crate::window::output_size`] (rounding up when `ceil_mode`, dropping a
/// last window that would start in the right padding), after PyTorch's
/// pooling-only check that `padding` is at most half the effective kernel
/// `dilation*(kernel-1)+1`.
///
/// `None` when the result is not positive or the parameters are invalid
/// (zero kernel, stride or dilation, or too much padding).
pub fn pool_output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    if kernel == 0 || dilation == 0 {
        return None;
    }
    let span = dilation * (kernel - 1) + 1;
    if padding > span / 2 {
        return None;
    }
    crate::window::output_size(input, kernel, stride, padding, dilation, ceil_mode)
}

/// [`pool_output_size`] for both spatial dimensions `[h, w]`.
pub fn pool2d_output_size(
    in_hw: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Option<[usize; 2]> {
    let size = |d: usize| {
        pool_output_size(
            in_hw[d],
            kernel[d],
            stride[d],
            padding[d],
            dilation[d],
            ceil_mode,
        )
    };
    Some([size(0)?, size(1)?])
}

#[allow(clippy::too_many_arguments)]
fn out_size_or_panic(
    op: &str,
    in_shape: [usize; 4],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> [usize; 2] {
    pool2d_output_size(
        [in_shape[2], in_shape[3]],
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    )
    .unwrap_or_else(|| {
        panic!(
            "{op}: input {in_shape:?} with kernel {kernel:?}, stride {stride:?}, padding \
             {padding:?}, dilation {dilation:?}, ceil_mode {ceil_mode} gives a non-positive \
             output size or invalid parameters (padding must be at most half the kernel)"
        )
    })
}

// Cost of one unit of work, in the "cheap elementwise op" units of
// `parallel::PAR_THRESHOLD` (one f32 add in a streaming loop), measured
// single-threaded on the dev machine (LeNet-sized f32 inputs): a max-pool
// window tap ~7 units (2x2 window: 28), max-pool backward ~5 per output,
// an average-pool tap ~10 forward and ~17 backward, adaptive pooling ~4
// per input element.
const MAX_TAP: usize = 7;
const MAX_BWD: usize = 5;
const AVG_TAP: usize = 10;
const AVG_BWD_TAP: usize = 17;
const ADAPTIVE: usize = 4;

/// Allocates `planes * plane` elements and runs `f(first_plane, chunk)`
/// over chunks of whole planes (zeroed on entry), in parallel when `cost`
/// (`PAR_THRESHOLD` units in total) is large enough.
fn for_planes<T, F>(planes: usize, plane: usize, cost: usize, f: F) -> Vec<T>
where
    T: Copy + Default + Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    let len = planes * plane;
    if len == 0 {
        return Vec::new();
    }
    par_blocks_alloc(len, plane, cost.div_ceil(len), f)
}

/// As [`for_planes`] for two outputs with the same plane structure.
fn for_planes2<A, B, F>(planes: usize, plane: usize, cost: usize, f: F) -> (Vec<A>, Vec<B>)
where
    A: Copy + Default + Send,
    B: Copy + Default + Send,
    F: Fn(usize, &mut [A], &mut [B]) + Send + Sync,
{
    let len = planes * plane;
    let (mut a, mut b) = (Vec::<A>::with_capacity(len), Vec::<B>::with_capacity(len));
    if len == 0 {
        return (a, b);
    }
    let (sa, sb) = (
        &mut a.spare_capacity_mut()[..len],
        &mut b.spare_capacity_mut()[..len],
    );
    if !should_parallelize(cost, 1) || planes < 2 {
        f(0, zeroed(sa), zeroed(sb));
    } else {
        let per = planes.div_ceil(super::parallel::num_threads() * 2).max(1);
        sa.par_chunks_mut(per * plane)
            .zip(sb.par_chunks_mut(per * plane))
            .enumerate()
            .for_each(|(i, (ca, cb))| f(i * per, zeroed(ca), zeroed(cb)));
    }
    // SAFETY: the chunks above cover `0..len` of both vectors and `zeroed`
    // initialised each of them (a panic would have unwound past this point).
    unsafe {
        a.set_len(len);
        b.set_len(len);
    }
    (a, b)
}

/// `v` beats the running max `m` (PyTorch: `v > m || isnan(v)`).
#[inline(always)]
fn beats<T: Float>(v: T, m: T) -> bool {
    v > m || v.is_nan()
}

/// 2-D max pooling. Returns the output `[n, c, oh, ow]`, for each output
/// the flat index `y * w + x` of its maximum within its input plane, and
/// the output shape. Padding acts as `-inf`; a NaN in a window wins (the
/// last NaN in scan order, like PyTorch). 2×2 windows with stride 2 and no
/// padding or dilation take a dedicated fast path.
///
/// # Panics
/// If `input`'s length does not match `in_shape`, the parameters are
/// invalid (see [`pool_output_size`]) or a plane has more than `u32::MAX`
/// elements.
pub fn max_pool2d_forward<T: Float>(
    input: &[T],
    in_shape: [usize; 4],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> (Vec<T>, Vec<u32>, [usize; 4]) {
    const OP: &str = "max_pool2d_forward";
    check_len(OP, "input", input, in_shape);
    let [n, c, h, w] = in_shape;
    assert!(
        h * w <= u32::MAX as usize,
        "{OP}: planes of {h}x{w} are too large for u32 indices"
    );
    let [oh, ow] = out_size_or_panic(OP, in_shape, kernel, stride, padding, dilation, ceil_mode);
    let out_shape = [n, c, oh, ow];
    let len = n * c * oh * ow;
    let (hw, ohw) = (h * w, oh * ow);
    let fast = kernel == [2, 2]
        && stride == [2, 2]
        && padding == [0, 0]
        && dilation == [1, 1]
        && oh == h / 2
        && ow == w / 2;
    let cost = len * kernel[0] * kernel[1] * MAX_TAP;
    let (out, idx) = for_planes2(n * c, ohw, cost, |p0, out: &mut [T], idx: &mut [u32]| {
        for (pi, (o, ix)) in out
            .chunks_exact_mut(ohw)
            .zip(idx.chunks_exact_mut(ohw))
            .enumerate()
        {
            let plane = &input[(p0 + pi) * hw..(p0 + pi + 1) * hw];
            if fast {
                if !max_pool_2x2_simd(plane, w, oh, ow, o, ix) {
                    max_pool_2x2(plane, w, oh, ow, o, ix);
                }
            } else {
                max_pool_plane(
                    plane,
                    [h, w],
                    [oh, ow],
                    kernel,
                    stride,
                    padding,
                    dilation,
                    o,
                    ix,
                );
            }
        }
    });
    (out, idx, out_shape)
}

/// [`max_pool_2x2`] for `f32` with AVX-512F, 16 windows at a time: false
/// (nothing done) for other types and CPUs. The scalar loop's selects
/// compile to one window per iteration (the auto-vectoriser, given
/// AVX-512, produced gathers and ran 3x slower).
fn max_pool_2x2_simd<T: Float>(
    plane: &[T],
    w: usize,
    oh: usize,
    ow: usize,
    out: &mut [T],
    idx: &mut [u32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::any::TypeId;
        if TypeId::of::<T>() == TypeId::of::<f32>() && super::isa::avx512() {
            assert!(plane.len() >= 2 * oh * w && 2 * ow <= w && out.len() >= oh * ow);
            assert!(idx.len() >= oh * ow && w <= u32::MAX as usize / 2);
            // SAFETY: `T` is `f32`; the CPU has AVX-512F; the lengths are
            // checked above.
            unsafe {
                pool_avx512::max_2x2(
                    plane.as_ptr().cast(),
                    w,
                    oh,
                    ow,
                    out.as_mut_ptr().cast(),
                    idx.as_mut_ptr(),
                )
            };
            return true;
        }
    }
    let _ = (plane, w, oh, ow, out, idx);
    false
}

#[cfg(target_arch = "x86_64")]
mod pool_avx512 {
    use std::arch::x86_64::*;

    /// 2×2 / stride-2 max pooling of an `f32` plane of row length `w` into
    /// `oh × ow` outputs and their flat indices, with [`super::beats`]'s
    /// rule (later taps win ties only if NaN), 16 windows per step.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `x` holds `2·oh` rows of `w ≥ 2·ow` floats,
    /// `out` and `idx` `oh·ow` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn max_2x2(
        x: *const f32,
        w: usize,
        oh: usize,
        ow: usize,
        out: *mut f32,
        idx: *mut u32,
    ) {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        let lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let (w32, w1) = (_mm512_set1_epi32(w as i32), _mm512_set1_epi32(w as i32 + 1));
        let one = _mm512_set1_epi32(1);
        // `v` beats `m`: greater, or NaN.
        let beats = |v: __m512, m: __m512| -> __mmask16 {
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, m) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
        };
        // The first `k` of 16 lanes.
        let first = |k: usize| -> __mmask16 {
            if k >= 16 {
                0xffff
            } else {
                ((1u32 << k) - 1) as __mmask16
            }
        };
        for oy in 0..oh {
            // SAFETY (all pointer arithmetic below): rows 2·oy and 2·oy + 1
            // exist; the masks keep loads inside their first 2·ow floats and
            // stores inside output row oy.
            unsafe {
                let r0 = x.add(2 * oy * w);
                let r1 = r0.add(w);
                for ox0 in (0..ow).step_by(16) {
                    let n = (ow - ox0).min(16);
                    let (lo, hi) = (first((2 * n).min(16)), first((2 * n).saturating_sub(16)));
                    let c0 = 2 * ox0;
                    let a0 = _mm512_maskz_loadu_ps(lo, r0.add(c0));
                    let a1 = _mm512_maskz_loadu_ps(hi, r0.add(c0 + 16));
                    let b0 = _mm512_maskz_loadu_ps(lo, r1.add(c0));
                    let b1 = _mm512_maskz_loadu_ps(hi, r1.add(c0 + 16));
                    let a = _mm512_permutex2var_ps(a0, even, a1);
                    let b = _mm512_permutex2var_ps(a0, odd, a1);
                    let c = _mm512_permutex2var_ps(b0, even, b1);
                    let d = _mm512_permutex2var_ps(b0, odd, b1);
                    let (mut m, mut i) = (a, _mm512_setzero_si512());
                    let t = beats(b, m);
                    m = _mm512_mask_blend_ps(t, m, b);
                    i = _mm512_mask_blend_epi32(t, i, one);
                    let t = beats(c, m);
                    m = _mm512_mask_blend_ps(t, m, c);
                    i = _mm512_mask_blend_epi32(t, i, w32);
                    let t = beats(d, m);
                    m = _mm512_mask_blend_ps(t, m, d);
                    i = _mm512_mask_blend_epi32(t, i, w1);
                    let base = _mm512_set1_epi32((2 * oy * w + c0) as i32);
                    let at = _mm512_add_epi32(_mm512_add_epi32(base, lane2), i);
                    let keep = first(n);
                    _mm512_mask_storeu_ps(out.add(oy * ow + ox0), keep, m);
                    _mm512_mask_storeu_epi32(idx.add(oy * ow + ox0).cast(), keep, at);
                }
            }
        }
    }
}

/// 2×2 / stride-2 max pooling of one plane (all windows full).
fn max_pool_2x2<T: Float>(
    plane: &[T],
    w: usize,
    oh: usize,
    ow: usize,
    out: &mut [T],
    idx: &mut [u32],
) {
    for oy in 0..oh {
        let r0 = &plane[2 * oy * w..2 * oy * w + 2 * ow];
        let r1 = &plane[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * ow];
        let o = &mut out[oy * ow..(oy + 1) * ow];
        let ix = &mut idx[oy * ow..(oy + 1) * ow];
        let base = (2 * oy * w) as u32;
        let w32 = w as u32;
        for ox in 0..ow {
            let (a, b) = (r0[2 * ox], r0[2 * ox + 1]);
            let (c, d) = (r1[2 * ox], r1[2 * ox + 1]);
            let x = base + 2 * ox as u32;
            // Branch-free selects: on random data the branches mispredict.
            let (mut m, mut i) = (a, 0u32);
            let t = beats(b, m);
            m = if t { b } else { m };
            i = if t { 1 } else { i };
            let t = beats(c, m);
            m = if t { c } else { m };
            i = if t { w32 } else { i };
            let t = beats(d, m);
            m = if t { d } else { m };
            i = if t { w32 + 1 } else { i };
            o[ox] = m;
            ix[ox] = x + i;
        }
    }
}

/// General max pooling of one plane.
#[allow(clippy::too_many_arguments)]
fn max_pool_plane<T: Float>(
    plane: &[T],
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
    [dh, dw]: [usize; 2],
    out: &mut [T],
    idx: &mut [u32],
) {
    let (h, w) = (h as isize, w as isize);
    for oy in 0..oh {
        let mut y0 = (oy * sh) as isize - ph as isize;
        let y1 = (y0 + ((kh - 1) * dh) as isize + 1).min(h);
        while y0 < 0 {
            y0 += dh as isize;
        }
        for ox in 0..ow {
            let mut x0 = (ox * sw) as isize - pw as isize;
            let x1 = (x0 + ((kw - 1) * dw) as isize + 1).min(w);
            while x0 < 0 {
                x0 += dw as isize;
            }
            let mut best = y0 * w + x0;
            let mut m = T::neg_infinity();
            let mut y = y0;
            while y < y1 {
                let row = &plane[(y * w) as usize..((y + 1) * w) as usize];
                let mut x = x0;
                while x < x1 {
                    let v = row[x as usize];
                    if beats(v, m) {
                        m = v;
                        best = y * w + x;
                    }
                    x += dw as isize;
                }
                y += dh as isize;
            }
            out[oy * ow + ox] = m;
            idx[oy * ow + ox] = best as u32;
        }
    }
}

/// Gradient of max pooling: scatters `grad_out` (`[n, c, oh, ow]`) to the
/// positions recorded in `indices` (from [`max_pool2d_forward`]), summing
/// where windows overlap. Returns the gradient for an input of `in_shape`.
///
/// # Panics
/// On inconsistent lengths or shapes, or an index outside its plane.
pub fn max_pool2d_backward<T: Float>(
    grad_out: &[T],
    out_shape: [usize; 4],
    indices: &[u32],
    in_shape: [usize; 4],
) -> Vec<T> {
    const OP: &str = "max_pool2d_backward";
    check_len(OP, "grad_out", grad_out, out_shape);
    check_len(OP, "indices", indices, out_shape);
    assert!(
        out_shape[..2] == in_shape[..2],
        "{OP}: grad_out shape {out_shape:?} and input shape {in_shape:?} differ in batch or \
         channels"
    );
    let hw = in_shape[2] * in_shape[3];
    let ohw = out_shape[2] * out_shape[3];
    let planes = in_shape[0] * in_shape[1];
    for_planes(planes, hw, grad_out.len() * MAX_BWD, |p0, gin: &mut [T]| {
        for (pi, g) in gin.chunks_exact_mut(hw).enumerate() {
            let p = p0 + pi;
            let go = &grad_out[p * ohw..(p + 1) * ohw];
            let ix = &indices[p * ohw..(p + 1) * ohw];
            for (&v, &i) in go.iter().zip(ix) {
                let d = &mut g[i as usize];
                *d = *d + v;
            }
        }
    })
}

/// One output's window for average and adaptive pooling: valid
/// `[y0, y1) x [x0, x1)` of a plane `w` wide, and the divisor.
#[derive(Clone, Copy)]
struct AvgWin {
    y0: usize,
    y1: usize,
    x0: usize,
    x1: usize,
    w: usize,
    div: usize,
}

impl AvgWin {
    /// Whether the window holds no input element.
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.y0 >= self.y1 || self.x0 >= self.x1
    }

    /// The sum of `plane`'s elements in the window.
    #[inline(always)]
    fn sum<T: Float>(&self, plane: &[T]) -> T {
        let mut s = T::zero();
        for y in self.y0..self.y1 {
            for &v in &plane[y * self.w + self.x0..y * self.w + self.x1] {
                s = s + v;
            }
        }
        s
    }

    /// Adds `v` to every element of `plane` in the window.
    #[inline(always)]
    fn add<T: Float>(&self, plane: &mut [T], v: T) {
        for y in self.y0..self.y1 {
            for d in &mut plane[y * self.w + self.x0..y * self.w + self.x1] {
                *d = *d + v;
            }
        }
    }
}

/// An average pooling's parameters, checked, and its output size.
struct AvgPool {
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
    divisor_override: Option<usize>,
}

impl AvgPool {
    /// # Panics
    /// If the parameters are invalid (see [`pool_output_size`]) or
    /// `divisor_override` is `Some(0)`, naming `op`.
    #[allow(clippy::too_many_arguments)]
    fn new(
        op: &str,
        in_shape: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        ceil_mode: bool,
        count_include_pad: bool,
        divisor_override: Option<usize>,
    ) -> AvgPool {
        assert!(
            divisor_override != Some(0),
            "{op}: divisor_override must be non-zero"
        );
        AvgPool {
            in_hw: [in_shape[2], in_shape[3]],
            out_hw: out_size_or_panic(op, in_shape, kernel, stride, padding, [1, 1], ceil_mode),
            kernel,
            stride,
            padding,
            count_include_pad,
            divisor_override,
        }
    }

    /// Calls `f(oy * ow + ox, window)` for every output of a plane whose
    /// window holds an input element, with PyTorch's divisor.
    #[inline(always)]
    fn for_each_window(&self, mut f: impl FnMut(usize, AvgWin)) {
        let ([h, w], [oh, ow]) = (self.in_hw, self.out_hw);
        let ([kh, kw], [sh, sw], [ph, pw]) = (self.kernel, self.stride, self.padding);
        for oy in 0..oh {
            for ox in 0..ow {
                let ys = (oy * sh) as isize - ph as isize;
                let xs = (ox * sw) as isize - pw as isize;
                let ye = (ys + kh as isize).min((h + ph) as isize);
                let xe = (xs + kw as isize).min((w + pw) as isize);
                let pool = ((ye - ys) * (xe - xs)) as usize;
                let (y0, x0) = (ys.max(0) as usize, xs.max(0) as usize);
                let (y1, x1) = (
                    ye.min(h as isize).max(0) as usize,
                    xe.min(w as isize).max(0) as usize,
                );
                let (y1, x1) = (y1.max(y0), x1.max(x0));
                let div = match self.divisor_override {
                    Some(d) => d,
                    None if self.count_include_pad => pool,
                    None => (y1 - y0) * (x1 - x0),
                };
                let win = AvgWin {
                    y0,
                    y1,
                    x0,
                    x1,
                    w,
                    div,
                };
                if !win.is_empty() {
                    f(oy * ow + ox, win);
                }
            }
        }
    }
}

/// 2-D average pooling (no dilation, as in PyTorch). With
/// `count_include_pad` the divisor counts padded positions (but not the
/// part of a ceil-mode window beyond the padding); `divisor_override`
/// replaces the divisor altogether. Returns the output and its shape.
///
/// # Panics
/// If `input`'s length does not match `in_shape`, the parameters are
/// invalid (see [`pool_output_size`]) or `divisor_override` is `Some(0)`.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d_forward<T: Float>(
    input: &[T],
    in_shape: [usize; 4],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> (Vec<T>, [usize; 4]) {
    const OP: &str = "avg_pool2d_forward";
    check_len(OP, "input", input, in_shape);
    let pool = AvgPool::new(
        OP,
        in_shape,
        kernel,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    );
    let [n, c, h, w] = in_shape;
    let [oh, ow] = pool.out_hw;
    let out_shape = [n, c, oh, ow];
    let (hw, ohw) = (h * w, oh * ow);
    let cost = n * c * ohw * kernel[0] * kernel[1] * AVG_TAP;
    // Outputs whose window is empty keep the zero `for_planes` starts from.
    let out = for_planes(n * c, ohw, cost, |p0, out: &mut [T]| {
        for (pi, o) in out.chunks_exact_mut(ohw).enumerate() {
            let plane = &input[(p0 + pi) * hw..(p0 + pi + 1) * hw];
            pool.for_each_window(|i, win| o[i] = win.sum(plane) / T::cast_usize(win.div));
        }
    });
    (out, out_shape)
}

/// Gradient of [`avg_pool2d_forward`] (same parameters): spreads each
/// output gradient evenly (divided by the same divisor) over its window.
/// Returns the gradient for an input of `in_shape`.
///
/// # Panics
/// On inconsistent shapes or lengths, or invalid parameters.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d_backward<T: Float>(
    grad_out: &[T],
    out_shape: [usize; 4],
    in_shape: [usize; 4],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> Vec<T> {
    const OP: &str = "avg_pool2d_backward";
    check_len(OP, "grad_out", grad_out, out_shape);
    let pool = AvgPool::new(
        OP,
        in_shape,
        kernel,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    );
    let [n, c, h, w] = in_shape;
    let [oh, ow] = pool.out_hw;
    assert!(
        out_shape == [n, c, oh, ow],
        "{OP}: grad_out shape {out_shape:?} does not match the pooling's output shape {:?}",
        [n, c, oh, ow]
    );
    let (hw, ohw) = (h * w, oh * ow);
    let cost = grad_out.len() * kernel[0] * kernel[1] * AVG_BWD_TAP;
    for_planes(n * c, hw, cost, |p0, gin: &mut [T]| {
        for (pi, g) in gin.chunks_exact_mut(hw).enumerate() {
            let go = &grad_out[(p0 + pi) * ohw..(p0 + pi + 1) * ohw];
            pool.for_each_window(|i, win| win.add(g, go[i] / T::cast_usize(win.div)));
        }
    })
}

/// Calls `f(oy * ow + ox, window)` for every output of an `out_hw` plane
/// adaptively pooled from an `in_hw` one: output `(i, j)` averages rows
/// `floor(i*h/oh) .. ceil((i+1)*h/oh)` and likewise for columns, PyTorch's
/// windows. A window is empty (divisor 0) only when the input is.
#[inline(always)]
fn for_each_adaptive_window(
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    mut f: impl FnMut(usize, AvgWin),
) {
    let range =
        |i: usize, input: usize, out: usize| (i * input / out, ((i + 1) * input).div_ceil(out));
    for oy in 0..oh {
        let (y0, y1) = range(oy, h, oh);
        for ox in 0..ow {
            let (x0, x1) = range(ox, w, ow);
            let div = (y1 - y0) * (x1 - x0);
            f(
                oy * ow + ox,
                AvgWin {
                    y0,
                    y1,
                    x0,
                    x1,
                    w,
                    div,
                },
            );
        }
    }
}

/// Adaptive 2-D average pooling to `out_hw` (windows as in
/// `for_each_adaptive_window`). Returns
/// `[n, c, oh, ow]` contiguous.
///
/// # Panics
/// If `input`'s length does not match `in_shape`, or an output size is zero
/// while the input is not empty.
pub fn adaptive_avg_pool2d_forward<T: Float>(
    input: &[T],
    in_shape: [usize; 4],
    out_hw: [usize; 2],
) -> Vec<T> {
    const OP: &str = "adaptive_avg_pool2d_forward";
    check_len(OP, "input", input, in_shape);
    let [n, c, h, w] = in_shape;
    let [oh, ow] = out_hw;
    assert!(
        (oh > 0 && ow > 0) || n * c == 0,
        "{OP}: output size {out_hw:?} must be positive"
    );
    let (hw, ohw) = (h * w, oh * ow);
    let cost = n * c * hw.max(ohw) * ADAPTIVE;
    for_planes(n * c, ohw, cost, |p0, out: &mut [T]| {
        for (pi, o) in out.chunks_exact_mut(ohw).enumerate() {
            let plane = &input[(p0 + pi) * hw..(p0 + pi + 1) * hw];
            for_each_adaptive_window([h, w], out_hw, |i, win| {
                o[i] = if win.div == 0 {
                    T::nan()
                } else {
                    win.sum(plane) / T::cast_usize(win.div)
                };
            });
        }
    })
}

/// Gradient of [`adaptive_avg_pool2d_forward`]: `grad_out` is `[n, c, oh,
/// ow]`; returns the gradient for an input of `in_shape`.
///
/// # Panics
/// On inconsistent lengths.
pub fn adaptive_avg_pool2d_backward<T: Float>(
    grad_out: &[T],
    in_shape: [usize; 4],
    out_hw: [usize; 2],
) -> Vec<T> {
    const OP: &str = "adaptive_avg_pool2d_backward";
    let [n, c, h, w] = in_shape;
    let [oh, ow] = out_hw;
    check_len(OP, "grad_out", grad_out, [n, c, oh, ow]);
    let (hw, ohw) = (h * w, oh * ow);
    let cost = n * c * hw.max(ohw) * ADAPTIVE;
    for_planes(n * c, hw, cost, |p0, gin: &mut [T]| {
        for (pi, g) in gin.chunks_exact_mut(hw).enumerate() {
            let go = &grad_out[(p0 + pi) * ohw..(p0 + pi + 1) * ohw];
            for_each_adaptive_window([h, w], out_hw, |i, win| {
                if win.div != 0 {
                    win.add(g, go[i] / T::cast_usize(win.div));
                }
            });
        }
    })
}
