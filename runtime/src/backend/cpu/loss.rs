//! The fused loss kernels on the CPU: cross-entropy and NLL against class
//! indices, row by row over `[positions, C]` scores, and the pointwise
//! losses in one pass per element. f32/f64 natively, other float dtypes
//! through f32.

use super::nn::{back_to, f32_of};
use crate::backend::ClassLoss;
use crate::dtype::dispatch;
use crate::loss::PointLoss;
use crate::nn::functional::util::tensor_from;
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

/// The rows of a class loss: their count, the classes, each row's class
/// (`None` when ignored) and the class weights.
struct Rows {
    np: usize,
    c: usize,
    cls: Vec<Option<usize>>,
    w: Option<Vec<f64>>,
}

impl Rows {
    fn new(x: &Tensor, l: &ClassLoss) -> Rows {
        let (np, c) = (x.shape()[0], x.shape()[1]);
        let cls = l.target.to_vec::<i64>();
        let cls = cls.into_iter().map(|y| class_of(l.name(), y, l.ignore, c));
        Rows {
            np,
            c,
            cls: cls.collect(),
            w: l.weight.as_ref().map(|w| w.to_vec::<f64>()),
        }
    }

    /// The weight of class `k`.
    fn wk(&self, k: usize) -> f64 {
        self.w.as_ref().map_or(1.0, |w| w[k])
    }
}

fn native(t: &Tensor) -> bool {
    matches!(t.dtype(), DType::F32 | DType::F64)
}

/// Each row's loss and target weight (0 for ignored rows).
pub(super) fn class_loss(x: &Tensor, l: &ClassLoss) -> (Tensor, Tensor) {
    if !native(x) {
        let (loss, ws) = class_loss(&f32_of(x), l);
        return (back_to(loss, x.dtype()), back_to(ws, x.dtype()));
    }
    let op = l.name();
    let r = Rows::new(x, l);
    let (np, c) = (r.np, r.c);
    dispatch!(real op, x.dtype(), T => x.with_slice::<T, _>(op, |xs| {
        let mut losses = vec![T::cast_f64(0.0); np];
        let mut wsum = vec![T::cast_f64(0.0); np];
        for i in 0..np {
            let Some(y) = r.cls[i] else { continue };
            let row = &xs[i * c..(i + 1) * c];
            let z = |k: usize| row[k].as_f64();
            losses[i] = T::cast_f64(match l.smoothing {
                None => -r.wk(y) * z(y),
                Some(eps) => {
                    let mx = (0..c).map(z).fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = (0..c).map(|k| (z(k) - mx).exp()).sum();
                    let lse = mx + s.ln();
                    let mut loss = (1.0 - eps) * r.wk(y) * (lse - z(y));
                    if eps > 0.0 {
                        let smooth: f64 = (0..c).map(|k| r.wk(k) * (lse - z(k))).sum();
                        loss += eps / c as f64 * smooth;
                    }
                    loss
                }
            });
            wsum[i] = T::cast_f64(r.wk(y));
        }
        (tensor_from(losses, &[np]), tensor_from(wsum, &[np]))
    }))
}

/// Gradient of [`class_loss`] in `x` for the per-row loss gradients `gl`.
pub(super) fn class_loss_backward(x: &Tensor, l: &ClassLoss, gl: &Tensor) -> Tensor {
    if !native(x) {
        return back_to(class_loss_backward(&f32_of(x), l, gl), x.dtype());
    }
    let op = l.name();
    let r = Rows::new(x, l);
    let (np, c) = (r.np, r.c);
    let w_total: f64 = r.w.as_ref().map_or(c as f64, |w| w.iter().sum());
    let gv = gl.to_vec::<f64>();
    dispatch!(real op, x.dtype(), T => x.with_slice::<T, _>(op, |xs| {
        let mut dx = vec![T::cast_f64(0.0); np * c];
        for i in 0..np {
            let Some(y) = r.cls[i] else { continue };
            let Some(eps) = l.smoothing else {
                // NLL: only the target's log-probability counts.
                dx[i * c + y] = T::cast_f64(-r.wk(y) * gv[i]);
                continue;
            };
            let row = &xs[i * c..(i + 1) * c];
            let mx = row.iter().map(|v| v.as_f64()).fold(f64::NEG_INFINITY, f64::max);
            let lse = mx + row.iter().map(|v| (v.as_f64() - mx).exp()).sum::<f64>().ln();
            let (s, wy) = (gv[i], (1.0 - eps) * r.wk(y));
            for k in 0..c {
                let p = (row[k].as_f64() - lse).exp();
                let mut d = wy * p;
                if k == y {
                    d -= wy;
                }
                if eps > 0.0 {
                    d += eps / c as f64 * (w_total * p - r.wk(k));
                }
                dx[i * c + k] = T::cast_f64(s * d);
            }
        }
        tensor_from(dx, &[np, c])
    }))
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
    let outs = dispatch!(real op, dt, T => xc.with_slice::<T, _>(op, |xs| {
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
