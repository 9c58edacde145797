//! Fused batch and layer normalisation: one pass for the statistics and the
//! output, one backward closure for every gradient.

use super::util::{check_float, check_same, is_half};
use crate::backend;
use crate::ops::device::same_device;
use crate::{DType, Tensor};

/// Batch normalisation over the channel dimension 1 of a `(N, C)`,
/// `(N, C, L)` or `(N, C, H, W)` input, like `F.batch_norm`.
///
/// In training, each channel is normalised with the batch's mean and biased
/// variance, and the running statistics (when given) are updated in place:
/// `running = (1 - momentum) · running + momentum · batch_stat`, with the
/// unbiased variance. In evaluation the running statistics are used.
/// `weight` and `bias` (`[C]`) scale and shift the result.
///
/// ```
/// use kiln_runtime::{Tensor, nn::functional::batch_norm};
/// let x = Tensor::from([[1.0f32], [3.0]]);
/// let (rm, rv) = (Tensor::zeros([1]), Tensor::ones([1]));
/// let y = batch_norm(&x, Some(&rm), Some(&rv), None, None, true, 0.1, 0.0);
/// assert_eq!(y.to_vec::<f32>(), vec![-1.0, 1.0]);
/// assert!((rm.to_vec::<f32>()[0] - 0.2).abs() < 1e-6);
/// assert!((rv.to_vec::<f32>()[0] - 1.1).abs() < 1e-6);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &Tensor,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Tensor {
    const OP: &str = "batch_norm";
    if x.dim() < 2 {
        panic!(
            "{OP}: expected a 2-D or higher input (N, C, ...), but got input of shape {:?}",
            x.shape()
        );
    }
    check_float(OP, "input", x);
    let c = x.shape()[1];
    for (what, t) in [
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ] {
        if let Some(t) = t {
            if t.shape() != [c] {
                panic!(
                    "{OP}: expected {what} of shape [{c}] for input {:?}, but got {:?}",
                    x.shape(),
                    t.shape()
                );
            }
            check_float(OP, what, t);
        }
    }
    if !training && (running_mean.is_none() || running_var.is_none()) {
        panic!("{OP}: running_mean and running_var must be given in evaluation mode");
    }
    for t in [running_mean, running_var, weight, bias]
        .into_iter()
        .flatten()
    {
        same_device(OP, &[x, t]);
    }
    let n = x.shape()[0];
    let l: usize = x.shape()[2..].iter().product();
    let m = n * l;
    if training && m <= 1 {
        panic!(
            "{OP}: expected more than 1 value per channel when training, got input size {:?}",
            x.shape()
        );
    }
    let detach = |t: Option<&Tensor>| t.map(Tensor::detach);
    let (xd, wd, bd) = (x.detach(), detach(weight), detach(bias));
    let args = backend::BatchNormArgs {
        weight: wd.as_ref(),
        bias: bd.as_ref(),
        running_mean,
        running_var,
        training,
        momentum,
        eps,
    };
    let (y, saved) = backend::of(x.device()).batch_norm(&xd, &args);
    let mut to_save = vec![
        xd.shallow_clone(),
        saved.mean.shallow_clone(),
        saved.invstd.shallow_clone(),
    ];
    to_save.extend(wd.as_ref().map(Tensor::shallow_clone));
    from_norm_op(
        y,
        "NativeBatchNormBackward0",
        x,
        weight,
        bias,
        &to_save,
        move |g, need| {
            backend::of(g.device()).batch_norm_backward(&xd, g, wd.as_ref(), &saved, need)
        },
    )
}

/// Layer normalisation over the trailing dimensions `normalized_shape`,
/// like `F.layer_norm`: each slice is normalised with its own mean and
/// biased variance, then scaled by `weight` and shifted by `bias` (both of
/// shape `normalized_shape`).
///
/// ```
/// use kiln_runtime::{Tensor, nn::functional::layer_norm};
/// let x = Tensor::from([[1.0f32, 3.0], [4.0, 0.0]]);
/// let y = layer_norm(&x, &[2], None, None, 0.0);
/// assert_eq!(y.to_vec::<f32>(), vec![-1.0, 1.0, 1.0, -1.0]);
/// ```
pub fn layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    const OP: &str = "layer_norm";
    let k = normalized_shape.len();
    if k == 0 || x.dim() < k || x.shape()[x.dim() - k..] != *normalized_shape {
        panic!(
            "{OP}: given normalized_shape={normalized_shape:?}, expected input with shape \
             [*, {}], but got input of size {:?}",
            normalized_shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            x.shape()
        );
    }
    check_float(OP, "input", x);
    for (what, t) in [("weight", weight), ("bias", bias)] {
        if let Some(t) = t {
            if t.shape() != normalized_shape {
                panic!(
                    "{OP}: expected {what} of shape {normalized_shape:?}, but got {:?}",
                    t.shape()
                );
            }
            check_same(OP, what, t, x);
        }
    }
    let d: usize = normalized_shape.iter().product();
    let detach = |t: Option<&Tensor>| t.map(Tensor::detach);
    let (xd, wd, bd) = (x.detach(), detach(weight), detach(bias));
    let Some((out, stats)) =
        backend::of(x.device()).layer_norm(&xd, d, wd.as_ref(), bd.as_ref(), eps)
    else {
        return layer_norm_composed(x, normalized_shape, weight, bias, eps);
    };
    let wshape = normalized_shape.to_vec();
    let mut saved = vec![xd.shallow_clone()];
    saved.extend(wd.as_ref().map(Tensor::shallow_clone));
    from_norm_op(
        out,
        "NativeLayerNormBackward0",
        x,
        weight,
        bias,
        &saved,
        move |g, need| {
            let be = backend::of(g.device());
            be.layer_norm_backward(&xd, g, wd.as_ref(), &stats, &wshape, need)
        },
    )
}

/// Records `out`, the normalisation of `x` scaled by `weight` and shifted by
/// `bias` (each optional): `backward(g, need)` gives the gradients of the
/// input, weight and bias, `need` saying which of the three are wanted.
fn from_norm_op(
    out: Tensor,
    name: &'static str,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    saved: &[Tensor],
    backward: impl Fn(&Tensor, [bool; 3]) -> crate::backend::Grads3 + Send + Sync + 'static,
) -> Tensor {
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let dtypes: Vec<DType> = inputs.iter().map(|t| t.dtype()).collect();
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    Tensor::from_op_saved(out, name, &inputs, saved, move |g, need| {
        let need_b = has_b && need[1 + has_w as usize];
        let need = [need[0], has_w && need[1], need_b];
        affine_grads(backward(g, need), has_w, has_b, &dtypes)
    })
}

/// The gradients of a normalisation's input, weight and bias as the
/// backward returns them (only the inputs that were given), each in its
/// input's dtype.
fn affine_grads(
    (dx, dw, db): crate::backend::Grads3,
    has_w: bool,
    has_b: bool,
    dtypes: &[DType],
) -> Vec<Option<Tensor>> {
    let mut grads = vec![dx];
    if has_w {
        grads.push(dw);
    }
    if has_b {
        grads.push(db);
    }
    grads
        .into_iter()
        .zip(dtypes)
        .map(|(g, &dt)| g.map(|g| if g.dtype() == dt { g } else { g.to_dtype(dt) }))
        .collect()
}

/// Layer norm composed from tensor ops (autograd differentiates it), for
/// backends without a fused kernel; float16/bfloat16 are computed in
/// float32.
fn layer_norm_composed(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    if is_half(x.dtype()) {
        let to32 = |t: &Tensor| t.to_dtype(DType::F32);
        let (w, b) = (weight.map(to32), bias.map(to32));
        return layer_norm_composed(&to32(x), normalized_shape, w.as_ref(), b.as_ref(), eps)
            .to_dtype(x.dtype());
    }
    let r = x.dim() as isize;
    let dims: Vec<isize> = (r - normalized_shape.len() as isize..r).collect();
    let centered = x.sub(&x.mean_dims(Some(&dims), true));
    let var = centered.square().mean_dims(Some(&dims), true);
    let mut y = centered.div(&var.add_scalar(eps).sqrt());
    if let Some(w) = weight {
        y = y.mul(w);
    }
    if let Some(b) = bias {
        y = y.add(b);
    }
    y
}
