//! The CUDA paths of the losses (feature `cuda`): cross-entropy against
//! class indices and NLL run the backend's fused kernels forward and
//! backward; the pointwise losses and cross-entropy against class
//! probabilities are computed with device tensor ops, with the CPU path's
//! gradient formulas.

use super::{ClassGeom, Reduction};
use crate::backend::{UnaryOp, cuda as kc};
use crate::layout::broadcast_shapes;
use crate::ops::device::same_device;
use crate::{DType, Tensor, autograd};

/// A loss of `(input[i], target[i])` per element.
#[derive(Clone, Copy, Debug)]
pub(super) enum Point {
    /// `(x - t)²`
    Mse,
    /// `|x - t|`
    L1,
    /// Huber-like, with its `beta`.
    SmoothL1(f64),
    /// Binary cross-entropy on logits.
    BceWithLogits,
    /// Binary cross-entropy on probabilities (logs clamped at -100).
    Bce,
}

/// `(log p, log(1 - p))`, each clamped at -100 like PyTorch's BCE.
fn bce_logs(p: &Tensor) -> (Tensor, Tensor) {
    (
        p.log().clamp_min(-100.0),
        p.rsub_scalar(1.0).log().clamp_min(-100.0),
    )
}

impl Point {
    /// The per-element losses of `x` and `t` (same shape and dtype).
    fn loss(self, x: &Tensor, t: &Tensor) -> Tensor {
        match self {
            Point::Mse => x.sub(t).square(),
            Point::L1 | Point::SmoothL1(0.0) => x.sub(t).abs(),
            Point::SmoothL1(beta) => {
                let d = x.sub(t);
                let a = d.abs();
                let quad = d.square().mul_scalar(0.5 / beta);
                Tensor::where_cond(&a.lt_scalar(beta), &quad, &a.sub_scalar(0.5 * beta))
            }
            Point::BceWithLogits => {
                // max(x, 0) - x·t + log(1 + e^-|x|) = softplus(x) - x·t
                let softplus = UnaryOp::Softplus {
                    beta: 1.0,
                    threshold: 20.0,
                };
                kc::unary(softplus, x).sub(&x.mul(t))
            }
            Point::Bce => {
                let (lp, l1p) = bce_logs(x);
                t.mul(&lp).add(&t.rsub_scalar(1.0).mul(&l1p)).neg()
            }
        }
    }

    /// The derivatives `(dl/dx, dl/dt)` of [`Point::loss`].
    fn grads(self, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let dx = match self {
            Point::Mse => x.sub(t).mul_scalar(2.0),
            Point::L1 | Point::SmoothL1(0.0) => x.sub(t).sign(),
            Point::SmoothL1(beta) => {
                let d = x.sub(t);
                Tensor::where_cond(&d.abs().lt_scalar(beta), &d.div_scalar(beta), &d.sign())
            }
            Point::BceWithLogits => return (x.sigmoid().sub(t), x.neg()),
            Point::Bce => {
                let (lp, l1p) = bce_logs(x);
                let var = x.mul(&x.rsub_scalar(1.0)).clamp_min(1e-12);
                return (x.sub(t).div(&var), l1p.sub(&lp));
            }
        };
        let dt = dx.neg();
        (dx, dt)
    }
}

/// A pointwise loss with `input` and `target` broadcast together.
pub(super) fn pointwise(
    op: &'static str,
    name: &'static str,
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    kind: Point,
) -> Tensor {
    if !input.dtype().is_float() || !target.dtype().is_float() {
        panic!(
            "{op}: expected floating-point input and target, but got {} (shape {:?}) and {} \
             (shape {:?})",
            input.dtype(),
            input.shape(),
            target.dtype(),
            target.shape()
        );
    }
    same_device(op, &[input, target]);
    if input.shape() != target.shape() {
        let shape = broadcast_shapes(input.shape(), target.shape()).unwrap_or_else(|| {
            panic!(
                "{op}: the size of input {:?} must match the size of target {:?}",
                input.shape(),
                target.shape()
            )
        });
        let (x, t) = (input.expand(&shape), target.expand(&shape));
        return pointwise(op, name, &x, &t, reduction, kind);
    }
    let x = input.detach();
    let t = autograd::no_grad(|| target.detach().to_dtype(x.dtype()));
    let n = x.numel();
    if let Point::Bce = kind {
        // Counted on the device; one number comes back (NaN is outside).
        let inside = autograd::no_grad(|| {
            let (lo, hi) = (x.ge(&x.scalar_like(0.0)), x.le(&x.scalar_like(1.0)));
            lo.logical_and(&hi).sum().item()
        });
        if inside as usize != n {
            panic!("{op}: all elements of input should be between 0 and 1");
        }
    }
    let out = autograd::no_grad(|| {
        let each = kind.loss(&x, &t);
        match reduction {
            Reduction::None => each,
            Reduction::Sum => each.sum(),
            Reduction::Mean => kc::sum_scaled(&each, &vec![true; each.dim()], &[], 1.0 / n as f64),
        }
    });
    let target_dtype = target.dtype();
    Tensor::from_op(out, name, &[input, target], move |g, need| {
        let (a, b) = kind.grads(&x, &t);
        let scale = match reduction {
            Reduction::Mean => g.div_scalar(n as f64),
            _ => g.clone(),
        };
        vec![
            need[0].then(|| a.mul(&scale)),
            need[1].then(|| b.mul(&scale).to_dtype(target_dtype)),
        ]
    })
}

/// `[C]`, `[N, C]` or `[N, C, d...]` scores as `[positions, C]` rows
/// (classes last, positions in the target's row-major order).
fn rows(x: &Tensor) -> Tensor {
    let s = x.shape();
    match s.len() {
        1 => x.reshape_to(&[1, s[0]]),
        2 => x.clone(),
        r => {
            let mut perm: Vec<isize> = vec![0];
            perm.extend(2..r as isize);
            perm.push(1);
            let positions = s[0] * s[2..].iter().product::<usize>();
            x.permute(&perm).reshape_to(&[positions, s[1]])
        }
    }
}

/// The inverse of [`rows`] for a tensor of input `shape`.
fn unrows(g: &Tensor, shape: &[usize]) -> Tensor {
    match shape.len() {
        1 => g.reshape_to(shape),
        2 => g.clone(),
        r => {
            let mut last = vec![shape[0]];
            last.extend_from_slice(&shape[2..]);
            last.push(shape[1]);
            let mut perm: Vec<isize> = vec![0, r as isize - 1];
            perm.extend(1..r as isize - 1);
            g.reshape_to(&last).permute(&perm).contiguous()
        }
    }
}

/// Checks a class-weight tensor against `c` classes; returns it detached
/// (weights are constants, as on the CPU) in `dtype`.
fn class_weight(op: &str, weight: Option<&Tensor>, c: usize, dtype: DType) -> Option<Tensor> {
    weight.map(|w| {
        if w.shape() != [c] {
            panic!(
                "{op}: expected weight of shape [{c}] (one per class), but got {:?}",
                w.shape()
            );
        }
        autograd::no_grad(|| w.detach().to_dtype(dtype))
    })
}

/// Cross-entropy of logits against int64 class indices or class
/// probabilities, like the CPU path of `cross_entropy_with`.
pub(super) fn cross_entropy(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    eps: f64,
    weight: Option<&Tensor>,
    ignore_index: Option<i64>,
) -> Tensor {
    const OP: &str = "cross_entropy";
    let mut given = vec![input, target];
    given.extend(weight);
    same_device(OP, &given);
    if target.dtype().is_float() {
        return cross_entropy_probs(input, target, reduction, eps, weight);
    }
    if target.dtype() != DType::I64 {
        panic!(
            "{OP}: expected target of dtype int64 (class indices) or floating point (class \
             probabilities), but got {}",
            target.dtype()
        );
    }
    let geom = ClassGeom::new(OP, input, target.shape(), false);
    let w = class_weight(OP, weight, geom.c, input.dtype());
    let np = geom.positions();
    let (x, t) = (rows(&input.detach()), target.reshape_to(&[np]));
    // No target equals i64::MIN's "ignore" when nothing is ignored.
    let ignore = ignore_index.unwrap_or(i64::MIN);
    let (loss, wsum) = kc::cross_entropy(&x, &t, w.as_ref(), ignore, eps);
    let (out, wtotal) = reduce(loss, &wsum, reduction, &geom.loss_shape);
    let shape = input.shape().to_vec();
    Tensor::from_op(out, "CrossEntropyLossBackward0", &[input], move |g, _| {
        let gl = per_position(g, &wtotal, reduction, np);
        let gx = kc::cross_entropy_backward(&x, &t, w.as_ref(), ignore, eps, &gl);
        vec![Some(unrows(&gx, &shape))]
    })
}

/// Negative log-likelihood of log-probabilities against int64 class
/// indices, like the CPU path of `nll_loss_with`.
pub(super) fn nll_loss(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    weight: Option<&Tensor>,
    ignore_index: Option<i64>,
) -> Tensor {
    const OP: &str = "nll_loss";
    let mut given = vec![input, target];
    given.extend(weight);
    same_device(OP, &given);
    let geom = ClassGeom::new(OP, input, target.shape(), false);
    let w = class_weight(OP, weight, geom.c, input.dtype());
    let np = geom.positions();
    let (x, t) = (rows(&input.detach()), target.reshape_to(&[np]));
    let ignore = ignore_index.unwrap_or(i64::MIN);
    let (loss, wsum) = kc::nll_loss(&x, &t, w.as_ref(), ignore);
    let (out, wtotal) = reduce(loss, &wsum, reduction, &geom.loss_shape);
    let shape = input.shape().to_vec();
    Tensor::from_op(out, "NllLossBackward0", &[input], move |g, _| {
        let gl = per_position(g, &wtotal, reduction, np);
        let gx = kc::nll_loss_backward(&x, &t, w.as_ref(), ignore, &gl);
        vec![Some(unrows(&gx, &shape))]
    })
}

/// Reduces per-position losses; the mean divides by the total weight of
/// the targets (`wsum`'s sum), like PyTorch. Returns the result and that
/// total.
fn reduce(
    loss: Tensor,
    wsum: &Tensor,
    reduction: Reduction,
    loss_shape: &[usize],
) -> (Tensor, Tensor) {
    let wtotal = wsum.sum();
    let out = match reduction {
        Reduction::None => loss.reshape_to(loss_shape),
        Reduction::Sum => loss.sum(),
        Reduction::Mean => loss.sum().div(&wtotal),
    };
    (out, wtotal)
}

/// The gradient of each position's loss from the reduced output's `g`.
fn per_position(g: &Tensor, wtotal: &Tensor, reduction: Reduction, np: usize) -> Tensor {
    match reduction {
        Reduction::None => g.reshape_to(&[np]),
        Reduction::Sum => g.reshape_to(&[1]).expand(&[np]),
        Reduction::Mean => g.div(wtotal).reshape_to(&[1]).expand(&[np]),
    }
}

/// Cross-entropy against class probabilities (`target` shaped like
/// `input`), `-Σ_c w_c·t̃_c·log_softmax(x)_c` with the smoothed target
/// `t̃ = (1 - ε)·t + ε/C`, composed from device tensor ops so that autograd
/// differentiates it in both the logits and the target.
fn cross_entropy_probs(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    eps: f64,
    weight: Option<&Tensor>,
) -> Tensor {
    const OP: &str = "cross_entropy";
    let geom = ClassGeom::new(OP, input, target.shape(), true);
    let class_dim: usize = if input.dim() == 1 { 0 } else { 1 };
    let smoothed = target
        .to_dtype(input.dtype())
        .mul_scalar(1.0 - eps)
        .add_scalar(eps / geom.c as f64);
    let mut terms = input.log_softmax(class_dim as isize).mul(&smoothed);
    if let Some(w) = class_weight(OP, weight, geom.c, input.dtype()) {
        // [C] broadcast along the class dimension (trailing 1s for d...).
        let mut wshape = vec![geom.c];
        wshape.resize(input.dim() - class_dim, 1);
        terms = terms.mul(&w.reshape_to(&wshape));
    }
    let losses = terms.sum_dim(class_dim as isize, false).neg();
    match reduction {
        Reduction::None => losses,
        Reduction::Sum => losses.sum(),
        Reduction::Mean => losses.sum().div_scalar(geom.positions() as f64),
    }
}
