//! Winograd F(2×2, 3×3) convolution: 3×3 kernels, stride 1, dilation 1,
//! one group, any padding up to 2 (VGG's and ResNet's 3×3 layers).
//!
//! Each 2×2 block of output pixels (a *tile*) is computed from the 4×4
//! block of input pixels under it as `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`:
//! 16 multiplications per channel pair instead of im2col's 36, so the
//! matrix products that dominate a convolution shrink 2.25×. Gathered over
//! all tiles of the batch, the element-wise products become 16 independent
//! matrix products, one per position `ξ` of the 4×4 transformed tile:
//!
//! * forward: `M[ξ] (o×t) = U[ξ] (o×c) @ V[ξ] (c×t)`, then `Y = Aᵀ M A`,
//! * input gradient: `dV[ξ] = U[ξ]ᵀ @ dM[ξ]` with `dM = A dY Aᵀ`, then
//!   `dx += B dV Bᵀ` (the adjoint of the input transform),
//! * weight gradient: `dU[ξ] = dM[ξ] @ V[ξ]ᵀ`, then `dW = Gᵀ dU G`.
//!
//! `t` counts the tiles of all images, `U = G g Gᵀ` is the transformed
//! kernel and `V = Bᵀ d B` the transformed input. The 16 products run in
//! parallel, each single-threaded, so results do not depend on the number
//! of threads. The transforms only add, subtract and halve, so in exact
//! arithmetic the result equals the direct convolution; in floating point
//! it differs by a few ulps of the largest term (as oneDNN's Winograd does).

use rayon::prelude::*;

use super::matmul::{Mat, gemm_mat};
use super::scratch::Scratch;
use crate::Float;

/// Positions in a transformed 4×4 tile: one matrix product each.
const XI: usize = 16;

/// Geometry of a Winograd-eligible convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WinoGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub oh: usize,
    pub ow: usize,
    pub ph: usize,
    pub pw: usize,
}

impl WinoGeom {
    /// Tiles along the height and the width (the last may be cut off).
    fn tiles_hw(&self) -> (usize, usize) {
        (self.oh.div_ceil(2), self.ow.div_ceil(2))
    }
    /// Tiles of one image.
    fn tiles_per_image(&self) -> usize {
        let (th, tw) = self.tiles_hw();
        th * tw
    }
    /// Tiles of the batch: the inner size of every product.
    fn tiles(&self) -> usize {
        self.n * self.tiles_per_image()
    }
}

impl WinoGeom {
    /// Whether a convolution of this geometry, with these kernel, stride
    /// and dilation sizes and groups, is worth computing by Winograd (rather
    /// than im2col and one product): a 3×3 kernel with unit stride and
    /// dilation, one group, padding at most 2, and enough channels that the
    /// 16 products are real matrix products (few channels make them thin and
    /// the transforms dominate).
    pub(crate) fn eligible(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> bool {
        kernel == [3, 3]
            && stride == [1, 1]
            && dilation == [1, 1]
            && groups == 1
            && self.ph <= 2
            && self.pw <= 2
            && self.c >= MIN_CHANNELS
            && self.o >= MIN_CHANNELS
            && self.oh >= 2
            && self.ow >= 2
    }
}

/// Fewest input and output channels for which Winograd beats im2col.
const MIN_CHANNELS: usize = 16;

// ---------------------------------------------------------------------------
// The transforms run on `LANES` tiles (or kernels) at once: a tile matrix
// is a `[[T; LANES]; R·R]` block on the stack, row `i·R + j` holding entry
// `(i, j)` of every lane's tile, and each step is a loop over the lanes
// that the compiler turns into a few vector instructions (compiled for the
// CPU's widest ISA by `simd_dispatch!`).

/// Tiles (or channels, for the kernel transforms) transformed together.
const LANES: usize = 16;

/// One entry of `LANES` tile matrices.
type Row<T> = [T; LANES];

/// `Bᵀ d`: input transform of four samples.
#[inline(always)]
fn bt<T: Float>(d: [T; 4]) -> [T; 4] {
    [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
}

/// `B v`: the adjoint of [`bt`].
#[inline(always)]
fn b<T: Float>(v: [T; 4]) -> [T; 4] {
    [v[0], v[1] - v[2] + v[3], v[1] + v[2] - v[0], -v[3]]
}

/// `G k`: kernel transform of three taps.
#[inline(always)]
fn g<T: Float>(k: [T; 3]) -> [T; 4] {
    let h = T::cast_f64(0.5);
    let s = (k[0] + k[2]) * h;
    let m = k[1] * h;
    [k[0], s + m, s - m, k[2]]
}

/// `Gᵀ u`: the adjoint of [`g`].
#[inline(always)]
fn gt<T: Float>(u: [T; 4]) -> [T; 3] {
    let h = T::cast_f64(0.5);
    let s = (u[1] + u[2]) * h;
    [u[0] + s, (u[1] - u[2]) * h, s + u[3]]
}

/// `Aᵀ m`: output transform of four values into two outputs.
#[inline(always)]
fn at<T: Float>(m: [T; 4]) -> [T; 2] {
    [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]
}

/// `A y`: the adjoint of [`at`].
#[inline(always)]
fn a<T: Float>(y: [T; 2]) -> [T; 4] {
    [y[0], y[0] + y[1], y[0] - y[1], -y[1]]
}

/// `dst[di[k]] = f(src[si[·]])[k]`, lane by lane.
#[inline(always)]
fn apply<T: Float, const R: usize, const S: usize>(
    f: &impl Fn([T; R]) -> [T; S],
    src: &[Row<T>],
    si: [usize; R],
    dst: &mut [Row<T>],
    di: [usize; S],
) {
    for l in 0..LANES {
        let y = f(std::array::from_fn(|k| src[si[k]][l]));
        for k in 0..S {
            dst[di[k]][l] = y[k];
        }
    }
}

/// `out = P x Pᵀ` for `R×R` tile matrices `x` (rows `i·R + j`) and a 1-D
/// transform `f` to `S` values; `out` gets rows `i·S + j`.
#[inline(always)]
fn sandwich<T: Float, const R: usize, const S: usize>(
    f: impl Fn([T; R]) -> [T; S],
    x: &[Row<T>],
    out: &mut [Row<T>],
) {
    let mut tmp = [[T::zero(); LANES]; 16];
    // Down every column j: tmp[i·R + j] for i < S.
    for j in 0..R {
        apply(
            &f,
            x,
            std::array::from_fn(|i| i * R + j),
            &mut tmp,
            std::array::from_fn(|i| i * R + j),
        );
    }
    // Along every row i: out[i·S + j] for j < S.
    for i in 0..S {
        apply(
            &f,
            &tmp,
            std::array::from_fn(|j| i * R + j),
            out,
            std::array::from_fn(|j| i * S + j),
        );
    }
}

/// Copies `src` to `dst`, as a few inline moves for the short runs
/// Winograd's planes and tiles have (VGG's maps are 32 down to 2 wide): a
/// `memcpy` call per run was 8% of a VGG step.
///
/// # Safety
/// `dst` must be valid for `src.len()` writes and not overlap `src`.
#[inline(always)]
unsafe fn copy_run_to<T: Copy>(dst: *mut T, src: &[T]) {
    macro_rules! fixed {
        ($($k:literal)*) => {
            match src.len() {
                $($k => {
                    let s: &[T; $k] = src.try_into().expect("length");
                    // SAFETY: the caller's contract; unaligned writes of an
                    // array of `Copy` values.
                    unsafe { dst.cast::<[T; $k]>().write_unaligned(*s) };
                })*
                // SAFETY: the caller's contract.
                n => unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, n) },
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 32);
}

/// [`copy_run_to`] into a slice: `dst.len()` elements of `src`.
#[inline(always)]
fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    let src = &src[..dst.len()];
    // SAFETY: `dst` is a slice of that length, and borrowed apart from `src`.
    unsafe { copy_run_to(dst.as_mut_ptr(), src) }
}

/// `n ≤ LANES` values from `src` into `dst` (a whole row by fixed-size
/// copy, which compiles to vector moves).
#[inline(always)]
fn load_row<T: Float>(dst: &mut Row<T>, src: &[T], n: usize) {
    if n == LANES {
        dst.copy_from_slice(&src[..LANES]);
    } else {
        copy_run(&mut dst[..n], src);
    }
}

/// `n ≤ LANES` values of `src` into `dst`.
#[inline(always)]
fn store_row<T: Float>(dst: &mut [T], src: &Row<T>, n: usize) {
    if n == LANES {
        dst[..LANES].copy_from_slice(src);
    } else {
        copy_run(&mut dst[..n], src);
    }
}

// ---------------------------------------------------------------------------
// Padded planes. Each worker copies the planes it reads into (or
// accumulates the planes it writes in) a buffer with zeros around them, so
// that every tile's block lies inside it and needs no bounds checks:
// input planes `[n][hp][wp]` with the data at `(ph, pw)`, output planes
// `[n][2·th][2·tw]` with the data at `(0, 0)`.

impl WinoGeom {
    /// Height and width of a padded input plane.
    fn padded_in(&self) -> (usize, usize) {
        let (th, tw) = self.tiles_hw();
        (2 * th + 2, 2 * tw + 2)
    }
    /// Height and width of a padded output plane.
    fn padded_out(&self) -> (usize, usize) {
        let (th, tw) = self.tiles_hw();
        (2 * th, 2 * tw)
    }
    /// Where each tile's block starts in padded planes of `ph × pw`.
    fn tile_bases(&self, (ph, pw): (usize, usize)) -> Vec<usize> {
        let (th, tw) = self.tiles_hw();
        let mut v = Vec::with_capacity(self.tiles());
        for bi in 0..self.n {
            for ty in 0..th {
                for tx in 0..tw {
                    v.push(bi * ph * pw + 2 * ty * pw + 2 * tx);
                }
            }
        }
        v
    }
}

/// Copies plane `src` (`rows × cols`) into `dst` (rows `ld` apart) at
/// `(r0, c0)`.
#[inline(always)]
fn put_plane<T: Float>(
    src: &[T],
    rows: usize,
    cols: usize,
    dst: &mut [T],
    ld: usize,
    r0: usize,
    c0: usize,
) {
    for r in 0..rows {
        copy_run(&mut dst[(r0 + r) * ld + c0..][..cols], &src[r * cols..]);
    }
}

/// Copies the `rows × cols` block of `src` (rows `ld` apart) at `(r0, c0)`
/// to the plane at `dst` (`rows × cols`, contiguous).
///
/// # Safety
/// `dst` must be valid for `rows * cols` writes that no other thread makes.
#[inline(always)]
unsafe fn get_plane<T: Float>(
    src: &[T],
    ld: usize,
    r0: usize,
    c0: usize,
    rows: usize,
    cols: usize,
    dst: *mut T,
) {
    for r in 0..rows {
        let s = &src[(r0 + r) * ld + c0..][..cols];
        // SAFETY: the caller's contract.
        unsafe { copy_run_to(dst.add(r * cols), s) };
    }
}

/// A raw pointer that may cross threads; every user writes disjoint slots.
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
// SAFETY: see the users: each thread writes slots no other thread touches.
unsafe impl<T> Sync for SyncPtr<T> {}
unsafe impl<T> Send for SyncPtr<T> {}

// ---------------------------------------------------------------------------
// Per-channel workers, each compiled for AVX-512F, AVX2+FMA and the
// baseline, picked at run time.

/// Defines `$name` dispatching to `$imp` compiled for the widest ISA the
/// CPU has.
macro_rules! simd_dispatch {
    ($(#[$doc:meta])* fn $name:ident = $imp:ident($($arg:ident: $ty:ty),* $(,)?);) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        fn $name<T: Float>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512<T: Float>($($arg: $ty),*) {
                    $imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2<T: Float>($($arg: $ty),*) {
                    $imp($($arg),*)
                }
                if super::isa::avx512() {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if super::isa::avx2_fma()
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}

simd_dispatch! {
    /// `U[ξ][oi][c] = (G k Gᵀ)[ξ]` for the kernels `k = weight[oi][c]`.
    fn kernel_row = kernel_row_impl(geo: &WinoGeom, weight: &[T], oi: usize, u: SyncPtr<T>);
}
#[inline(always)]
fn kernel_row_impl<T: Float>(geo: &WinoGeom, weight: &[T], oi: usize, u: SyncPtr<T>) {
    let (o, c) = (geo.o, geo.c);
    let w_o = &weight[oi * c * 9..][..c * 9];
    let mut k = [[T::zero(); LANES]; 9];
    let mut out = [[T::zero(); LANES]; 16];
    for c0 in (0..c).step_by(LANES) {
        let n = LANES.min(c - c0);
        for (tap, row) in k.iter_mut().enumerate() {
            for l in 0..n {
                row[l] = w_o[(c0 + l) * 9 + tap];
            }
        }
        sandwich(g, &k, &mut out);
        for (xi, val) in out.iter().enumerate() {
            // SAFETY: row `oi` of each ξ (`n` slots from `c0`) lies inside
            // `u` (`[ξ][o][c]`) and belongs to this call alone.
            unsafe {
                let dst = u.0.add(xi * o * c + oi * c + c0);
                std::ptr::copy_nonoverlapping(val.as_ptr(), dst, n);
            }
        }
    }
}

simd_dispatch! {
    /// `dW[oi][c] = Gᵀ dU[·][oi][c] G` into `dw_o` (`[c][3][3]`).
    fn kernel_row_grad = kernel_row_grad_impl(geo: &WinoGeom, du: &[T], oi: usize, dw_o: &mut [T]);
}
#[inline(always)]
fn kernel_row_grad_impl<T: Float>(geo: &WinoGeom, du: &[T], oi: usize, dw_o: &mut [T]) {
    let (o, c) = (geo.o, geo.c);
    let mut x = [[T::zero(); LANES]; 16];
    let mut k = [[T::zero(); LANES]; 9];
    for c0 in (0..c).step_by(LANES) {
        let n = LANES.min(c - c0);
        for (xi, row) in x.iter_mut().enumerate() {
            load_row(row, &du[xi * o * c + oi * c + c0..], n);
        }
        sandwich(gt, &x, &mut k);
        for l in 0..n {
            for (tap, row) in k.iter().enumerate() {
                dw_o[(c0 + l) * 9 + tap] = row[l];
            }
        }
    }
}

simd_dispatch! {
    /// `V[ci][ξ][t] = (Bᵀ d B)[ξ]` for every tile's input block `d` of
    /// channel `ci`, into `v_c` (`[ξ][t]`); `pad` is scratch.
    fn input_channel = input_channel_impl(
        geo: &WinoGeom, x: &[T], ci: usize, bases: &[usize], pad: &mut Vec<T>, v_c: &mut [T],
    );
}
#[inline(always)]
fn input_channel_impl<T: Float>(
    geo: &WinoGeom,
    x: &[T],
    ci: usize,
    bases: &[usize],
    pad: &mut Vec<T>,
    v_c: &mut [T],
) {
    let (hp, wp) = geo.padded_in();
    let (hw, nt) = (geo.h * geo.w, geo.tiles());
    pad.clear();
    pad.resize(geo.n * hp * wp, T::zero());
    for bi in 0..geo.n {
        let plane = &x[(bi * geo.c + ci) * hw..][..hw];
        put_plane(
            plane,
            geo.h,
            geo.w,
            &mut pad[bi * hp * wp..],
            wp,
            geo.ph,
            geo.pw,
        );
    }
    let mut d = [[T::zero(); LANES]; 16];
    let mut v = [[T::zero(); LANES]; 16];
    for t0 in (0..nt).step_by(LANES) {
        let n = LANES.min(nt - t0);
        for l in 0..n {
            let blk = &pad[bases[t0 + l]..];
            for i in 0..4 {
                for j in 0..4 {
                    d[4 * i + j][l] = blk[i * wp + j];
                }
            }
        }
        sandwich(bt, &d, &mut v);
        for (xi, val) in v.iter().enumerate() {
            store_row(&mut v_c[xi * nt + t0..], val, n);
        }
    }
}

simd_dispatch! {
    /// `dx[b][ci] = Σ B dV[ξ][ci][t] Bᵀ` over the tiles of channel `ci`'s
    /// planes (written through `dx`); `pad` is scratch.
    fn input_channel_grad = input_channel_grad_impl(
        geo: &WinoGeom, dv: &[T], ci: usize, bases: &[usize], pad: &mut Vec<T>, dx: SyncPtr<T>,
    );
}
#[inline(always)]
fn input_channel_grad_impl<T: Float>(
    geo: &WinoGeom,
    dv: &[T],
    ci: usize,
    bases: &[usize],
    pad: &mut Vec<T>,
    dx: SyncPtr<T>,
) {
    let (hp, wp) = geo.padded_in();
    let (hw, nt) = (geo.h * geo.w, geo.tiles());
    let per_xi = geo.c * nt;
    pad.clear();
    pad.resize(geo.n * hp * wp, T::zero());
    let mut x = [[T::zero(); LANES]; 16];
    let mut d = [[T::zero(); LANES]; 16];
    for t0 in (0..nt).step_by(LANES) {
        let n = LANES.min(nt - t0);
        for (xi, row) in x.iter_mut().enumerate() {
            load_row(row, &dv[xi * per_xi + ci * nt + t0..], n);
        }
        sandwich(b, &x, &mut d);
        for l in 0..n {
            let blk = &mut pad[bases[t0 + l]..];
            for i in 0..4 {
                for j in 0..4 {
                    blk[i * wp + j] = blk[i * wp + j] + d[4 * i + j][l];
                }
            }
        }
    }
    for bi in 0..geo.n {
        // SAFETY: plane (bi, ci) of dx is written by this call alone.
        unsafe {
            let dst = dx.0.add((bi * geo.c + ci) * hw);
            get_plane(&pad[bi * hp * wp..], wp, geo.ph, geo.pw, geo.h, geo.w, dst);
        }
    }
}

simd_dispatch! {
    /// `dM[oi][ξ][t] = (A dY Aᵀ)[ξ]` for every tile's output-gradient block
    /// `dY` of channel `oi`, into `dm_o` (`[ξ][t]`); `pad` is scratch.
    fn grad_output_channel = grad_output_channel_impl(
        geo: &WinoGeom, gy: &[T], oi: usize, bases: &[usize], pad: &mut Vec<T>, dm_o: &mut [T],
    );
}
#[inline(always)]
fn grad_output_channel_impl<T: Float>(
    geo: &WinoGeom,
    gy: &[T],
    oi: usize,
    bases: &[usize],
    pad: &mut Vec<T>,
    dm_o: &mut [T],
) {
    let (hq, wq) = geo.padded_out();
    let (ohw, nt) = (geo.oh * geo.ow, geo.tiles());
    pad.clear();
    pad.resize(geo.n * hq * wq, T::zero());
    for bi in 0..geo.n {
        let plane = &gy[(bi * geo.o + oi) * ohw..][..ohw];
        put_plane(plane, geo.oh, geo.ow, &mut pad[bi * hq * wq..], wq, 0, 0);
    }
    let mut y = [[T::zero(); LANES]; 4];
    let mut m = [[T::zero(); LANES]; 16];
    for t0 in (0..nt).step_by(LANES) {
        let n = LANES.min(nt - t0);
        for l in 0..n {
            let blk = &pad[bases[t0 + l]..];
            for i in 0..2 {
                for j in 0..2 {
                    y[2 * i + j][l] = blk[i * wq + j];
                }
            }
        }
        sandwich(a, &y, &mut m);
        for (xi, val) in m.iter().enumerate() {
            store_row(&mut dm_o[xi * nt + t0..], val, n);
        }
    }
}

simd_dispatch! {
    /// `y[b][oi] = Aᵀ M[ξ][oi][t] A + bias` for every tile of channel `oi`
    /// (written through `y`); `pad` is scratch.
    fn output_channel = output_channel_impl(
        geo: &WinoGeom, m: &[T], bias: T, oi: usize, bases: &[usize], pad: &mut Vec<T>, y: SyncPtr<T>,
    );
}
#[inline(always)]
fn output_channel_impl<T: Float>(
    geo: &WinoGeom,
    m: &[T],
    bias: T,
    oi: usize,
    bases: &[usize],
    pad: &mut Vec<T>,
    y: SyncPtr<T>,
) {
    let (hq, wq) = geo.padded_out();
    let (ohw, nt) = (geo.oh * geo.ow, geo.tiles());
    let per_xi = geo.o * nt;
    pad.clear();
    pad.resize(geo.n * hq * wq, T::zero());
    let mut x = [[T::zero(); LANES]; 16];
    let mut out = [[T::zero(); LANES]; 4];
    for t0 in (0..nt).step_by(LANES) {
        let n = LANES.min(nt - t0);
        for (xi, row) in x.iter_mut().enumerate() {
            load_row(row, &m[xi * per_xi + oi * nt + t0..], n);
        }
        sandwich(at, &x, &mut out);
        for l in 0..n {
            let blk = &mut pad[bases[t0 + l]..];
            for i in 0..2 {
                for j in 0..2 {
                    blk[i * wq + j] = out[2 * i + j][l] + bias;
                }
            }
        }
    }
    for bi in 0..geo.n {
        // SAFETY: plane (bi, oi) of y is written by this call alone.
        unsafe {
            let dst = y.0.add((bi * geo.o + oi) * ohw);
            get_plane(&pad[bi * hq * wq..], wq, 0, 0, geo.oh, geo.ow, dst);
        }
    }
}

// ---------------------------------------------------------------------------
// Whole-tensor transforms, channels spread over the pool. Layouts: U and
// dU `[ξ][o][c]`, V `[c][ξ][t]`, dV and M `[ξ][·][t]`, dM `[o][ξ][t]`;
// `t = (b·th + ty)·tw + tx`.

fn transform_kernels<T: Float>(geo: &WinoGeom, weight: &[T], u: &mut [T]) {
    assert_eq!(u.len(), XI * geo.o * geo.c);
    let u = SyncPtr(u.as_mut_ptr());
    (0..geo.o)
        .into_par_iter()
        .for_each(|oi| kernel_row(geo, weight, oi, u));
}

fn untransform_kernels<T: Float>(geo: &WinoGeom, du: &[T], dw: &mut [T]) {
    dw.par_chunks_mut(geo.c * 9)
        .enumerate()
        .for_each(|(oi, dw_o)| kernel_row_grad(geo, du, oi, dw_o));
}

fn transform_input<T: Float>(geo: &WinoGeom, x: &[T], v: &mut [T]) {
    let bases = geo.tile_bases(geo.padded_in());
    v.par_chunks_mut(XI * geo.tiles())
        .enumerate()
        .for_each_init(Vec::new, |pad, (ci, v_c)| {
            input_channel(geo, x, ci, &bases, pad, v_c)
        });
}

fn untransform_input<T: Float>(geo: &WinoGeom, dv: &[T], dx: &mut [T]) {
    assert_eq!(dx.len(), geo.n * geo.c * geo.h * geo.w);
    let bases = geo.tile_bases(geo.padded_in());
    let dx = SyncPtr(dx.as_mut_ptr());
    (0..geo.c)
        .into_par_iter()
        .for_each_init(Vec::new, |pad, ci| {
            input_channel_grad(geo, dv, ci, &bases, pad, dx)
        });
}

fn transform_grad_output<T: Float>(geo: &WinoGeom, gy: &[T], dm: &mut [T]) {
    let bases = geo.tile_bases(geo.padded_out());
    dm.par_chunks_mut(XI * geo.tiles())
        .enumerate()
        .for_each_init(Vec::new, |pad, (oi, dm_o)| {
            grad_output_channel(geo, gy, oi, &bases, pad, dm_o)
        });
}

fn untransform_output<T: Float>(geo: &WinoGeom, m: &[T], bias: Option<&[T]>, y: &mut [T]) {
    assert_eq!(y.len(), geo.n * geo.o * geo.oh * geo.ow);
    let bases = geo.tile_bases(geo.padded_out());
    let y = SyncPtr(y.as_mut_ptr());
    (0..geo.o)
        .into_par_iter()
        .for_each_init(Vec::new, |pad, oi| {
            let bv = bias.map_or(T::zero(), |b| b[oi]);
            output_channel(geo, m, bv, oi, &bases, pad, y)
        });
}

/// Runs `f(ξ, part)` over the 16 `len`-element parts of `dst`, in parallel.
fn per_xi<T: Float>(dst: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    dst.par_chunks_mut(len)
        .enumerate()
        .for_each(|(xi, part)| f(xi, part));
}

// ---------------------------------------------------------------------------
// The three passes.

/// The transformed weights `U` and input `V` of one forward pass, for the
/// backward pass to reuse instead of transforming both again. Dropped, its
/// buffers go to [`RECYCLED`] for the next forward pass to overwrite.
pub(crate) struct Transformed<T: Float> {
    pub u: Vec<T>,
    pub v: Vec<T>,
}

impl<T: Float> Drop for Transformed<T> {
    fn drop(&mut self) {
        let mut pool = RECYCLED.lock().unwrap_or_else(|e| e.into_inner());
        for buf in [std::mem::take(&mut self.u), std::mem::take(&mut self.v)] {
            if pool.len() == MAX_RECYCLED {
                pool.remove(0);
            }
            pool.push(Box::new(buf));
        }
    }
}

/// Buffers of dropped [`Transformed`]s. A training step keeps two per
/// Winograd layer from its forward to its backward pass, tens of MB in
/// all: taking them from here saves allocating and zero-filling them anew
/// (the zero fill alone cost about half of what keeping them saves).
static RECYCLED: std::sync::Mutex<Vec<Box<dyn std::any::Any + Send>>> =
    std::sync::Mutex::new(Vec::new());

/// Most buffers [`RECYCLED`] holds (the oldest go first).
const MAX_RECYCLED: usize = 64;

/// A `len`-element buffer whose contents are arbitrary values of `T`: a
/// recycled one of that length, else zeros.
fn recycled<T: Float>(len: usize) -> Vec<T> {
    let mut pool = RECYCLED.lock().unwrap_or_else(|e| e.into_inner());
    let hit = pool
        .iter()
        .rposition(|b| b.downcast_ref::<Vec<T>>().is_some_and(|v| v.len() == len));
    match hit {
        Some(i) => *pool.swap_remove(i).downcast::<Vec<T>>().expect("checked"),
        None => {
            drop(pool);
            vec![T::zero(); len]
        }
    }
}

/// Forward convolution into `y` (`[n, o, oh, ow]`, fully overwritten).
pub(crate) fn forward<T: Float>(
    geo: &WinoGeom,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) {
    forward_keeping(geo, x, weight, bias, y, false);
}

/// [`forward`], also returning `U` and `V` when `keep`.
pub(crate) fn forward_keeping<T: Float>(
    geo: &WinoGeom,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    keep: bool,
) -> Option<Transformed<T>> {
    let (o, c, nt) = (geo.o, geo.c, geo.tiles());
    let mut scratch = Scratch::<T>::take();
    let (mut owned_u, mut owned_v) = (Vec::new(), Vec::new());
    let buf = scratch.get(XI * o * nt + if keep { 0 } else { XI * (o * c + c * nt) });
    let (m, rest) = buf.split_at_mut(XI * o * nt);
    let (u, v) = if keep {
        // Both are overwritten whole by the transforms.
        owned_u = recycled(XI * o * c);
        owned_v = recycled(XI * c * nt);
        (&mut owned_u[..], &mut owned_v[..])
    } else {
        rest.split_at_mut(XI * o * c)
    };
    transform_kernels(geo, weight, u);
    transform_input(geo, x, v);
    let (u, v) = (&*u, &*v);
    per_xi(m, o * nt, |xi, m_xi| {
        // M[ξ] (o×t) = U[ξ] (o×c) @ V[ξ] (c×t); V[ξ] rows are XI·t apart.
        let u_xi = Mat::row_major(&u[xi * o * c..][..o * c], o, c, c);
        let v_xi = Mat::row_major(&v[xi * nt..], c, nt, XI * nt);
        gemm_mat(false, Mat::row_major(m_xi, o, nt, nt), false, u_xi, v_xi);
    });
    untransform_output(geo, m, bias, y);
    keep.then(|| Transformed {
        u: owned_u,
        v: owned_v,
    })
}

/// dV[ξ] (c×t) = U[ξ]ᵀ (c×o) @ dM[ξ] (o×t) for every ξ; dM[ξ] rows are
/// XI·t apart.
fn input_grad_products<T: Float>(geo: &WinoGeom, u: &[T], dm: &[T], dv: &mut [T]) {
    let (o, c, nt) = (geo.o, geo.c, geo.tiles());
    per_xi(dv, c * nt, |xi, dv_xi| {
        let u_xi = Mat::row_major(&u[xi * o * c..][..o * c], o, c, c);
        let dm_xi = Mat::row_major(&dm[xi * nt..], o, nt, XI * nt);
        gemm_mat(
            false,
            Mat::row_major(dv_xi, c, nt, nt),
            false,
            u_xi.t(),
            dm_xi,
        );
    });
}

/// dU[ξ] (o×c) = dM[ξ] (o×t) @ V[ξ]ᵀ (t×c) for every ξ; both hold rows
/// XI·t apart.
fn weight_grad_products<T: Float>(geo: &WinoGeom, dm: &[T], v: &[T], du: &mut [T]) {
    let (o, c, nt) = (geo.o, geo.c, geo.tiles());
    per_xi(du, o * c, |xi, du_xi| {
        let dm_xi = Mat::row_major(&dm[xi * nt..], o, nt, XI * nt);
        let v_xi = Mat::row_major(&v[xi * nt..], c, nt, XI * nt);
        gemm_mat(
            false,
            Mat::row_major(du_xi, o, c, c),
            false,
            dm_xi,
            v_xi.t(),
        );
    });
}

/// Input gradient into `dx` (`[n, c, h, w]`, fully overwritten).
pub(crate) fn backward_input<T: Float>(geo: &WinoGeom, gy: &[T], weight: &[T], dx: &mut [T]) {
    let (o, c, nt) = (geo.o, geo.c, geo.tiles());
    let mut scratch = Scratch::<T>::take();
    let buf = scratch.get(XI * (o * c + o * nt + c * nt));
    let (u, rest) = buf.split_at_mut(XI * o * c);
    let (dm, dv) = rest.split_at_mut(XI * o * nt);
    transform_kernels(geo, weight, u);
    transform_grad_output(geo, gy, dm);
    input_grad_products(geo, u, dm, dv);
    untransform_input(geo, dv, dx);
}

/// Weight gradient into `dw` (`[o, c, 3, 3]`, fully overwritten).
pub(crate) fn backward_weight<T: Float>(geo: &WinoGeom, gy: &[T], x: &[T], dw: &mut [T]) {
    let (o, c, nt) = (geo.o, geo.c, geo.tiles());
    let mut scratch = Scratch::<T>::take();
    let buf = scratch.get(XI * (c * nt + o * nt + o * c));
    let (v, rest) = buf.split_at_mut(XI * c * nt);
    let (dm, du) = rest.split_at_mut(XI * o * nt);
    transform_input(geo, x, v);
    transform_grad_output(geo, gy, dm);
    weight_grad_products(geo, dm, v, du);
    untransform_kernels(geo, du, dw);
}

/// Both gradients (`dx` `[n, c, h, w]` and `dw` `[o, c, 3, 3]`, fully
/// overwritten), transforming `gy` once for the two: the same work as
/// [`backward_input`] then [`backward_weight`] less one output-gradient
/// transform, in the same scratch space as either.
pub(crate) fn backward<T: Float>(
    geo: &WinoGeom,
    gy: &[T],
    x: &[T],
    weight: &[T],
    dx: &mut [T],
    dw: &mut [T],
) {
    let (o, c, nt) = (geo.o, geo.c, geo.tiles());
    let mut scratch = Scratch::<T>::take();
    let buf = scratch.get(XI * (o * c + o * nt + c * nt));
    // `k` holds U, then dU; `t` holds dV, then V.
    let (k, rest) = buf.split_at_mut(XI * o * c);
    let (dm, t) = rest.split_at_mut(XI * o * nt);
    transform_grad_output(geo, gy, dm);
    transform_kernels(geo, weight, k);
    input_grad_products(geo, k, dm, t);
    untransform_input(geo, t, dx);
    transform_input(geo, x, t);
    weight_grad_products(geo, dm, t, k);
    untransform_kernels(geo, k, dw);
}

/// [`backward`] with `U` and `V` taken from the forward pass instead of
/// transforming the input and weight again (so it does not need them).
pub(crate) fn backward_reusing<T: Float>(
    geo: &WinoGeom,
    gy: &[T],
    kept: &Transformed<T>,
    dx: &mut [T],
    dw: &mut [T],
) {
    let (o, c, nt) = (geo.o, geo.c, geo.tiles());
    assert!(
        kept.u.len() == XI * o * c && kept.v.len() == XI * c * nt,
        "conv2d_backward: the forward pass's transforms are for another shape"
    );
    let mut scratch = Scratch::<T>::take();
    let buf = scratch.get(XI * (o * c + o * nt + c * nt));
    // U and V are kept, so dU and dV each get their own space.
    let (du, rest) = buf.split_at_mut(XI * o * c);
    let (dm, dv) = rest.split_at_mut(XI * o * nt);
    transform_grad_output(geo, gy, dm);
    input_grad_products(geo, &kept.u, dm, dv);
    untransform_input(geo, dv, dx);
    weight_grad_products(geo, dm, &kept.v, du);
    untransform_kernels(geo, du, dw);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct cross-correlation in f64, the reference.
    fn direct(geo: &WinoGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; geo.n * geo.o * geo.oh * geo.ow];
        for bi in 0..geo.n {
            for oi in 0..geo.o {
                for yy in 0..geo.oh {
                    for xx in 0..geo.ow {
                        let mut s = 0.0;
                        for ci in 0..geo.c {
                            for ki in 0..3 {
                                for kj in 0..3 {
                                    let (iy, ix) = (
                                        (yy + ki) as isize - geo.ph as isize,
                                        (xx + kj) as isize - geo.pw as isize,
                                    );
                                    if iy >= 0
                                        && ix >= 0
                                        && (iy as usize) < geo.h
                                        && (ix as usize) < geo.w
                                    {
                                        s += x[((bi * geo.c + ci) * geo.h + iy as usize) * geo.w
                                            + ix as usize]
                                            * w[((oi * geo.c + ci) * 3 + ki) * 3 + kj];
                                    }
                                }
                            }
                        }
                        y[((bi * geo.o + oi) * geo.oh + yy) * geo.ow + xx] = s;
                    }
                }
            }
        }
        y
    }

    fn geo(n: usize, c: usize, o: usize, h: usize, w: usize, p: usize) -> WinoGeom {
        WinoGeom {
            n,
            c,
            h,
            w,
            o,
            oh: h + 2 * p - 2,
            ow: w + 2 * p - 2,
            ph: p,
            pw: p,
        }
    }

    fn data(len: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
            })
            .collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn all_passes_agree_with_the_direct_convolution() {
        // Odd and even sizes, all three paddings, a cut-off last tile.
        for (n, c, o, h, w, p) in [
            (2, 3, 4, 5, 7, 1),
            (1, 2, 3, 4, 4, 0),
            (2, 3, 2, 3, 6, 2),
            (3, 5, 6, 8, 8, 1),
        ] {
            let g = geo(n, c, o, h, w, p);
            let x = data(n * c * h * w, 1);
            let wt = data(o * c * 9, 2);
            let mut y = vec![0.0; n * o * g.oh * g.ow];
            forward(&g, &x, &wt, None, &mut y);
            let want = direct(&g, &x, &wt);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b} for {g:?}");
            }
            let gy = data(y.len(), 3);
            let mut dx = vec![1.0; x.len()];
            backward_input(&g, &gy, &wt, &mut dx);
            let mut dw = vec![1.0; wt.len()];
            backward_weight(&g, &gy, &x, &mut dw);
            // Each input (weight) gradient entry is the output's derivative
            // along that entry: the direct convolution of a one-hot input
            // (weight), dotted with gy.
            for (i, &got) in dx.iter().enumerate() {
                let mut e = vec![0.0; x.len()];
                e[i] = 1.0;
                let want = dot(&gy, &direct(&g, &e, &wt));
                assert!(
                    (got - want).abs() < 1e-12,
                    "dx[{i}] {got} vs {want} for {g:?}"
                );
            }
            for (i, &got) in dw.iter().enumerate() {
                let mut e = vec![0.0; wt.len()];
                e[i] = 1.0;
                let want = dot(&gy, &direct(&g, &x, &e));
                assert!(
                    (got - want).abs() < 1e-12,
                    "dw[{i}] {got} vs {want} for {g:?}"
                );
            }
            // The combined backward does the same arithmetic: identical bits.
            let (mut dx2, mut dw2) = (vec![2.0; x.len()], vec![2.0; wt.len()]);
            backward(&g, &gy, &x, &wt, &mut dx2, &mut dw2);
            assert_eq!(dx2, dx, "combined dx for {g:?}");
            assert_eq!(dw2, dw, "combined dw for {g:?}");
            // Reusing the forward's transforms (twice, so the second
            // forward draws recycled buffers): identical bits again.
            for round in 0..2 {
                let mut y3 = vec![0.0; y.len()];
                let kept = forward_keeping(&g, &x, &wt, None, &mut y3, true).unwrap();
                assert_eq!(y3, y, "forward keeping, round {round}, {g:?}");
                let (mut dx3, mut dw3) = (vec![3.0; x.len()], vec![3.0; wt.len()]);
                backward_reusing(&g, &gy, &kept, &mut dx3, &mut dw3);
                assert_eq!(dx3, dx, "reusing dx, round {round}, {g:?}");
                assert_eq!(dw3, dw, "reusing dw, round {round}, {g:?}");
            }
        }
    }
}
