//! Softmax and log-softmax, forward and backward, numerically stable
//! (the maximum is subtracted before exponentiating).
//!
//! Two layouts, both contiguous:
//! * `*_rows`: `[rows, cols]`, reduced over the last dimension;
//! * `*_dim`: `[outer, dim, inner]`, reduced over the middle dimension
//!   (a tensor reduced over axis `a` is `outer = prod(shape[..a])`,
//!   `dim = shape[a]`, `inner = prod(shape[a+1..])`), so the runtime never
//!   has to transpose. The inner dimension is processed as contiguous
//!   vectors, which keeps these loops vectorisable.
//!
//! A row containing NaN gives NaN throughout; so does a row whose maximum
//! is infinite, as in PyTorch.

use super::parallel::par_blocks_alloc;
use crate::Float;

/// Cost of one element of a forward pass in `PAR_THRESHOLD` units (one f32
/// add in a streaming loop): ~30 measured for rows of 96 (an `exp` each),
/// ~16 over a middle dimension.
const COST: usize = 24;
/// The same for the backward passes (~4 measured).
const COST_BWD: usize = 4;

fn check(op: &str, len: usize, outer: usize, dim: usize, inner: usize) {
    assert!(
        len == outer * dim * inner,
        "{op}: slice of length {len} does not match [outer {outer}, dim {dim}, inner {inner}]"
    );
}

/// Maximum ignoring NaN (NaN then propagates through `exp`).
#[inline(always)]
fn fmax<T: Float>(a: T, b: T) -> T {
    if b > a { b } else { a }
}

fn softmax_block<T: Float>(x: &[T], out: &mut [T], inner: usize, log: bool) {
    if inner == 1 {
        let m = x.iter().fold(T::neg_infinity(), |m, &v| fmax(m, v));
        let mut s = T::zero();
        if log {
            for &v in x {
                s = s + (v - m).exp();
            }
            let lse = m + s.ln();
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v - lse;
            }
        } else {
            for (o, &v) in out.iter_mut().zip(x) {
                let e = (v - m).exp();
                *o = e;
                s = s + e;
            }
            for o in out.iter_mut() {
                *o = *o / s;
            }
        }
        return;
    }
    let mut m = vec![T::neg_infinity(); inner];
    for row in x.chunks_exact(inner) {
        for (m, &v) in m.iter_mut().zip(row) {
            *m = fmax(*m, v);
        }
    }
    let mut s = vec![T::zero(); inner];
    for (orow, row) in out.chunks_exact_mut(inner).zip(x.chunks_exact(inner)) {
        for (((o, s), &v), &m) in orow.iter_mut().zip(&mut s).zip(row).zip(&m) {
            let e = (v - m).exp();
            *s = *s + e;
            if !log {
                *o = e;
            }
        }
    }
    if log {
        for (s, &m) in s.iter_mut().zip(&m) {
            *s = m + s.ln();
        }
        for (orow, row) in out.chunks_exact_mut(inner).zip(x.chunks_exact(inner)) {
            for ((o, &v), &lse) in orow.iter_mut().zip(row).zip(&s) {
                *o = v - lse;
            }
        }
    } else {
        for orow in out.chunks_exact_mut(inner) {
            for (o, &s) in orow.iter_mut().zip(&s) {
                *o = *o / s;
            }
        }
    }
}

fn forward<T: Float>(op: &str, x: &[T], [outer, dim, inner]: [usize; 3], log: bool) -> Vec<T> {
    check(op, x.len(), outer, dim, inner);
    blocks_parallel(x, None, dim * inner, COST, |x, _, o| {
        softmax_block(x, o, inner, log)
    })
}

/// Allocates the output and fills it by `f(x_block, y_block?, out_block)`
/// over whole `[dim, inner]` blocks, in parallel (never splitting a block)
/// when the total is large.
fn blocks_parallel<T: Float, F>(x: &[T], y: Option<&[T]>, block: usize, cost: usize, f: F) -> Vec<T>
where
    F: Fn(&[T], Option<&[T]>, &mut [T]) + Send + Sync,
{
    if block == 0 {
        return vec![T::zero(); x.len()];
    }
    par_blocks_alloc(x.len(), block, cost, |first, chunk: &mut [T]| {
        for (i, o) in chunk.chunks_exact_mut(block).enumerate() {
            let b = first + i;
            let xb = &x[b * block..(b + 1) * block];
            let yb = y.map(|y| &y[b * block..(b + 1) * block]);
            f(xb, yb, o);
        }
    })
}

fn backward_block<T: Float>(y: &[T], gy: &[T], gx: &mut [T], inner: usize, log: bool) {
    // softmax:     gx = y * (gy - sum(gy * y))
    // log_softmax: gx = gy - exp(y) * sum(gy)
    if inner == 1 {
        let s = y
            .iter()
            .zip(gy)
            .fold(T::zero(), |s, (&yv, &g)| s + if log { g } else { g * yv });
        for ((o, &yv), &g) in gx.iter_mut().zip(y).zip(gy) {
            *o = if log { g - yv.exp() * s } else { yv * (g - s) };
        }
        return;
    }
    let mut s = vec![T::zero(); inner];
    for (yr, gr) in y.chunks_exact(inner).zip(gy.chunks_exact(inner)) {
        for ((s, &yv), &g) in s.iter_mut().zip(yr).zip(gr) {
            *s = *s + if log { g } else { g * yv };
        }
    }
    for ((xr, yr), gr) in gx
        .chunks_exact_mut(inner)
        .zip(y.chunks_exact(inner))
        .zip(gy.chunks_exact(inner))
    {
        for (((o, &yv), &g), &s) in xr.iter_mut().zip(yr).zip(gr).zip(&s) {
            *o = if log { g - yv.exp() * s } else { yv * (g - s) };
        }
    }
}

fn backward<T: Float>(
    op: &str,
    y: &[T],
    gy: &[T],
    [outer, dim, inner]: [usize; 3],
    log: bool,
) -> Vec<T> {
    check(op, y.len(), outer, dim, inner);
    check(op, gy.len(), outer, dim, inner);
    blocks_parallel(y, Some(gy), dim * inner, COST_BWD, |y, gy, o| {
        backward_block(y, gy.expect("gy"), o, inner, log)
    })
}

/// Defines a softmax entry point and its log-softmax twin, which differ
/// only in the `log` flag that `$imp` gets after the forwarded arguments
/// (and the kernel name it reports in panics).
macro_rules! with_log_twin {
    (
        $(#[$doc:meta])* fn $name:ident;
        $(#[$log_doc:meta])* fn $log_name:ident;
        ($($arg:ident: $ty:ty),*) => $imp:ident($($pass:expr),*)
    ) => {
        $(#[$doc])*
        pub fn $name<T: Float>($($arg: $ty),*) -> Vec<T> {
            $imp(stringify!($name), $($pass),*, false)
        }
        $(#[$log_doc])*
        pub fn $log_name<T: Float>($($arg: $ty),*) -> Vec<T> {
            $imp(stringify!($log_name), $($pass),*, true)
        }
    };
}

with_log_twin! {
    /// Softmax of each row of a contiguous `[rows, cols]` matrix.
    ///
    /// # Panics
    /// If `x.len() != rows * cols`.
    fn softmax_rows;
    /// Log-softmax of each row of a contiguous `[rows, cols]` matrix:
    /// `x - max - ln(sum(exp(x - max)))`.
    ///
    /// # Panics
    /// If `x.len() != rows * cols`.
    fn log_softmax_rows;
    (x: &[T], rows: usize, cols: usize) => forward(x, [rows, cols, 1])
}

with_log_twin! {
    /// Gradient of [`softmax_rows`] from its output `y` and the output
    /// gradient `gy`: `gx = y * (gy - sum(gy * y))` per row.
    ///
    /// # Panics
    /// If a length is not `rows * cols`.
    fn softmax_rows_backward;
    /// Gradient of [`log_softmax_rows`] from its output `y` and the output
    /// gradient `gy`: `gx = gy - exp(y) * sum(gy)` per row.
    ///
    /// # Panics
    /// If a length is not `rows * cols`.
    fn log_softmax_rows_backward;
    (y: &[T], gy: &[T], rows: usize, cols: usize) => backward(y, gy, [rows, cols, 1])
}

with_log_twin! {
    /// Softmax over the middle dimension of a contiguous `[outer, dim, inner]`
    /// array.
    ///
    /// # Panics
    /// If `x.len() != outer * dim * inner`.
    fn softmax_dim;
    /// Log-softmax over the middle dimension of a contiguous
    /// `[outer, dim, inner]` array.
    ///
    /// # Panics
    /// If `x.len() != outer * dim * inner`.
    fn log_softmax_dim;
    (x: &[T], outer: usize, dim: usize, inner: usize) => forward(x, [outer, dim, inner])
}

with_log_twin! {
    /// Gradient of [`softmax_dim`] (see [`softmax_rows_backward`]).
    ///
    /// # Panics
    /// If a length is not `outer * dim * inner`.
    fn softmax_dim_backward;
    /// Gradient of [`log_softmax_dim`] (see [`log_softmax_rows_backward`]).
    ///
    /// # Panics
    /// If a length is not `outer * dim * inner`.
    fn log_softmax_dim_backward;
    (y: &[T], gy: &[T], outer: usize, dim: usize, inner: usize) =>
        backward(y, gy, [outer, dim, inner])
}
