//! The fused normalisation kernels on the CPU: batch norm and layer norm,
//! one pass for the statistics and the output, one for every gradient.
//! f32/f64 natively; other dtypes (and weights or statistics of another
//! dtype than the input) are computed in float32.

use super::nn::{back_to, f32_of};
use crate::backend::{BatchNormArgs, BatchNormSaved, Grads3};
use crate::dtype::dispatch;
use crate::nn::functional::util::{Real, tensor_from};
use crate::{DType, Tensor};
use kiln_kernels::Float;
use kiln_kernels::cpu::stats;
use num_traits::Zero;
use rayon::prelude::*;

/// Element count from which the normalisations spread work over rayon.
const PAR_THRESHOLD: usize = 1 << 15;

/// Sums `f(sample, channel)` (two accumulators) over samples, per channel.
/// Blocks of samples are fixed by the shapes alone, so results do not
/// depend on the number of threads.
fn channel_sums(
    n: usize,
    c: usize,
    work: usize,
    f: impl Fn(usize, usize) -> [f64; 2] + Sync,
) -> Vec<[f64; 2]> {
    let run = |samples: std::ops::Range<usize>| {
        let mut acc = vec![[0.0f64; 2]; c];
        for s in samples {
            for (ch, a) in acc.iter_mut().enumerate() {
                let r = f(s, ch);
                a[0] += r[0];
                a[1] += r[1];
            }
        }
        acc
    };
    if work < PAR_THRESHOLD || n < 2 {
        return run(0..n);
    }
    let block = n.div_ceil(16);
    let parts: Vec<Vec<[f64; 2]>> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| run(b * block..n.min((b + 1) * block)))
        .collect();
    let mut acc = vec![[0.0f64; 2]; c];
    for p in parts {
        for (a, q) in acc.iter_mut().zip(p) {
            a[0] += q[0];
            a[1] += q[1];
        }
    }
    acc
}

/// Applies `f(sample, chunk)` to each `chunk` of `out` (one per sample),
/// in parallel when the work is large.
fn for_samples<T: Send>(out: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if chunk == 0 {
        return;
    }
    if out.len() < PAR_THRESHOLD {
        out.chunks_mut(chunk).enumerate().for_each(|(s, o)| f(s, o));
    } else {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(s, o)| f(s, o));
    }
}

fn sum_f64<T: Real>(v: &[T]) -> f64 {
    match as_f32(v) {
        Some(v) => stats::sum_f64(v),
        None => sum_map_f64(v, |x| x),
    }
}

/// `sum((x - mu)²)` in f64.
fn sum_sq_dev_f64<T: Real>(v: &[T], mu: f64) -> f64 {
    match as_f32(v) {
        Some(v) => stats::sum_sq_dev_f64(v, mu),
        None => sum_map_f64(v, |x| (x - mu) * (x - mu)),
    }
}

/// `v` as `f32`s when `T` is `f32`: those take the kernels crate's SIMD
/// sums (this crate is built for baseline x86-64, and these loops did not
/// vectorise here: 5-8% of a VGG step).
fn as_f32<T: Real>(v: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: `T` is `f32`.
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) }
    })
}

/// `sum(f(x))` in f64 with 8 independent accumulators: one running f64 sum
/// waits on each add's latency (~4 cycles an element), the statistics of
/// VGG's first batch norm ([32, 32, 32, 32]) took ~1.5 ms a pass that way.
#[inline(always)]
fn sum_map_f64<T: Real>(v: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            acc[i] += f(c[i].as_f64());
        }
    }
    let tail: f64 = it.remainder().iter().map(|x| f(x.as_f64())).sum();
    acc.iter().sum::<f64>() + tail
}

/// `[sum(g), sum(g * (x - mu))]` in f64 with 4 accumulators each (see
/// [`sum_map_f64`]).
#[inline(always)]
fn grad_sums<T: Real>(gs: &[T], xs: &[T], mu: f64) -> [f64; 2] {
    if let (Some(g), Some(x)) = (as_f32(gs), as_f32(xs)) {
        return stats::grad_sums_f64(g, x, mu);
    }
    let (mut sg, mut sgx) = ([0.0f64; 4], [0.0f64; 4]);
    let (mut gi, mut xi) = (gs.chunks_exact(4), xs.chunks_exact(4));
    for (g, x) in (&mut gi).zip(&mut xi) {
        for i in 0..4 {
            let gv = g[i].as_f64();
            sg[i] += gv;
            sgx[i] += gv * (x[i].as_f64() - mu);
        }
    }
    let (mut tg, mut tgx) = (0.0, 0.0);
    for (&g, &x) in gi.remainder().iter().zip(xi.remainder()) {
        let gv = g.as_f64();
        tg += gv;
        tgx += gv * (x.as_f64() - mu);
    }
    [sg.iter().sum::<f64>() + tg, sgx.iter().sum::<f64>() + tgx]
}

fn per_channel<T: Real>(op: &str, t: Option<&Tensor>, c: usize, default: f64) -> Vec<T> {
    match t {
        Some(t) => t.with_slice::<T, _>(op, |s| s.to_vec()),
        None => vec![T::cast_f64(default); c],
    }
}

/// True when batch norm can run on these tensors without converting them.
fn bn_native(x: &Tensor, others: &[Option<&Tensor>]) -> bool {
    matches!(x.dtype(), DType::F32 | DType::F64)
        && others.iter().flatten().all(|t| t.dtype() == x.dtype())
}

pub(super) fn batch_norm(x: &Tensor, a: &BatchNormArgs) -> (Tensor, BatchNormSaved) {
    const OP: &str = "batch_norm";
    let BatchNormArgs {
        weight,
        bias,
        running_mean,
        running_var,
        training,
        momentum,
        eps,
    } = *a;
    if !bn_native(x, &[weight, bias, running_mean, running_var]) {
        // Compute in float32, then write the running statistics back into
        // the caller's tensors.
        let (rm, rv) = (running_mean.map(f32_of), running_var.map(f32_of));
        let (w, b) = (weight.map(f32_of), bias.map(f32_of));
        let f32_args = BatchNormArgs {
            weight: w.as_ref(),
            bias: b.as_ref(),
            running_mean: rm.as_ref(),
            running_var: rv.as_ref(),
            ..*a
        };
        let (y, saved) = batch_norm(&f32_of(x), &f32_args);
        if training {
            crate::autograd::no_grad(|| {
                for (orig, new) in [(running_mean, rm), (running_var, rv)] {
                    if let (Some(o), Some(nw)) = (orig, new) {
                        o.copy_(&nw);
                    }
                }
            });
        }
        return (back_to(y, x.dtype()), saved);
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let l: usize = x.shape()[2..].iter().product();
    let m = n * l;
    let (cl, work) = (c * l, x.numel());
    let (out, mean, invstd) = dispatch!(real OP, x.dtype(), T => x.with_slice::<T, _>(OP, |xs| {
        let plane = |s: usize, ch: usize| &xs[(s * c + ch) * l..(s * c + ch + 1) * l];
        let (mean, var): (Vec<f64>, Vec<f64>) = if training {
            let mean: Vec<f64> = channel_sums(n, c, work, |s, ch| [sum_f64(plane(s, ch)), 0.0])
                .into_iter()
                .map(|a| a[0] / m as f64)
                .collect();
            let var: Vec<f64> = channel_sums(n, c, work, |s, ch| {
                let mu = mean[ch];
                [sum_sq_dev_f64(plane(s, ch), mu), 0.0]
            })
            .into_iter()
            .map(|a| a[0] / m as f64)
            .collect();
            (mean, var)
        } else {
            (
                running_mean.unwrap().to_vec::<f64>(),
                running_var.unwrap().to_vec::<f64>(),
            )
        };
        if training {
            crate::autograd::no_grad(|| {
                if let Some(rm) = running_mean {
                    let old = rm.to_vec::<f64>();
                    let new: Vec<T> = old
                        .iter()
                        .zip(&mean)
                        .map(|(o, b)| T::cast_f64((1.0 - momentum) * o + momentum * b))
                        .collect();
                    rm.assign_from_slice(&new);
                }
                if let Some(rv) = running_var {
                    let old = rv.to_vec::<f64>();
                    let unbias = m as f64 / (m as f64 - 1.0);
                    let new: Vec<T> = old
                        .iter()
                        .zip(&var)
                        .map(|(o, v)| T::cast_f64((1.0 - momentum) * o + momentum * v * unbias))
                        .collect();
                    rv.assign_from_slice(&new);
                }
            });
        }
        let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let w: Vec<T> = per_channel(OP, weight, c, 1.0);
        let b: Vec<T> = per_channel(OP, bias, c, 0.0);
        let scale: Vec<T> = (0..c).map(|ch| w[ch] * T::cast_f64(invstd[ch])).collect();
        let shift: Vec<T> = (0..c)
            .map(|ch| b[ch] - T::cast_f64(mean[ch]) * scale[ch])
            .collect();
        let mut out = vec![T::zero(); xs.len()];
        for_samples(&mut out, cl, |s, o| {
            for ch in 0..c {
                let (sc, sh) = (scale[ch], shift[ch]);
                for (y, &v) in o[ch * l..(ch + 1) * l].iter_mut().zip(plane(s, ch)) {
                    *y = v * sc + sh;
                }
            }
        });
        (tensor_from(out, x.shape()), mean, invstd)
    }));
    let stat = |v: Vec<f64>| tensor_from(v, &[c]);
    let (mean, invstd) = (stat(mean), stat(invstd));
    (
        out,
        BatchNormSaved {
            mean,
            invstd,
            training,
        },
    )
}

pub(super) fn batch_norm_backward(
    x: &Tensor,
    g: &Tensor,
    weight: Option<&Tensor>,
    saved: &BatchNormSaved,
    [need_x, need_w, need_b]: [bool; 3],
) -> Grads3 {
    const OP: &str = "batch_norm";
    if !bn_native(x, &[Some(g), weight]) {
        let w = weight.map(f32_of);
        let need = [need_x, need_w, need_b];
        let (dx, dw, db) = batch_norm_backward(&f32_of(x), &f32_of(g), w.as_ref(), saved, need);
        return (dx.map(|t| back_to(t, x.dtype())), dw, db);
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let l: usize = x.shape()[2..].iter().product();
    let m = n * l;
    let (cl, work) = (c * l, x.numel());
    let training = saved.training;
    let (mean, invstd) = (saved.mean.to_vec::<f64>(), saved.invstd.to_vec::<f64>());
    let (xc, wc) = (x, weight);
    let (dx, dw, db) = dispatch!(real OP, g.dtype(), T => g.with_slice::<T, _>(OP, |gs| {
        xc.with_slice::<T, _>(OP, |xs| {
            let at = |s: usize, ch: usize| (s * c + ch) * l..(s * c + ch + 1) * l;
            // sum(g) and sum(g * (x - mean)) per channel.
            let sums = channel_sums(n, c, work, |s, ch| {
                let r = at(s, ch);
                grad_sums(&gs[r.clone()], &xs[r], mean[ch])
            });
            let dx = need_x.then(|| {
                let w: Vec<T> = per_channel(OP, wc, c, 1.0);
                let mut dx = vec![T::zero(); xs.len()];
                // dx = k·g + a·x + b per channel.
                let coef: Vec<[T; 3]> = (0..c)
                    .map(|ch| {
                        let k = w[ch].as_f64() * invstd[ch];
                        if training {
                            let mg = sums[ch][0] / m as f64;
                            let a = -k * invstd[ch] * invstd[ch] * sums[ch][1] / m as f64;
                            [T::cast_f64(k), T::cast_f64(a), T::cast_f64(-k * mg - a * mean[ch])]
                        } else {
                            [T::cast_f64(k), T::zero(), T::zero()]
                        }
                    })
                    .collect();
                for_samples(&mut dx, cl, |s, o| {
                    for (ch, &[k, a, b]) in coef.iter().enumerate() {
                        let r = at(s, ch);
                        let dst = &mut o[ch * l..(ch + 1) * l];
                        for ((d, &gv), &xv) in dst.iter_mut().zip(&gs[r.clone()]).zip(&xs[r]) {
                            *d = k * gv + a * xv + b;
                        }
                    }
                });
                tensor_from(dx, xc.shape())
            });
            let dw = need_w.then(|| {
                let v: Vec<T> = (0..c).map(|ch| T::cast_f64(sums[ch][1] * invstd[ch])).collect();
                tensor_from(v, &[c])
            });
            let db = need_b.then(|| {
                let v: Vec<T> = (0..c).map(|ch| T::cast_f64(sums[ch][0])).collect();
                tensor_from(v, &[c])
            });
            (dx, dw, db)
        })
    }));
    (dx, dw, db)
}

pub(super) fn layer_norm(
    x: &Tensor,
    d: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> (Tensor, Tensor) {
    const OP: &str = "layer_norm";
    if !matches!(x.dtype(), DType::F32 | DType::F64) {
        let (w, b) = (weight.map(f32_of), bias.map(f32_of));
        let (y, stats) = layer_norm(&f32_of(x), d, w.as_ref(), b.as_ref(), eps);
        return (back_to(y, x.dtype()), stats);
    }
    let (out, stats) = dispatch!(real OP, x.dtype(), T => x.with_slice::<T, _>(OP, |xs| {
        let rows = xs.len().checked_div(d).unwrap_or(0);
        let stats: Vec<[f64; 2]> = (0..rows)
            .map(|r| {
                let row = &xs[r * d..(r + 1) * d];
                let mean = sum_f64(row) / d as f64;
                let var = row.iter().map(|v| (v.as_f64() - mean).powi(2)).sum::<f64>() / d as f64;
                [mean, 1.0 / (var + eps).sqrt()]
            })
            .collect();
        let w: Option<Vec<T>> = weight.map(|t| t.with_slice::<T, _>(OP, |s| s.to_vec()));
        let b: Option<Vec<T>> = bias.map(|t| t.with_slice::<T, _>(OP, |s| s.to_vec()));
        let mut out = vec![T::zero(); xs.len()];
        for_samples(&mut out, d, |r, o| {
            let (mean, rstd) = (T::cast_f64(stats[r][0]), T::cast_f64(stats[r][1]));
            for (j, (y, &v)) in o.iter_mut().zip(&xs[r * d..(r + 1) * d]).enumerate() {
                let mut t = (v - mean) * rstd;
                if let Some(w) = &w {
                    t *= w[j];
                }
                if let Some(b) = &b {
                    t += b[j];
                }
                *y = t;
            }
        });
        (tensor_from(out, x.shape()), stats)
    }));
    let rows = stats.len();
    let stats = tensor_from(
        stats.into_iter().flatten().collect::<Vec<f64>>(),
        &[rows, 2],
    );
    (out, stats)
}

pub(super) fn layer_norm_backward(
    x: &Tensor,
    g: &Tensor,
    weight: Option<&Tensor>,
    stats: &Tensor,
    wshape: &[usize],
    [need_x, need_w, need_b]: [bool; 3],
) -> Grads3 {
    const OP: &str = "layer_norm";
    if !matches!(x.dtype(), DType::F32 | DType::F64) {
        let w = weight.map(f32_of);
        let need = [need_x, need_w, need_b];
        let (dx, dw, db) =
            layer_norm_backward(&f32_of(x), &f32_of(g), w.as_ref(), stats, wshape, need);
        let back = |t: Option<Tensor>| t.map(|t| back_to(t, x.dtype()));
        return (back(dx), back(dw), back(db));
    }
    let d: usize = wshape.iter().product();
    let stats: Vec<[f64; 2]> = stats
        .to_vec::<f64>()
        .chunks(2)
        .map(|s| [s[0], s[1]])
        .collect();
    let (xc, wc) = (x, weight);
    let (dx, dw, db) = dispatch!(real OP, g.dtype(), T => g.with_slice::<T, _>(OP, |gs| {
        xc.with_slice::<T, _>(OP, |xs| {
            let w: Vec<f64> = match &wc {
                Some(t) => t.to_vec::<f64>(),
                None => vec![1.0; d],
            };
            let dx = need_x.then(|| {
                let mut dx = vec![T::zero(); xs.len()];
                for_samples(&mut dx, d, |r, o| {
                    let [mean, rstd] = stats[r];
                    let (gr, xr) = (&gs[r * d..(r + 1) * d], &xs[r * d..(r + 1) * d]);
                    let (mut a, mut b) = (0.0, 0.0);
                    for j in 0..d {
                        let gw = gr[j].as_f64() * w[j];
                        a += gw;
                        b += gw * (xr[j].as_f64() - mean) * rstd;
                    }
                    let (a, b) = (a / d as f64, b / d as f64);
                    for j in 0..d {
                        let xh = (xr[j].as_f64() - mean) * rstd;
                        let gw = gr[j].as_f64() * w[j];
                        o[j] = T::cast_f64(rstd * (gw - a - xh * b));
                    }
                });
                tensor_from(dx, xc.shape())
            });
            let (dw, db) = if need_w || need_b {
                let (mut dw, mut db) = (vec![0.0f64; d], vec![0.0f64; d]);
                for (r, &[mean, rstd]) in stats.iter().enumerate() {
                    for j in 0..d {
                        let gv = gs[r * d + j].as_f64();
                        dw[j] += gv * (xs[r * d + j].as_f64() - mean) * rstd;
                        db[j] += gv;
                    }
                }
                let conv = |v: Vec<f64>| {
                    tensor_from(v.into_iter().map(T::cast_f64).collect::<Vec<T>>(), wshape)
                };
                (need_w.then(|| conv(dw)), need_b.then(|| conv(db)))
            } else {
                (None, None)
            };
            (dx, dw, db)
        })
    }));
    (dx, dw, db)
}
