//! Loss functions, like `torch.nn.functional`'s: regression losses
//! (`mse_loss`, `l1_loss`, `smooth_l1_loss`), classification losses
//! (`cross_entropy`, `nll_loss`) and binary ones
//! (`binary_cross_entropy[_with_logits]`).
//!
//! Each loss is written once: its checks, the backend's fused kernel
//! (`cross_entropy` does log-softmax and the negative log-likelihood in
//! one pass, and its backward is `softmax - target`; the pointwise losses
//! compute every element's loss and derivatives in one pass) and one
//! backward closure.

use crate::backend;
use crate::layout::broadcast_shapes;
use crate::ops::device::same_device;
use crate::{DType, Tensor, autograd};

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

/// A loss of `(input[i], target[i])` per element; the backends compute
/// its value and derivatives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PointLoss {
    /// `(x - t)²`
    Mse,
    /// `|x - t|`
    L1,
    /// Huber-like, with its `beta` (`0` gives L1).
    SmoothL1(f64),
    /// Binary cross-entropy on logits.
    BceWithLogits,
    /// Binary cross-entropy on probabilities (logs clamped at -100).
    Bce,
}

impl PointLoss {
    /// The loss function's name, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            PointLoss::Mse => "mse_loss",
            PointLoss::L1 => "l1_loss",
            PointLoss::SmoothL1(_) => "smooth_l1_loss",
            PointLoss::BceWithLogits => "binary_cross_entropy_with_logits",
            PointLoss::Bce => "binary_cross_entropy",
        }
    }
}

/// A pointwise loss with `input` and `target` broadcast together; the
/// gradient flows to both.
fn pointwise(
    name: &'static str,
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    kind: PointLoss,
) -> Tensor {
    let op = kind.name();
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
        return pointwise(name, &x, &t, reduction, kind);
    }
    let x = input.detach();
    let t = autograd::no_grad(|| target.detach().to_dtype(x.dtype()));
    let n = x.numel();
    if kind == PointLoss::Bce {
        // Counted where the data lives; one number comes back (NaN is outside).
        let inside = autograd::no_grad(|| {
            let (lo, hi) = (x.ge(&x.scalar_like(0.0)), x.le(&x.scalar_like(1.0)));
            lo.logical_and(&hi).sum().item()
        });
        if inside as usize != n {
            panic!("{op}: all elements of input should be between 0 and 1");
        }
    }
    let be = backend::of(x.device());
    let out = autograd::no_grad(|| {
        let each = be.point_loss(kind, &x, &t);
        match reduction {
            Reduction::None => each,
            Reduction::Sum => each.sum(),
            Reduction::Mean => each.sum().div_scalar(n as f64),
        }
    });
    let target_dtype = target.dtype();
    Tensor::from_op_saved(
        out,
        name,
        &[input, target],
        &[x.shallow_clone(), t.shallow_clone()],
        move |g, need| {
            let (a, b) = backend::of(g.device()).point_loss_backward(kind, &x, &t);
            let scale = match reduction {
                Reduction::Mean => g.div_scalar(n as f64),
                _ => g.shallow_clone(),
            };
            vec![
                need[0].then(|| a.mul(&scale)),
                need[1].then(|| b.mul(&scale).to_dtype(target_dtype)),
            ]
        },
    )
}

/// Mean squared error `(input - target)²`, like `F.mse_loss`.
///
/// ```
/// use kiln_runtime::{Tensor, loss::{mse_loss, Reduction}};
/// let l = mse_loss(&Tensor::from([1.0f32, 3.0]), &Tensor::from([0.0f32, 0.0]), Reduction::Mean);
/// assert_eq!(l.item(), 5.0);
/// ```
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    pointwise("MseLossBackward0", input, target, reduction, PointLoss::Mse)
}

/// Mean absolute error `|input - target|`, like `F.l1_loss`.
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    pointwise("L1LossBackward0", input, target, reduction, PointLoss::L1)
}

/// Huber-like smooth L1 loss, like `F.smooth_l1_loss`: `0.5·d²/beta` where
/// `|d| < beta`, `|d| - 0.5·beta` elsewhere (`beta == 0` gives L1).
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction, beta: f64) -> Tensor {
    if beta < 0.0 {
        panic!("smooth_l1_loss: beta must be non-negative, but got {beta}");
    }
    let kind = PointLoss::SmoothL1(beta);
    pointwise("SmoothL1LossBackward0", input, target, reduction, kind)
}

/// Binary cross-entropy on logits, like `F.binary_cross_entropy_with_logits`,
/// in the stable form `max(x, 0) - x·t + log(1 + e^-|x|)`. Differentiable
/// with respect to both the logits and the target.
pub fn binary_cross_entropy_with_logits(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
) -> Tensor {
    let kind = PointLoss::BceWithLogits;
    pointwise(
        "BinaryCrossEntropyWithLogitsBackward0",
        input,
        target,
        reduction,
        kind,
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
    pointwise(
        "BinaryCrossEntropyBackward0",
        input,
        target,
        reduction,
        PointLoss::Bce,
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

    fn positions(&self) -> usize {
        self.outer * self.inner
    }
}

/// `[C]`, `[N, C]` or `[N, C, d...]` scores as `[positions, C]` rows
/// (classes last, positions in the target's row-major order).
fn rows(x: &Tensor) -> Tensor {
    let s = x.shape();
    match s.len() {
        1 => x.reshape_to(&[1, s[0]]),
        2 => x.contiguous(),
        r => {
            let mut perm: Vec<isize> = vec![0];
            perm.extend(2..r as isize);
            perm.push(1);
            let positions = s[0] * s[2..].iter().product::<usize>();
            x.permute(&perm).reshape_to(&[positions, s[1]]).contiguous()
        }
    }
}

/// The inverse of [`rows`] for a tensor of input `shape`.
fn unrows(g: &Tensor, shape: &[usize]) -> Tensor {
    match shape.len() {
        1 => g.reshape_to(shape),
        2 => g.shallow_clone(),
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
/// (weights are constants) in `dtype`.
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

/// Reduces per-position losses; the mean divides by the total weight of
/// the targets (`wsum`'s sum), like PyTorch. Returns the result and that
/// total.
fn reduce(
    loss: Tensor,
    wsum: &Tensor,
    reduction: Reduction,
    loss_shape: &[usize],
) -> (Tensor, Tensor) {
    autograd::no_grad(|| {
        let wtotal = wsum.sum();
        let out = match reduction {
            Reduction::None => loss.reshape_to(loss_shape),
            Reduction::Sum => loss.sum(),
            Reduction::Mean => loss.sum().div(&wtotal),
        };
        (out, wtotal)
    })
}

/// The gradient of each position's loss from the reduced output's `g`.
fn per_position(g: &Tensor, wtotal: &Tensor, reduction: Reduction, np: usize) -> Tensor {
    match reduction {
        Reduction::None => g.reshape_to(&[np]),
        Reduction::Sum => g.reshape_to(&[1]).expand(&[np]),
        Reduction::Mean => g.div(wtotal).reshape_to(&[1]).expand(&[np]),
    }
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
    same_device_weighted(OP, input, target, weight);
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
    let smoothing = Some(label_smoothing);
    class_loss(input, target, reduction, smoothing, weight, ignore_index)
}

/// Panics unless `input`, `target` and the class `weight` (when given)
/// are on one device.
fn same_device_weighted(op: &str, input: &Tensor, target: &Tensor, weight: Option<&Tensor>) {
    let mut given = vec![input, target];
    given.extend(weight);
    same_device(op, &given);
}

/// Cross-entropy (`smoothing` given) or NLL of `input` against the int64
/// class indices `target`, through the backend's `class_loss`,
/// recorded with its backward.
fn class_loss(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    smoothing: Option<f64>,
    weight: Option<&Tensor>,
    ignore_index: Option<i64>,
) -> Tensor {
    let (op, name) = match smoothing {
        Some(_) => ("cross_entropy", "CrossEntropyLossBackward0"),
        None => ("nll_loss", "NllLossBackward0"),
    };
    let geom = ClassGeom::new(op, input, target.shape(), false);
    let w = class_weight(op, weight, geom.c, input.dtype());
    let np = geom.positions();
    let (x, t) = (rows(&input.detach()), target.reshape_to(&[np]));
    // No target equals i64::MIN's "ignore" when nothing is ignored.
    let ignore = ignore_index.unwrap_or(i64::MIN);
    let l = backend::ClassLoss {
        smoothing,
        target: t,
        weight: w,
        ignore,
    };
    let (loss, wsum) = backend::of(x.device()).class_loss(&x, &l);
    let (out, wtotal) = reduce(loss, &wsum, reduction, &geom.loss_shape);
    let shape = input.shape().to_vec();
    Tensor::from_op_saved(
        out,
        name,
        &[input],
        &[x.shallow_clone(), l.target.shallow_clone()],
        move |g, _| {
            let gl = per_position(g, &wtotal, reduction, np);
            let gx = backend::of(g.device()).class_loss_backward(&x, &l, &gl);
            vec![Some(unrows(&gx, &shape))]
        },
    )
}

/// Cross-entropy against class probabilities (`target` shaped like
/// `input`), `-Σ_c w_c·t̃_c·log_softmax(x)_c` with the smoothed target
/// `t̃ = (1 - ε)·t + ε/C`, composed from tensor ops so that autograd
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
    same_device_weighted(OP, input, target, weight);
    class_loss(input, target, reduction, None, weight, ignore_index)
}
