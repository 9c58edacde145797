//! Direct convolution with the output channels in SIMD lanes (f32, x86-64).
//!
//! For layers with few input channels (LeNet's conv2: 6 → 16 channels, 5×5;
//! VGG's first layer: 3 → 32, 3×3) the column matrix of im2col is 25× or 9×
//! the input, and filling it (and, for the weight gradient, filling it again)
//! cost as much as the product itself. Here nothing is expanded:
//!
//! * forward: a register tile holds `R` consecutive output pixels of one row,
//!   each a vector of `LANES` output channels; every tap `(c, ki, kj)` loads
//!   one vector of weights and adds it times the input pixel under each of
//!   the `R` outputs (a broadcast). The tile is written pixel-major
//!   (`[pix, o]`) and transposed into the NCHW output once per image.
//! * weight gradient: a register tile holds the `KR × KW` taps of `KR`
//!   kernel rows of one input channel, each a vector of `LANES` output
//!   channels; every output pixel of every image of the chunk loads its
//!   gradient vector once (from `grad_out` transposed pixel-major) and adds
//!   it times the input pixel under each tap. The sums run over the chunk in
//!   a fixed order (image, row, column), so results do not depend on the
//!   thread count.
//!
//! The input gradient stays on im2col's route: its reduction runs over the
//! output channels, which would sit in the lanes.
//!
//! Requirements (checked by [`DirectGeom::new`]): one group, stride 1 along
//! the width, no dilation, at most [`MAX_DIRECT_CK`] input channels × taps,
//! and either output channels a multiple of the vector width (16 with
//! AVX-512F, 8 with AVX2 + FMA) and a 3- or 5-wide kernel, or fewer than
//! two vectors' worth of output channels, not a multiple, on rows at least
//! half a vector wide: those take [`pixels`]' kernels, which put output
//! pixels in the lanes instead (LeNet's conv1, 6 channels). Padding is
//! applied by copying each image into a zero-bordered buffer.

mod pixels;

/// Shapes of a convolution that takes the direct route.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectGeom {
    /// Input channels.
    pub c: usize,
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height and width.
    pub kh: usize,
    pub kw: usize,
    /// Output height and width.
    pub oh: usize,
    pub ow: usize,
    /// Vertical stride (the horizontal one is 1).
    pub sh: usize,
    /// Zero padding above/below and left/right.
    pub ph: usize,
    pub pw: usize,
    isa: Isa,
    layout: Layout,
}

/// What the SIMD lanes hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Output channels (this module's kernels): `o` is a multiple of the
    /// vector width.
    Channels,
    /// Output pixels of one row ([`pixels`]): for few output channels.
    Pixels,
}

/// The instruction set a direct kernel runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
}

impl Isa {
    fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }
}

/// Arguments of [`DirectGeom::new`] (a convolution's geometry, as
/// `conv.rs` validated it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectShape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

/// Input channels × kernel taps up to which the direct route is taken: it
/// wins where im2col's expansion is large next to the product (LeNet's
/// conv2 has 150, VGG's first layer 27); deep layers keep the product.
const MAX_DIRECT_CK: usize = 160;

impl DirectGeom {
    /// The direct geometry, when `s` is an `f32` convolution this module
    /// handles on this CPU.
    pub(crate) fn new(s: DirectShape) -> Option<DirectGeom> {
        DirectGeom::with_isa(s, cpu_isa()?)
    }

    /// [`DirectGeom::new`] for a given instruction set (which the CPU must
    /// have before any kernel runs).
    fn with_isa(s: DirectShape, isa: Isa) -> Option<DirectGeom> {
        let lanes = isa.lanes();
        let fits = s.groups == 1
            && s.stride[1] == 1
            && s.stride[0] >= 1
            && s.dilation == [1, 1]
            && s.kh >= 1
            && s.kw >= 1
            && s.o > 0
            && s.c * s.kh * s.kw <= MAX_DIRECT_CK
            && s.oh > 0
            && s.ow > 0;
        let layout = if s.o.is_multiple_of(lanes) && (s.kw == 3 || s.kw == 5) {
            Layout::Channels
        } else if !s.o.is_multiple_of(lanes) && s.o < 2 * lanes && 2 * s.ow >= lanes {
            Layout::Pixels
        } else {
            return None;
        };
        fits.then_some(DirectGeom {
            c: s.c,
            h: s.h,
            w: s.w,
            o: s.o,
            kh: s.kh,
            kw: s.kw,
            oh: s.oh,
            ow: s.ow,
            sh: s.stride[0],
            ph: s.padding[0],
            pw: s.padding[1],
            isa,
            layout,
        })
    }

    /// Padded input height and width.
    fn hp(&self) -> usize {
        self.h + 2 * self.ph
    }
    fn wp(&self) -> usize {
        self.w + 2 * self.pw
    }
    /// Whether images are copied into a padded buffer (always for
    /// [`Layout::Pixels`], whose loads need the slack after it).
    fn padded(&self) -> bool {
        self.ph > 0 || self.pw > 0 || self.layout == Layout::Pixels
    }
    fn pix(&self) -> usize {
        self.oh * self.ow
    }
    fn ck(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Scratch floats for one image's (padded) input.
    fn padded_len(&self) -> usize {
        if self.padded() {
            self.c * self.hp() * self.wp() + pixels::SLACK
        } else {
            0
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_isa() -> Option<Isa> {
    if super::isa::avx512() {
        Some(Isa::Avx512)
    } else if super::isa::avx2_fma() {
        Some(Isa::Avx2)
    } else {
        None
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_isa() -> Option<Isa> {
    None
}

/// The weight `[o, c, kh, kw]` regrouped for the forward kernel as
/// `[o / LANES][c][kh][kw][LANES]`: a tap's output channels contiguous.
/// ([`Layout::Pixels`] packs its own way: [`pixels::pack_weight`].)
pub(crate) fn pack_weight(g: &DirectGeom, weight: &[f32]) -> Vec<f32> {
    let (lanes, ck) = (g.isa.lanes(), g.ck());
    assert_eq!(weight.len(), g.o * ck, "direct conv: weight length");
    if g.layout == Layout::Pixels {
        return pixels::pack_weight(g, weight);
    }
    let mut packed = vec![0.0; g.o * ck];
    for ob in 0..g.o / lanes {
        for k in 0..ck {
            for l in 0..lanes {
                packed[(ob * ck + k) * lanes + l] = weight[(ob * lanes + l) * ck + k];
            }
        }
    }
    packed
}

/// Copies one image `[c, h, w]` into `dst` (`[c, hp, wp]`) inside a zero
/// border of `ph` rows and `pw` columns.
fn pad_image(g: &DirectGeom, src: &[f32], dst: &mut [f32]) {
    let (hp, wp) = (g.hp(), g.wp());
    for (plane, dplane) in src
        .chunks_exact(g.h * g.w)
        .zip(dst.chunks_exact_mut(hp * wp))
    {
        dplane[..g.ph * wp].fill(0.0);
        dplane[(g.ph + g.h) * wp..].fill(0.0);
        for (row, drow) in plane
            .chunks_exact(g.w)
            .zip(dplane[g.ph * wp..].chunks_exact_mut(wp))
        {
            drow[..g.pw].fill(0.0);
            drow[g.pw..g.pw + g.w].copy_from_slice(row);
            drow[g.pw + g.w..].fill(0.0);
        }
    }
}

/// Forward pass of `images` (`[nb, c, h, w]`) into `out` (`[nb, o, oh, ow]`)
/// with the weight from [`pack_weight`] and an optional bias `[o]`.
pub(crate) fn forward(
    g: &DirectGeom,
    images: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (ii, oi, pix) = (g.c * g.h * g.w, g.o * g.pix(), g.pix());
    let nb = images.len() / ii;
    assert!(
        images.len() == nb * ii && out.len() == nb * oi && packed.len() == g.o * g.ck(),
        "direct conv forward: slice lengths"
    );
    let zeros = vec![0.0; g.o];
    let bias = bias.unwrap_or(&zeros);
    assert_eq!(bias.len(), g.o, "direct conv forward: bias length");
    if g.layout == Layout::Pixels {
        return pixels::forward(g, images, packed, bias, out);
    }
    let mut scratch = super::scratch::Scratch::<f32>::take();
    let (xp, tmp) = scratch
        .get(g.padded_len() + pix * g.o)
        .split_at_mut(g.padded_len());
    for (img, out) in images.chunks_exact(ii).zip(out.chunks_exact_mut(oi)) {
        let x: &[f32] = if g.padded() {
            pad_image(g, img, xp);
            xp
        } else {
            img
        };
        // SAFETY: the CPU has the ISA (`DirectGeom::new` checked); `x` holds
        // the padded image, `packed` and `bias` the weights, `tmp`
        // `pix * o` floats, as `forward_image` reads and writes them.
        unsafe {
            match g.isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => avx512::forward_image(
                    g,
                    x.as_ptr(),
                    packed.as_ptr(),
                    bias.as_ptr(),
                    tmp.as_mut_ptr(),
                ),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => avx2::forward_image(
                    g,
                    x.as_ptr(),
                    packed.as_ptr(),
                    bias.as_ptr(),
                    tmp.as_mut_ptr(),
                ),
                #[cfg(not(target_arch = "x86_64"))]
                _ => unreachable!(),
            }
        }
        // [pix, o] -> [o, pix]
        super::transpose::transpose(pix, g.o, tmp, g.o, 1, out, pix, false);
    }
}

/// Adds the weight gradient of `images` (`[nb, c, h, w]`) with output
/// gradient `gout` (`[nb, o, oh, ow]`) into `gwt`, laid out `[ck, o]`
/// (transposed, as `conv.rs` accumulates it), and with `gb` the bias
/// gradient (`[o]`) too: each image's sums are taken while its gradient
/// is in cache, which saves the separate pass over all of `grad_out`.
pub(crate) fn weight_grad(
    g: &DirectGeom,
    images: &[f32],
    gout: &[f32],
    gwt: &mut [f32],
    gb: Option<&mut [f32]>,
) {
    let (ii, oi, pix) = (g.c * g.h * g.w, g.o * g.pix(), g.pix());
    let nb = images.len() / ii;
    assert!(
        images.len() == nb * ii && gout.len() == nb * oi && gwt.len() == g.o * g.ck(),
        "direct conv weight gradient: slice lengths"
    );
    if let Some(gb) = gb {
        assert_eq!(gb.len(), g.o, "direct conv bias gradient: length");
        for img in gout.chunks_exact(oi) {
            for (acc, plane) in gb.iter_mut().zip(img.chunks_exact(pix)) {
                *acc += sum(plane);
            }
        }
    }
    let per_x = g.padded_len();
    let mut scratch = super::scratch::Scratch::<f32>::take();
    if g.layout == Layout::Pixels {
        let xs = scratch.get(nb * per_x);
        let views: Vec<(*const f32, *const f32)> = (0..nb)
            .map(|b| {
                let xp = &mut xs[b * per_x..(b + 1) * per_x];
                pad_image(g, &images[b * ii..(b + 1) * ii], xp);
                (xp.as_ptr(), gout[b * oi..].as_ptr())
            })
            .collect();
        return pixels::weight_grad(g, &views, gwt);
    }
    let (xs, gts) = scratch.get(nb * (per_x + oi)).split_at_mut(nb * per_x);
    let mut views: Vec<(*const f32, *const f32)> = Vec::with_capacity(nb);
    for b in 0..nb {
        let img = &images[b * ii..(b + 1) * ii];
        let gt = &mut gts[b * oi..(b + 1) * oi];
        // [o, pix] -> [pix, o]
        super::transpose::transpose(
            g.o,
            pix,
            &gout[b * oi..(b + 1) * oi],
            pix,
            1,
            gt,
            g.o,
            false,
        );
        let x = if g.padded() {
            let xp = &mut xs[b * per_x..(b + 1) * per_x];
            pad_image(g, img, xp);
            xp.as_ptr()
        } else {
            img.as_ptr()
        };
        views.push((x, gt.as_ptr()));
    }
    // SAFETY: the CPU has the ISA; every view points at a whole (padded)
    // image and its `[pix, o]` gradient, alive until this call returns;
    // `gwt` holds `ck * o` floats.
    unsafe {
        match g.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512::weight_grad(g, &views, gwt.as_mut_ptr()),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => avx2::weight_grad(g, &views, gwt.as_mut_ptr()),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!(),
        }
    }
}

/// Calls `f::<N, KW>(args)` for the `(n, kw)` given at run time, with `N`
/// among the listed literals and `KW` 3 or 5.
macro_rules! dispatch {
    ($f:ident, ($n:expr, $kw:expr), $args:tt; $($lit:literal)*) => {
        match ($n, $kw) {
            $(($lit, 3) => $f::<$lit, 3> $args,)*
            $(($lit, 5) => $f::<$lit, 5> $args,)*
            (n, kw) => unreachable!("direct conv: no {n} x {kw} tile"),
        }
    };
}

/// Sum with 16 independent accumulators (vectorised by the compiler).
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut it = xs.chunks_exact(16);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    it.remainder().iter().sum::<f32>() + acc.iter().sum::<f32>()
}

/// One set of kernels per instruction set: the vector type, its width, the
/// widest forward tile and the kernel rows per weight-gradient tile (for
/// 5- and 3-wide kernels) fit its register file.
macro_rules! isa_kernels {
    (
        $module:ident, $feature:literal, $v:ty, lanes: $lanes:literal, rmax: $rmax:literal,
        kr5: $kr5:literal, kr3: $kr3:literal,
        load: $load:ident, store: $store:ident, set1: $set1:ident,
        fma: $fma:ident, add: $add:ident, zero: $zero:ident
    ) => {
        #[cfg(target_arch = "x86_64")]
        mod $module {
            use super::DirectGeom;
            use std::arch::x86_64::*;

            const LANES: usize = $lanes;
            /// Widest forward tile (output pixels).
            const RMAX: usize = $rmax;

            /// `R` output pixels of one row, one block of `LANES` output
            /// channels: `out[r * os..][..LANES] = bias + sum over taps`.
            /// `x` points at the tile's first input pixel (channel 0, first
            /// kernel row); `w` at the block's packed weights.
            #[inline]
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn forward_tile<const R: usize, const KW: usize>(
                x: *const f32,
                plane: usize,
                wp: usize,
                c: usize,
                kh: usize,
                w: *const f32,
                bias: *const f32,
                out: *mut f32,
                os: usize,
            ) {
                // SAFETY: the caller's pointers cover every offset below.
                unsafe {
                    let b = $load(bias);
                    let mut acc: [$v; R] = [b; R];
                    let mut wk = w;
                    for ci in 0..c {
                        let mut row = x.add(ci * plane);
                        for _ in 0..kh {
                            for kj in 0..KW {
                                let wv = $load(wk.add(kj * LANES));
                                for (r, a) in acc.iter_mut().enumerate() {
                                    *a = $fma(wv, $set1(*row.add(r + kj)), *a);
                                }
                            }
                            wk = wk.add(KW * LANES);
                            row = row.add(wp);
                        }
                    }
                    for (r, a) in acc.iter().enumerate() {
                        $store(out.add(r * os), *a);
                    }
                }
            }

            /// One image's forward pass into `tmp` (`[pix, o]`).
            ///
            /// # Safety
            /// The CPU has the feature; `x` is the padded image, `w` the
            /// packed weight, `bias` `o` floats, `tmp` `pix * o` floats.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn forward_image(
                g: &DirectGeom,
                x: *const f32,
                w: *const f32,
                bias: *const f32,
                tmp: *mut f32,
            ) {
                let (wp, plane, ck) = (g.wp(), g.hp() * g.wp(), g.ck());
                let tiles = g.ow.div_ceil(RMAX);
                let width = g.ow.div_ceil(tiles);
                for ob in 0..g.o / LANES {
                    // SAFETY: offsets stay inside the buffers the caller
                    // described (rows `oy * sh + ki < hp`, columns
                    // `ox + r + kj < wp`).
                    unsafe {
                        let w = w.add(ob * ck * LANES);
                        let bias = bias.add(ob * LANES);
                        for oy in 0..g.oh {
                            let xrow = x.add(oy * g.sh * wp);
                            let mut ox = 0;
                            while ox < g.ow {
                                let r = width.min(g.ow - ox);
                                let out = tmp.add((oy * g.ow + ox) * g.o + ob * LANES);
                                let xt = xrow.add(ox);
                                dispatch!(forward_tile, (r, g.kw),
                                    (xt, plane, wp, g.c, g.kh, w, bias, out, g.o);
                                    1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
                                ox += r;
                            }
                        }
                    }
                }
            }

            /// The weight gradient of kernel rows `ki0..ki0 + KR` of input
            /// channel `c`, output block `ob`, summed over every pixel of
            /// every view, added into `gwt` (`[ck, o]`).
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn weight_tile<const KR: usize, const KW: usize>(
                g: &DirectGeom,
                views: &[(*const f32, *const f32)],
                c: usize,
                ki0: usize,
                ob: usize,
                gwt: *mut f32,
            ) {
                let (wp, plane) = (g.wp(), g.hp() * g.wp());
                // SAFETY: rows `oy * sh + ki0 + k < hp` and columns
                // `ox + j < wp` of each padded image, pixels `< pix` of
                // each gradient, taps `< ck` of `gwt`.
                unsafe {
                    let mut acc: [[$v; KW]; KR] = [[$zero(); KW]; KR];
                    for &(x, gt) in views {
                        for oy in 0..g.oh {
                            let base = x.add(c * plane + (oy * g.sh + ki0) * wp);
                            let rows: [*const f32; KR] = std::array::from_fn(|k| base.add(k * wp));
                            let grow = gt.add(oy * g.ow * g.o + ob * LANES);
                            for ox in 0..g.ow {
                                let gv = $load(grow.add(ox * g.o));
                                for (k, acc) in acc.iter_mut().enumerate() {
                                    for (j, a) in acc.iter_mut().enumerate() {
                                        *a = $fma(gv, $set1(*rows[k].add(ox + j)), *a);
                                    }
                                }
                            }
                        }
                    }
                    for (k, acc) in acc.iter().enumerate() {
                        for (j, a) in acc.iter().enumerate() {
                            let p = gwt.add(((c * g.kh + ki0 + k) * KW + j) * g.o + ob * LANES);
                            $store(p, $add($load(p), *a));
                        }
                    }
                }
            }

            /// The weight gradient over `views` (padded image, `[pix, o]`
            /// gradient), added into `gwt` (`[ck, o]`).
            ///
            /// # Safety
            /// The CPU has the feature; the views and `gwt` are as
            /// [`super::weight_grad`] builds them.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn weight_grad(
                g: &DirectGeom,
                views: &[(*const f32, *const f32)],
                gwt: *mut f32,
            ) {
                let kr_max = if g.kw == 5 { $kr5 } else { $kr3 };
                for ob in 0..g.o / LANES {
                    for c in 0..g.c {
                        let mut ki0 = 0;
                        while ki0 < g.kh {
                            let kr = kr_max.min(g.kh - ki0);
                            // SAFETY: as `weight_tile` requires.
                            unsafe {
                                dispatch!(weight_tile, (kr, g.kw), (g, views, c, ki0, ob, gwt); 1 2 3 4 5);
                            }
                            ki0 += kr;
                        }
                    }
                }
            }
        }
    };
}

isa_kernels!(
    avx512, "avx512f", __m512, lanes: 16, rmax: 16, kr5: 5, kr3: 5,
    load: _mm512_loadu_ps, store: _mm512_storeu_ps, set1: _mm512_set1_ps,
    fma: _mm512_fmadd_ps, add: _mm512_add_ps, zero: _mm512_setzero_ps
);
isa_kernels!(
    avx2, "avx2,fma", __m256, lanes: 8, rmax: 12, kr5: 2, kr3: 4,
    load: _mm256_loadu_ps, store: _mm256_storeu_ps, set1: _mm256_set1_ps,
    fma: _mm256_fmadd_ps, add: _mm256_add_ps, zero: _mm256_setzero_ps
);

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Forward output and weight gradient (`[o, c, kh, kw]`) in f64.
    fn naive(
        g: &DirectGeom,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        gout: &[f32],
    ) -> (Vec<f64>, Vec<f64>) {
        let (pix, ck) = (g.pix(), g.ck());
        let mut out = vec![0.0; n * g.o * pix];
        let mut gw = vec![0.0; g.o * ck];
        for bi in 0..n {
            for (o, &bo) in b.iter().enumerate() {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let oi = (bi * g.o + o) * pix + oy * g.ow + ox;
                        let mut s = bo as f64;
                        for c in 0..g.c {
                            for ki in 0..g.kh {
                                for kj in 0..g.kw {
                                    let iy = (oy * g.sh + ki) as isize - g.ph as isize;
                                    let ix = (ox + kj) as isize - g.pw as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi =
                                        ((bi * g.c + c) * g.h + iy as usize) * g.w + ix as usize;
                                    let wi = (o * g.c + c) * g.kh * g.kw + ki * g.kw + kj;
                                    s += x[xi] as f64 * w[wi] as f64;
                                    gw[wi] += gout[oi] as f64 * x[xi] as f64;
                                }
                            }
                        }
                        out[oi] = s;
                    }
                }
            }
        }
        (out, gw)
    }

    /// The instruction sets this CPU can run the direct kernels with (both
    /// on an AVX-512 machine). None: the test reports itself skipped, or
    /// fails when `KILN_REQUIRE_SIMD=1` says this machine should have them.
    fn isas_or_skip() -> Vec<Isa> {
        let mut isas = vec![];
        if std::arch::is_x86_feature_detected!("avx512f") {
            isas.push(Isa::Avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            isas.push(Isa::Avx2);
        }
        if isas.is_empty() {
            let why = "no AVX2 or AVX-512 on this CPU";
            assert!(
                std::env::var_os("KILN_REQUIRE_SIMD").is_none(),
                "KILN_REQUIRE_SIMD: {why}"
            );
            eprintln!("skipped: {why}");
        }
        isas
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Both instruction sets this CPU has (the AVX2 kernels also run on an
    /// AVX-512 machine), against the naive loops, on shapes that take every
    /// tile width and the remainder kernel rows.
    #[test]
    fn both_isas_match_the_naive_loops() {
        let isas = isas_or_skip();
        // (n, c, h, w, o, kh, kw, sh, ph, pw): channel lanes (LeNet's
        // conv2, VGG's first layer, stride 2, 3 blocks), then pixel lanes
        // (LeNet's conv1, odd channel counts and widths, a 7x2 kernel).
        let shapes = [
            (2, 6, 14, 14, 16, 5, 5, 1, 0, 0),
            (2, 3, 12, 40, 32, 3, 3, 1, 1, 1),
            (3, 2, 11, 13, 48, 7, 5, 2, 3, 2),
            (1, 1, 6, 23, 16, 4, 3, 1, 0, 2),
            (2, 1, 28, 28, 6, 5, 5, 1, 2, 2),
            (2, 2, 9, 37, 7, 3, 3, 2, 1, 1),
            (1, 3, 11, 19, 13, 7, 2, 1, 3, 0),
            (2, 4, 7, 8, 4, 3, 5, 1, 1, 2),
        ];
        for isa in isas {
            for (n, c, h, w, o, kh, kw, sh, ph, pw) in shapes {
                let oh = (h + 2 * ph - kh) / sh + 1;
                let ow = w + 2 * pw - kw + 1;
                let shape = DirectShape {
                    c,
                    h,
                    w,
                    o,
                    kh,
                    kw,
                    oh,
                    ow,
                    stride: [sh, 1],
                    padding: [ph, pw],
                    dilation: [1, 1],
                    groups: 1,
                };
                let Some(g) = DirectGeom::with_isa(shape, isa) else {
                    // 13 channels are a vector's worth and more on AVX2.
                    assert!(
                        isa == Isa::Avx2 && o == 13,
                        "{shape:?} off the direct route"
                    );
                    continue;
                };
                let x = values(n * c * h * w, 1);
                let wt = values(o * g.ck(), 2);
                let b = values(o, 3);
                let gout = values(n * o * g.pix(), 4);
                let (want_out, want_gw) = naive(&g, n, &x, &wt, &b, &gout);
                let mut out = vec![f32::NAN; want_out.len()];
                forward(&g, &x, &pack_weight(&g, &wt), Some(&b), &mut out);
                let mut gwt = vec![0.0; o * g.ck()];
                let mut gb = vec![0.0; o];
                weight_grad(&g, &x, &gout, &mut gwt, Some(&mut gb));
                let mut gwt_alone = vec![0.0; o * g.ck()];
                weight_grad(&g, &x, &gout, &mut gwt_alone, None);
                assert_eq!(
                    gwt, gwt_alone,
                    "{isa:?} {g:?}: the bias changed the weight gradient"
                );
                for (oc, &got) in gb.iter().enumerate() {
                    let want: f64 = gout
                        .chunks_exact(g.pix())
                        .skip(oc)
                        .step_by(o)
                        .flatten()
                        .map(|&v| v as f64)
                        .sum();
                    assert!(
                        (got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{isa:?} {g:?} bias grad [{oc}]: {got} vs {want}"
                    );
                }
                let close = |a: f32, b: f64| (a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs());
                for (i, (&a, &b)) in out.iter().zip(&want_out).enumerate() {
                    assert!(close(a, b), "{isa:?} {g:?} forward [{i}]: {a} vs {b}");
                }
                for k in 0..g.ck() {
                    for oc in 0..o {
                        let (a, b) = (gwt[k * o + oc], want_gw[oc * g.ck() + k]);
                        assert!(
                            close(a, b),
                            "{isa:?} {g:?} weight grad [{oc}, {k}]: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// An infinite input pixel in the last column reaches only the taps
    /// that see it: the lanes past a row's end must not multiply it by a
    /// zero gradient (which would give NaN).
    #[test]
    fn lanes_past_the_row_end_add_nothing() {
        for isa in isas_or_skip() {
            let (h, w, o) = (3, 20, 6);
            let shape = DirectShape {
                c: 1,
                h,
                w,
                o,
                kh: 1,
                kw: 3,
                oh: h,
                ow: w - 2,
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
                groups: 1,
            };
            let g = DirectGeom::with_isa(shape, isa).expect("pixel lanes");
            let mut x = values(h * w, 5);
            x[w - 1] = f32::INFINITY;
            let gout = values(o * g.pix(), 6);
            let mut gwt = vec![0.0; o * 3];
            weight_grad(&g, &x, &gout, &mut gwt, None);
            // Taps kj = 0 and 1 never see column w - 1; kj = 2 does.
            assert!(
                gwt[..2 * o].iter().all(|v| v.is_finite()),
                "{isa:?}: {gwt:?}"
            );
            assert!(
                gwt[2 * o..].iter().all(|v| v.is_infinite()),
                "{isa:?}: {gwt:?}"
            );
        }
    }
}
