//! Out-of-place matrix transposition in cache-sized tiles.
//!
//! `gemm` uses it to reshape a product whose layout the `gemm` crate packs
//! slowly (see `via_transposes` in `matmul.rs`): the copies must cost far
//! less than the product they save. Element-by-element indexing with bounds
//! checks ran at ~2.5 ns per element, more than the product itself for an
//! MLP's `x @ W.T`; full 8 × 8 tiles through raw pointers with constant
//! trip counts let the compiler keep a tile in registers.

/// Tile edge: 8 × 8 `f32` is a quarter of the AVX-512 register file.
const TILE: usize = 8;

/// `dst[c * ld + r] = src[r * rs + c * cs]` (or `+=` when `accumulate`)
/// for every `r < rows`, `c < cols`: `src` is a `rows × cols` matrix with
/// non-negative strides `(rs, cs)` and `dst` receives its transpose,
/// row-major with row stride `ld`.
///
/// # Panics
/// If either slice is too short for the elements addressed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transpose<T>(
    rows: usize,
    cols: usize,
    src: &[T],
    rs: usize,
    cs: usize,
    dst: &mut [T],
    ld: usize,
    accumulate: bool,
) where
    T: Copy + std::ops::Add<Output = T>,
{
    // SAFETY: a slice is valid and initialised for all its elements.
    unsafe {
        transpose_to(
            rows,
            cols,
            src,
            rs,
            cs,
            dst.as_mut_ptr(),
            dst.len(),
            ld,
            accumulate,
        )
    }
}

/// [`transpose`] into `dst_len` elements at `dst`.
///
/// # Safety
/// `dst` must be valid for writes of `dst_len` elements, not overlap `src`,
/// and hold initialised values where `accumulate` reads them.
///
/// # Panics
/// If `src` or `dst_len` is too short for the elements addressed.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn transpose_to<T>(
    rows: usize,
    cols: usize,
    src: &[T],
    rs: usize,
    cs: usize,
    dst: *mut T,
    dst_len: usize,
    ld: usize,
    accumulate: bool,
) where
    T: Copy + std::ops::Add<Output = T>,
{
    if rows == 0 || cols == 0 {
        return;
    }
    let src_end = (rows - 1) * rs + (cols - 1) * cs;
    let dst_end = (cols - 1) * ld + (rows - 1);
    assert!(
        src_end < src.len() && dst_end < dst_len && ld >= rows,
        "transpose: a {rows}x{cols} matrix with strides ({rs}, {cs}) in {} elements \
         into row stride {ld} in {dst_len} elements is out of bounds",
        src.len(),
    );
    // SAFETY: bounds checked above; the rest is the caller's contract.
    unsafe {
        if accumulate {
            tiles::<T, true>(rows, cols, src, rs, cs, dst, ld);
        } else {
            tiles::<T, false>(rows, cols, src, rs, cs, dst, ld);
        }
    }
}

/// # Safety
/// As [`transpose_to`], with the bounds already checked.
unsafe fn tiles<T, const ACC: bool>(
    rows: usize,
    cols: usize,
    src: &[T],
    rs: usize,
    cs: usize,
    d: *mut T,
    ld: usize,
) where
    T: Copy + std::ops::Add<Output = T>,
{
    let s = src.as_ptr();
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            // SAFETY: every (r, c) visited is inside `rows × cols`, whose
            // extreme offsets `transpose_to` checked against both buffers.
            unsafe {
                if r0 + TILE <= rows && c0 + TILE <= cols {
                    tile::<T, ACC, TILE, TILE>(s, rs, cs, d, ld, r0, c0);
                } else {
                    edge::<T, ACC>(
                        s,
                        rs,
                        cs,
                        d,
                        ld,
                        r0..rows.min(r0 + TILE),
                        c0..cols.min(c0 + TILE),
                    );
                }
            }
        }
    }
}

/// One full `R × C` tile: constant trip counts, so it unrolls.
///
/// # Safety
/// The tile at `(r0, c0)` lies inside both matrices.
#[inline(always)]
unsafe fn tile<T, const ACC: bool, const R: usize, const C: usize>(
    s: *const T,
    rs: usize,
    cs: usize,
    d: *mut T,
    ld: usize,
    r0: usize,
    c0: usize,
) where
    T: Copy + std::ops::Add<Output = T>,
{
    for c in 0..C {
        for r in 0..R {
            // SAFETY: forwarded from the caller.
            unsafe {
                let v = *s.add((r0 + r) * rs + (c0 + c) * cs);
                let out = d.add((c0 + c) * ld + r0 + r);
                out.write(if ACC { out.read() + v } else { v });
            }
        }
    }
}

/// A partial tile at the right or bottom edge.
///
/// # Safety
/// As [`tile`], for the given ranges.
unsafe fn edge<T, const ACC: bool>(
    s: *const T,
    rs: usize,
    cs: usize,
    d: *mut T,
    ld: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) where
    T: Copy + std::ops::Add<Output = T>,
{
    for c in cols {
        for r in rows.clone() {
            // SAFETY: forwarded from the caller.
            unsafe {
                let v = *s.add(r * rs + c * cs);
                let out = d.add(c * ld + r);
                out.write(if ACC { out.read() + v } else { v });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn every_shape_and_stride_matches_the_definition() {
        for (rows, cols) in [(1, 1), (3, 5), (8, 8), (9, 17), (16, 8), (33, 2)] {
            for (rs, cs) in [(cols, 1), (1, rows), (cols + 3, 1), (2, 2 * rows + 1)] {
                let src: Vec<f64> = (0..(rows - 1) * rs + (cols - 1) * cs + 1)
                    .map(|v| v as f64)
                    .collect();
                for accumulate in [false, true] {
                    let ld = rows + 2;
                    let mut dst: Vec<f64> = (0..cols * ld).map(|v| -(v as f64)).collect();
                    let mut want = dst.clone();
                    for r in 0..rows {
                        for c in 0..cols {
                            let v = src[r * rs + c * cs];
                            let w = &mut want[c * ld + r];
                            *w = if accumulate { *w + v } else { v };
                        }
                    }
                    transpose(rows, cols, &src, rs, cs, &mut dst, ld, accumulate);
                    assert_eq!(
                        dst, want,
                        "{rows}x{cols} strides ({rs}, {cs}) acc {accumulate}"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "transpose: a 4x4 matrix")]
    fn a_short_destination_panics() {
        let src = [0f32; 16];
        let mut dst = [0f32; 15];
        transpose(4, 4, &src, 4, 1, &mut dst, 4, false);
    }
}
