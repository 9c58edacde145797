//! Device backends behind one interface.
//!
//! Every op is written once, in `crate::ops`, `crate::nn::functional` or
//! `crate::loss`: its checks, a call to a `Backend` primitive and one
//! backward closure (which again calls primitives or tensor ops). Each
//! device implements the crate-internal `Backend` trait: the CPU in `cpu`, CUDA in `cuda`
//! (feature `cuda`). Ops reach a device only through `backend::of`, never by
//! name.
//!
//! The primitives take tensors whose autograd history they ignore and
//! return new tensors on the inputs' device with no history; the op that
//! calls them records the graph. Misuse that depends on the device (a
//! dtype without a kernel) panics naming the op, like the CPU ops.

/// Implements [`Backend`] methods that pass their arguments unchanged to
/// the function of the same name in one of the device's modules, written
/// `module: fn name(arg: Type, ...) -> Output;`.
macro_rules! forward {
    ($($m:ident: fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;)*) => {
        $(
            fn $name(&self, $($arg: $ty),*) -> $ret {
                $m::$name($($arg),*)
            }
        )*
    };
}

/// The index primitives of a device whose module `$m` implements them
/// with the trait's signatures (the CPU's and CUDA's `index` modules).
macro_rules! index_primitives {
    ($m:ident) => {
        forward! {
            $m: fn index_select(x: &Tensor, d: usize, index: &Tensor) -> Tensor;
            $m: fn index_add(x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Tensor;
            $m: fn gather(x: &Tensor, d: usize, index: &Tensor) -> Tensor;
            $m: fn scatter_add(x: &Tensor, d: usize, index: &Tensor, src: &Tensor) -> Tensor;
            $m: fn masked_fill(x: &Tensor, mask: &Tensor, lm: &Layout, value: f64) -> Tensor;
            $m: fn masked_select(x: &Tensor, mask: &Tensor, shape: &[usize]) -> Tensor;
            $m: fn masked_scatter(g: &Tensor, mask: &Tensor) -> Tensor;
            $m: fn one_hot(x: &Tensor, n: usize) -> Tensor;
        }
    };
}

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod unary_op;
pub use unary_op::UnaryOp;

pub use kiln_kernels::cpu::conv::Conv2dParams;

use crate::loss::PointLoss;
use crate::ops::binary::BinaryFns;
use crate::ops::inplace::InplaceFns;
use crate::{DType, Device, Layout, Tensor};

/// Whether a CUDA device can be used right now.
pub fn cuda_is_available() -> bool {
    #[cfg(feature = "cuda")]
    {
        cuda::is_available()
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

/// Parameters of a 2-D pooling window, shared by every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    /// Window size.
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Implicit padding on each side.
    pub padding: [usize; 2],
    /// Spacing between window taps (max pooling only).
    pub dilation: [usize; 2],
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
}

/// The argmax of each max-pooling window, saved for the backward, in the
/// form the backend that made it reads back.
#[derive(Debug)]
pub(crate) enum PoolIndices {
    /// Flat `h * W + w` offsets within each plane, in host memory.
    Host(std::sync::Arc<Vec<u32>>),
    /// The same offsets as an int64 tensor on the device.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Device(Tensor),
}

impl Clone for PoolIndices {
    /// Another handle on the same indices (they are never written).
    fn clone(&self) -> Self {
        match self {
            PoolIndices::Host(v) => PoolIndices::Host(v.clone()),
            PoolIndices::Device(t) => PoolIndices::Device(t.shallow_clone()),
        }
    }
}

/// The gradients a backward primitive returns, one per input; `None`
/// where the caller did not ask for it.
pub(crate) type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// What a backend's [`Backend::conv2d_keeping`] keeps of a forward pass for
/// its backward pass (the CPU: a Winograd layer's transformed weights and
/// input); opaque to the op, which only hands it back.
pub(crate) type ConvKept = std::sync::Arc<dyn std::any::Any + Send + Sync>;

/// An optimizer's element-wise update rule with its hyper-parameters, for
/// a backend's fused update kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimStep {
    /// SGD with momentum; state: the momentum buffer (when momentum > 0).
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor.
        momentum: f64,
        /// Dampening of the momentum.
        dampening: f64,
        /// L2 penalty.
        weight_decay: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// The first step (the buffer starts as the gradient).
        first: bool,
    },
    /// Adam or AdamW; state: `exp_avg`, `exp_avg_sq` and, with AMSGrad,
    /// `max_exp_avg_sq`.
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay rates of the moment estimates.
        betas: (f64, f64),
        /// Term added to the denominator.
        eps: f64,
        /// Weight decay (L2, or decoupled for AdamW).
        weight_decay: f64,
        /// AdamW's decoupled weight decay.
        decoupled: bool,
        /// The step number (from 1), for the bias corrections.
        step: u64,
    },
    /// RMSprop; state: `square_avg`, then the momentum buffer (momentum >
    /// 0), then `grad_avg` (centered).
    RmsProp {
        /// Learning rate.
        lr: f64,
        /// Smoothing constant.
        alpha: f64,
        /// Term added to the denominator.
        eps: f64,
        /// L2 penalty.
        weight_decay: f64,
        /// Momentum factor.
        momentum: f64,
        /// Normalise by the estimated variance of the gradient.
        centered: bool,
    },
}

/// An operand read through a layout broadcast to the output's shape.
pub(crate) type Operand<'a> = (&'a Tensor, &'a Layout);

/// The CPU's scalar form of a comparison or logical op.
pub(crate) type CompareFn = fn(f64, f64) -> bool;

/// Batch norm's inputs besides `x` (all detached, on `x`'s device).
#[derive(Clone, Copy, Debug)]
pub struct BatchNormArgs<'a> {
    /// Per-channel scale.
    pub weight: Option<&'a Tensor>,
    /// Per-channel shift.
    pub bias: Option<&'a Tensor>,
    /// Running mean, updated in place in training.
    pub running_mean: Option<&'a Tensor>,
    /// Running variance, updated in place in training.
    pub running_var: Option<&'a Tensor>,
    /// Normalise with the batch statistics (else the running ones).
    pub training: bool,
    /// Weight of the batch statistics in the running update.
    pub momentum: f64,
    /// Term added to the variance.
    pub eps: f64,
}

/// What the backend's `batch_norm` saves for its backward: the per-channel
/// mean and `1/sqrt(var + eps)` it normalised with.
#[derive(Debug)]
pub struct BatchNormSaved {
    /// The mean per channel.
    pub mean: Tensor,
    /// `1/sqrt(var + eps)` per channel.
    pub invstd: Tensor,
    /// Whether the statistics were the batch's (they then depend on `x`).
    pub training: bool,
}

/// A loss against int64 class indices, row by row over `[N, C]` scores.
#[derive(Debug)]
pub struct ClassLoss {
    /// `Some(label_smoothing)` for cross-entropy of logits; `None` for the
    /// negative log-likelihood of log-probabilities.
    pub smoothing: Option<f64>,
    /// The class of each row (`[N]`, int64).
    pub target: Tensor,
    /// Per-class weights (`[C]`).
    pub weight: Option<Tensor>,
    /// The class that marks a row that does not count.
    pub ignore: i64,
}

impl ClassLoss {
    /// The op's name in messages.
    pub fn name(&self) -> &'static str {
        if self.smoothing.is_some() {
            "cross_entropy"
        } else {
            "nll_loss"
        }
    }
}

/// Declares [`Backend`] from its primitives, each signature written once:
/// those a backend over another can forward (`forwarded`, also handed to
/// a macro by `with_forwarded!`) and those each backend writes itself
/// (`own`).
macro_rules! backend_trait {
    (
        forwarded {
            $($(#[$m:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;)*
        }
        own { $($own:tt)* }
    ) => {
        /// The primitive kernels every device implements. Inputs are on one
        /// device (the ops check that first); shapes are checked by the ops.
        pub(crate) trait Backend: Sync {
            $($(#[$m])* fn $name(&self $(, $arg: $ty)*) -> $ret;)*
            $($own)*
        }

        /// Invokes the macro `$mac` with the signatures of the forwarded
        /// primitives (`fn name(&self, arg: Type, ..) -> Ret;` each).
        macro_rules! with_forwarded {
            ($mac:ident) => {
                $mac! { $(fn $name(&self $(, $arg: $ty)*) -> $ret;)* }
            };
        }
    };
}

backend_trait! {
    forwarded {
        // ----- copies and casts ------------------------------------------------

        /// The elements of `t` converted to `dtype`, contiguous.
        fn cast(&self, t: &Tensor, dtype: DType) -> Tensor;

        /// A contiguous copy of the elements `t`'s layout selects.
        fn deep_copy(&self, t: &Tensor) -> Tensor;

        /// Concatenation of same-dtype tensors along `d` into `out_shape`.
        fn cat(&self, ts: &[Tensor], d: usize, out_shape: &[usize]) -> Tensor;

        // ----- reductions and products ----------------------------------------------

        /// Sum over `mask`'s dimensions, with the result's `shape` (float
        /// sums keep the dtype, integer and bool sums are int64).
        fn sum(&self, x: &Tensor, mask: &[bool], shape: &[usize]) -> Tensor;

        /// Stable sort along `d`: `(values, int64 indices)`.
        fn sort(&self, x: &Tensor, d: usize, descending: bool) -> (Tensor, Tensor);

        /// `(values, indices)` of the max (or min) along `d`.
        fn max_min_dim(&self, x: &Tensor, d: usize, keepdim: bool, max: bool) -> (Tensor, Tensor);

        /// Batched matrix product of operands read through layouts broadcast
        /// to `[batch.., m, k]` and `[batch.., k, n]`; `out_shape` is
        /// `[batch.., m, n]`.
        fn matmul(&self, a: Operand, b: Operand, out_shape: &[usize]) -> Tensor;

        // ----- elementwise -----------------------------------------------------------

        /// `op` over every element of `x`, in `x`'s dtype (float16/bfloat16
        /// may be computed in float32; int64 only for ops with an integer
        /// form, see [`UnaryOp::has_int_kernel`]; other dtypes panic naming
        /// the op). Contiguous output.
        fn unary(&self, op: UnaryOp, x: &Tensor) -> Tensor;

        /// `g * s(x)` for the piecewise-constant derivative `s` of `op` (ReLU,
        /// whose `x` is its output, abs, clamp, threshold, leaky ReLU); `g`
        /// and `x` have one shape.
        fn scaled_grad(&self, op: UnaryOp, g: &Tensor, x: &Tensor) -> Tensor;

        /// The broadcast binary op `op` (`add sub mul div maximum pow atan2`,
        /// the CPU's scalar functions in `fns`) of same-dtype operands, each
        /// read through its layout (already of the output `shape`).
        fn binary(
            &self,
            op: &str,
            fns: &BinaryFns,
            a: Operand,
            b: Operand,
            shape: &[usize],
        ) -> Tensor;

        /// The comparison or logical op `op` (`eq ne lt le gt ge
        /// logical_and`; `f` on the CPU) of same-dtype broadcast operands:
        /// a bool tensor.
        fn compare(
            &self,
            op: &str,
            f: CompareFn,
            a: Operand,
            b: Operand,
            shape: &[usize],
        ) -> Tensor;

        // ----- fused row kernels --------------------------------------------------

        /// Softmax (or log-softmax when `log`) of float `x` along `dim`.
        fn softmax(&self, x: &Tensor, dim: usize, log: bool) -> Tensor;

        /// Gradient of [`Backend::softmax`] from its output `y` and the output
        /// gradient `g` (same dtype).
        fn softmax_backward(&self, y: &Tensor, g: &Tensor, dim: usize, log: bool) -> Tensor;

        // ----- convolution and pooling ------------------------------------------

        /// 2-D cross-correlation of NCHW `x` with `w` (`[O, C/groups, kH, kW]`)
        /// plus `bias`.
        fn conv2d(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Tensor;

        /// Gradients of [`Backend::conv2d`] for `x`, `w` and the bias, each when
        /// its `need` flag is set.
        fn conv2d_backward(
            &self,
            x: &Tensor,
            w: &Tensor,
            g: &Tensor,
            p: &Conv2dParams,
            need: [bool; 3],
        ) -> Grads3;

        /// Max pooling of NCHW `x`: the output and each window's argmax.
        fn max_pool2d(&self, x: &Tensor, p: &Pool2dParams) -> (Tensor, PoolIndices);

        /// Gradient of [`Backend::max_pool2d`] for an input of `in_shape`.
        fn max_pool2d_backward(
            &self,
            g: &Tensor,
            indices: &PoolIndices,
            in_shape: &[usize],
            p: &Pool2dParams,
        ) -> Tensor;

        /// Average pooling of NCHW `x` (`p.dilation` is `[1, 1]`).
        fn avg_pool2d(&self, x: &Tensor, p: &Pool2dParams, count_include_pad: bool) -> Tensor;

        /// Gradient of [`Backend::avg_pool2d`] for an input of `in_shape`.
        fn avg_pool2d_backward(
            &self,
            g: &Tensor,
            in_shape: &[usize],
            p: &Pool2dParams,
            count_include_pad: bool,
        ) -> Tensor;

        /// Adaptive average pooling of NCHW `x` to `out_hw`.
        fn adaptive_avg_pool2d(&self, x: &Tensor, out_hw: [usize; 2]) -> Tensor;

        /// Gradient of [`Backend::adaptive_avg_pool2d`] for an input of `in_shape`.
        fn adaptive_avg_pool2d_backward(&self, g: &Tensor, in_shape: &[usize]) -> Tensor;

        /// Gradients of [`Backend::batch_norm`] for `x`, the weight and the bias.
        fn batch_norm_backward(
            &self,
            x: &Tensor,
            g: &Tensor,
            weight: Option<&Tensor>,
            saved: &BatchNormSaved,
            need: [bool; 3],
        ) -> Grads3;

        // ----- indexing ------------------------------------------------------------

        /// `x.index_select(d, index)` (`index` 0-d or 1-D int64).
        fn index_select(&self, x: &Tensor, d: usize, index: &Tensor) -> Tensor;

        /// `x` plus `source`'s slices added at `index` along `d` (out of place).
        fn index_add(&self, x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Tensor;

        /// `x.gather(d, index)`; `index` fits inside `x` outside `d`.
        fn gather(&self, x: &Tensor, d: usize, index: &Tensor) -> Tensor;

        /// `x` plus `src` scattered at `index` along `d` (out of place).
        fn scatter_add(&self, x: &Tensor, d: usize, index: &Tensor, src: &Tensor) -> Tensor;

        /// `a` where the bool `cond` is true, else `b`, each read through its
        /// layout (already broadcast to `shape`); `a` and `b` share a dtype.
        fn where_(&self, cond: Operand, a: Operand, b: Operand, shape: &[usize]) -> Tensor;

        /// `x` with `value` where `mask` (read through `lm`, broadcast to `x`)
        /// is true.
        fn masked_fill(&self, x: &Tensor, mask: &Tensor, lm: &Layout, value: f64) -> Tensor;

        /// The elements of `x` where `mask` is true (both broadcast to
        /// `shape`), 1-D.
        fn masked_select(&self, x: &Tensor, mask: &Tensor, shape: &[usize]) -> Tensor;

        /// Zeros of `mask`'s shape with `g`'s elements written, in order, where
        /// `mask` is true (the backward of [`Backend::masked_select`]).
        fn masked_scatter(&self, g: &Tensor, mask: &Tensor) -> Tensor;

        /// One-hot int64 encoding of int64 class indices in `0..n`.
        fn one_hot(&self, x: &Tensor, n: usize) -> Tensor;

        /// The rows `idx` (1-D int64) of the 2-D `weight`, `[idx.len(), D]`.
        /// An index outside `0..weight.shape()[0]` panics (on a device, at
        /// the next synchronisation).
        fn embedding(&self, weight: &Tensor, idx: &Tensor) -> Tensor;

        /// Gradient of [`Backend::embedding`]: the rows of `g` summed into a
        /// `[v, D]` tensor at `idx`.
        fn embedding_backward(&self, g: &Tensor, idx: &Tensor, v: usize) -> Tensor;

        // ----- losses -----------------------------------------------------------------

        /// The class-index loss `l` of `[N, C]` scores `x`: each row's loss and
        /// target weight (0 for ignored rows). A class outside `0..C` panics.
        fn class_loss(&self, x: &Tensor, l: &ClassLoss) -> (Tensor, Tensor);

        /// Gradient of [`Backend::class_loss`] in `x` for the per-row output
        /// gradients `gl` (`[N]`).
        fn class_loss_backward(&self, x: &Tensor, l: &ClassLoss, gl: &Tensor) -> Tensor;

        /// The loss `kind` of each element of same-shape, same-dtype `x`, `t`.
        fn point_loss(&self, kind: PointLoss, x: &Tensor, t: &Tensor) -> Tensor;

        /// The derivatives `(dl/dx, dl/dt)` of [`Backend::point_loss`].
        fn point_loss_backward(&self, kind: PointLoss, x: &Tensor, t: &Tensor) -> (Tensor, Tensor);
    }
    own {
        /// [`Backend::conv2d`] for a pass that will be differentiated: also
        /// returns what [`Backend::conv2d_backward_reusing`] can reuse. The
        /// default keeps nothing.
        fn conv2d_keeping(
            &self,
            x: &Tensor,
            w: &Tensor,
            bias: Option<&Tensor>,
            p: &Conv2dParams,
        ) -> (Tensor, Option<ConvKept>) {
            (self.conv2d(x, w, bias, p), None)
        }

        /// [`Backend::conv2d_backward`] given what `conv2d_keeping` kept for
        /// this pass. The default ignores it.
        fn conv2d_backward_reusing(
            &self,
            x: &Tensor,
            w: &Tensor,
            g: &Tensor,
            p: &Conv2dParams,
            need: [bool; 3],
            _kept: &ConvKept,
        ) -> Grads3 {
            self.conv2d_backward(x, w, g, p, need)
        }

        /// A new contiguous tensor of `shape` on `device` holding `value`.
        fn full(&self, shape: &[usize], value: f64, dtype: DType, device: Device) -> Tensor;

        /// Sets every element `t`'s layout selects to `value`, in place.
        fn fill(&self, t: &Tensor, value: f64);

        /// `t = f(t, other)` in place (`op` is `add_ sub_ mul_ div_ copy_`;
        /// `fns` are the CPU's functions), `other` in `t`'s dtype and read
        /// through `ls`, broadcast to `t`'s shape.
        fn binary_inplace(
            &self,
            op: &str,
            fns: InplaceFns,
            t: &Tensor,
            other: &Tensor,
            ls: &Layout,
        );

        /// Batch norm of `x` over dimension 1 with batch statistics
        /// (`a.training`) or the running ones. In training the running
        /// statistics, when given, are updated in place. Returns the output and
        /// what the backward needs.
        fn batch_norm(&self, x: &Tensor, a: &BatchNormArgs) -> (Tensor, BatchNormSaved);

        /// Fused layer norm over the trailing `d` elements of each row: the
        /// output and the saved per-row statistics, or `None` (the default)
        /// when this backend has no fused kernel: the op then composes it
        /// from tensor ops, which autograd differentiates.
        fn layer_norm(
            &self,
            _x: &Tensor,
            _d: usize,
            _weight: Option<&Tensor>,
            _bias: Option<&Tensor>,
            _eps: f64,
        ) -> Option<(Tensor, Tensor)> {
            None
        }

        /// Gradients of a fused [`Backend::layer_norm`] for `x`, the weight and
        /// the bias (both of `wshape`). Only called after `layer_norm`
        /// returned `Some`.
        fn layer_norm_backward(
            &self,
            x: &Tensor,
            _g: &Tensor,
            _weight: Option<&Tensor>,
            _stats: &Tensor,
            _wshape: &[usize],
            _need: [bool; 3],
        ) -> Grads3 {
            panic!(
                "layer_norm: {} has no fused layer-norm kernel to differentiate",
                x.device()
            )
        }

        /// True when [`Backend::optim_step`] runs the optimizers' updates on
        /// this device; otherwise (the default) the optimizers run their
        /// host loops (on host copies written back, for a device).
        fn fused_optimizers(&self) -> bool {
            false
        }

        /// Applies `step` to the contiguous parameter `p` and its state in
        /// place (all of one dtype), with the gradient `g`. Only called when
        /// [`Backend::fused_optimizers`]; a backend without fused optimizer
        /// kernels panics.
        fn optim_step(&self, step: &OptimStep, p: &Tensor, _g: &Tensor, _state: &[&Tensor]) {
            panic!(
                "{step:?}: {} has no fused optimizer kernel; the optimizer's host loop updates \
                 parameter {:?}",
                p.device(),
                p.shape()
            )
        }
    }
}

// After `backend_trait!`, whose `with_forwarded!` the test backend uses.
pub mod test;

/// The backend that runs ops on `device`.
pub(crate) fn of(device: Device) -> &'static dyn Backend {
    match device {
        Device::Cpu => &cpu::CpuBackend,
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => &cuda::CudaBackend,
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("no tensor lives on {device} without the `cuda` feature"),
        Device::Test(_) => &test::TestBackend,
    }
}

/// Converts a tensor's elements to `dtype` (no autograd).
pub(crate) fn cast(t: &Tensor, dtype: DType) -> Tensor {
    of(t.device()).cast(t, dtype)
}

/// Copies a tensor to another device (no autograd).
pub(crate) fn transfer(t: &Tensor, device: Device) -> Tensor {
    if let (Device::Test(_), _) | (_, Device::Test(_)) = (t.device(), device) {
        if t.device().is_cuda() || device.is_cuda() {
            return transfer(&transfer(t, Device::Cpu), device);
        }
        return test::transfer(t, device);
    }
    #[cfg(feature = "cuda")]
    {
        cuda::transfer(t, device)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = t;
        panic!(
            "to: cannot move a tensor to {device}: kiln was built without the `cuda` feature (rebuild with --features cuda)"
        )
    }
}
