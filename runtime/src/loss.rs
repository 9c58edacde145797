//! Loss functions, like `torch.nn.functional`'s: regression losses
//! (`mse_loss`, `l1_loss`, `smooth_l1_loss`), classification losses
//! (`cross_entropy`, `nll_loss`) and binary ones
//! (`binary_cross_entropy[_with_logits]`).
//!
//! Every loss is fused: one forward pass and one backward closure, computed
//! in `f64` internally. `cross_entropy` does log-softmax and the negative
//! log-likelihood in one pass, and its backward is `softmax - target`.

#[cfg(feature = "cuda")]
mod cuda;

use crate::layout::broadcast_shapes;
use crate::nn::functional::util::{dispatch_real, is_half, tensor_from};
use crate::ops::device::{cuda_return, same_device};
use crate::{DType, Device, Tensor};
use kiln_kernels::Float;
use std::sync::Arc;

/// How per-element losses are combined, like PyTorch's `reduction=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Average over elements (or over the total weight of the targets for
    /// weighted classification losses). The default.
    #[default]
    Mean,
    /// Sum over elements.
    Sum,
    /// No reduction: one loss per element (or per sample).
    None,
}

impl Reduction {
    /// Parses PyTorch's spelling: `"mean"`, `"sum"` or `"none"`.
    pub fn parse(s: &str) -> Option<Reduction> {
        match s {
            "mean" => Some(Reduction::Mean),
            "sum" => Some(Reduction::Sum),
            "none" => Some(Reduction::None),
            _ => None,
        }
    }
}

/// True when the fused path can read `t` directly.
fn ready(t: &Tensor) -> bool {
    t.device() == Device::Cpu && matches!(t.dtype(), DType::F32 | DType::F64)
}

fn to_cpu32(t: &Tensor) -> Tensor {
    t.to(&Device::Cpu).to_dtype(DType::F32)
}

/// Per-element loss and its derivatives `(loss, dl/dinput, dl/dtarget)`.
type PointFn = dyn Fn(f64, f64) -> (f64, f64, f64) + Send + Sync;

/// A loss that is a function of `(input[i], target[i])` per element,
/// with `input` and `target` broadcast together.
fn pointwise_loss(
    op: &'static str,
    name: &'static str,
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    f: Arc<PointFn>,
) -> Tensor {
    same_device(op, &[input, target]);
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
    if input.shape() != target.shape() {
        let shape = broadcast_shapes(input.shape(), target.shape()).unwrap_or_else(|| {
            panic!(
                "{op}: the size of input {:?} must match the size of target {:?}",
                input.shape(),
                target.shape()
            )
        });
        return pointwise_loss(
            op,
            name,
            &input.expand(&shape),
            &target.expand(&shape),
            reduction,
            f,
        );
    }
    if !ready(input) || is_half(input.dtype()) || target.dtype() != input.dtype() {
        let dt = if ready(input) {
            input.dtype()
        } else {
            DType::F32
        };
        let prep = |t: &Tensor| t.to(&Device::Cpu).to_dtype(dt);
        return pointwise_loss(op, name, &prep(input), &prep(target), reduction, f)
            .to_dtype(input.dtype())
            .to(&input.device());
    }
    let n = input.numel();
    let shape = input.shape().to_vec();
    let out = dispatch_real!(op, input.dtype(), T => input.with_slice::<T, _>(op, |xs| {
        target.with_slice::<T, _>(op, |ts| {
            let each = xs.iter().zip(ts).map(|(x, t)| f(x.as_f64(), t.as_f64()).0);
            match reduction {
                Reduction::None => tensor_from(each.map(T::cast_f64).collect::<Vec<T>>(), &shape),
                Reduction::Sum => tensor_from(vec![T::cast_f64(each.sum())], &[]),
                Reduction::Mean => tensor_from(vec![T::cast_f64(each.sum::<f64>() / n as f64)], &[]),
            }
        })
    }));
    let (xc, tc) = (input.clone(), target.clone());
    Tensor::from_op(out, name, &[input, target], move |g, need| {
        dispatch_real!(op, xc.dtype(), T => xc.with_slice::<T, _>(op, |xs| {
            tc.with_slice::<T, _>(op, |ts| {
                let g = g.to_dtype(xc.dtype());
                g.with_slice::<T, _>(op, |gs| {
                    let scale = |i: usize| match reduction {
                        Reduction::None => gs[i].as_f64(),
                        Reduction::Sum => gs[0].as_f64(),
                        Reduction::Mean => gs[0].as_f64() / n as f64,
                    };
                    let mut dx = need[0].then(|| Vec::<T>::with_capacity(n));
                    let mut dt = need[1].then(|| Vec::<T>::with_capacity(n));
                    for (i, (x, t)) in xs.iter().zip(ts).enumerate() {
                        let (_, a, b) = f(x.as_f64(), t.as_f64());
                        let s = scale(i);
                        if let Some(dx) = &mut dx {
                            dx.push(T::cast_f64(a * s));
                        }
                        if let Some(dt) = &mut dt {
                            dt.push(T::cast_f64(b * s));
                        }
                    }
                    vec![
                        dx.map(|v| tensor_from(v, &shape)),
                        dt.map(|v| tensor_from(v, &shape)),
                    ]
                })
            })
        }))
    })
}

/// Mean squared error `(input - target)²`, like `F.mse_loss`.
///
/// ```
/// use kiln_runtime::{Tensor, loss::{mse_loss, Reduction}};
/// let l = mse_loss(&Tensor::from([1.0f32, 3.0]), &Tensor::from([0.0f32, 0.0]), Reduction::Mean);
/// assert_eq!(l.item(), 5.0);
/// ```
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    cuda_return!(
        input,
        cuda::pointwise(
            "mse_loss",
            "MseLossBackward0",
            input,
            target,
            reduction,
            cuda::Point::Mse
        )
    );
    let f = |x: f64, t: f64| {
        let d = x - t;
        (d * d, 2.0 * d, -2.0 * d)
    };
    pointwise_loss(
        "mse_loss",
        "MseLossBackward0",
        input,
        target,
        reduction,
        Arc::new(f),
    )
}

fn sign(d: f64) -> f64 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Mean absolute error `|input - target|`, like `F.l1_loss`.
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    cuda_return!(
        input,
        cuda::pointwise(
            "l1_loss",
            "L1LossBackward0",
            input,
            target,
            reduction,
            cuda::Point::L1
        )
    );
    let f = |x: f64, t: f64| {
        let d = x - t;
        (d.abs(), sign(d), -sign(d))
    };
    pointwise_loss(
        "l1_loss",
        "L1LossBackward0",
        input,
        target,
        reduction,
        Arc::new(f),
    )
}

/// Huber-like smooth L1 loss, like `F.smooth_l1_loss`: `0.5·d²/beta` where
/// `|d| < beta`, `|d| - 0.5·beta` elsewhere (`beta == 0` gives L1).
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction, beta: f64) -> Tensor {
    if beta < 0.0 {
        panic!("smooth_l1_loss: beta must be non-negative, but got {beta}");
    }
    cuda_return!(
        input,
        cuda::pointwise(
            "smooth_l1_loss",
            "SmoothL1LossBackward0",
            input,
            target,
            reduction,
            cuda::Point::SmoothL1(beta)
        )
    );
    let f = move |x: f64, t: f64| {
        let d = x - t;
        if d.abs() < beta {
            (0.5 * d * d / beta, d / beta, -d / beta)
        } else {
            (d.abs() - 0.5 * beta, sign(d), -sign(d))
        }
    };
    pointwise_loss(
        "smooth_l1_loss",
        "SmoothL1LossBackward0",
        input,
        target,
        reduction,
        Arc::new(f),
    )
}

/// Binary cross-entropy on logits, like `F.binary_cross_entropy_with_logits`,
/// in the stable form `max(x, 0) - x·t + log(1 + e^-|x|)`. Differentiable
/// with respect to both the logits and the target.
pub fn binary_cross_entropy_with_logits(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
) -> Tensor {
    cuda_return!(
        input,
        cuda::pointwise(
            "binary_cross_entropy_with_logits",
            "BinaryCrossEntropyWithLogitsBackward0",
            input,
            target,
            reduction,
            cuda::Point::BceWithLogits
        )
    );
    let f = |x: f64, t: f64| {
        let l = x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
        let sig = 1.0 / (1.0 + (-x).exp());
        (l, sig - t, -x)
    };
    pointwise_loss(
        "binary_cross_entropy_with_logits",
        "BinaryCrossEntropyWithLogitsBackward0",
        input,
        target,
        reduction,
        Arc::new(f),
    )
}

/// Binary cross-entropy on probabilities, like `F.binary_cross_entropy`:
/// `-(t·log p + (1 - t)·log(1 - p))` with the logarithms clamped at -100
/// as PyTorch does. `input` and `target` must have the same shape and the
/// input must lie in `[0, 1]`.
pub fn binary_cross_entropy(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    const OP: &str = "binary_cross_entropy";
    if input.shape() != target.shape() {
        panic!(
            "{OP}: using a target size {:?} that is different to the input size {:?} is not \
             supported",
            target.shape(),
            input.shape()
        );
    }
    cuda_return!(
        input,
        cuda::pointwise(
            OP,
            "BinaryCrossEntropyBackward0",
            input,
            target,
            reduction,
            cuda::Point::Bce
        )
    );
    if input.dtype().is_float() {
        let v = input.to_vec::<f64>();
        if v.iter().any(|p| !(0.0..=1.0).contains(p)) {
            panic!("{OP}: all elements of input should be between 0 and 1");
        }
    }
    let f = |p: f64, t: f64| {
        let (lp, l1p) = (p.ln().max(-100.0), (1.0 - p).ln().max(-100.0));
        let l = -(t * lp + (1.0 - t) * l1p);
        (l, (p - t) / (p * (1.0 - p)).max(1e-12), l1p - lp)
    };
    pointwise_loss(
        OP,
        "BinaryCrossEntropyBackward0",
        input,
        target,
        reduction,
        Arc::new(f),
    )
}

/// Geometry of a classification input `[N, C, d...]` (or `[C]`): `outer`
/// samples, `c` classes, `inner` positions per sample.
struct ClassGeom {
    outer: usize,
    c: usize,
    inner: usize,
    /// Shape of the per-position loss (the target's shape).
    loss_shape: Vec<usize>,
}

impl ClassGeom {
    fn new(op: &str, input: &Tensor, target_shape: &[usize], prob_target: bool) -> ClassGeom {
        let s = input.shape();
        let expected: Vec<usize> = match s.len() {
            0 => {
                panic!("{op}: expected an input of shape [C], [N, C] or [N, C, d...], got a scalar")
            }
            1 => vec![],
            _ => {
                let mut e = vec![s[0]];
                e.extend_from_slice(&s[2..]);
                e
            }
        };
        let ok = if prob_target {
            target_shape == s
        } else {
            target_shape == expected.as_slice()
        };
        if !ok {
            panic!(
                "{op}: expected target of shape {:?} for input of shape {:?}, but got target \
                 shape {:?}",
                if prob_target { s.to_vec() } else { expected },
                s,
                target_shape
            );
        }
        let (outer, c, inner) = match s.len() {
            1 => (1, s[0], 1),
            _ => (s[0], s[1], s[2..].iter().product()),
        };
        let loss_shape = if s.len() == 1 {
            vec![]
        } else {
            let mut e = vec![s[0]];
            e.extend_from_slice(&s[2..]);
            e
        };
        ClassGeom {
            outer,
            c,
            inner,
            loss_shape,
        }
    }

    /// Flat offset of class `k` at position `i` (`i = o·inner + j`).
    #[inline]
    fn at(&self, i: usize, k: usize) -> usize {
        let (o, j) = (i / self.inner, i % self.inner);
        (o * self.c + k) * self.inner + j
    }

    fn positions(&self) -> usize {
        self.outer * self.inner
    }
}

fn class_weights(op: &str, weight: Option<&Tensor>, c: usize) -> Option<Vec<f64>> {
    weight.map(|w| {
        if w.shape() != [c] {
            panic!(
                "{op}: expected weight of shape [{c}] (one per class), but got {:?}",
                w.shape()
            );
        }
        w.to_vec::<f64>()
    })
}

/// The class of position `i`, or `None` when it is ignored; panics on an
/// out-of-range class.
fn class_of(op: &str, y: i64, ignore_index: Option<i64>, c: usize) -> Option<usize> {
    if Some(y) == ignore_index {
        return None;
    }
    if y < 0 || y as usize >= c {
        panic!("{op}: target {y} is out of bounds for {c} classes");
    }
    Some(y as usize)
}

/// Cross-entropy between logits and class indices, like
/// `F.cross_entropy(input, target, reduction=..., label_smoothing=...)`:
/// `input` is `[N, C]`, `[N, C, d...]` or `[C]` logits, `target` int64
/// class indices of shape `[N]`, `[N, d...]` or `[]` (targets equal to
/// -100 are ignored, as in PyTorch), or class probabilities shaped like
/// `input`. With label smoothing `ε` the loss is
/// `(1 - ε)·nll + ε·mean_c(-log p_c)`.
///
/// ```
/// use kiln_runtime::{Tensor, loss::{cross_entropy, Reduction}};
/// let logits = Tensor::from([[0.0f32, 0.0]]);
/// let l = cross_entropy(&logits, &Tensor::from([1i64]), Reduction::Mean, 0.0);
/// assert!((l.item() - 2f64.ln()).abs() < 1e-6);
/// ```
pub fn cross_entropy(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    label_smoothing: f64,
) -> Tensor {
    cross_entropy_with(input, target, reduction, label_smoothing, None, Some(-100))
}

/// [`cross_entropy`] with PyTorch's other options: per-class `weight`
/// (`[C]`) and `ignore_index` (`None`: no target is ignored). With
/// weights, the mean divides by the summed weight of the targets.
pub fn cross_entropy_with(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    label_smoothing: f64,
    weight: Option<&Tensor>,
    ignore_index: Option<i64>,
) -> Tensor {
    const OP: &str = "cross_entropy";
    if !(0.0..=1.0).contains(&label_smoothing) {
        panic!("{OP}: label_smoothing must be between 0.0 and 1.0, but got {label_smoothing}");
    }
    if !input.dtype().is_float() {
        panic!(
            "{OP}: expected floating-point logits, but got {} (shape {:?})",
            input.dtype(),
            input.shape()
        );
    }
    cuda_return!(
        input,
        cuda::cross_entropy(
            input,
            target,
            reduction,
            label_smoothing,
            weight,
            ignore_index
        )
    );
    if !ready(input) {
        let t = if target.dtype().is_float() {
            to_cpu32(target)
        } else {
            target.to(&Device::Cpu)
        };
        let w = weight.map(to_cpu32);
        return cross_entropy_with(
            &to_cpu32(input),
            &t,
            reduction,
            label_smoothing,
            w.as_ref(),
            ignore_index,
        )
        .to_dtype(input.dtype())
        .to(&input.device());
    }
    if target.dtype().is_float() {
        return cross_entropy_probs(input, target, reduction, label_smoothing, weight);
    }
    if target.dtype() != DType::I64 {
        panic!(
            "{OP}: expected target of dtype int64 (class indices) or floating point (class \
             probabilities), but got {}",
            target.dtype()
        );
    }
    let geom = ClassGeom::new(OP, input, target.shape(), false);
    let c = geom.c;
    let eps = label_smoothing;
    let w = class_weights(OP, weight, c);
    let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
    let w_total: f64 = w.as_ref().map_or(c as f64, |w| w.iter().sum());
    let classes: Vec<Option<usize>> = target
        .to_vec::<i64>()
        .into_iter()
        .map(|y| class_of(OP, y, ignore_index, c))
        .collect();
    let np = geom.positions();
    // Forward: log-sum-exp per position, then the smoothed weighted NLL.
    let (out, lse, denom) = dispatch_real!(OP, input.dtype(), T => input.with_slice::<T, _>(OP, |xs| {
        let mut lse = vec![0.0f64; np];
        let mut losses = vec![0.0f64; np];
        let mut denom = 0.0f64;
        for i in 0..np {
            let Some(y) = classes[i] else { continue };
            let z = |k: usize| xs[geom.at(i, k)].as_f64();
            let mx = (0..c).map(z).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..c).map(|k| (z(k) - mx).exp()).sum();
            let l = mx + s.ln();
            lse[i] = l;
            let mut loss = (1.0 - eps) * wk(y) * (l - z(y));
            if eps > 0.0 {
                let smooth: f64 = (0..c).map(|k| wk(k) * (l - z(k))).sum();
                loss += eps / c as f64 * smooth;
            }
            losses[i] = loss;
            denom += wk(y);
        }
        let out = match reduction {
            Reduction::None => tensor_from(
                losses.iter().map(|&v| T::cast_f64(v)).collect::<Vec<T>>(),
                &geom.loss_shape,
            ),
            Reduction::Sum => tensor_from(vec![T::cast_f64(losses.iter().sum())], &[]),
            Reduction::Mean => {
                tensor_from(vec![T::cast_f64(losses.iter().sum::<f64>() / denom)], &[])
            }
        };
        (out, lse, denom)
    }));
    let xc = input.clone();
    Tensor::from_op(out, "CrossEntropyLossBackward0", &[input], move |g, _| {
        let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
        let gv = g.to_vec::<f64>();
        let scale = |i: usize| match reduction {
            Reduction::None => gv[i],
            Reduction::Sum => gv[0],
            Reduction::Mean => gv[0] / denom,
        };
        let gx = dispatch_real!(OP, xc.dtype(), T => xc.with_slice::<T, _>(OP, |xs| {
            let mut dx = vec![T::cast_f64(0.0); xs.len()];
            for i in 0..np {
                let Some(y) = classes[i] else { continue };
                let s = scale(i);
                let wy = (1.0 - eps) * wk(y);
                for k in 0..c {
                    let at = geom.at(i, k);
                    let p = (xs[at].as_f64() - lse[i]).exp();
                    let mut d = wy * p;
                    if k == y {
                        d -= wy;
                    }
                    if eps > 0.0 {
                        d += eps / c as f64 * (w_total * p - wk(k));
                    }
                    dx[at] = T::cast_f64(s * d);
                }
            }
            tensor_from(dx, xc.shape())
        }));
        vec![Some(gx)]
    })
}

/// Cross-entropy against class probabilities (a float target shaped like
/// the input); differentiable with respect to both.
fn cross_entropy_probs(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    eps: f64,
    weight: Option<&Tensor>,
) -> Tensor {
    const OP: &str = "cross_entropy";
    let geom = ClassGeom::new(OP, input, target.shape(), true);
    let c = geom.c;
    let w = class_weights(OP, weight, c);
    let np = geom.positions();
    let logp = input.to_vec::<f64>();
    let tv = target.to_vec::<f64>();
    let mut logp = logp;
    for i in 0..np {
        let mx = (0..c)
            .map(|k| logp[geom.at(i, k)])
            .fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = (0..c).map(|k| (logp[geom.at(i, k)] - mx).exp()).sum();
        let l = mx + s.ln();
        for k in 0..c {
            logp[geom.at(i, k)] -= l;
        }
    }
    let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
    let ts = |at: usize| tv[at] * (1.0 - eps) + eps / c as f64;
    let losses: Vec<f64> = (0..np)
        .map(|i| {
            (0..c)
                .map(|k| -wk(k) * ts(geom.at(i, k)) * logp[geom.at(i, k)])
                .sum()
        })
        .collect();
    let dt = input.dtype();
    let out = match reduction {
        Reduction::None => Tensor::from_vec(losses, geom.loss_shape.clone()).to_dtype(dt),
        Reduction::Sum => Tensor::scalar(losses.iter().sum::<f64>()).to_dtype(dt),
        Reduction::Mean => Tensor::scalar(losses.iter().sum::<f64>() / np as f64).to_dtype(dt),
    };
    let shape = input.shape().to_vec();
    Tensor::from_op(
        out,
        "CrossEntropyLossBackward0",
        &[input, target],
        move |g, need| {
            let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
            let ts = |at: usize| tv[at] * (1.0 - eps) + eps / c as f64;
            let gv = g.to_vec::<f64>();
            let scale = |i: usize| match reduction {
                Reduction::None => gv[i],
                Reduction::Sum => gv[0],
                Reduction::Mean => gv[0] / np as f64,
            };
            let mut dx = vec![0.0f64; logp.len()];
            let mut dtg = vec![0.0f64; logp.len()];
            for i in 0..np {
                let s = scale(i);
                let wt: f64 = (0..c).map(|k| wk(k) * ts(geom.at(i, k))).sum();
                for k in 0..c {
                    let at = geom.at(i, k);
                    dx[at] = s * (logp[at].exp() * wt - wk(k) * ts(at));
                    dtg[at] = -s * (1.0 - eps) * wk(k) * logp[at];
                }
            }
            vec![
                need[0].then(|| Tensor::from_vec(dx, shape.clone()).to_dtype(dt)),
                need[1].then(|| Tensor::from_vec(dtg, shape.clone()).to_dtype(dt)),
            ]
        },
    )
}

/// Negative log-likelihood of log-probabilities, like `F.nll_loss`:
/// `input` `[N, C]`, `[N, C, d...]` or `[C]`, `target` int64 class indices
/// (-100 is ignored).
pub fn nll_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    nll_loss_with(input, target, reduction, None, Some(-100))
}

/// [`nll_loss`] with per-class `weight` and `ignore_index`.
pub fn nll_loss_with(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    weight: Option<&Tensor>,
    ignore_index: Option<i64>,
) -> Tensor {
    const OP: &str = "nll_loss";
    if !input.dtype().is_float() || target.dtype() != DType::I64 {
        panic!(
            "{OP}: expected floating-point input and int64 target, but got {} and {}",
            input.dtype(),
            target.dtype()
        );
    }
    cuda_return!(
        input,
        cuda::nll_loss(input, target, reduction, weight, ignore_index)
    );
    if !ready(input) {
        let w = weight.map(to_cpu32);
        return nll_loss_with(
            &to_cpu32(input),
            &target.to(&Device::Cpu),
            reduction,
            w.as_ref(),
            ignore_index,
        )
        .to_dtype(input.dtype())
        .to(&input.device());
    }
    let geom = ClassGeom::new(OP, input, target.shape(), false);
    let c = geom.c;
    let w = class_weights(OP, weight, c);
    let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
    let classes: Vec<Option<usize>> = target
        .to_vec::<i64>()
        .into_iter()
        .map(|y| class_of(OP, y, ignore_index, c))
        .collect();
    let np = geom.positions();
    let (out, denom) = dispatch_real!(OP, input.dtype(), T => input.with_slice::<T, _>(OP, |xs| {
        let mut losses = vec![0.0f64; np];
        let mut denom = 0.0;
        for i in 0..np {
            if let Some(y) = classes[i] {
                losses[i] = -wk(y) * xs[geom.at(i, y)].as_f64();
                denom += wk(y);
            }
        }
        let out = match reduction {
            Reduction::None => tensor_from(
                losses.iter().map(|&v| T::cast_f64(v)).collect::<Vec<T>>(),
                &geom.loss_shape,
            ),
            Reduction::Sum => tensor_from(vec![T::cast_f64(losses.iter().sum())], &[]),
            Reduction::Mean => {
                tensor_from(vec![T::cast_f64(losses.iter().sum::<f64>() / denom)], &[])
            }
        };
        (out, denom)
    }));
    let (shape, dt) = (input.shape().to_vec(), input.dtype());
    Tensor::from_op(out, "NllLossBackward0", &[input], move |g, _| {
        let wk = |k: usize| w.as_ref().map_or(1.0, |w| w[k]);
        let gv = g.to_vec::<f64>();
        let n: usize = shape.iter().product();
        let gx = dispatch_real!(OP, dt, T => {
            let mut dx = vec![T::cast_f64(0.0); n];
            for i in 0..np {
                if let Some(y) = classes[i] {
                    let s = match reduction {
                        Reduction::None => gv[i],
                        Reduction::Sum => gv[0],
                        Reduction::Mean => gv[0] / denom,
                    };
                    dx[geom.at(i, y)] = T::cast_f64(-wk(y) * s);
                }
            }
            tensor_from(dx, &shape)
        });
        vec![Some(gx)]
    })
}
