//! Exact integer matrix products (`torch.matmul` on integer tensors).
//!
//! Products and sums wrap around at the type's width, as PyTorch's CPU
//! kernels do: wrapping arithmetic is exact modulo 2^bits, so the order of
//! the additions does not change the result and a plain loop over rows of
//! the output is enough (exactness matters here, not speed).

use rayon::prelude::*;

/// An integer element type with wrapping `+` and `*`.
pub trait WrappingInt: Copy + Default + Send + Sync {
    /// `self + other`, wrapping at the type's width.
    fn wrapping_add_(self, other: Self) -> Self;
    /// `self * other`, wrapping at the type's width.
    fn wrapping_mul_(self, other: Self) -> Self;
}

macro_rules! wrapping_int {
    ($($t:ty),*) => {$(
        impl WrappingInt for $t {
            #[inline]
            fn wrapping_add_(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            #[inline]
            fn wrapping_mul_(self, other: Self) -> Self {
                self.wrapping_mul(other)
            }
        }
    )*};
}
wrapping_int!(i8, i16, i32, i64, u8, u16, u32, u64);

/// Multiply-adds per output block from which the rows run on rayon.
const PAR_WORK: usize = 1 << 18;

/// `dst[m, n] = lhs[m, k] @ rhs[k, n]` with wrapping arithmetic; `dst` is
/// row-major and contiguous, `lhs` and `rhs` are read through (row, column)
/// strides in elements.
///
/// # Panics
/// If `dst` has not `m * n` elements or an operand addresses an element
/// outside its slice.
#[allow(clippy::too_many_arguments)]
pub fn int_gemm<T: WrappingInt>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    lhs: &[T],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[T],
    rhs_rs: isize,
    rhs_cs: isize,
) {
    assert_eq!(
        dst.len(),
        m * n,
        "int_gemm: dst has {} elements, expected {m}x{n}",
        dst.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    let at = |s: &[T], r: usize, rs: isize, c: usize, cs: isize| -> T {
        s[(r as isize * rs + c as isize * cs) as usize]
    };
    let row = |i: usize, out: &mut [T]| {
        out.fill(T::default());
        for p in 0..k {
            let a = at(lhs, i, lhs_rs, p, lhs_cs);
            for (j, o) in out.iter_mut().enumerate() {
                *o = o.wrapping_add_(a.wrapping_mul_(at(rhs, p, rhs_rs, j, rhs_cs)));
            }
        }
    };
    if m * n * k >= PAR_WORK && m > 1 {
        dst.par_chunks_mut(n)
            .enumerate()
            .for_each(|(i, out)| row(i, out));
    } else {
        for (i, out) in dst.chunks_mut(n).enumerate() {
            row(i, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_like_pytorch() {
        // torch.tensor([[200, 100], [3, 4]], dtype=torch.uint8)
        //   @ torch.tensor([[2, 3], [1, 5]], dtype=torch.uint8)
        // == [[244, 76], [10, 29]] (PyTorch 2.15).
        let a: [u8; 4] = [200, 100, 3, 4];
        let b: [u8; 4] = [2, 3, 1, 5];
        let mut out = [0u8; 4];
        int_gemm(2, 2, 2, &mut out, &a, 2, 1, &b, 2, 1);
        assert_eq!(out, [244, 76, 10, 29]);
        // [[2**62, 3]] @ [[4], [5]] == [[15]] in int64.
        let mut o = [0i64];
        int_gemm(1, 1, 2, &mut o, &[1i64 << 62, 3], 2, 1, &[4, 5], 1, 1);
        assert_eq!(o, [15]);
    }

    #[test]
    fn strided_operands() {
        // lhs is the transpose of [[1, 2], [3, 4]] read through strides.
        let a = [1i64, 2, 3, 4];
        let b = [1i64, 0, 0, 1];
        let mut out = [0i64; 4];
        int_gemm(2, 2, 2, &mut out, &a, 1, 2, &b, 2, 1);
        assert_eq!(out, [1, 3, 2, 4]);
    }
}
