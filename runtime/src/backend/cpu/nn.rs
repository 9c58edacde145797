//! The fused NN kernels on the CPU: convolution and pooling over
//! `kiln_kernels::cpu`, f32/f64 natively and half types through f32.

use crate::backend::{Conv2dParams, ConvKept, Grads3, Pool2dParams, PoolIndices};
use crate::dtype::dispatch;
use crate::nn::functional::util::{is_half, tensor_from};
use crate::{DType, Tensor, autograd};
use kiln_kernels::cpu::conv::{
    ConvKept as ConvKeptBy, conv2d_backward as kernel_backward, conv2d_backward_bias,
    conv2d_backward_reusing as backward_reusing, conv2d_forward, conv2d_forward_keeping,
    conv2d_output_size,
};
use kiln_kernels::cpu::pool::{
    adaptive_avg_pool2d_backward as adaptive_bwd, adaptive_avg_pool2d_forward as adaptive_fwd,
    avg_pool2d_backward as avg_bwd, avg_pool2d_forward as avg_fwd, max_pool2d_backward as max_bwd,
    max_pool2d_forward as max_fwd,
};
use std::sync::Arc;

/// `t` in float32 (a no-op for other dtypes).
pub(super) fn f32_of(t: &Tensor) -> Tensor {
    autograd::no_grad(|| t.to_dtype(DType::F32))
}

/// `t` converted back to `dtype`.
pub(super) fn back_to(t: Tensor, dtype: DType) -> Tensor {
    if t.dtype() == dtype {
        t
    } else {
        autograd::no_grad(|| t.to_dtype(dtype))
    }
}

fn shape4(s: &[usize]) -> [usize; 4] {
    [s[0], s[1], s[2], s[3]]
}

pub(super) fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Tensor {
    conv2d_forward_pass(x, w, bias, p, false).0
}

/// [`conv2d`] that keeps a Winograd layer's transforms (f32/f64 only).
pub(super) fn conv2d_keeping(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv2dParams,
) -> (Tensor, Option<ConvKept>) {
    conv2d_forward_pass(x, w, bias, p, true)
}

/// The forward convolution, keeping what the backward can reuse if `keep`.
fn conv2d_forward_pass(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv2dParams,
    keep: bool,
) -> (Tensor, Option<ConvKept>) {
    const OP: &str = "conv2d";
    if is_half(x.dtype()) {
        let b = bias.map(f32_of);
        let y = conv2d(&f32_of(x), &f32_of(w), b.as_ref(), p);
        return (back_to(y, x.dtype()), None);
    }
    let (in_shape, w_shape) = (shape4(x.shape()), shape4(w.shape()));
    let [oh, ow] = conv2d_output_size([in_shape[2], in_shape[3]], [w_shape[2], w_shape[3]], p)
        .expect("conv2d: output size checked by the op");
    let out_shape = [in_shape[0], w_shape[0], oh, ow];
    dispatch!(real OP, x.dtype(), T => x.with_slice::<T, _>(OP, |xs| {
        w.with_slice::<T, _>(OP, |ws| {
            let run = |bs: Option<&[T]>| {
                if keep {
                    conv2d_forward_keeping(xs, in_shape, ws, w_shape, bs, p)
                } else {
                    (conv2d_forward(xs, in_shape, ws, w_shape, bs, p), None)
                }
            };
            let (y, kept) = match bias {
                Some(b) => b.with_slice::<T, _>(OP, |bs| run(Some(bs))),
                None => run(None),
            };
            (tensor_from(y, &out_shape), kept.map(|k| Arc::new(k) as ConvKept))
        })
    }))
}

/// [`conv2d_backward`], reusing the forward pass's transforms when both
/// gradients are needed and `kept` holds them for this dtype.
pub(super) fn conv2d_backward_reusing(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    p: &Conv2dParams,
    need: [bool; 3],
    kept: &ConvKept,
) -> Grads3 {
    const OP: &str = "conv2d";
    if is_half(x.dtype()) || !(need[0] && need[1]) {
        return conv2d_backward(x, w, g, p, need);
    }
    let (in_shape, w_shape, out_shape) = (shape4(x.shape()), shape4(w.shape()), shape4(g.shape()));
    dispatch!(real OP, g.dtype(), T => {
        let Some(kept) = kept.downcast_ref::<ConvKeptBy<T>>() else {
            return conv2d_backward(x, w, g, p, need);
        };
        g.with_slice::<T, _>(OP, |gs| {
            let db = need[2]
                .then(|| tensor_from(conv2d_backward_bias(gs, out_shape), &[out_shape[1]]));
            let (dx, dw) = backward_reusing(kept, gs, out_shape, in_shape, w_shape, p);
            (Some(tensor_from(dx, &in_shape)), Some(tensor_from(dw, &w_shape)), db)
        })
    })
}

pub(super) fn conv2d_backward(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    p: &Conv2dParams,
    need: [bool; 3],
) -> Grads3 {
    const OP: &str = "conv2d";
    if is_half(x.dtype()) {
        let (dx, dw, db) = conv2d_backward(&f32_of(x), &f32_of(w), &f32_of(g), p, need);
        let dt = x.dtype();
        let back = |t: Option<Tensor>| t.map(|t| back_to(t, dt));
        return (back(dx), back(dw), back(db));
    }
    let (in_shape, w_shape, out_shape) = (shape4(x.shape()), shape4(w.shape()), shape4(g.shape()));
    dispatch!(real OP, g.dtype(), T => g.with_slice::<T, _>(OP, |gs| {
        x.with_slice::<T, _>(OP, |xs| w.with_slice::<T, _>(OP, |ws| {
            let grads = kernel_backward(gs, out_shape, xs, in_shape, ws, w_shape, p, need);
            (
                grads.input.map(|v| tensor_from(v, &in_shape)),
                grads.weight.map(|v| tensor_from(v, &w_shape)),
                grads.bias.map(|v| tensor_from(v, &[out_shape[1]])),
            )
        }))
    }))
}

pub(super) fn max_pool2d(x: &Tensor, p: &Pool2dParams) -> (Tensor, PoolIndices) {
    const OP: &str = "max_pool2d";
    if is_half(x.dtype()) {
        let (y, idx) = max_pool2d(&f32_of(x), p);
        return (back_to(y, x.dtype()), idx);
    }
    let in_shape = shape4(x.shape());
    let (out, idx) = dispatch!(real OP, x.dtype(), T => x.with_slice::<T, _>(OP, |xs| {
        let (y, idx, os) = max_fwd(
            xs, in_shape, p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode,
        );
        (tensor_from(y, &os), idx)
    }));
    (out, PoolIndices::Host(Arc::new(idx)))
}

/// The CPU's indices locate each window's maximum: no geometry needed.
pub(super) fn max_pool2d_backward(g: &Tensor, indices: &PoolIndices, in_shape: &[usize]) -> Tensor {
    const OP: &str = "max_pool2d";
    if is_half(g.dtype()) {
        return back_to(
            max_pool2d_backward(&f32_of(g), indices, in_shape),
            g.dtype(),
        );
    }
    let PoolIndices::Host(idx) = indices else {
        panic!("{OP}: the saved indices are not in host memory");
    };
    let (in_shape, out_shape) = (shape4(in_shape), shape4(g.shape()));
    dispatch!(real OP, g.dtype(), T => g.with_slice::<T, _>(OP, |gs| {
        tensor_from(max_bwd(gs, out_shape, idx, in_shape), &in_shape)
    }))
}

pub(super) fn avg_pool2d(x: &Tensor, p: &Pool2dParams, count_include_pad: bool) -> Tensor {
    const OP: &str = "avg_pool2d";
    if is_half(x.dtype()) {
        return back_to(avg_pool2d(&f32_of(x), p, count_include_pad), x.dtype());
    }
    let in_shape = shape4(x.shape());
    dispatch!(real OP, x.dtype(), T => x.with_slice::<T, _>(OP, |xs| {
        let (y, os) = avg_fwd(
            xs, in_shape, p.kernel, p.stride, p.padding, p.ceil_mode, count_include_pad, None,
        );
        tensor_from(y, &os)
    }))
}

pub(super) fn avg_pool2d_backward(
    g: &Tensor,
    in_shape: &[usize],
    p: &Pool2dParams,
    count_include_pad: bool,
) -> Tensor {
    const OP: &str = "avg_pool2d";
    if is_half(g.dtype()) {
        let gx = avg_pool2d_backward(&f32_of(g), in_shape, p, count_include_pad);
        return back_to(gx, g.dtype());
    }
    let (in_shape, out_shape) = (shape4(in_shape), shape4(g.shape()));
    dispatch!(real OP, g.dtype(), T => g.with_slice::<T, _>(OP, |gs| {
        let v = avg_bwd(
            gs, out_shape, in_shape, p.kernel, p.stride, p.padding, p.ceil_mode,
            count_include_pad, None,
        );
        tensor_from(v, &in_shape)
    }))
}

pub(super) fn adaptive_avg_pool2d(x: &Tensor, out_hw: [usize; 2]) -> Tensor {
    const OP: &str = "adaptive_avg_pool2d";
    if is_half(x.dtype()) {
        return back_to(adaptive_avg_pool2d(&f32_of(x), out_hw), x.dtype());
    }
    let in_shape = shape4(x.shape());
    let out_shape = [in_shape[0], in_shape[1], out_hw[0], out_hw[1]];
    dispatch!(real OP, x.dtype(), T => x.with_slice::<T, _>(OP, |xs| {
        tensor_from(adaptive_fwd(xs, in_shape, out_hw), &out_shape)
    }))
}

pub(super) fn adaptive_avg_pool2d_backward(g: &Tensor, in_shape: &[usize]) -> Tensor {
    const OP: &str = "adaptive_avg_pool2d";
    if is_half(g.dtype()) {
        return back_to(
            adaptive_avg_pool2d_backward(&f32_of(g), in_shape),
            g.dtype(),
        );
    }
    let in_shape = shape4(in_shape);
    let out_hw = [g.shape()[2], g.shape()[3]];
    dispatch!(real OP, g.dtype(), T => g.with_slice::<T, _>(OP, |gs| {
        tensor_from(adaptive_bwd(gs, in_shape, out_hw), &in_shape)
    }))
}

/// Row indices `idx` (int64, 1-D) checked against `v` rows.
fn embedding_rows(idx: &Tensor, v: usize, w_shape: &[usize]) -> Vec<usize> {
    idx.to_vec::<i64>()
        .into_iter()
        .map(|i| {
            if i < 0 || i as usize >= v {
                panic!(
                    "embedding: index {i} is out of range for a weight of shape {w_shape:?} \
                     (valid 0..{v})"
                );
            }
            i as usize
        })
        .collect()
}

pub(super) fn embedding(weight: &Tensor, idx: &Tensor) -> Tensor {
    const OP: &str = "embedding";
    if !matches!(weight.dtype(), DType::F32 | DType::F64) {
        return back_to(embedding(&f32_of(weight), idx), weight.dtype());
    }
    let (v, d) = (weight.shape()[0], weight.shape()[1]);
    let rows = embedding_rows(idx, v, weight.shape());
    dispatch!(real OP, weight.dtype(), T => weight.with_slice::<T, _>(OP, |ws| {
        let mut out = Vec::with_capacity(rows.len() * d);
        for &i in &rows {
            out.extend_from_slice(&ws[i * d..(i + 1) * d]);
        }
        tensor_from(out, &[rows.len(), d])
    }))
}

pub(super) fn embedding_backward(g: &Tensor, idx: &Tensor, v: usize) -> Tensor {
    const OP: &str = "embedding";
    if !matches!(g.dtype(), DType::F32 | DType::F64) {
        return back_to(embedding_backward(&f32_of(g), idx, v), g.dtype());
    }
    let d = g.shape()[1];
    let rows = embedding_rows(idx, v, &[v, d]);
    dispatch!(real OP, g.dtype(), T => g.with_slice::<T, _>(OP, |gs| {
        let mut gw = vec![<T as num_traits::Zero>::zero(); v * d];
        for (r, &i) in rows.iter().enumerate() {
            for (a, &b) in gw[i * d..(i + 1) * d].iter_mut().zip(&gs[r * d..(r + 1) * d]) {
                *a += b;
            }
        }
        tensor_from(gw, &[v, d])
    }))
}
