//! Stateless neural-network functions, like `torch.nn.functional`.
//!
//! The hot-path functions (`linear`, `conv2d`, pooling, `batch_norm`,
//! `layer_norm`) are fused: one forward pass over the data and one backward
//! closure computing every input's gradient, instead of a chain of small
//! ops. float16/bfloat16 inputs are computed in float32.

mod conv;
mod norm;
mod pool;
pub(crate) mod util;

pub use conv::conv2d;
pub use norm::{batch_norm, layer_norm};
pub use pool::{adaptive_avg_pool2d, avg_pool2d, avg_pool2d_with, max_pool2d, max_pool2d_with};

use crate::backend;
use crate::dtype::dispatch;
use crate::ops::device::same_device;
use crate::{DType, Tensor};
use kiln_kernels::cpu::matmul::{gemm, gemm_new};
use num_traits::Zero;
use util::{check_float, cpu_real, from_weighted_op, tensor_from, with_strided};

/// Applies an affine map `x @ weight^T + bias`, like `F.linear`: `x` is
/// `[..., in]`, `weight` `[out, in]`, `bias` `[out]`; the result is
/// `[..., out]`.
///
/// ```
/// use kiln_runtime::{Tensor, nn::functional::linear};
/// let x = Tensor::from([[1.0f32, 2.0]]);
/// let w = Tensor::from([[1.0f32, 1.0], [0.0, 1.0]]);
/// let b = Tensor::from([0.5f32, 0.0]);
/// assert_eq!(linear(&x, &w, Some(&b)).to_vec::<f32>(), vec![3.5, 2.0]);
/// ```
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    const OP: &str = "linear";
    if weight.dim() != 2 || x.dim() == 0 || x.shape()[x.dim() - 1] != weight.shape()[1] {
        panic!(
            "{OP}: mat1 and mat2 shapes cannot be multiplied (input {:?}, weight {:?}; \
             expected input [..., {}])",
            x.shape(),
            weight.shape(),
            weight.shape().get(1).copied().unwrap_or(0)
        );
    }
    same_device(OP, &[x, weight]);
    if let Some(b) = bias {
        same_device(OP, &[x, b]);
    }
    let out_features = weight.shape()[0];
    if let Some(b) = bias
        && b.shape() != [out_features]
    {
        panic!(
            "{OP}: bias has shape {:?} but weight {:?} needs a bias of shape [{out_features}]",
            b.shape(),
            weight.shape()
        );
    }
    let fused = cpu_real(x)
        && x.dtype() == weight.dtype()
        && x.device() == weight.device()
        && bias.is_none_or(|b| b.dtype() == x.dtype() && b.device() == x.device());
    if !fused {
        let out = x.matmul(&weight.t());
        return match bias {
            Some(b) => out.add(b),
            None => out,
        };
    }
    if x.dim() == 2 {
        return linear_2d(x, weight, bias);
    }
    let in_features = weight.shape()[1];
    let mut out_shape = x.shape().to_vec();
    *out_shape.last_mut().unwrap() = out_features;
    let flat = x.reshape(&[-1, in_features as isize]);
    linear_2d(&flat, weight, bias).reshape_to(&out_shape)
}

/// `x[n, in] @ w[out, in]^T + b` with the bias fused into the product
/// (`AddmmBackward0`), through gemm with strides: no transposition copies.
fn linear_2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    const OP: &str = "linear";
    let (n, k) = (x.shape()[0], x.shape()[1]);
    let m = weight.shape()[0];
    let out = dispatch!(real OP, x.dtype(), T => {
        let out: Vec<T> = with_strided::<T, _>(x, OP, |xs, xst| {
            with_strided::<T, _>(weight, OP, |ws, wst| {
                let (xrs, xcs) = (xst[0] as isize, xst[1] as isize);
                let (wrs, wcs) = (wst[1] as isize, wst[0] as isize);
                let Some(b) = bias else {
                    return gemm_new(n, m, k, xs, xrs, xcs, ws, wrs, wcs);
                };
                let mut out = b.with_slice::<T, _>(OP, |b| b.repeat(n));
                gemm(n, m, k, &mut out, m as isize, 1, true, xs, xrs, xcs, ws, wrs, wcs);
                out
            })
        });
        tensor_from(out, &[n, m])
    });
    let (xc, wc) = (x.shallow_clone(), weight.shallow_clone());
    let saved = [xc.shallow_clone(), wc.shallow_clone()];
    let backward = move |g: &Tensor, need: [bool; 3]| {
        dispatch!(real OP, g.dtype(), T => {
            with_strided::<T, _>(g, OP, |gs, gst| {
                let (grs, gcs) = (gst[0] as isize, gst[1] as isize);
                // `[rows, inner]` g (row and column strides `rs`, `cs`;
                // g itself or its transpose) times `[inner, k]` `b`.
                let g_times = |rows: usize, inner: usize, rs: isize, cs: isize, b: &Tensor| {
                    let out = with_strided::<T, _>(b, OP, |bs, bst| {
                        gemm_new(rows, k, inner, gs, rs, cs, bs, bst[0] as isize, bst[1] as isize)
                    });
                    tensor_from(out, &[rows, k])
                };
                let dx = need[0].then(|| g_times(n, m, grs, gcs, &wc));
                let dw = need[1].then(|| g_times(m, n, gcs, grs, &xc));
                let db = need[2].then(|| {
                    let mut db = vec![T::zero(); m];
                    for i in 0..n {
                        let row = i * grs as usize;
                        if gcs == 1 {
                            for (acc, &g) in db.iter_mut().zip(&gs[row..row + m]) {
                                *acc += g;
                            }
                        } else {
                            for (j, acc) in db.iter_mut().enumerate() {
                                *acc += gs[row + j * gcs as usize];
                            }
                        }
                    }
                    tensor_from(db, &[m])
                });
                [dx, dw, db]
            })
        })
    };
    from_weighted_op(out, "AddmmBackward0", (x, weight, bias), saved, backward)
}

/// Looks up rows of `weight` (`[num_embeddings, dim]`) for every index in
/// `indices` (int64, any shape), like `F.embedding`; the result has shape
/// `indices.shape() + [dim]`. The gradient is scattered (summed) back into
/// the looked-up rows of `weight`.
///
/// ```
/// use kiln_runtime::{Tensor, nn::functional::embedding};
/// let w = Tensor::from([[0.0f32, 0.5], [1.0, 1.5], [2.0, 2.5]]);
/// let idx = Tensor::from([2i64, 0]);
/// assert_eq!(embedding(&idx, &w).to_vec::<f32>(), vec![2.0, 2.5, 0.0, 0.5]);
/// ```
pub fn embedding(indices: &Tensor, weight: &Tensor) -> Tensor {
    const OP: &str = "embedding";
    if indices.dtype() != DType::I64 {
        panic!(
            "{OP}: expected indices of dtype int64, but got {} (shape {:?})",
            indices.dtype(),
            indices.shape()
        );
    }
    if weight.dim() != 2 {
        panic!(
            "{OP}: expected a 2-D weight [num_embeddings, embedding_dim], but got shape {:?}",
            weight.shape()
        );
    }
    check_float(OP, "weight", weight);
    same_device(OP, &[indices, weight]);
    let (v, d) = (weight.shape()[0], weight.shape()[1]);
    let flat = indices.reshape_to(&[indices.numel()]);
    let mut out_shape = indices.shape().to_vec();
    out_shape.push(d);
    let out = backend::of(weight.device())
        .embedding(&weight.detach(), &flat)
        .reshape_to(&out_shape);
    Tensor::from_op_saved(
        out,
        "EmbeddingBackward0",
        &[weight],
        &[flat.shallow_clone()],
        move |g, _| {
            let g = g.reshape_to(&[flat.numel(), d]);
            vec![Some(
                backend::of(g.device()).embedding_backward(&g, &flat, v),
            )]
        },
    )
}

/// Inverted dropout, like `F.dropout`: in training, zeroes each element
/// with probability `p` and scales the rest by `1/(1-p)`. The mask is
/// drawn from the default generator as PyTorch's CPU kernel draws it (see
/// [`crate::rng`]), so after the same [`manual_seed`](crate::manual_seed)
/// it is PyTorch's;
/// the identity when `!training` or `p == 0`; zeros when `p == 1`.
///
/// ```
/// use kiln_runtime::{Tensor, nn::functional::dropout};
/// let x = Tensor::ones([4]);
/// assert_eq!(dropout(&x, 0.5, false).to_vec::<f32>(), vec![1.0; 4]);
/// assert_eq!(dropout(&x, 1.0, true).to_vec::<f32>(), vec![0.0; 4]);
/// ```
pub fn dropout(x: &Tensor, p: f64, training: bool) -> Tensor {
    const OP: &str = "dropout";
    if !(0.0..=1.0).contains(&p) {
        panic!("{OP}: dropout probability has to be between 0 and 1, but got {p}");
    }
    if !training || p == 0.0 {
        return x.shallow_clone();
    }
    check_float(OP, "input", x);
    let n = x.numel();
    // PyTorch: `noise.bernoulli_(1 - p); noise.div_(1 - p)`, the division a
    // multiply by the reciprocal in the tensor's precision.
    // (p == 1 draws nothing in PyTorch either.)
    let keep = if p == 1.0 {
        vec![false; n]
    } else {
        crate::rng::with_rng(|r| crate::rng::bernoulli_mask(r, n, 1.0 - p))
    };
    let mask = if x.dtype() == crate::DType::F64 {
        let scale = if p == 1.0 { 0.0 } else { 1.0 / (1.0 - p) };
        Tensor::from_vec(
            keep.iter()
                .map(|&k| if k { scale } else { 0.0 })
                .collect::<Vec<f64>>(),
            x.shape(),
        )
    } else {
        let scale = if p == 1.0 {
            0.0
        } else {
            1.0f32 / (1.0 - p) as f32
        };
        Tensor::from_vec(
            keep.iter()
                .map(|&k| if k { scale } else { 0.0 })
                .collect::<Vec<f32>>(),
            x.shape(),
        )
        .to_dtype(x.dtype())
    }
    .to(&x.device());
    let out = crate::autograd::no_grad(|| x.mul(&mask));
    Tensor::from_op(out, "NativeDropoutBackward0", &[x], move |g, _| {
        vec![Some(g.mul(&mask))]
    })
}

/// Rectified linear unit, `max(x, 0)`, like `F.relu`.
pub fn relu(x: &Tensor) -> Tensor {
    x.relu()
}

/// Logistic sigmoid `1 / (1 + e^-x)`, like `F.sigmoid`.
pub fn sigmoid(x: &Tensor) -> Tensor {
    x.sigmoid()
}

/// Hyperbolic tangent, like `F.tanh`.
pub fn tanh(x: &Tensor) -> Tensor {
    x.tanh()
}

/// Gaussian error linear unit (exact erf form), like `F.gelu`.
pub fn gelu(x: &Tensor) -> Tensor {
    x.gelu()
}

/// `x` where positive, `negative_slope * x` elsewhere, like `F.leaky_relu`.
pub fn leaky_relu(x: &Tensor, negative_slope: f64) -> Tensor {
    x.leaky_relu(negative_slope)
}

/// Softmax along `dim`, like `F.softmax`.
pub fn softmax(x: &Tensor, dim: isize) -> Tensor {
    x.softmax(dim)
}

/// Log-softmax along `dim`, like `F.log_softmax`.
pub fn log_softmax(x: &Tensor, dim: isize) -> Tensor {
    x.log_softmax(dim)
}
