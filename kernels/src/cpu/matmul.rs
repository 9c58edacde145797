//! Matrix products with arbitrary strides, on top of the `gemm` crate.
//!
//! All strides are in elements and describe where element `(i, j)` of a
//! matrix lives: at index `i * rs + j * cs` of its slice. A transposed
//! operand is therefore just swapped strides; no copy is ever needed. Strides
//! may be zero for read-only operands (broadcasting) but must keep every
//! addressed element inside the slice (negative strides are rejected).
//!
//! `gemm` is built with its `x86-v4` feature: AVX-512 kernels are chosen at
//! run time when the CPU has them (AVX2/FMA or scalar otherwise).

use gemm::Parallelism;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::Float;

/// `m * n * k` from which one product is worth splitting across threads
/// inside `gemm`. Measured with `examples/bench_kernels.rs all` (`gemm_par`
/// lines, square f32) on the 2-vCPU dev VM: two threads run 112³ at 0.6x
/// the serial speed, break even just below 128³ (1.1x) and win 1.5x at
/// 192³.
pub const GEMM_PAR_THRESHOLD: usize = 128 * 128 * 128;

/// Extent of a strided matrix: `(min_offset, max_offset)` of its elements,
/// or `None` if it has no elements.
fn extent(dims: &[(usize, isize)]) -> Option<(isize, isize)> {
    if dims.iter().any(|&(n, _)| n == 0) {
        return None;
    }
    let (mut lo, mut hi) = (0isize, 0isize);
    for &(n, s) in dims {
        let reach = (n as isize - 1) * s;
        if reach < 0 {
            lo += reach;
        } else {
            hi += reach;
        }
    }
    Some((lo, hi))
}

/// Panics unless every element addressed by `dims` lies in `0..len`.
fn check_bounds(op: &str, what: &str, len: usize, dims: &[(usize, isize)]) {
    if let Some((lo, hi)) = extent(dims) {
        assert!(
            lo >= 0 && (hi as usize) < len,
            "{op}: {what} with (size, stride) {dims:?} addresses offsets {lo}..={hi} \
             outside its slice of length {len}"
        );
    }
}

/// Panics unless the strided layout addresses every element at most once
/// (needed for a destination written from several threads). The check is
/// the usual sufficient one: sorted by stride, each stride must clear the
/// whole extent of the smaller ones.
fn check_no_overlap(op: &str, dims: &[(usize, isize)]) {
    if dims.iter().any(|&(n, _)| n == 0) {
        return;
    }
    // At most three dims (batch, rows, columns): no allocation needed.
    let mut d = [(0usize, 0usize); 3];
    let mut len = 0;
    for &(n, s) in dims.iter().filter(|&&(n, _)| n > 1) {
        d[len] = (n, s.unsigned_abs());
        len += 1;
    }
    let d = &mut d[..len];
    d.sort_unstable_by_key(|&(_, s)| s);
    let mut reach = 0usize;
    for &(n, s) in d.iter() {
        assert!(
            s > reach,
            "{op}: destination (size, stride) {dims:?} addresses some elements twice"
        );
        reach += (n - 1) * s;
    }
}

fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    let work = m.saturating_mul(n).saturating_mul(k);
    if work >= GEMM_PAR_THRESHOLD && super::parallel::num_threads() > 1 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// Whether `T` has a SIMD kernel in the `gemm` crate.
fn gemm_supported<T: 'static>() -> bool {
    use std::any::TypeId;
    let t = TypeId::of::<T>();
    t == TypeId::of::<f32>() || t == TypeId::of::<f64>() || t == TypeId::of::<f16>()
}

/// What the raw product needs of an element (f32, f64, f16 and any
/// [`Float`]).
trait Elem:
    Copy
    + num_traits::Zero
    + num_traits::One
    + std::ops::Mul<Output = Self>
    + std::ops::Add<Output = Self>
    + 'static
{
}

impl<T> Elem for T where
    T: Copy
        + num_traits::Zero
        + num_traits::One
        + std::ops::Mul<Output = T>
        + std::ops::Add<Output = T>
        + 'static
{
}

/// Raw product on pointers; callers have checked bounds and overlap.
///
/// # Safety
/// Every element addressed through the pointers and strides must be valid,
/// `dst`'s addressed elements must be writable and not aliased by `lhs`/`rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: *const T,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const T,
    rhs_rs: isize,
    rhs_cs: isize,
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if gemm_supported::<T>() {
        // SAFETY: forwarded from the caller; T is one of gemm's types.
        // gemm computes dst = alpha*dst + beta*lhs*rhs, with column stride
        // before row stride in its argument list.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst,
                dst_cs,
                dst_rs,
                accumulate,
                lhs,
                lhs_cs,
                lhs_rs,
                rhs,
                rhs_cs,
                rhs_rs,
                T::one(),
                T::one(),
                false,
                false,
                false,
                par,
            )
        }
        return;
    }
    // Generic fallback for Float implementors gemm does not know.
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::zero();
            for p in 0..k {
                // SAFETY: in bounds per the caller's contract.
                unsafe {
                    acc = acc
                        + *lhs.offset(i as isize * lhs_rs + p as isize * lhs_cs)
                            * *rhs.offset(p as isize * rhs_rs + j as isize * rhs_cs);
                }
            }
            // SAFETY: as above.
            unsafe {
                let d = dst.offset(i as isize * dst_rs + j as isize * dst_cs);
                *d = if accumulate { *d + acc } else { acc };
            }
        }
    }
}

/// `dst = (accumulate ? dst : 0) + lhs @ rhs` for an `m×k` `lhs` and a `k×n`
/// `rhs`, all three with arbitrary element strides (`*_rs` between rows,
/// `*_cs` between columns).
///
/// Runs single-threaded below [`GEMM_PAR_THRESHOLD`] (`m*n*k`) and on the
/// whole rayon pool above. `k == 0` gives zeros (or leaves `dst` unchanged
/// when accumulating); `m == 0` or `n == 0` does nothing.
///
/// # Panics
/// If a matrix addresses elements outside its slice, or `dst` addresses an
/// element twice.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: &[T],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[T],
    rhs_rs: isize,
    rhs_cs: isize,
) {
    gemm_checked(
        "gemm",
        m,
        n,
        k,
        dst,
        dst_rs,
        dst_cs,
        accumulate,
        lhs,
        lhs_rs,
        lhs_cs,
        rhs,
        rhs_rs,
        rhs_cs,
        parallelism(m, n, k),
    );
}

/// Like [`gemm()`] but never spawns threads: for callers that already
/// parallelise at a coarser level (e.g. over a batch).
#[allow(clippy::too_many_arguments)]
pub fn gemm_serial<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: &[T],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[T],
    rhs_rs: isize,
    rhs_cs: isize,
) {
    gemm_checked(
        "gemm_serial",
        m,
        n,
        k,
        dst,
        dst_rs,
        dst_cs,
        accumulate,
        lhs,
        lhs_rs,
        lhs_cs,
        rhs,
        rhs_rs,
        rhs_cs,
        Parallelism::None,
    );
}

#[allow(clippy::too_many_arguments)]
fn gemm_checked<T: Elem>(
    op: &str,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: &[T],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[T],
    rhs_rs: isize,
    rhs_cs: isize,
    par: Parallelism,
) {
    super::alloc::keep_freed_buffers();
    check_bounds(op, "dst", dst.len(), &[(m, dst_rs), (n, dst_cs)]);
    check_no_overlap(op, &[(m, dst_rs), (n, dst_cs)]);
    if m == 0 || n == 0 {
        return;
    }
    check_bounds(op, "lhs", lhs.len(), &[(m, lhs_rs), (k, lhs_cs)]);
    check_bounds(op, "rhs", rhs.len(), &[(k, rhs_rs), (n, rhs_cs)]);
    if gemm_supported::<T>() {
        // A row-major destination is the transposed product of a
        // column-major one; see `via_transposes` for why that matters.
        let done = if dst_cs == 1 && dst_rs != 1 {
            via_transposes(
                op, m, n, k, dst, dst_rs, accumulate, lhs, lhs_rs, lhs_cs, rhs, rhs_rs, rhs_cs, par,
            )
        } else if dst_rs == 1 && dst_cs != 1 {
            via_transposes(
                op, n, m, k, dst, dst_cs, accumulate, rhs, rhs_cs, rhs_rs, lhs, lhs_cs, lhs_rs, par,
            )
        } else {
            false
        };
        if done {
            return;
        }
    }
    // SAFETY: bounds and destination overlap checked above; `dst` is a
    // unique borrow so it cannot alias `lhs` or `rhs`.
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_rs,
            dst_cs,
            accumulate,
            lhs.as_ptr(),
            lhs_rs,
            lhs_cs,
            rhs.as_ptr(),
            rhs_rs,
            rhs_cs,
            par,
        )
    }
}

/// `gemm` packs the operand it multiplies from the left of a column-major
/// destination; when that operand is stored row-major it packs with a
/// strided, scalar gather. A row-major destination with a column-major
/// right operand (PyTorch's `x @ w.T`: every `Linear` forward) is exactly
/// that case, and the gather reads the whole weight on every call.
/// Measured on the dev VM (`bench_kernels all`, `gemm_layout` lines),
/// `[64, 512] @ [512, 512]ᵀ` took 326 µs this way and 77 µs with all three
/// matrices row-major.
///
/// So when the right operand (the weight) is much larger than the other
/// two, compute `dstᵀ = rhsᵀ · lhsᵀ` into a row-major scratch buffer with
/// `lhsᵀ` copied row-major, then transpose the result into `dst`: two
/// small tiled copies instead of a slow pack of the big operand.
///
/// Arguments describe a product whose destination is row-major (`dst`
/// with row stride `dst_rs`, column stride 1). Returns false, having done
/// nothing, when the layout is not the slow one or the copies would not pay.
#[allow(clippy::too_many_arguments)]
fn via_transposes<T: Elem>(
    op: &str,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: isize,
    accumulate: bool,
    lhs: &[T],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[T],
    rhs_rs: isize,
    rhs_cs: isize,
    par: Parallelism,
) -> bool {
    let rhs_col_major = rhs_rs == 1 && rhs_cs > 1;
    let weight = n.saturating_mul(k);
    let copies = m.saturating_mul(k + n);
    if !rhs_col_major || weight < TRANSPOSE_MIN || weight < 4 * copies || lhs_rs < 0 || lhs_cs < 0 {
        return false;
    }
    // lhsᵀ as a row-major [k, m] matrix (already so when lhs is column-major).
    let copied;
    let (lt, lt_rs) = if lhs_rs == 1 {
        (lhs, lhs_cs)
    } else {
        copied = transpose_to_row_major(m, k, lhs, lhs_rs as usize, lhs_cs as usize);
        (&copied[..], m as isize)
    };
    let mut tmp = vec![T::zero(); n * m];
    gemm_checked(
        op, n, m, k, &mut tmp, m as isize, 1, false, rhs, rhs_cs, rhs_rs, lt, lt_rs, 1, par,
    );
    // dst[i, j] (+)= tmp[j, i], in tiles so both sides stay in cache.
    let dst_rs = dst_rs as usize;
    for i0 in (0..m).step_by(TILE) {
        for j0 in (0..n).step_by(TILE) {
            for i in i0..(i0 + TILE).min(m) {
                let row = &mut dst[i * dst_rs..];
                for j in j0..(j0 + TILE).min(n) {
                    let v = tmp[j * m + i];
                    row[j] = if accumulate { row[j] + v } else { v };
                }
            }
        }
    }
    true
}

/// Weight size (`n * k` elements) from which [`via_transposes`] is used.
const TRANSPOSE_MIN: usize = 64 * 1024;

/// Tile edge of the transposing copies (16 × 16 `f32` = 1 KiB).
const TILE: usize = 16;

/// The `rows × cols` matrix at `src` (non-negative strides `rs`, `cs`),
/// transposed into a new row-major `[cols, rows]` buffer.
fn transpose_to_row_major<T: Elem>(
    rows: usize,
    cols: usize,
    src: &[T],
    rs: usize,
    cs: usize,
) -> Vec<T> {
    let mut out = vec![T::zero(); rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for c in c0..(c0 + TILE).min(cols) {
                let line = &mut out[c * rows..(c + 1) * rows];
                for r in r0..(r0 + TILE).min(rows) {
                    line[r] = src[r * rs + c * cs];
                }
            }
        }
    }
    out
}

/// A raw pointer that may cross threads; soundness is argued at each use.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: only used for disjoint writes (checked by `check_no_overlap`) or
// reads of shared data.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

/// `batch` independent products `dst[b] = (accumulate ? dst[b] : 0) +
/// lhs[b] @ rhs[b]`, where matrix `b` of each operand starts `b * *_bs`
/// elements into its slice. A batch stride of 0 on `lhs` or `rhs`
/// broadcasts one matrix to the whole batch.
///
/// When the single products are small (below [`GEMM_PAR_THRESHOLD`]) the
/// batch is spread over rayon's pool, each product running serially;
/// otherwise products run one after the other, each multi-threaded.
///
/// # Panics
/// If an operand addresses elements outside its slice, or `dst` addresses
/// an element twice (including across batch entries).
#[allow(clippy::too_many_arguments)]
pub fn batched_gemm<T: Float>(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_bs: isize,
    dst_rs: isize,
    dst_cs: isize,
    lhs: &[T],
    lhs_bs: isize,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[T],
    rhs_bs: isize,
    rhs_rs: isize,
    rhs_cs: isize,
    accumulate: bool,
) {
    const OP: &str = "batched_gemm";
    let d_dims = [(batch, dst_bs), (m, dst_rs), (n, dst_cs)];
    check_bounds(OP, "dst", dst.len(), &d_dims);
    check_no_overlap(OP, &d_dims);
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    check_bounds(
        OP,
        "lhs",
        lhs.len(),
        &[(batch, lhs_bs), (m, lhs_rs), (k, lhs_cs)],
    );
    check_bounds(
        OP,
        "rhs",
        rhs.len(),
        &[(batch, rhs_bs), (k, rhs_rs), (n, rhs_cs)],
    );

    // A matrix shared by the whole batch, with the other operand and the
    // destination stacked along rows (or columns) at exactly one matrix's
    // extent: the batch is one tall (or wide) product.
    if batch > 1 && rhs_bs == 0 && lhs_bs == m as isize * lhs_rs && dst_bs == m as isize * dst_rs {
        let (bm, par) = (batch * m, parallelism(batch * m, n, k));
        return gemm_checked(
            OP, bm, n, k, dst, dst_rs, dst_cs, accumulate, lhs, lhs_rs, lhs_cs, rhs, rhs_rs,
            rhs_cs, par,
        );
    }
    if batch > 1 && lhs_bs == 0 && rhs_bs == n as isize * rhs_cs && dst_bs == n as isize * dst_cs {
        let (bn, par) = (batch * n, parallelism(m, batch * n, k));
        return gemm_checked(
            OP, m, bn, k, dst, dst_rs, dst_cs, accumulate, lhs, lhs_rs, lhs_cs, rhs, rhs_rs,
            rhs_cs, par,
        );
    }

    let per = m.saturating_mul(n).saturating_mul(k);
    let d = SendPtr(dst.as_mut_ptr());
    let (l, r) = (
        SendPtr(lhs.as_ptr() as *mut T),
        SendPtr(rhs.as_ptr() as *mut T),
    );
    let one = |b: usize, par: Parallelism| {
        let (d, l, r) = (d, l, r);
        // SAFETY: bounds checked for the whole batch above; batch entries of
        // `dst` are pairwise disjoint (check_no_overlap over all three
        // dims), so concurrent calls write disjoint elements.
        unsafe {
            gemm_raw(
                m,
                n,
                k,
                d.0.offset(b as isize * dst_bs),
                dst_rs,
                dst_cs,
                accumulate,
                l.0.offset(b as isize * lhs_bs),
                lhs_rs,
                lhs_cs,
                r.0.offset(b as isize * rhs_bs),
                rhs_rs,
                rhs_cs,
                par,
            )
        }
    };
    if per >= GEMM_PAR_THRESHOLD || super::parallel::num_threads() == 1 {
        let par = parallelism(m, n, k);
        (0..batch).for_each(|b| one(b, par));
    } else if per.saturating_mul(batch) < GEMM_PAR_THRESHOLD {
        (0..batch).for_each(|b| one(b, Parallelism::None));
    } else {
        // Enough products per task to amortise the task itself.
        let min_len = (GEMM_PAR_THRESHOLD / 4 / per.max(1)).max(1);
        (0..batch)
            .into_par_iter()
            .with_min_len(min_len)
            .for_each(|b| one(b, Parallelism::None));
    }
}

/// Half-precision [`gemm()`]: same arguments and semantics, using the `gemm`
/// crate's native `f16` kernels (which accumulate in `f32` internally on
/// CPUs without native f16 arithmetic).
#[allow(clippy::too_many_arguments)]
pub fn gemm_f16(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f16],
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: &[f16],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[f16],
    rhs_rs: isize,
    rhs_cs: isize,
) {
    gemm_checked(
        "gemm_f16",
        m,
        n,
        k,
        dst,
        dst_rs,
        dst_cs,
        accumulate,
        lhs,
        lhs_rs,
        lhs_cs,
        rhs,
        rhs_rs,
        rhs_cs,
        parallelism(m, n, k),
    );
}

/// bfloat16 [`gemm()`]: same arguments and semantics. The `gemm` crate has no
/// bf16 kernels, so the operands are converted to contiguous `f32`
/// matrices, multiplied with the `f32` kernel (f32 accumulation), and the
/// result is rounded back to bf16 once. Costs `O(mk + kn + mn)` extra memory.
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [bf16],
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: &[bf16],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[bf16],
    rhs_rs: isize,
    rhs_cs: isize,
) {
    const OP: &str = "gemm_bf16";
    check_bounds(OP, "dst", dst.len(), &[(m, dst_rs), (n, dst_cs)]);
    check_no_overlap(OP, &[(m, dst_rs), (n, dst_cs)]);
    if m == 0 || n == 0 {
        return;
    }
    check_bounds(OP, "lhs", lhs.len(), &[(m, lhs_rs), (k, lhs_cs)]);
    check_bounds(OP, "rhs", rhs.len(), &[(k, rhs_rs), (n, rhs_cs)]);
    let gather = |src: &[bf16], rows: usize, cols: usize, rs: isize, cs: isize| {
        let mut out = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                out.push(src[(i as isize * rs + j as isize * cs) as usize].to_f32());
            }
        }
        out
    };
    let a = gather(lhs, m, k, lhs_rs, lhs_cs);
    let b = gather(rhs, k, n, rhs_rs, rhs_cs);
    let mut c = if accumulate {
        gather(dst, m, n, dst_rs, dst_cs)
    } else {
        vec![0.0f32; m * n]
    };
    gemm(
        m, n, k, &mut c, n as isize, 1, accumulate, &a, k as isize, 1, &b, n as isize, 1,
    );
    for i in 0..m {
        for j in 0..n {
            dst[(i as isize * dst_rs + j as isize * dst_cs) as usize] =
                bf16::from_f32(c[i * n + j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
        fn vec<T: Float>(&mut self, n: usize) -> Vec<T> {
            (0..n).map(|_| T::cast_f64(self.next())).collect()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn naive(
        m: usize,
        n: usize,
        k: usize,
        dst: &mut [f64],
        d: (isize, isize),
        acc: bool,
        lhs: &[f64],
        l: (isize, isize),
        rhs: &[f64],
        r: (isize, isize),
    ) {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += lhs[(i as isize * l.0 + p as isize * l.1) as usize]
                        * rhs[(p as isize * r.0 + j as isize * r.1) as usize];
                }
                let di = (i as isize * d.0 + j as isize * d.1) as usize;
                dst[di] = if acc { dst[di] + s } else { s };
            }
        }
    }

    fn close<T: Float>(got: &[T], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let g = g.as_f64();
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "index {i}: got {g}, want {w}"
            );
        }
    }

    /// Products large enough for `via_transposes` (the weight-sized
    /// operand column-major on the right of a row-major destination, and
    /// the mirrored column-major-destination case), every layout of the
    /// small operand, with and without accumulation, with a padded
    /// destination row stride: all equal the naive product.
    #[test]
    fn transposed_weight_route_matches_naive() {
        let mut rng = Rng(0x5eed_cafe);
        let (m, n, k) = (7, 520, 150);
        assert!(n * k >= TRANSPOSE_MIN && n * k >= 4 * m * (k + n));
        for lhs_col in [false, true] {
            for acc in [false, true] {
                let lhs: Vec<f32> = rng.vec(m * k);
                let rhs: Vec<f32> = rng.vec(k * n);
                let l = strides(m, k, lhs_col);
                let r = strides(k, n, true);
                let lhs64: Vec<f64> = lhs.iter().map(|&v| v as f64).collect();
                let rhs64: Vec<f64> = rhs.iter().map(|&v| v as f64).collect();
                // Row-major destination with padded rows.
                let d = (n as isize + 3, 1);
                let init: Vec<f32> = rng.vec(m * (n + 3));
                let mut got = init.clone();
                let mut want: Vec<f64> = init.iter().map(|&v| v as f64).collect();
                gemm(
                    m, n, k, &mut got, d.0, d.1, acc, &lhs, l.0, l.1, &rhs, r.0, r.1,
                );
                naive(m, n, k, &mut want, d, acc, &lhs64, l, &rhs64, r);
                close(&got, &want, 1e-4);
                // The mirror image: dstᵀ column-major = rhsᵀ (row-major
                // weight on the left) · lhsᵀ.
                let mut got_t = init.clone();
                let mut want_t: Vec<f64> = init.iter().map(|&v| v as f64).collect();
                let dt = (1, n as isize + 3);
                gemm(
                    n, m, k, &mut got_t, dt.0, dt.1, acc, &rhs, r.1, r.0, &lhs, l.1, l.0,
                );
                naive(
                    n,
                    m,
                    k,
                    &mut want_t,
                    dt,
                    acc,
                    &rhs64,
                    (r.1, r.0),
                    &lhs64,
                    (l.1, l.0),
                );
                close(&got_t, &want_t, 1e-4);
            }
        }
    }

    /// Strides for a `rows×cols` matrix, row- or column-major.
    fn strides(rows: usize, cols: usize, col_major: bool) -> (isize, isize) {
        if col_major {
            (1, rows as isize)
        } else {
            (cols as isize, 1)
        }
    }

    fn check_gemm<T: Float>(tol: f64) {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (17, 1, 9),
            (1, 13, 4),
            (33, 31, 29),
            (64, 70, 3),
            (100, 120, 110),
            (5, 4, 0),
            (0, 4, 5),
        ];
        for &(m, n, k) in &shapes {
            for mask in 0..8u32 {
                let acc = mask & 1 != 0;
                let lt = strides(m, k, mask & 2 != 0);
                let rt = strides(k, n, mask & 4 != 0);
                let dt = strides(m, n, mask & 6 == 6);
                let a: Vec<T> = rng.vec(m * k);
                let b: Vec<T> = rng.vec(k * n);
                let mut c: Vec<T> = rng.vec(m * n);
                let a64: Vec<f64> = a.iter().map(|x| x.as_f64()).collect();
                let b64: Vec<f64> = b.iter().map(|x| x.as_f64()).collect();
                let mut c64: Vec<f64> = c.iter().map(|x| x.as_f64()).collect();
                naive(m, n, k, &mut c64, dt, acc, &a64, lt, &b64, rt);
                gemm(
                    m, n, k, &mut c, dt.0, dt.1, acc, &a, lt.0, lt.1, &b, rt.0, rt.1,
                );
                close(&c, &c64, tol);
            }
        }
    }

    #[test]
    fn gemm_f32_matches_naive() {
        check_gemm::<f32>(1e-4);
    }

    #[test]
    fn gemm_f64_matches_naive() {
        check_gemm::<f64>(1e-12);
    }

    #[test]
    fn gemm_strided_views_and_broadcast() {
        // lhs is every other row of a bigger matrix; rhs a broadcast row
        // (row stride 0); dst has padding between rows.
        let mut rng = Rng(7);
        let (m, n, k) = (6, 5, 4);
        let a: Vec<f64> = rng.vec(2 * m * k);
        let b: Vec<f64> = rng.vec(n);
        let mut c = vec![0.0f64; m * (n + 3)];
        let mut want = c.clone();
        naive(
            m,
            n,
            k,
            &mut want,
            ((n + 3) as isize, 1),
            false,
            &a,
            (2 * k as isize, 1),
            &b,
            (0, 1),
        );
        gemm(
            m,
            n,
            k,
            &mut c,
            (n + 3) as isize,
            1,
            false,
            &a,
            2 * k as isize,
            1,
            &b,
            0,
            1,
        );
        close(&c, &want, 1e-12);
    }

    #[test]
    #[should_panic(expected = "outside its slice")]
    fn gemm_rejects_short_slices() {
        let mut c = vec![0.0f32; 4];
        gemm(
            2, 2, 2, &mut c, 2, 1, false, &[0.0; 3], 2, 1, &[0.0; 4], 2, 1,
        );
    }

    #[test]
    #[should_panic(expected = "twice")]
    fn gemm_rejects_overlapping_dst() {
        let mut c = vec![0.0f32; 4];
        gemm(
            2, 2, 2, &mut c, 1, 1, false, &[0.0; 4], 2, 1, &[0.0; 4], 2, 1,
        );
    }

    #[test]
    fn batched_matches_naive() {
        let mut rng = Rng(99);
        // (batch, m, n, k, broadcast lhs, broadcast rhs)
        let cases = [
            (1, 3, 4, 5, false, false),
            (7, 9, 8, 10, false, true),
            (64, 16, 12, 20, true, false),
            (3, 120, 130, 100, false, false),
            (0, 3, 3, 3, false, false),
        ];
        for &(batch, m, n, k, bl, br) in &cases {
            for acc in [false, true] {
                let a: Vec<f64> = rng.vec(if bl { m * k } else { batch * m * k });
                let b: Vec<f64> = rng.vec(if br { k * n } else { batch * k * n });
                let mut c: Vec<f64> = rng.vec(batch * m * n);
                let mut want = c.clone();
                let (abs, bbs) = (
                    if bl { 0 } else { (m * k) as isize },
                    if br { 0 } else { (k * n) as isize },
                );
                for i in 0..batch {
                    let d0 = i * m * n;
                    let mut tmp = want[d0..d0 + m * n].to_vec();
                    let a0 = i * abs as usize;
                    let b0 = i * bbs as usize;
                    // lhs stored transposed (k×m col-major view), rhs row-major
                    naive(
                        m,
                        n,
                        k,
                        &mut tmp,
                        (n as isize, 1),
                        acc,
                        &a[a0..],
                        (1, m as isize),
                        &b[b0..],
                        (n as isize, 1),
                    );
                    want[d0..d0 + m * n].copy_from_slice(&tmp);
                }
                batched_gemm(
                    batch,
                    m,
                    n,
                    k,
                    &mut c,
                    (m * n) as isize,
                    n as isize,
                    1,
                    &a,
                    abs,
                    1,
                    m as isize,
                    &b,
                    bbs,
                    n as isize,
                    1,
                    acc,
                );
                close(&c, &want, 1e-12);
            }
        }
    }

    #[test]
    fn gemm_does_not_depend_on_thread_count() {
        let mut rng = Rng(11);
        let (m, n, k) = (200, 190, 300);
        let a: Vec<f32> = rng.vec(m * k);
        let b: Vec<f32> = rng.vec(k * n);
        let run = || {
            let mut c = vec![0.0f32; m * n];
            gemm(
                m, n, k, &mut c, n as isize, 1, false, &a, 1, m as isize, &b, n as isize, 1,
            );
            c
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        assert!(one.install(run) == three.install(run));
    }

    /// Batched products that fold into one tall or wide product.
    #[test]
    fn batched_folds_shared_operand() {
        let mut rng = Rng(42);
        let (batch, m, n, k) = (5, 7, 6, 9);
        // [batch, m, k] @ shared [k, n] -> [batch, m, n]
        let a: Vec<f64> = rng.vec(batch * m * k);
        let b: Vec<f64> = rng.vec(k * n);
        let mut c = vec![0.0; batch * m * n];
        let mut want = c.clone();
        naive(
            batch * m,
            n,
            k,
            &mut want,
            (n as isize, 1),
            false,
            &a,
            (k as isize, 1),
            &b,
            (n as isize, 1),
        );
        batched_gemm(
            batch,
            m,
            n,
            k,
            &mut c,
            (m * n) as isize,
            n as isize,
            1,
            &a,
            (m * k) as isize,
            k as isize,
            1,
            &b,
            0,
            n as isize,
            1,
            false,
        );
        close(&c, &want, 1e-12);
        // shared [m, k] @ rhs laid out [k, batch, n] -> dst [m, batch, n]
        let a: Vec<f64> = rng.vec(m * k);
        let b: Vec<f64> = rng.vec(k * batch * n);
        let mut c: Vec<f64> = rng.vec(m * batch * n);
        let mut want = c.clone();
        let bn = (batch * n) as isize;
        naive(
            m,
            batch * n,
            k,
            &mut want,
            (bn, 1),
            true,
            &a,
            (k as isize, 1),
            &b,
            (bn, 1),
        );
        batched_gemm(
            batch, m, n, k, &mut c, n as isize, bn, 1, &a, 0, k as isize, 1, &b, n as isize, bn, 1,
            true,
        );
        close(&c, &want, 1e-12);
    }

    #[test]
    fn half_precision() {
        let mut rng = Rng(3);
        for &(m, n, k) in &[(3, 4, 5), (40, 33, 70)] {
            let a64: Vec<f64> = rng.vec(m * k);
            let b64: Vec<f64> = rng.vec(k * n);
            let mut want = vec![0.0f64; m * n];
            // rhs transposed via strides
            naive(
                m,
                n,
                k,
                &mut want,
                (n as isize, 1),
                false,
                &a64,
                (k as isize, 1),
                &b64,
                (1, k as isize),
            );
            let tol = 0.02 * (k as f64).sqrt();
            let a: Vec<f16> = a64.iter().map(|&x| f16::from_f64(x)).collect();
            let b: Vec<f16> = b64.iter().map(|&x| f16::from_f64(x)).collect();
            let mut c = vec![f16::ZERO; m * n];
            gemm_f16(
                m, n, k, &mut c, n as isize, 1, false, &a, k as isize, 1, &b, 1, k as isize,
            );
            for (g, w) in c.iter().zip(&want) {
                assert!((g.to_f64() - w).abs() < tol, "{g} vs {w}");
            }
            let a: Vec<bf16> = a64.iter().map(|&x| bf16::from_f64(x)).collect();
            let b: Vec<bf16> = b64.iter().map(|&x| bf16::from_f64(x)).collect();
            let mut c = vec![bf16::ONE; m * n];
            gemm_bf16(
                m, n, k, &mut c, n as isize, 1, true, &a, k as isize, 1, &b, 1, k as isize,
            );
            for (g, w) in c.iter().zip(&want) {
                assert!((g.to_f64() - (w + 1.0)).abs() < 4.0 * tol, "{g} vs {w}+1");
            }
        }
    }
}
