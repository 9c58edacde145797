//! [`CudaBackend`]: the CUDA device's implementation of
//! [`Backend`](crate::backend::Backend), over the kernels of this module.

use super::{index, ops};
use crate::backend::UnaryOp;
use crate::backend::{
    Backend, BatchNormArgs, BatchNormSaved, ClassLoss, CompareFn, Conv2dParams, Grads3, Operand,
    OptimStep, Pool2dParams, PoolIndices,
};
use crate::loss::PointLoss;
use crate::ops::binary::BinaryFns;
use crate::ops::inplace::InplaceFns;
use crate::storage::Storage;
use crate::{DType, Device, Layout, Tensor, autograd};

/// The CUDA implementation of [`Backend`]: every method launches the
/// device kernels on the inputs' device.
pub(crate) struct CudaBackend;

/// `t` as a 1-element 1-D tensor when it is 0-d, else `t` itself.
pub(super) fn at_least_1d(t: &Tensor) -> Tensor {
    if t.dim() == 0 {
        t.reshape_to(&[1])
    } else {
        t.shallow_clone()
    }
}

/// The device tensor of indices saved by [`CudaBackend::max_pool2d`].
fn device_indices<'a>(op: &str, i: &'a PoolIndices) -> &'a Tensor {
    match i {
        PoolIndices::Device(t) => t,
        PoolIndices::Host(_) => panic!("{op}: the saved indices are not on the device"),
    }
}

impl Backend for CudaBackend {
    fn cast(&self, t: &Tensor, dtype: DType) -> Tensor {
        super::cast(t, dtype)
    }

    fn unary(&self, op: UnaryOp, x: &Tensor) -> Tensor {
        super::unary(op, x)
    }

    fn scaled_grad(&self, op: UnaryOp, g: &Tensor, x: &Tensor) -> Tensor {
        // The factor from device ops, then one product.
        autograd::no_grad(|| {
            let factor = match op {
                // relu's output is >= 0 (or NaN): its sign is the mask.
                UnaryOp::Relu | UnaryOp::Abs => x.sign(),
                UnaryOp::LeakyRelu(slope) => {
                    let (one, s) = (x.scalar_like(1.0), x.scalar_like(slope));
                    Tensor::where_cond(&x.gt_scalar(0.0), &one, &s)
                }
                UnaryOp::Threshold { threshold, .. } => {
                    let (zero, one) = (x.scalar_like(0.0), x.scalar_like(1.0));
                    Tensor::where_cond(&x.le(&x.scalar_like(threshold)), &zero, &one)
                }
                UnaryOp::Clamp(lo, hi) => {
                    let inside = x.ge(&x.scalar_like(lo));
                    inside
                        .logical_and(&x.le(&x.scalar_like(hi)))
                        .to_dtype(x.dtype())
                }
                _ => panic!("{}: no piecewise-constant gradient", op.name()),
            };
            g.mul(&factor)
        })
    }

    fn binary(&self, op: &str, _: &BinaryFns, a: Operand, b: Operand, shape: &[usize]) -> Tensor {
        super::binary(op, a, b, shape)
    }

    fn compare(&self, op: &str, _: CompareFn, a: Operand, b: Operand, shape: &[usize]) -> Tensor {
        super::compare(op, a, b, shape)
    }

    fn softmax(&self, x: &Tensor, dim: usize, log: bool) -> Tensor {
        // The kernels index a dimension: a 0-d tensor runs as `[1]`.
        ops::softmax(&at_least_1d(x), dim, log).reshape_to(x.shape())
    }

    fn softmax_backward(&self, y: &Tensor, g: &Tensor, dim: usize, log: bool) -> Tensor {
        let (y1, g1) = (at_least_1d(y), at_least_1d(g));
        ops::softmax_backward(&y1, &g1, dim, log).reshape_to(y.shape())
    }

    fn deep_copy(&self, t: &Tensor) -> Tensor {
        super::deep_copy(t)
    }

    fn full(&self, shape: &[usize], value: f64, dtype: DType, device: Device) -> Tensor {
        let Device::Cuda(i) = device else {
            panic!("full: {device} is not a CUDA device");
        };
        super::full(shape, value, dtype, i)
    }

    fn fill(&self, t: &Tensor, value: f64) {
        let mut g = t.write_storage();
        let l = t.layout().clone();
        match &mut *g {
            Storage::Cuda(s) => super::fill(s, &l, value),
            _ => panic!("fill_: the tensor is not on a CUDA device"),
        }
    }

    fn binary_inplace(&self, op: &str, _fns: InplaceFns, t: &Tensor, other: &Tensor, ls: &Layout) {
        super::binary_inplace(op, t, other, ls)
    }

    fn cat(&self, ts: &[Tensor], d: usize, _out_shape: &[usize]) -> Tensor {
        super::cat(&ts.iter().collect::<Vec<_>>(), d)
    }

    fn sum(&self, x: &Tensor, mask: &[bool], shape: &[usize]) -> Tensor {
        super::sum(x, mask, shape)
    }

    fn sort(&self, x: &Tensor, _d: usize, _descending: bool) -> (Tensor, Tensor) {
        panic!(
            "sort: not supported on {}; move the tensor to the CPU with .to(&Device::Cpu)",
            x.device()
        )
    }

    fn max_min_dim(&self, x: &Tensor, d: usize, keepdim: bool, max: bool) -> (Tensor, Tensor) {
        super::max_min_dim(if max { "max" } else { "min" }, x, d, keepdim)
    }

    fn matmul(&self, a: Operand, b: Operand, out_shape: &[usize]) -> Tensor {
        super::matmul(a, b, out_shape)
    }

    fn conv2d(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Tensor {
        ops::conv2d(x, w, bias, p)
    }

    forward! {
        ops: fn conv2d_backward(
            x: &Tensor, w: &Tensor, g: &Tensor, p: &Conv2dParams, need: [bool; 3],
        ) -> Grads3;
    }

    fn max_pool2d(&self, x: &Tensor, p: &Pool2dParams) -> (Tensor, PoolIndices) {
        let (y, idx) = ops::max_pool2d(x, p);
        (y, PoolIndices::Device(idx))
    }

    fn max_pool2d_backward(
        &self,
        g: &Tensor,
        indices: &PoolIndices,
        in_shape: &[usize],
        p: &Pool2dParams,
    ) -> Tensor {
        let idx = device_indices("max_pool2d_backward", indices);
        ops::max_pool2d_backward(g, idx, in_shape, p)
    }

    fn avg_pool2d(&self, x: &Tensor, p: &Pool2dParams, count_include_pad: bool) -> Tensor {
        ops::avg_pool2d(x, p, count_include_pad, 0)
    }

    fn avg_pool2d_backward(
        &self,
        g: &Tensor,
        in_shape: &[usize],
        p: &Pool2dParams,
        count_include_pad: bool,
    ) -> Tensor {
        ops::avg_pool2d_backward(g, in_shape, p, count_include_pad, 0)
    }

    fn adaptive_avg_pool2d(&self, x: &Tensor, out_hw: [usize; 2]) -> Tensor {
        ops::adaptive_avg_pool2d(x, out_hw)
    }

    fn adaptive_avg_pool2d_backward(&self, g: &Tensor, in_shape: &[usize]) -> Tensor {
        ops::adaptive_avg_pool2d_backward(g, in_shape)
    }

    fn batch_norm(&self, x: &Tensor, args: &BatchNormArgs) -> (Tensor, BatchNormSaved) {
        let BatchNormArgs {
            running_mean,
            running_var,
            training,
            ..
        } = *args;
        // The kernels take every tensor in `x`'s dtype and write the
        // running statistics in place: weights of another dtype are
        // converted, and running statistics of another dtype or layout
        // are updated through a copy that is written back.
        let dt = x.dtype();
        let conv = |t: Option<&Tensor>| {
            t.map(|t| {
                if t.dtype() == dt && t.is_contiguous() {
                    t.shallow_clone()
                } else {
                    autograd::no_grad(|| t.to_dtype(dt).contiguous())
                }
            })
        };
        let (w, b) = (conv(args.weight), conv(args.bias));
        let (mut rm, mut rv) = (conv(running_mean), conv(running_var));
        if training && rm.is_some() != rv.is_some() {
            // The kernel updates both buffers or neither: give it a scratch one.
            let c = x.shape()[1];
            let scratch = || Some(Tensor::zeros_opts([c], (dt, &x.device())));
            rm = rm.or_else(scratch);
            rv = rv.or_else(scratch);
        }
        let converted = BatchNormArgs {
            weight: w.as_ref(),
            bias: b.as_ref(),
            running_mean: rm.as_ref(),
            running_var: rv.as_ref(),
            ..*args
        };
        let out = ops::batch_norm(x, &converted);
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
        out
    }

    fn batch_norm_backward(
        &self,
        x: &Tensor,
        g: &Tensor,
        weight: Option<&Tensor>,
        saved: &BatchNormSaved,
        need: [bool; 3],
    ) -> Grads3 {
        let w = weight.map(|w| autograd::no_grad(|| w.to_dtype(x.dtype())));
        ops::batch_norm_backward(x, g, w.as_ref(), saved, need)
    }

    fn where_(&self, cond: Operand, a: Operand, b: Operand, shape: &[usize]) -> Tensor {
        super::where_(cond, a, b, shape)
    }

    index_primitives!(index);

    fn embedding(&self, weight: &Tensor, idx: &Tensor) -> Tensor {
        ops::index_select(weight, 0, idx)
    }

    fn embedding_backward(&self, g: &Tensor, idx: &Tensor, v: usize) -> Tensor {
        ops::index_add(&[v, g.shape()[1]], 0, idx, g)
    }

    fn fused_optimizers(&self) -> bool {
        true
    }

    fn optim_step(&self, step: &OptimStep, p: &Tensor, g: &Tensor, state: &[&Tensor]) {
        match *step {
            OptimStep::Sgd {
                lr,
                momentum,
                dampening,
                weight_decay,
                nesterov,
                first,
            } => ops::sgd_step(
                p,
                g,
                state.first().copied(),
                lr,
                momentum,
                dampening,
                weight_decay,
                nesterov,
                false,
                first,
            ),
            OptimStep::Adam {
                lr,
                betas,
                eps,
                weight_decay,
                decoupled,
                step,
            } => ops::adam_step(
                p,
                g,
                state[0],
                state[1],
                state.get(2).copied(),
                lr,
                betas,
                eps,
                weight_decay,
                decoupled,
                false,
                step,
            ),
            OptimStep::RmsProp {
                lr,
                alpha,
                eps,
                weight_decay,
                momentum,
                centered,
            } => {
                let mut rest = state[1..].iter().copied();
                let buf = (momentum > 0.0).then(|| rest.next()).flatten();
                let gavg = centered.then(|| rest.next()).flatten();
                let (p_, g_) = (p, g);
                ops::rmsprop_step(
                    p_,
                    g_,
                    state[0],
                    buf,
                    gavg,
                    lr,
                    alpha,
                    eps,
                    weight_decay,
                    momentum,
                    false,
                )
            }
        }
    }

    fn class_loss(&self, x: &Tensor, l: &ClassLoss) -> (Tensor, Tensor) {
        ops::class_loss(x, l)
    }

    fn class_loss_backward(&self, x: &Tensor, l: &ClassLoss, gl: &Tensor) -> Tensor {
        ops::class_loss_backward(x, l, gl)
    }

    fn point_loss(&self, kind: PointLoss, x: &Tensor, t: &Tensor) -> Tensor {
        // Composed from device ops (no fused kernel).
        autograd::no_grad(|| match kind {
            PointLoss::Mse => x.sub(t).square(),
            PointLoss::L1 | PointLoss::SmoothL1(0.0) => x.sub(t).abs(),
            PointLoss::SmoothL1(beta) => {
                let d = x.sub(t);
                let a = d.abs();
                let quad = d.square().mul_scalar(0.5 / beta);
                Tensor::where_cond(&a.lt_scalar(beta), &quad, &a.sub_scalar(0.5 * beta))
            }
            PointLoss::BceWithLogits => {
                // max(x, 0) - x·t + log(1 + e^-|x|) = softplus(x) - x·t
                let softplus = UnaryOp::Softplus {
                    beta: 1.0,
                    threshold: 20.0,
                };
                super::unary(softplus, x).sub(&x.mul(t))
            }
            PointLoss::Bce => {
                let (lp, l1p) = bce_logs(x);
                t.mul(&lp).add(&t.rsub_scalar(1.0).mul(&l1p)).neg()
            }
        })
    }

    fn point_loss_backward(&self, kind: PointLoss, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        autograd::no_grad(|| {
            let dx = match kind {
                PointLoss::Mse => x.sub(t).mul_scalar(2.0),
                PointLoss::L1 | PointLoss::SmoothL1(0.0) => x.sub(t).sign(),
                PointLoss::SmoothL1(beta) => {
                    let d = x.sub(t);
                    let small = d.abs().lt_scalar(beta);
                    Tensor::where_cond(&small, &d.div_scalar(beta), &d.sign())
                }
                PointLoss::BceWithLogits => return (x.sigmoid().sub(t), x.neg()),
                PointLoss::Bce => {
                    let (lp, l1p) = bce_logs(x);
                    let var = x.mul(&x.rsub_scalar(1.0)).clamp_min(1e-12);
                    return (x.sub(t).div(&var), l1p.sub(&lp));
                }
            };
            let dt = dx.neg();
            (dx, dt)
        })
    }
}

/// `(log p, log(1 - p))`, each clamped at -100 like PyTorch's BCE.
fn bce_logs(p: &Tensor) -> (Tensor, Tensor) {
    (
        p.log().clamp_min(-100.0),
        p.rsub_scalar(1.0).log().clamp_min(-100.0),
    )
}
