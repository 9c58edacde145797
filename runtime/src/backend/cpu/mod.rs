//! The CPU backend: host storage, rayon-parallel kernels and the fused
//! kernels of `kiln_kernels::cpu` (im2col + gemm convolution, pooling).
//! float16/bfloat16 inputs of the fused kernels are computed in float32.

mod binary;
mod index;
mod loss;
mod nn;
mod norm;
mod softmax;
mod unary;

use super::{
    Backend, BatchNormArgs, BatchNormSaved, ClassLoss, CompareFn, Conv2dParams, ConvKept, Grads3,
    Operand, Pool2dParams, PoolIndices, UnaryOp,
};
use crate::loss::PointLoss;
use crate::ops::binary::BinaryFns;
use crate::ops::inplace::InplaceFns;
use crate::storage::CpuStorage;
use crate::{DType, Device, Layout, Tensor};

/// The CPU's implementation of [`Backend`].
pub(crate) struct CpuBackend;

impl Backend for CpuBackend {
    fn cast(&self, t: &Tensor, dtype: DType) -> Tensor {
        let guard = t.read_storage();
        Tensor::from_cpu(guard.cpu("to_dtype").cast(t.layout(), dtype), t.shape())
    }

    fn unary(&self, op: UnaryOp, x: &Tensor) -> Tensor {
        unary::unary(op, x)
    }

    fn scaled_grad(&self, op: UnaryOp, g: &Tensor, x: &Tensor) -> Tensor {
        unary::scaled_grad(op, g, x)
    }

    fn binary(&self, op: &str, fns: &BinaryFns, a: Operand, b: Operand, shape: &[usize]) -> Tensor {
        binary::binary(op, fns, a, b, shape)
    }

    fn compare(&self, op: &str, f: CompareFn, a: Operand, b: Operand, shape: &[usize]) -> Tensor {
        binary::compare(op, f, a, b, shape)
    }

    fn softmax(&self, x: &Tensor, dim: usize, log: bool) -> Tensor {
        softmax::softmax(x, dim, log)
    }

    fn softmax_backward(&self, y: &Tensor, g: &Tensor, dim: usize, log: bool) -> Tensor {
        softmax::softmax_backward(y, g, dim, log)
    }

    fn deep_copy(&self, t: &Tensor) -> Tensor {
        let guard = t.read_storage();
        Tensor::from_cpu(guard.cpu("clone").gather(t.layout()), t.shape())
    }

    fn full(&self, shape: &[usize], value: f64, dtype: DType, _device: Device) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_cpu(CpuStorage::full(dtype, n, value), shape)
    }

    fn fill(&self, t: &Tensor, value: f64) {
        crate::ops::inplace::fill_cpu(t, value)
    }

    fn binary_inplace(&self, op: &str, fns: InplaceFns, t: &Tensor, other: &Tensor, ls: &Layout) {
        crate::ops::inplace::apply_binary_cpu(op, fns, t, other, ls)
    }

    fn cat(&self, ts: &[Tensor], d: usize, out_shape: &[usize]) -> Tensor {
        crate::ops::join::cat_cpu(ts, d, out_shape)
    }

    fn sum(&self, x: &Tensor, mask: &[bool], shape: &[usize]) -> Tensor {
        crate::ops::reduce::sum_cpu(x, mask, shape)
    }

    fn sort(&self, x: &Tensor, d: usize, descending: bool) -> (Tensor, Tensor) {
        crate::ops::sort::sort_cpu(x, d, descending)
    }

    fn max_min_dim(&self, x: &Tensor, d: usize, keepdim: bool, max: bool) -> (Tensor, Tensor) {
        crate::ops::sort::max_min_dim_cpu(x, d, keepdim, max)
    }

    fn matmul(&self, a: Operand, b: Operand, out_shape: &[usize]) -> Tensor {
        crate::ops::matmul::matmul_cpu(a, b, out_shape)
    }

    fn conv2d(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Tensor {
        nn::conv2d(x, w, bias, p)
    }

    fn conv2d_keeping(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        p: &Conv2dParams,
    ) -> (Tensor, Option<ConvKept>) {
        nn::conv2d_keeping(x, w, bias, p)
    }

    fn conv2d_backward_reusing(
        &self,
        x: &Tensor,
        w: &Tensor,
        g: &Tensor,
        p: &Conv2dParams,
        need: [bool; 3],
        kept: &ConvKept,
    ) -> Grads3 {
        nn::conv2d_backward_reusing(x, w, g, p, need, kept)
    }

    fn max_pool2d(&self, x: &Tensor, p: &Pool2dParams) -> (Tensor, PoolIndices) {
        nn::max_pool2d(x, p)
    }

    fn max_pool2d_backward(
        &self,
        g: &Tensor,
        indices: &PoolIndices,
        in_shape: &[usize],
        _p: &Pool2dParams,
    ) -> Tensor {
        nn::max_pool2d_backward(g, indices, in_shape)
    }

    fn avg_pool2d(&self, x: &Tensor, p: &Pool2dParams, count_include_pad: bool) -> Tensor {
        nn::avg_pool2d(x, p, count_include_pad)
    }

    fn adaptive_avg_pool2d(&self, x: &Tensor, out_hw: [usize; 2]) -> Tensor {
        nn::adaptive_avg_pool2d(x, out_hw)
    }

    fn adaptive_avg_pool2d_backward(&self, g: &Tensor, in_shape: &[usize]) -> Tensor {
        nn::adaptive_avg_pool2d_backward(g, in_shape)
    }

    fn batch_norm(&self, x: &Tensor, a: &BatchNormArgs) -> (Tensor, BatchNormSaved) {
        norm::batch_norm(x, a)
    }

    fn layer_norm(
        &self,
        x: &Tensor,
        d: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Option<(Tensor, Tensor)> {
        Some(norm::layer_norm(x, d, weight, bias, eps))
    }

    fn where_(&self, cond: Operand, a: Operand, b: Operand, shape: &[usize]) -> Tensor {
        index::where_(cond, a, b, shape)
    }

    index_primitives!(index);

    forward! {
        nn: fn conv2d_backward(
            x: &Tensor, w: &Tensor, g: &Tensor, p: &Conv2dParams, need: [bool; 3],
        ) -> Grads3;
        nn: fn avg_pool2d_backward(
            g: &Tensor, in_shape: &[usize], p: &Pool2dParams, count_include_pad: bool,
        ) -> Tensor;
        norm: fn batch_norm_backward(
            x: &Tensor, g: &Tensor, weight: Option<&Tensor>, saved: &BatchNormSaved, need: [bool; 3],
        ) -> Grads3;
        norm: fn layer_norm_backward(
            x: &Tensor, g: &Tensor, weight: Option<&Tensor>, stats: &Tensor, wshape: &[usize],
            need: [bool; 3],
        ) -> Grads3;
    }

    fn embedding(&self, weight: &Tensor, idx: &Tensor) -> Tensor {
        nn::embedding(weight, idx)
    }

    fn embedding_backward(&self, g: &Tensor, idx: &Tensor, v: usize) -> Tensor {
        nn::embedding_backward(g, idx, v)
    }

    fn class_loss(&self, x: &Tensor, l: &ClassLoss) -> (Tensor, Tensor) {
        loss::class_loss(x, l)
    }

    fn class_loss_backward(&self, x: &Tensor, l: &ClassLoss, gl: &Tensor) -> Tensor {
        loss::class_loss_backward(x, l, gl)
    }

    fn point_loss(&self, kind: PointLoss, x: &Tensor, t: &Tensor) -> Tensor {
        loss::point_loss(kind, x, t)
    }

    fn point_loss_backward(&self, kind: PointLoss, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        loss::point_loss_backward(kind, x, t)
    }
}
