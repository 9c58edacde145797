//! Direct kernels with output pixels of one row in the SIMD lanes, for
//! layers whose output channels do not fill a vector (LeNet's conv1: 1 → 6
//! channels, 5×5, 28×28 maps).
//!
//! * forward: a register tile holds `OB` output channels × `RV` output
//!   rows of one `LANES`-wide column segment; every tap loads the `RV` input
//!   vectors under it and adds each times the `OB` weights (broadcasts).
//!   Results are stored straight into the NCHW output, masked at the row's
//!   end.
//! * weight gradient: a register tile holds `OB` output channels × `TK`
//!   taps, each a vector of per-lane partial sums over every output segment
//!   of every image of the chunk (gradient vector times the input vector
//!   under the tap, both loaded masked so the lanes past the row's end add
//!   zero); the lanes are summed once at the end, in a fixed order.
//!
//! Each image is first copied into a zero-bordered buffer
//! ([`super::pad_image`]) with `LANES` floats of slack after it, so that
//! the forward's unmasked loads at a row's end stay inside the buffer.

use super::{DirectGeom, Isa};

/// Floats of slack after each padded image.
pub(super) const SLACK: usize = 16;

/// Largest output-channel block of a tile.
const OB_MAX: usize = 6;

/// Forward of `images` into `out` (`[nb, o, oh, ow]`): see
/// [`super::forward`]. `packed` is [`pack_weight`]'s.
pub(super) fn forward(
    g: &DirectGeom,
    images: &[f32],
    packed: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    let (ii, oi) = (g.c * g.h * g.w, g.o * g.pix());
    let offs = tap_offsets(g);
    let mut scratch = crate::cpu::scratch::Scratch::<f32>::take();
    let xp = scratch.get(g.c * g.hp() * g.wp() + SLACK);
    for (img, out) in images.chunks_exact(ii).zip(out.chunks_exact_mut(oi)) {
        super::pad_image(g, img, xp);
        // SAFETY: the CPU has the ISA (`DirectGeom::new` checked); `xp` is
        // the padded image with slack, `offs` its `ck` tap offsets,
        // `packed` the weights, `bias` `o` floats, `out` one output image.
        unsafe {
            match g.isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => avx512::forward_image(
                    g,
                    xp.as_ptr(),
                    &offs,
                    packed.as_ptr(),
                    bias.as_ptr(),
                    out.as_mut_ptr(),
                ),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => avx2::forward_image(
                    g,
                    xp.as_ptr(),
                    &offs,
                    packed.as_ptr(),
                    bias.as_ptr(),
                    out.as_mut_ptr(),
                ),
                #[cfg(not(target_arch = "x86_64"))]
                _ => unreachable!(),
            }
        }
    }
}

/// Adds the weight gradient of `views` (padded image, `[o, pix]` output
/// gradient) into `gwt` (`[ck, o]`).
pub(super) fn weight_grad(g: &DirectGeom, views: &[(*const f32, *const f32)], gwt: &mut [f32]) {
    let offs = tap_offsets(g);
    // SAFETY: the CPU has the ISA; the views point at whole padded images
    // and output gradients; `gwt` holds `ck * o` floats.
    unsafe {
        match g.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512::weight_grad(g, views, &offs, gwt.as_mut_ptr()),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => avx2::weight_grad(g, views, &offs, gwt.as_mut_ptr()),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!(),
        }
    }
}

/// The weight `[o, ck]` regrouped by output-channel blocks of up to
/// [`OB_MAX`]: block `j` (channels `o0..o0 + ob`) is `[ck][ob]` at `o0 * ck`.
pub(super) fn pack_weight(g: &DirectGeom, weight: &[f32]) -> Vec<f32> {
    let ck = g.ck();
    let mut packed = vec![0.0; g.o * ck];
    for o0 in (0..g.o).step_by(OB_MAX) {
        let ob = OB_MAX.min(g.o - o0);
        for k in 0..ck {
            for j in 0..ob {
                packed[o0 * ck + k * ob + j] = weight[(o0 + j) * ck + k];
            }
        }
    }
    packed
}

/// The first input and output pixels of `RV` consecutive output rows
/// (`xstep` and `ostep` floats apart).
fn rows<const RV: usize>(
    x: *const f32,
    out: *mut f32,
    xstep: usize,
    ostep: usize,
) -> ([*const f32; RV], [*mut f32; RV]) {
    (
        std::array::from_fn(|v| x.wrapping_add(v * xstep)),
        std::array::from_fn(|v| out.wrapping_add(v * ostep)),
    )
}

/// Offset of each tap `(c, ki, kj)` from its output pixel's first input
/// pixel, in the padded image.
fn tap_offsets(g: &DirectGeom) -> Vec<usize> {
    let (wp, plane) = (g.wp(), g.hp() * g.wp());
    let mut offs = Vec::with_capacity(g.ck());
    for c in 0..g.c {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                offs.push(c * plane + ki * wp + kj);
            }
        }
    }
    offs
}

/// Calls `f::<OB, N>(args)` for `ob` in `1..=6` and `n` in `1..=4`, both
/// known at run time.
macro_rules! dispatch2 {
    ($f:ident, $ob:expr, $n:expr, $args:tt) => {
        match $ob {
            1 => dispatch2!(@n $f, 1, $n, $args),
            2 => dispatch2!(@n $f, 2, $n, $args),
            3 => dispatch2!(@n $f, 3, $n, $args),
            4 => dispatch2!(@n $f, 4, $n, $args),
            5 => dispatch2!(@n $f, 5, $n, $args),
            6 => dispatch2!(@n $f, 6, $n, $args),
            ob => unreachable!("direct conv: no block of {ob} channels"),
        }
    };
    (@n $f:ident, $ob:literal, $n:expr, $args:tt) => {
        match $n {
            1 => $f::<$ob, 1> $args,
            2 => $f::<$ob, 2> $args,
            3 => $f::<$ob, 3> $args,
            4 => $f::<$ob, 4> $args,
            n => unreachable!("direct conv: no tile of {n}"),
        }
    };
}

/// Calls `f::<OB, N>(args)` for `ob` in `1..=6` known at run time and a
/// literal `N`.
macro_rules! dispatch_ob {
    ($f:ident, $ob:expr, $n:literal, $args:tt) => {
        match $ob {
            1 => $f::<1, $n> $args,
            2 => $f::<2, $n> $args,
            3 => $f::<3, $n> $args,
            4 => $f::<4, $n> $args,
            5 => $f::<5, $n> $args,
            6 => $f::<6, $n> $args,
            ob => unreachable!("direct conv: no block of {ob} channels"),
        }
    };
}

/// The kernels for one instruction set: vector type and width, its masked
/// loads and stores, and the tile sizes its register file holds (output
/// rows per forward tile, taps per weight-gradient tile, output channels
/// per weight-gradient tile).
macro_rules! isa_kernels {
    (
        $module:ident, $feature:literal, $v:ty, $m:ty, lanes: $lanes:literal,
        rv: $rv:literal, tk: $tk:literal, obw: $obw:literal,
        mask: $mask:path, mload: $mload:path, mstore: $mstore:path, hsum: $hsum:path,
        load: $load:ident, set1: $set1:ident, fma: $fma:ident, zero: $zero:ident, add: $addv:ident
    ) => {
        #[cfg(target_arch = "x86_64")]
        mod $module {
            use super::{DirectGeom, OB_MAX};
            use std::arch::x86_64::*;

            const LANES: usize = $lanes;

            /// `OB` channels × `RV` rows of one column segment: `xs[v]` is
            /// row `v`'s first input pixel, `outs[v]` its first output (of
            /// the block's first channel; channels `pix` apart).
            #[inline]
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn forward_tile<const OB: usize, const RV: usize>(
                xs: [*const f32; RV],
                offs: &[usize],
                w: *const f32,
                bias: *const f32,
                outs: [*mut f32; RV],
                pix: usize,
                m: $m,
            ) {
                // SAFETY: the caller's pointers cover every offset below.
                unsafe {
                    let mut acc: [[$v; RV]; OB] = [[$zero(); RV]; OB];
                    for (j, acc) in acc.iter_mut().enumerate() {
                        *acc = [$set1(*bias.add(j)); RV];
                    }
                    for (t, &off) in offs.iter().enumerate() {
                        let xv: [$v; RV] = std::array::from_fn(|v| $load(xs[v].add(off)));
                        for (j, acc) in acc.iter_mut().enumerate() {
                            let wv = $set1(*w.add(t * OB + j));
                            for (a, &x) in acc.iter_mut().zip(&xv) {
                                *a = $fma(x, wv, *a);
                            }
                        }
                    }
                    for (j, acc) in acc.iter().enumerate() {
                        for (v, &a) in acc.iter().enumerate() {
                            $mstore(outs[v].add(j * pix), m, a);
                        }
                    }
                }
            }

            /// One image's forward pass into `out` (`[o, oh, ow]`).
            ///
            /// # Safety
            /// The CPU has the feature; `x` is the padded image with
            /// slack, `offs` the tap offsets, `w` the packed weight, `bias`
            /// `o` floats, `out` `o * pix` floats.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn forward_image(
                g: &DirectGeom,
                x: *const f32,
                offs: &[usize],
                w: *const f32,
                bias: *const f32,
                out: *mut f32,
            ) {
                let (wp, pix, ck) = (g.wp(), g.pix(), g.ck());
                for o0 in (0..g.o).step_by(OB_MAX) {
                    let ob = OB_MAX.min(g.o - o0);
                    for s0 in (0..g.ow).step_by(LANES) {
                        let m = $mask(LANES.min(g.ow - s0));
                        let mut oy = 0;
                        while oy < g.oh {
                            let rv = $rv.min(g.oh - oy);
                            // SAFETY: rows `oy + v < oh`, columns `s0 + lane
                            // + kj < wp + LANES` (the slack), channels `o0 +
                            // j < o`.
                            unsafe {
                                let w = w.add(o0 * ck);
                                let bias = bias.add(o0);
                                let base = out.add(o0 * pix + oy * g.ow + s0);
                                let xb = x.add(oy * g.sh * wp + s0);
                                match rv {
                                    1 => {
                                        let (xs, outs) =
                                            super::rows::<1>(xb, base, g.sh * wp, g.ow);
                                        dispatch_ob!(
                                            forward_tile,
                                            ob,
                                            1,
                                            (xs, offs, w, bias, outs, pix, m)
                                        )
                                    }
                                    2 => {
                                        let (xs, outs) =
                                            super::rows::<2>(xb, base, g.sh * wp, g.ow);
                                        dispatch_ob!(
                                            forward_tile,
                                            ob,
                                            2,
                                            (xs, offs, w, bias, outs, pix, m)
                                        )
                                    }
                                    3 => {
                                        let (xs, outs) =
                                            super::rows::<3>(xb, base, g.sh * wp, g.ow);
                                        dispatch_ob!(
                                            forward_tile,
                                            ob,
                                            3,
                                            (xs, offs, w, bias, outs, pix, m)
                                        )
                                    }
                                    4 => {
                                        let (xs, outs) =
                                            super::rows::<4>(xb, base, g.sh * wp, g.ow);
                                        dispatch_ob!(
                                            forward_tile,
                                            ob,
                                            4,
                                            (xs, offs, w, bias, outs, pix, m)
                                        )
                                    }
                                    _ => unreachable!(),
                                }
                            }
                            oy += rv;
                        }
                    }
                }
            }

            /// Channels `o0..o0 + OB` × taps `t0..t0 + TK`, summed over
            /// every output pixel of one image (padded input `x`, output
            /// gradient `gout`), added lane-wise into `sums` (`[ck, o]`
            /// vectors).
            #[inline(never)]
            #[target_feature(enable = $feature)]
            #[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
            unsafe fn weight_tile<const OB: usize, const TK: usize>(
                g: &DirectGeom,
                x: *const f32,
                gout: *const f32,
                offs: &[usize],
                o0: usize,
                t0: usize,
                sums: *mut $v,
            ) {
                let (wp, pix) = (g.wp(), g.pix());
                let offs: [usize; TK] = std::array::from_fn(|t| offs[t0 + t]);
                // SAFETY: masked loads read lanes `< ow - s0` of rows
                // `< oh` of the gradient and, for each tap, the input
                // pixels under those outputs; `sums` holds `ck * o`
                // vectors.
                unsafe {
                    let mut acc: [[$v; TK]; OB] = [[$zero(); TK]; OB];
                    // Segments outermost: the innermost loop (rows) then
                    // runs with one mask and plain pointer increments.
                    for s0 in (0..g.ow).step_by(LANES) {
                        let m = $mask(LANES.min(g.ow - s0));
                        let mut xrow = x.add(s0);
                        let mut grow = gout.add(o0 * pix + s0);
                        for _ in 0..g.oh {
                            // The tile's input vectors stay in registers
                            // while each channel's gradient streams by.
                            let mut xv: [$v; TK] = [$zero(); TK];
                            for t in 0..TK {
                                xv[t] = $mload(xrow.add(offs[t]), m);
                            }
                            for j in 0..OB {
                                let gj = $mload(grow.add(j * pix), m);
                                for t in 0..TK {
                                    acc[j][t] = $fma(gj, xv[t], acc[j][t]);
                                }
                            }
                            xrow = xrow.add(g.sh * wp);
                            grow = grow.add(g.ow);
                        }
                    }
                    for j in 0..OB {
                        for t in 0..TK {
                            let p = sums.add((t0 + t) * g.o + o0 + j);
                            *p = $addv(*p, acc[j][t]);
                        }
                    }
                }
            }

            /// The weight gradient over `views`, added into `gwt`: image by
            /// image (its input and gradient stay in L1 across the tap
            /// tiles), lane-wise sums in `[ck, o]` vectors, the lanes added
            /// once at the end.
            ///
            /// # Safety
            /// The CPU has the feature; views and `gwt` as
            /// [`super::weight_grad`] receives them.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn weight_grad(
                g: &DirectGeom,
                views: &[(*const f32, *const f32)],
                offs: &[usize],
                gwt: *mut f32,
            ) {
                let ck = g.ck();
                let mut sums: Vec<$v> = vec![$zero(); ck * g.o];
                for &(x, gout) in views {
                    for o0 in (0..g.o).step_by($obw) {
                        let ob = $obw.min(g.o - o0);
                        for t0 in (0..ck).step_by($tk) {
                            let tk = $tk.min(ck - t0);
                            let sums = sums.as_mut_ptr();
                            // SAFETY: as `weight_tile` requires.
                            unsafe {
                                dispatch2!(weight_tile, ob, tk, (g, x, gout, offs, o0, t0, sums));
                            }
                        }
                    }
                }
                for (i, &v) in sums.iter().enumerate() {
                    // SAFETY: `gwt` holds `ck * o` floats.
                    unsafe { *gwt.add(i) += $hsum(v) };
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod m512 {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn mask(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn mload(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: the caller guarantees the unmasked lanes are readable.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn mstore(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: the caller guarantees the unmasked lanes are writable.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn hsum(v: __m512) -> f32 {
        _mm512_reduce_add_ps(v)
    }
}

#[cfg(target_arch = "x86_64")]
mod m256 {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn mask(n: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), lanes)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mload(p: *const f32, m: __m256i) -> __m256 {
        // SAFETY: the caller guarantees the unmasked lanes are readable.
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mstore(p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: the caller guarantees the unmasked lanes are writable.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }
}

isa_kernels!(
    avx512, "avx512f", __m512, __mmask16, lanes: 16, rv: 4, tk: 3, obw: 6,
    mask: super::m512::mask, mload: super::m512::mload, mstore: super::m512::mstore,
    hsum: super::m512::hsum,
    load: _mm512_loadu_ps, set1: _mm512_set1_ps, fma: _mm512_fmadd_ps, zero: _mm512_setzero_ps, add: _mm512_add_ps
);
isa_kernels!(
    avx2, "avx2,fma", __m256, __m256i, lanes: 8, rv: 2, tk: 3, obw: 3,
    mask: super::m256::mask, mload: super::m256::mload, mstore: super::m256::mstore,
    hsum: super::m256::hsum,
    load: _mm256_loadu_ps, set1: _mm256_set1_ps, fma: _mm256_fmadd_ps, zero: _mm256_setzero_ps, add: _mm256_add_ps
);
