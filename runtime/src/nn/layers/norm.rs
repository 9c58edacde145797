//! Normalisation layers: `BatchNorm1d`, `BatchNorm2d`, `LayerNorm`.

use super::param;
use crate::nn::module::py_float;
use crate::nn::{Forward, functional};
use crate::{DType, Device, Tensor, TensorOptions};

/// Options of a batch-norm layer, like PyTorch's keyword arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormOptions {
    /// Added to the variance (default 1e-5).
    pub eps: f64,
    /// Running-statistics update factor (default 0.1); `None` uses a
    /// cumulative average (`momentum=None`).
    pub momentum: Option<f64>,
    /// Learnable `weight` and `bias` (default true).
    pub affine: bool,
    /// Keep running statistics (default true).
    pub track_running_stats: bool,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        BatchNormOptions {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

impl BatchNormOptions {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    setters! {
        /// Sets `eps`.
        eps: f64;
    }
    /// Sets `momentum` (`None`: cumulative average).
    pub fn momentum(mut self, momentum: impl Into<Option<f64>>) -> Self {
        self.momentum = momentum.into();
        self
    }
    setters! {
        /// Sets `affine`.
        affine: bool;
        /// Sets `track_running_stats`.
        track_running_stats: bool;
    }
}

macro_rules! batch_norm {
    ($name:ident, $label:literal, $dims:expr, $expect:literal) => {
        #[doc = concat!("Batch normalisation, like `nn.", $label, "`: normalises each channel")]
        /// with batch statistics in training mode (updating the running
        /// statistics) and with the running statistics in eval mode.
        ///
        /// Initialised as PyTorch does: `weight` 1, `bias` 0, `running_mean`
        /// 0, `running_var` 1, `num_batches_tracked` 0 (int64).
        #[derive(kiln_macros::Module)]
        #[module(crate = "crate", extra_repr = "Self::extra_repr_text")]
        pub struct $name {
            /// Per-channel scale (`None` when not affine).
            pub weight: Option<Tensor>,
            /// Per-channel shift (`None` when not affine).
            pub bias: Option<Tensor>,
            /// Running mean (buffer).
            #[module(buffer)]
            pub running_mean: Option<Tensor>,
            /// Running variance (buffer).
            #[module(buffer)]
            pub running_var: Option<Tensor>,
            /// Number of training batches seen (int64 scalar buffer).
            #[module(buffer)]
            pub num_batches_tracked: Option<Tensor>,
            /// Number of channels.
            #[module(skip)]
            pub num_features: usize,
            /// Options.
            #[module(skip)]
            pub options: BatchNormOptions,
            #[module(training)]
            training: bool,
        }

        impl $name {
            /// A layer over `num_features` channels with PyTorch's defaults.
            pub fn new(num_features: usize, device: &Device) -> $name {
                $name::with_options(num_features, BatchNormOptions::default(), device)
            }

            /// A layer with explicit options.
            pub fn with_options(
                num_features: usize,
                options: BatchNormOptions,
                device: &Device,
            ) -> $name {
                let o = TensorOptions::default().device(device);
                let n = [num_features];
                let affine = options.affine;
                let track = options.track_running_stats;
                $name {
                    weight: affine.then(|| param(Tensor::ones_opts(n, o))),
                    bias: affine.then(|| param(Tensor::zeros_opts(n, o))),
                    running_mean: track.then(|| Tensor::zeros_opts(n, o)),
                    running_var: track.then(|| Tensor::ones_opts(n, o)),
                    num_batches_tracked: track.then(|| Tensor::zeros_opts([], o.dtype(DType::I64))),
                    num_features,
                    options,
                    training: true,
                }
            }
        }

        impl Forward for $name {
            fn forward(&self, x: &Tensor) -> Tensor {
                if !$dims.contains(&x.dim()) {
                    panic!(
                        "{}: expected {} input (got {}D input of shape {:?})",
                        $label,
                        $expect,
                        x.dim(),
                        x.shape()
                    );
                }
                batch_norm_forward(
                    x,
                    &self.options,
                    self.training,
                    [
                        &self.weight,
                        &self.bias,
                        &self.running_mean,
                        &self.running_var,
                        &self.num_batches_tracked,
                    ],
                )
            }
        }

        impl $name {
            /// What `print(model)` shows inside the parentheses (PyTorch's
            /// `extra_repr`).
            fn extra_repr_text(&self) -> String {
                let s = self;
                format!(
                    "{}, eps={}, momentum={}, affine={}, track_running_stats={}",
                    s.num_features,
                    py_float(s.options.eps),
                    s.options.momentum.map_or("None".to_string(), py_float),
                    if s.options.affine { "True" } else { "False" },
                    if s.options.track_running_stats {
                        "True"
                    } else {
                        "False"
                    }
                )
            }
        }
    };
}

batch_norm!(BatchNorm2d, "BatchNorm2d", [4usize], "4D");
batch_norm!(BatchNorm1d, "BatchNorm1d", [2usize, 3], "2D or 3D");

/// PyTorch's `_BatchNorm.forward`.
fn batch_norm_forward(
    x: &Tensor,
    o: &BatchNormOptions,
    training: bool,
    [w, b, rm, rv, nbt]: [&Option<Tensor>; 5],
) -> Tensor {
    let mut factor = o.momentum.unwrap_or(0.0);
    if training
        && o.track_running_stats
        && let Some(n) = nbt
    {
        crate::autograd::no_grad(|| n.add_scalar_(1.0));
        if o.momentum.is_none() {
            factor = 1.0 / n.item();
        }
    }
    let bn_training = training || (rm.is_none() && rv.is_none());
    let use_stats = !training || o.track_running_stats;
    functional::batch_norm(
        x,
        rm.as_ref().filter(|_| use_stats),
        rv.as_ref().filter(|_| use_stats),
        w.as_ref(),
        b.as_ref(),
        bn_training,
        factor,
        o.eps,
    )
}

/// Layer normalisation over the trailing `normalized_shape` dimensions,
/// like `nn.LayerNorm` (eps 1e-5, `weight` 1, `bias` 0).
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "layer_norm_extra_repr")]
pub struct LayerNorm {
    /// Scale, shaped `normalized_shape` (`None` without elementwise affine).
    pub weight: Option<Tensor>,
    /// Shift, shaped `normalized_shape`.
    pub bias: Option<Tensor>,
    /// The trailing dimensions normalised over.
    #[module(skip)]
    pub normalized_shape: Vec<usize>,
    /// Added to the variance.
    #[module(skip)]
    pub eps: f64,
    #[module(training)]
    training: bool,
}

impl LayerNorm {
    /// A layer with learnable affine parameters on `device`.
    pub fn new(normalized_shape: Vec<usize>, device: &Device) -> LayerNorm {
        LayerNorm::with_options(normalized_shape, 1e-5, true, device)
    }

    /// A layer with explicit `eps` and `elementwise_affine`.
    pub fn with_options(
        normalized_shape: Vec<usize>,
        eps: f64,
        elementwise_affine: bool,
        device: &Device,
    ) -> LayerNorm {
        let o = TensorOptions::default().device(device);
        let s = normalized_shape.clone();
        LayerNorm {
            weight: elementwise_affine.then(|| param(Tensor::ones_opts(s.clone(), o))),
            bias: elementwise_affine.then(|| param(Tensor::zeros_opts(s, o))),
            normalized_shape,
            eps,
            training: true,
        }
    }
}

impl Forward for LayerNorm {
    fn forward(&self, x: &Tensor) -> Tensor {
        functional::layer_norm(
            x,
            &self.normalized_shape,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }
}

/// What `print(model)` shows inside [`LayerNorm`]'s parentheses (PyTorch's
/// `extra_repr`).
fn layer_norm_extra_repr(s: &LayerNorm) -> String {
    let shape = match s.normalized_shape.as_slice() {
        [n] => format!("({n},)"),
        v => format!(
            "({})",
            v.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "{shape}, eps={}, elementwise_affine={}",
        py_float(s.eps),
        if s.weight.is_some() { "True" } else { "False" }
    )
}
