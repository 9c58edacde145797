//! Softmax and log-softmax on the CPU: row kernels over the reduced
//! dimension (moved last by a copy when it is not), rayon-parallel over
//! rows; half types are computed in f32.

use crate::Tensor;
use crate::ops::kernel::{float_kernel1, float_kernel2};
use num_traits::Float;
use rayon::prelude::*;

// ----- row kernels for softmax / log_softmax (one row = the reduced dim) ----

fn row_max<T: Float>(x: &[T]) -> T {
    // A NaN in the row makes every output NaN through `exp(NaN - m)`.
    x.iter()
        .fold(T::neg_infinity(), |m, &v| if v > m { v } else { m })
}

fn softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    let m = row_max(x);
    let mut s = T::zero();
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (v - m).exp();
        s = s + *o;
    }
    let inv = T::one() / s;
    for o in y.iter_mut() {
        *o = *o * inv;
    }
}

fn log_softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    let m = row_max(x);
    let s = x.iter().fold(T::zero(), |s, &v| s + (v - m).exp());
    let lse = m + s.ln();
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v - lse;
    }
}

fn softmax_bw_row<T: Float>(g: &[T], y: &[T], gx: &mut [T]) {
    let dot = g.iter().zip(y).fold(T::zero(), |s, (&a, &b)| s + a * b);
    for ((o, &gv), &yv) in gx.iter_mut().zip(g).zip(y) {
        *o = yv * (gv - dot);
    }
}

fn log_softmax_bw_row<T: Float>(g: &[T], y: &[T], gx: &mut [T]) {
    let sg = g.iter().fold(T::zero(), |s, &a| s + a);
    for ((o, &gv), &yv) in gx.iter_mut().zip(g).zip(y) {
        *o = gv - yv.exp() * sg;
    }
}

/// Applies `f` to each length-`n` row of `x`, in parallel when large.
fn rows1<T: Float + Send + Sync>(x: &[T], n: usize, f: fn(&[T], &mut [T])) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    if n == 0 {
        return out;
    }
    if x.len() >= crate::ops::kernel::PAR_MIN && x.len() > n {
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(o, r)| f(r, o));
    } else {
        out.chunks_mut(n)
            .zip(x.chunks(n))
            .for_each(|(o, r)| f(r, o));
    }
    out
}

/// Applies `f` to each pair of length-`n` rows of `a` and `b`.
fn rows2<T: Float + Send + Sync>(
    a: &[T],
    b: &[T],
    n: usize,
    f: fn(&[T], &[T], &mut [T]),
) -> Vec<T> {
    let mut out = vec![T::zero(); a.len()];
    if n == 0 {
        return out;
    }
    if a.len() >= crate::ops::kernel::PAR_MIN && a.len() > n {
        out.par_chunks_mut(n)
            .zip(a.par_chunks(n).zip(b.par_chunks(n)))
            .for_each(|(o, (r, s))| f(r, s, o));
    } else {
        for (o, (r, s)) in out.chunks_mut(n).zip(a.chunks(n).zip(b.chunks(n))) {
            f(r, s, o);
        }
    }
    out
}

/// Runs a row kernel along `dim`: directly when `dim` is the last
/// dimension, else on a copy with `dim` moved last.
fn along_dim(
    op: &str,
    x: &Tensor,
    dim: usize,
    f32k: fn(&[f32], &mut [f32]),
    f64k: fn(&[f64], &mut [f64]),
) -> Tensor {
    let last = x.dim().saturating_sub(1);
    if dim != last {
        let xt = x.transpose(dim as isize, last as isize);
        let yt = along_dim(op, &xt, last, f32k, f64k);
        return yt.transpose(dim as isize, last as isize).contiguous();
    }
    let n = x.shape().last().copied().unwrap_or(1);
    float_kernel1(op, x, |v| rows1(v, n, f32k), |v| rows1(v, n, f64k))
}

/// Two-input form of [`along_dim`] for the backward kernels.
fn along_dim2(
    op: &str,
    g: &Tensor,
    y: &Tensor,
    dim: usize,
    f32k: fn(&[f32], &[f32], &mut [f32]),
    f64k: fn(&[f64], &[f64], &mut [f64]),
) -> Tensor {
    let last = g.dim().saturating_sub(1);
    if dim != last {
        let (gt, yt) = (
            g.transpose(dim as isize, last as isize),
            y.transpose(dim as isize, last as isize),
        );
        let r = along_dim2(op, &gt, &yt, last, f32k, f64k);
        return r.transpose(dim as isize, last as isize).contiguous();
    }
    let n = g.shape().last().copied().unwrap_or(1);
    float_kernel2(
        op,
        g,
        y,
        |a, b| rows2(a, b, n, f32k),
        |a, b| rows2(a, b, n, f64k),
    )
}

pub(super) fn softmax(x: &Tensor, d: usize, log: bool) -> Tensor {
    if log {
        along_dim(
            "log_softmax",
            x,
            d,
            log_softmax_row::<f32>,
            log_softmax_row::<f64>,
        )
    } else {
        along_dim("softmax", x, d, softmax_row::<f32>, softmax_row::<f64>)
    }
}

pub(super) fn softmax_backward(y: &Tensor, g: &Tensor, d: usize, log: bool) -> Tensor {
    if log {
        let (f32k, f64k) = (log_softmax_bw_row::<f32>, log_softmax_bw_row::<f64>);
        along_dim2("log_softmax_backward", g, y, d, f32k, f64k)
    } else {
        along_dim2(
            "softmax_backward",
            g,
            y,
            d,
            softmax_bw_row::<f32>,
            softmax_bw_row::<f64>,
        )
    }
}
