//! The fused loss kernels on the CPU: cross-entropy and NLL against class
//! indices, row by row over `[positions, C]` scores, and the pointwise
//! losses in one pass per element. f32/f64 natively, other float dtypes
//! through f32.

use super::nn::{back_to, f32_of};
use crate::loss::PointLoss;
use crate::nn::functional::util::{dispatch_real, tensor_from};
use crate::{DType, Tensor};
use kiln_kernels::Float;

/// The class of row `i` (`None` when it equals `ignore`); panics on an
/// out-of-range class.
fn class_of(op: &str, y: i64, ignore: i64, c: usize) -> Option<usize> {
    if y == ignore {
        return None;
    }
    if y < 0 || y as usize >= c {
        panic!("{op}: target {y} is out of bounds for {c} classes");
    }
    Some(y as usize)
}

fn classes(op: &str, t: &Tensor, ignore: i64, c: usize) -> Vec<Option<usize>> {
    t.to_vec::<i64>()
        .into_iter()
        .map(|y| class_of(op, y, ignore, c))
        .collect()
}

fn weights(w: Option<&Tensor>) -> Option<Vec<f64>> {
    w.map(|w| w.to_vec::<f64>())
}

fn native(t: &Tensor) -> bool {
    matches!(t.dtype(), DType::F32 | DType::F64)
}

pub(super) fn cross_entropy(
    x: &Tensor,
    t: &Tensor,
    w: Option<&Tensor>,
    ignore: i64,
    eps: f64,
) -> (Tensor, Tensor) {
    const OP: &str = "cross_entropy";
    if !native(x) {
        let (l, ws) = cross_entropy(&f32_of(x), t, w, ignore, eps);
        return (back_to(l, x.dtype()), back_to(ws, x.dtype()));
    }
    let (np, c) = (x.shape()[0], x.shape()[1]);
    let cls = classes(OP, t, ignore, c);
    let w = weights(w);
    let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
    dispatch_real!(OP, x.dtype(), T => x.with_slice::<T, _>(OP, |xs| {
        let mut losses = vec![T::cast_f64(0.0); np];
        let mut wsum = vec![T::cast_f64(0.0); np];
        for i in 0..np {
            let Some(y) = cls[i] else { continue };
            let row = &xs[i * c..(i + 1) * c];
            let z = |k: usize| row[k].as_f64();
            let mx = (0..c).map(z).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..c).map(|k| (z(k) - mx).exp()).sum();
            let l = mx + s.ln();
            let mut loss = (1.0 - eps) * wk(y) * (l - z(y));
            if eps > 0.0 {
                let smooth: f64 = (0..c).map(|k| wk(k) * (l - z(k))).sum();
                loss += eps / c as f64 * smooth;
            }
            losses[i] = T::cast_f64(loss);
            wsum[i] = T::cast_f64(wk(y));
        }
        (tensor_from(losses, &[np]), tensor_from(wsum, &[np]))
    }))
}

pub(super) fn cross_entropy_backward(
    x: &Tensor,
    t: &Tensor,
    w: Option<&Tensor>,
    ignore: i64,
    eps: f64,
    gl: &Tensor,
) -> Tensor {
    const OP: &str = "cross_entropy";
    if !native(x) {
        return back_to(
            cross_entropy_backward(&f32_of(x), t, w, ignore, eps, gl),
            x.dtype(),
        );
    }
    let (np, c) = (x.shape()[0], x.shape()[1]);
    let cls = classes(OP, t, ignore, c);
    let w = weights(w);
    let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
    let w_total: f64 = w.as_ref().map_or(c as f64, |w| w.iter().sum());
    let gv = gl.to_vec::<f64>();
    dispatch_real!(OP, x.dtype(), T => x.with_slice::<T, _>(OP, |xs| {
        let mut dx = vec![T::cast_f64(0.0); xs.len()];
        for i in 0..np {
            let Some(y) = cls[i] else { continue };
            let row = &xs[i * c..(i + 1) * c];
            let mx = row.iter().map(|v| v.as_f64()).fold(f64::NEG_INFINITY, f64::max);
            let lse = mx + row.iter().map(|v| (v.as_f64() - mx).exp()).sum::<f64>().ln();
            let (s, wy) = (gv[i], (1.0 - eps) * wk(y));
            for k in 0..c {
                let p = (row[k].as_f64() - lse).exp();
                let mut d = wy * p;
                if k == y {
                    d -= wy;
                }
                if eps > 0.0 {
                    d += eps / c as f64 * (w_total * p - wk(k));
                }
                dx[i * c + k] = T::cast_f64(s * d);
            }
        }
        tensor_from(dx, &[np, c])
    }))
}

pub(super) fn nll_loss(
    x: &Tensor,
    t: &Tensor,
    w: Option<&Tensor>,
    ignore: i64,
) -> (Tensor, Tensor) {
    const OP: &str = "nll_loss";
    if !native(x) {
        let (l, ws) = nll_loss(&f32_of(x), t, w, ignore);
        return (back_to(l, x.dtype()), back_to(ws, x.dtype()));
    }
    let (np, c) = (x.shape()[0], x.shape()[1]);
    let cls = classes(OP, t, ignore, c);
    let w = weights(w);
    let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
    dispatch_real!(OP, x.dtype(), T => x.with_slice::<T, _>(OP, |xs| {
        let mut losses = vec![T::cast_f64(0.0); np];
        let mut wsum = vec![T::cast_f64(0.0); np];
        for (i, y) in cls.iter().enumerate() {
            if let Some(y) = *y {
                losses[i] = T::cast_f64(-wk(y) * xs[i * c + y].as_f64());
                wsum[i] = T::cast_f64(wk(y));
            }
        }
        (tensor_from(losses, &[np]), tensor_from(wsum, &[np]))
    }))
}

pub(super) fn nll_loss_backward(
    x: &Tensor,
    t: &Tensor,
    w: Option<&Tensor>,
    ignore: i64,
    gl: &Tensor,
) -> Tensor {
    const OP: &str = "nll_loss";
    let (np, c) = (x.shape()[0], x.shape()[1]);
    let cls = classes(OP, t, ignore, c);
    let w = weights(w);
    let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
    let gv = gl.to_vec::<f64>();
    let dt = if native(x) { x.dtype() } else { DType::F32 };
    let dx = dispatch_real!(OP, dt, T => {
        let mut dx = vec![T::cast_f64(0.0); np * c];
        for (i, y) in cls.iter().enumerate() {
            if let Some(y) = *y {
                dx[i * c + y] = T::cast_f64(-wk(y) * gv[i]);
            }
        }
        tensor_from(dx, &[np, c])
    });
    back_to(dx, x.dtype())
}

/// Per-element loss and derivatives `(loss, dl/dx, dl/dt)` of `kind`.
fn point_fn(kind: PointLoss) -> impl Fn(f64, f64) -> (f64, f64, f64) {
    fn sign(d: f64) -> f64 {
        if d > 0.0 {
            1.0
        } else if d < 0.0 {
            -1.0
        } else {
            0.0
        }
    }
    move |x: f64, t: f64| match kind {
        PointLoss::Mse => {
            let d = x - t;
            (d * d, 2.0 * d, -2.0 * d)
        }
        PointLoss::L1 | PointLoss::SmoothL1(0.0) => {
            let d = x - t;
            (d.abs(), sign(d), -sign(d))
        }
        PointLoss::SmoothL1(beta) => {
            let d = x - t;
            if d.abs() < beta {
                (0.5 * d * d / beta, d / beta, -d / beta)
            } else {
                (d.abs() - 0.5 * beta, sign(d), -sign(d))
            }
        }
        PointLoss::BceWithLogits => {
            let l = x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
            let sig = 1.0 / (1.0 + (-x).exp());
            (l, sig - t, -x)
        }
        PointLoss::Bce => {
            let (lp, l1p) = (x.ln().max(-100.0), (1.0 - x).ln().max(-100.0));
            let l = -(t * lp + (1.0 - t) * l1p);
            (l, (x - t) / (x * (1.0 - x)).max(1e-12), l1p - lp)
        }
    }
}

/// Runs `f` over the elements of same-shape `x` and `t` in their common
/// compute dtype, building one output per element for each of `outs`.
fn each_point<const K: usize>(
    op: &str,
    x: &Tensor,
    t: &Tensor,
    f: impl Fn(f64, f64) -> [f64; K],
) -> [Tensor; K] {
    let dt = if native(x) { x.dtype() } else { DType::F32 };
    let (xc, tc) = (
        back_to(x.shallow_clone(), dt),
        back_to(t.shallow_clone(), dt),
    );
    let outs = dispatch_real!(op, dt, T => xc.with_slice::<T, _>(op, |xs| {
        tc.with_slice::<T, _>(op, |ts| {
            let mut outs: [Vec<T>; K] = std::array::from_fn(|_| Vec::with_capacity(xs.len()));
            for (a, b) in xs.iter().zip(ts) {
                for (o, v) in outs.iter_mut().zip(f(a.as_f64(), b.as_f64())) {
                    o.push(T::cast_f64(v));
                }
            }
            outs.map(|o| tensor_from(o, x.shape()))
        })
    }));
    outs.map(|o| back_to(o, x.dtype()))
}

pub(super) fn point_loss(kind: PointLoss, x: &Tensor, t: &Tensor) -> Tensor {
    let f = point_fn(kind);
    let [l] = each_point(kind.name(), x, t, |a, b| [f(a, b).0]);
    l
}

pub(super) fn point_loss_backward(kind: PointLoss, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
    let f = point_fn(kind);
    let [dx, dt] = each_point(kind.name(), x, t, |a, b| {
        let (_, dx, dt) = f(a, b);
        [dx, dt]
    });
    (dx, dt)
}
