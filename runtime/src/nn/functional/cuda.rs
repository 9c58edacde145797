//! The CUDA paths of the fused NN functions (feature `cuda`): convolution,
//! pooling, batch norm and embedding run the backend's kernels forward and
//! backward; layer norm is composed from device tensor ops. The callers
//! have checked shapes, dtypes and devices.

use crate::backend::cuda::{self as kc, Conv2dParams, Pool2dParams};
use crate::{DType, Tensor, autograd};

/// 2-D convolution of NCHW `x` (`[stride, padding, dilation]`, `groups`),
/// with the fused backward.
pub(super) fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    [stride, padding, dilation]: [[usize; 2]; 3],
    groups: usize,
) -> Tensor {
    let p = Conv2dParams {
        stride,
        padding,
        dilation,
        groups,
    };
    let (xd, wd) = (x.detach(), weight.detach());
    let out = kc::conv2d(&xd, &wd, bias.map(Tensor::detach).as_ref(), &p);
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    let has_bias = bias.is_some();
    Tensor::from_op(out, "ConvolutionBackward0", &inputs, move |g, need| {
        let need_b = has_bias && need[2];
        let (gx, gw, gb) = kc::conv2d_backward(&xd, &wd, g, &p, [need[0], need[1], need_b]);
        let mut grads = vec![gx, gw];
        if has_bias {
            grads.push(gb);
        }
        grads
    })
}

/// 2-D max pooling of NCHW `x` (`[kernel, stride, padding, dilation]`);
/// the backward routes each gradient to its window's argmax.
pub(super) fn max_pool2d(
    x: &Tensor,
    [kernel, stride, padding, dilation]: [[usize; 2]; 4],
    ceil_mode: bool,
) -> Tensor {
    let p = Pool2dParams {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    };
    let (out, indices) = kc::max_pool2d(&x.detach(), &p);
    let in_shape = x.shape().to_vec();
    Tensor::from_op(out, "MaxPool2DWithIndicesBackward0", &[x], move |g, _| {
        vec![Some(kc::max_pool2d_backward(g, &indices, &in_shape, &p))]
    })
}

/// 2-D average pooling of NCHW `x` (`[kernel, stride, padding]`).
pub(super) fn avg_pool2d(
    x: &Tensor,
    [kernel, stride, padding]: [[usize; 2]; 3],
    ceil_mode: bool,
    count_include_pad: bool,
) -> Tensor {
    let p = Pool2dParams {
        kernel,
        stride,
        padding,
        dilation: [1, 1],
        ceil_mode,
    };
    let out = kc::avg_pool2d(&x.detach(), &p, count_include_pad, 0);
    let in_shape = x.shape().to_vec();
    Tensor::from_op(out, "AvgPool2DBackward0", &[x], move |g, _| {
        vec![Some(kc::avg_pool2d_backward(
            g,
            &in_shape,
            &p,
            count_include_pad,
            0,
        ))]
    })
}

/// Adaptive average pooling of NCHW `x` to `output_size`.
pub(super) fn adaptive_avg_pool2d(x: &Tensor, output_size: [usize; 2]) -> Tensor {
    let out = kc::adaptive_avg_pool2d(&x.detach(), output_size);
    let in_shape = x.shape().to_vec();
    Tensor::from_op(out, "AdaptiveAvgPool2DBackward0", &[x], move |g, _| {
        vec![Some(kc::adaptive_avg_pool2d_backward(g, &in_shape))]
    })
}

/// Batch norm over dimension 1 with the fused kernels. The kernels take
/// every tensor in `x`'s dtype and write the running statistics in place,
/// so weights of another dtype are converted (differentiably) and running
/// statistics of another dtype or layout are updated through a copy that
/// is written back.
#[allow(clippy::too_many_arguments)]
pub(super) fn batch_norm(
    x: &Tensor,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Tensor {
    let dt = x.dtype();
    if [weight, bias]
        .into_iter()
        .flatten()
        .any(|t| t.dtype() != dt)
    {
        let (w, b) = (weight.map(|t| t.to_dtype(dt)), bias.map(|t| t.to_dtype(dt)));
        let (w, b) = (w.as_ref(), b.as_ref());
        return batch_norm(x, running_mean, running_var, w, b, training, momentum, eps);
    }
    let stat = |t: Option<&Tensor>| {
        t.map(|t| {
            if t.dtype() == dt && t.is_contiguous() {
                t.detach()
            } else {
                autograd::no_grad(|| t.detach().to_dtype(dt).contiguous())
            }
        })
    };
    let (mut rm, mut rv) = (stat(running_mean), stat(running_var));
    if training && rm.is_some() != rv.is_some() {
        // The kernel updates both buffers or neither: give it a scratch one.
        let c = x.shape()[1];
        let scratch = || Some(Tensor::zeros_opts([c], (dt, &x.device())));
        rm = rm.or_else(scratch);
        rv = rv.or_else(scratch);
    }
    let (y, mean, invstd) = kc::batch_norm(
        &x.detach(),
        weight.map(Tensor::detach).as_ref(),
        bias.map(Tensor::detach).as_ref(),
        rm.as_ref(),
        rv.as_ref(),
        training,
        momentum,
        eps,
    );
    if training {
        autograd::no_grad(|| {
            for (orig, used) in [(running_mean, &rm), (running_var, &rv)] {
                if let (Some(o), Some(u)) = (orig, used)
                    && !u.shares_storage_with(o)
                {
                    o.copy_(u);
                }
            }
        });
    }
    let (xc, wc) = (x.detach(), weight.map(Tensor::detach));
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    Tensor::from_op(y, "NativeBatchNormBackward0", &inputs, move |g, need| {
        let (need_w, need_b) = (has_w && need[1], has_b && need[1 + has_w as usize]);
        let (dx, dw, db) = kc::batch_norm_backward(
            &xc,
            g,
            wc.as_ref(),
            &mean,
            &invstd,
            training,
            [need[0], need_w, need_b],
        );
        let mut grads = vec![dx];
        if has_w {
            grads.push(dw);
        }
        if has_b {
            grads.push(db);
        }
        grads
    })
}

/// Layer norm over the trailing `normalized_shape` dimensions, composed
/// from device tensor ops (autograd differentiates it); float16/bfloat16
/// are computed in float32, like the CPU path.
pub(super) fn layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    if super::util::is_half(x.dtype()) {
        let to32 = |t: &Tensor| t.to_dtype(DType::F32);
        let (w, b) = (weight.map(to32), bias.map(to32));
        return layer_norm(&to32(x), normalized_shape, w.as_ref(), b.as_ref(), eps)
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

/// Rows of `weight` for every index, with the `index_add` backward.
pub(super) fn embedding(indices: &Tensor, weight: &Tensor) -> Tensor {
    let (v, d) = (weight.shape()[0], weight.shape()[1]);
    let flat = indices.reshape_to(&[indices.numel()]);
    let mut out_shape = indices.shape().to_vec();
    out_shape.push(d);
    let out = kc::index_select(&weight.detach(), 0, &flat).reshape_to(&out_shape);
    Tensor::from_op(out, "EmbeddingBackward0", &[weight], move |g, _| {
        let g = g.reshape_to(&[flat.numel(), d]);
        vec![Some(kc::index_add(&[v, d], 0, &flat, &g))]
    })
}
