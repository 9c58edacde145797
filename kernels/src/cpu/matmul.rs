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

use std::mem::MaybeUninit;

use super::transpose::{transpose, transpose_to};
use half::{bf16, f16};
use rayon::prelude::*;

use crate::Float;

/// `m * n * k` from which one product is worth splitting across threads
/// inside `gemm`. Measured with `examples/bench_kernels.rs all` (`gemm_par`
/// lines, square f32) on a 2-core Intel Xeon (AVX-512) with the workers
/// kept spinning ([`keep_workers_warm`](super::parallel::keep_workers_warm)):
/// two threads run 48³ at 0.87x the serial speed, 64³ at 1.1x, 80³ at
/// 1.38x and 128³ at 1.65x. (With sleeping workers the break-even was near
/// 128³.)
pub const GEMM_PAR_THRESHOLD: usize = 64 * 64 * 128;

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
        super::parallel::keep_workers_warm();
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

/// A `rows × cols` matrix with arbitrary element strides: element `(i, j)`
/// at `data[i * rs + j * cs]`. `data` is a slice, or a raw pointer inside
/// [`gemm_raw`]. A product's sizes are those of its operands: `dst (m×n) =
/// lhs (m×k) @ rhs (k×n)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<S> {
    data: S,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

impl<S> Mat<S> {
    /// `rows × cols` elements `rs` apart between rows, `cs` between columns.
    pub(crate) fn new(data: S, rows: usize, cols: usize, rs: isize, cs: isize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A row-major matrix whose rows start `ld` elements apart.
    pub(crate) fn row_major(data: S, rows: usize, cols: usize, ld: usize) -> Self {
        Mat::new(data, rows, cols, ld as isize, 1)
    }

    /// The transpose: the same elements with rows and columns swapped.
    pub(crate) fn t(self) -> Self {
        Mat::new(self.data, self.cols, self.rows, self.cs, self.rs)
    }

    /// The same matrix addressed through `data` instead.
    /// The same matrix over `f(data)`.
    fn map<D>(self, f: impl FnOnce(S) -> D) -> Mat<D> {
        Mat::new(f(self.data), self.rows, self.cols, self.rs, self.cs)
    }

    fn with<D>(&self, data: D) -> Mat<D> {
        Mat::new(data, self.rows, self.cols, self.rs, self.cs)
    }

    /// Where element `(i, j)` lies, counted from `data`.
    fn at(&self, i: usize, j: usize) -> isize {
        i as isize * self.rs + j as isize * self.cs
    }

    /// `(size, stride)` of the rows and the columns, for the bounds checks.
    fn dims(&self) -> [(usize, isize); 2] {
        [(self.rows, self.rs), (self.cols, self.cs)]
    }
}

/// Panics unless `dst = lhs @ rhs` has consistent sizes, every operand
/// addresses only elements of its slice and `dst` none twice. Returns
/// false, having checked only `dst`, when there is nothing to compute
/// (`m == 0` or `n == 0`).
fn check_product<T, D: DstLen>(op: &str, dst: &Mat<D>, lhs: &Mat<&[T]>, rhs: &Mat<&[T]>) -> bool {
    debug_assert!(
        lhs.rows == dst.rows && rhs.cols == dst.cols && lhs.cols == rhs.rows,
        "{op}: inconsistent product sizes"
    );
    check_bounds(op, "dst", dst.data.dst_len(), &dst.dims());
    check_no_overlap(op, &dst.dims());
    if dst.rows == 0 || dst.cols == 0 {
        return false;
    }
    check_bounds(op, "lhs", lhs.data.len(), &lhs.dims());
    check_bounds(op, "rhs", rhs.data.len(), &rhs.dims());
    true
}

/// Raw product on pointers; callers have checked bounds and overlap.
///
/// # Safety
/// Every element addressed through the pointers and strides must be valid,
/// `dst`'s addressed elements must be writable and not aliased by `lhs`/`rhs`.
unsafe fn gemm_raw<T: Elem>(
    dst: Mat<*mut T>,
    accumulate: bool,
    lhs: Mat<*const T>,
    rhs: Mat<*const T>,
    par: Parallelism,
) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
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
                dst.data,
                dst.cs,
                dst.rs,
                accumulate,
                lhs.data,
                lhs.cs,
                lhs.rs,
                rhs.data,
                rhs.cs,
                rhs.rs,
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
                    acc = acc + *lhs.data.offset(lhs.at(i, p)) * *rhs.data.offset(rhs.at(p, j));
                }
            }
            // SAFETY: as above.
            unsafe {
                let d = dst.data.offset(dst.at(i, j));
                *d = if accumulate { *d + acc } else { acc };
            }
        }
    }
}

/// Defines a public product taking the three matrices as (slice, row
/// stride, column stride), with `accumulate` after the destination (the
/// argument list of every entry point below), and running `$body` on them
/// as [`Mat`]s.
macro_rules! strided_product {
    ($(#[$attr:meta])* fn $name:ident $(<$t:ident: $bound:ident>)? ($elem:ty) = $body:expr;) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name $(<$t: $bound>)? (
            m: usize,
            n: usize,
            k: usize,
            dst: &mut [$elem],
            dst_rs: isize,
            dst_cs: isize,
            accumulate: bool,
            lhs: &[$elem],
            lhs_rs: isize,
            lhs_cs: isize,
            rhs: &[$elem],
            rhs_rs: isize,
            rhs_cs: isize,
        ) {
            $body(
                Mat::new(dst, m, n, dst_rs, dst_cs),
                accumulate,
                Mat::new(lhs, m, k, lhs_rs, lhs_cs),
                Mat::new(rhs, k, n, rhs_rs, rhs_cs),
            )
        }
    };
}

strided_product! {
    /// `dst = (accumulate ? dst : 0) + lhs @ rhs` for an `m×k` `lhs` and a
    /// `k×n` `rhs`, all three with arbitrary element strides (`*_rs` between
    /// rows, `*_cs` between columns).
    ///
    /// Runs single-threaded below [`GEMM_PAR_THRESHOLD`] (`m*n*k`) and on the
    /// whole rayon pool above. `k == 0` gives zeros (or leaves `dst`
    /// unchanged when accumulating); `m == 0` or `n == 0` does nothing.
    ///
    /// # Panics
    /// If a matrix addresses elements outside its slice, or `dst` addresses an
    /// element twice.
    fn gemm<T: Float>(T) = |dst, acc, lhs, rhs| gemm_mat(true, dst, acc, lhs, rhs);
}

strided_product! {
    /// Like [`gemm()`] but never spawns threads: for callers that already
    /// parallelise at a coarser level (e.g. over a batch).
    fn gemm_serial<T: Float>(T) = |dst, acc, lhs, rhs| gemm_mat(false, dst, acc, lhs, rhs);
}

/// [`gemm()`] (`pool`) or [`gemm_serial`] on [`Mat`] operands, for this
/// crate's kernels.
pub(crate) fn gemm_mat<T: Float>(
    pool: bool,
    dst: Mat<&mut [T]>,
    accumulate: bool,
    lhs: Mat<&[T]>,
    rhs: Mat<&[T]>,
) {
    let op = if pool { "gemm" } else { "gemm_serial" };
    gemm_checked(op, dst.map(Out::init), accumulate, lhs, rhs, pool);
}

/// `lhs @ rhs` (an `m×k` and a `k×n` matrix with arbitrary strides, as in
/// [`gemm()`]) as a new row-major `m×n` vector. The product writes each
/// element once: unlike `gemm` into `vec![0; m * n]` there is no zero fill
/// first (a backward pass's weight gradient is megabytes).
///
/// # Panics
/// If a matrix addresses elements outside its slice.
#[allow(clippy::too_many_arguments)]
pub fn gemm_new<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    lhs: &[T],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[T],
    rhs_rs: isize,
    rhs_cs: isize,
) -> Vec<T> {
    let len = m.checked_mul(n).expect("gemm_new: m * n overflows");
    let mut v = Vec::with_capacity(len);
    let dst = Mat::row_major(Out::uninit(&mut v.spare_capacity_mut()[..len]), m, n, n);
    let (lhs, rhs) = (
        Mat::new(lhs, m, k, lhs_rs, lhs_cs),
        Mat::new(rhs, k, n, rhs_rs, rhs_cs),
    );
    gemm_checked("gemm_new", dst, false, lhs, rhs, true);
    // SAFETY: a product that does not accumulate writes every element of its
    // destination (zeros when k == 0), and `dst` covered exactly `len`.
    unsafe { v.set_len(len) };
    v
}

/// A product's destination elements: a slice, or spare capacity that only
/// a product that does not accumulate may fill (it never reads them).
pub(crate) struct Out<'a, T> {
    ptr: *mut T,
    len: usize,
    init: bool,
    _borrow: std::marker::PhantomData<&'a mut [MaybeUninit<T>]>,
}

impl<'a, T> Out<'a, T> {
    /// Initialised elements, which a product may also accumulate into.
    fn init(s: &'a mut [T]) -> Self {
        Out {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            init: true,
            _borrow: std::marker::PhantomData,
        }
    }

    /// Uninitialised elements, for a product that overwrites them.
    fn uninit(s: &'a mut [MaybeUninit<T>]) -> Self {
        Out {
            ptr: s.as_mut_ptr().cast(),
            len: s.len(),
            init: false,
            _borrow: std::marker::PhantomData,
        }
    }

    /// The same elements, borrowed for a shorter time.
    fn reborrow(&mut self) -> Out<'_, T> {
        Out {
            ptr: self.ptr,
            len: self.len,
            init: self.init,
            _borrow: std::marker::PhantomData,
        }
    }
}

/// The element count of a destination, for [`check_product`].
trait DstLen {
    fn dst_len(&self) -> usize;
}

impl<T> DstLen for &mut [T] {
    fn dst_len(&self) -> usize {
        self.len()
    }
}

impl<T> DstLen for Out<'_, T> {
    fn dst_len(&self) -> usize {
        self.len
    }
}

/// The checked product behind every entry point; on the rayon pool (above
/// [`GEMM_PAR_THRESHOLD`]) only if `pool`.
fn gemm_checked<T: Elem>(
    op: &str,
    mut dst: Mat<Out<'_, T>>,
    accumulate: bool,
    lhs: Mat<&[T]>,
    rhs: Mat<&[T]>,
    pool: bool,
) {
    super::alloc::keep_freed_buffers();
    assert!(
        dst.data.init || !accumulate,
        "{op}: cannot accumulate into uninitialised memory"
    );
    if !check_product(op, &dst, &lhs, &rhs) {
        return;
    }
    if gemm_supported::<T>() {
        // A row-major destination is the transposed product of a
        // column-major one; see `via_transposes` for why that matters.
        let done = if dst.cs == 1 && dst.rs != 1 {
            via_transposes(op, dst.reborrow(), accumulate, lhs, rhs, pool)
        } else if dst.rs == 1 && dst.cs != 1 {
            via_transposes(op, dst.reborrow().t(), accumulate, rhs.t(), lhs.t(), pool)
        } else {
            false
        };
        if done {
            return;
        }
    }
    let par = if pool {
        parallelism(dst.rows, dst.cols, lhs.cols)
    } else {
        Parallelism::None
    };
    let d = dst.data.ptr;
    // SAFETY: bounds and destination overlap checked above; `dst` is a
    // unique borrow so it cannot alias `lhs` or `rhs`, and it is read only
    // when accumulating, which needs initialised elements (asserted).
    unsafe {
        gemm_raw(
            dst.with(d),
            accumulate,
            lhs.with(lhs.data.as_ptr()),
            rhs.with(rhs.data.as_ptr()),
            par,
        )
    }
}

impl<T> Mat<Out<'_, T>> {
    /// The same matrix, borrowing the elements for a shorter time.
    fn reborrow(&mut self) -> Mat<Out<'_, T>> {
        let data = self.data.reborrow();
        Mat::new(data, self.rows, self.cols, self.rs, self.cs)
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
/// `dst` is row-major (column stride 1). Returns false, having done
/// nothing, when the layout is not the slow one or the copies would not pay.
fn via_transposes<T: Elem>(
    op: &str,
    dst: Mat<Out<'_, T>>,
    accumulate: bool,
    lhs: Mat<&[T]>,
    rhs: Mat<&[T]>,
    pool: bool,
) -> bool {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    let rhs_col_major = rhs.rs == 1 && rhs.cs > 1;
    let weight = n.saturating_mul(k);
    let copies = m.saturating_mul(k + n);
    if !rhs_col_major || weight < TRANSPOSE_MIN || weight < 4 * copies || lhs.rs < 0 || lhs.cs < 0 {
        return false;
    }
    // lhsᵀ as a row-major [k, m] matrix (already so when lhs is column-major).
    let copied;
    let lt = if lhs.rs == 1 {
        lhs.t()
    } else {
        let mut out = vec![T::zero(); m * k];
        transpose(
            m,
            k,
            lhs.data,
            lhs.rs as usize,
            lhs.cs as usize,
            &mut out,
            m,
            false,
        );
        copied = out;
        Mat::row_major(&copied[..], k, m, m)
    };
    let mut tmp = Vec::with_capacity(n * m);
    let tmp_mat = Mat::row_major(Out::uninit(&mut tmp.spare_capacity_mut()[..n * m]), n, m, m);
    gemm_checked(op, tmp_mat, false, rhs.t(), lt, pool);
    // SAFETY: the product wrote all n * m elements (it does not accumulate).
    unsafe { tmp.set_len(n * m) };
    // dst[i, j] (+)= tmp[j, i].
    // SAFETY: `dst` was bounds-checked by the caller for an m×n row-major
    // matrix with row stride `dst.rs`; it is read only when accumulating,
    // and then initialised.
    unsafe {
        transpose_to(
            n,
            m,
            &tmp,
            m,
            1,
            dst.data.ptr,
            dst.data.len,
            dst.rs as usize,
            accumulate,
        )
    };
    true
}

/// Weight size (`n * k` elements) from which [`gemm()`] multiplies a
/// row-major destination by a column-major right operand through
/// transposes (see `via_transposes` in the source).
pub const TRANSPOSE_MIN: usize = 64 * 1024;

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
        let (dst, lhs) = (
            Mat::new(dst, batch * m, n, dst_rs, dst_cs),
            Mat::new(lhs, batch * m, k, lhs_rs, lhs_cs),
        );
        let rhs = Mat::new(rhs, k, n, rhs_rs, rhs_cs);
        return gemm_checked(OP, dst.map(Out::init), accumulate, lhs, rhs, true);
    }
    if batch > 1 && lhs_bs == 0 && rhs_bs == n as isize * rhs_cs && dst_bs == n as isize * dst_cs {
        let (dst, rhs) = (
            Mat::new(dst, m, batch * n, dst_rs, dst_cs),
            Mat::new(rhs, k, batch * n, rhs_rs, rhs_cs),
        );
        let lhs = Mat::new(lhs, m, k, lhs_rs, lhs_cs);
        return gemm_checked(OP, dst.map(Out::init), accumulate, lhs, rhs, true);
    }

    let per = m.saturating_mul(n).saturating_mul(k);
    let d = SendPtr(dst.as_mut_ptr());
    let (l, r) = (
        SendPtr(lhs.as_ptr() as *mut T),
        SendPtr(rhs.as_ptr() as *mut T),
    );
    let one = |b: usize, par: Parallelism| {
        let (d, l, r) = (d, l, r);
        let b = b as isize;
        // SAFETY: bounds checked for the whole batch above; batch entries of
        // `dst` are pairwise disjoint (check_no_overlap over all three
        // dims), so concurrent calls write disjoint elements.
        unsafe {
            let dst = Mat::new(d.0.offset(b * dst_bs), m, n, dst_rs, dst_cs);
            let lhs = Mat::new(l.0.offset(b * lhs_bs).cast_const(), m, k, lhs_rs, lhs_cs);
            let rhs = Mat::new(r.0.offset(b * rhs_bs).cast_const(), k, n, rhs_rs, rhs_cs);
            gemm_raw(dst, accumulate, lhs, rhs, par)
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

strided_product! {
    /// Half-precision [`gemm()`]: same arguments and semantics, using the
    /// `gemm` crate's native `f16` kernels (which accumulate in `f32`
    /// internally on CPUs without native f16 arithmetic).
    fn gemm_f16(f16) = |dst: Mat<&mut [f16]>, acc, lhs, rhs| {
        gemm_checked("gemm_f16", dst.map(Out::init), acc, lhs, rhs, true)
    };
}

strided_product! {
    /// bfloat16 [`gemm()`]: same arguments and semantics. The `gemm` crate
    /// has no bf16 kernels, so the operands are converted to contiguous
    /// `f32` matrices, multiplied with the `f32` kernel (f32 accumulation),
    /// and the result is rounded back to bf16 once. Costs `O(mk + kn + mn)`
    /// extra memory.
    fn gemm_bf16(bf16) = bf16_via_f32;
}

/// The body of [`gemm_bf16`].
fn bf16_via_f32(dst: Mat<&mut [bf16]>, accumulate: bool, lhs: Mat<&[bf16]>, rhs: Mat<&[bf16]>) {
    if !check_product("gemm_bf16", &dst, &lhs, &rhs) {
        return;
    }
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    let gather = |src: Mat<&[bf16]>| {
        let mut out = Vec::with_capacity(src.rows * src.cols);
        for i in 0..src.rows {
            for j in 0..src.cols {
                out.push(src.data[src.at(i, j) as usize].to_f32());
            }
        }
        out
    };
    let a = gather(lhs);
    let b = gather(rhs);
    let mut c = if accumulate {
        gather(dst.with(&*dst.data))
    } else {
        vec![0.0f32; m * n]
    };
    gemm(
        m, n, k, &mut c, n as isize, 1, accumulate, &a, k as isize, 1, &b, n as isize, 1,
    );
    for i in 0..m {
        for j in 0..n {
            dst.data[dst.at(i, j) as usize] = bf16::from_f32(c[i * n + j]);
        }
    }
}
