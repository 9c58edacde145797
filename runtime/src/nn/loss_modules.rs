//! Losses as modules, like `nn.MSELoss()` and `nn.CrossEntropyLoss(...)`:
//! the tutorials' `criterion = nn.CrossEntropyLoss()` then
//! `loss = criterion(output, target)`. Each holds its options and calls the
//! function of the same name in [`crate::loss`]; its `forward` takes the
//! input and the target. They print as PyTorch prints them
//! (`CrossEntropyLoss()`), and a class `weight` is a buffer, as in PyTorch.
//!
//! ```
//! use kiln_runtime::Tensor;
//! use kiln_runtime::loss::Reduction;
//! use kiln_runtime::nn::{CrossEntropyLoss, MSELoss};
//! let criterion = CrossEntropyLoss::new().label_smoothing(0.1);
//! let loss = criterion.forward(&Tensor::from([[2.0f32, 0.0]]), &Tensor::from([0i64]));
//! assert!(loss.item() > 0.0);
//! let mse = MSELoss::new().reduction(Reduction::Sum);
//! assert_eq!(mse.forward(&Tensor::from([1.0f32, 2.0]), &Tensor::from([0.0f32, 0.0])).item(), 5.0);
//! assert_eq!(criterion.to_string(), "CrossEntropyLoss()");
//! ```

use crate::Tensor;
use crate::loss::{self, Reduction};
use crate::nn::{Module, TensorKind, format_module};
use std::fmt;

/// `Module` for a loss: no parameters, an optional class-weight buffer.
macro_rules! loss_module {
    ($ty:ident, $label:literal $(, buffer: $w:ident)?) => {
        impl Module for $ty {
            #[allow(unused_variables)]
            fn visit(&self, prefix: &str, v: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
                $(if let Some(t) = &self.$w {
                    v(&format!("{prefix}{}", stringify!($w)), t, TensorKind::Buffer);
                })?
            }
            #[allow(unused_variables)]
            fn visit_tensors_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor, TensorKind)) {
                $(if let Some(t) = &mut self.$w {
                    f(stringify!($w), t, TensorKind::Buffer);
                })?
            }
            fn set_training(&mut self, training: bool) {
                self.training = training;
            }
            fn is_training(&self) -> bool {
                self.training
            }
            fn type_name(&self) -> &str {
                $label
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                $ty::new()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&format_module(self))
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&format_module(self))
            }
        }

        impl $ty {
            /// How the per-element losses are combined (default mean).
            pub fn reduction(mut self, reduction: Reduction) -> Self {
                self.reduction = reduction;
                self
            }
        }
    };
}

/// The options of a loss over class indices: class weights and an ignored
/// target.
macro_rules! class_options {
    ($ty:ident) => {
        impl $ty {
            /// Per-class weights, shape `[C]`.
            pub fn weight(mut self, weight: Tensor) -> Self {
                self.weight = Some(weight);
                self
            }

            /// Ignore targets equal to `index`.
            pub fn ignore_index(mut self, index: i64) -> Self {
                self.ignore_index = Some(index);
                self
            }
        }
    };
}

/// A loss module with only a reduction, calling `loss::$f`.
macro_rules! simple_loss {
    ($(#[$doc:meta])* $ty:ident, $label:literal, $f:ident) => {
        $(#[$doc])*
        pub struct $ty {
            /// How the per-element losses are combined.
            pub reduction: Reduction,
            training: bool,
        }

        impl $ty {
            #[doc = concat!("`nn.", $label, "()`: mean reduction.")]
            pub fn new() -> $ty {
                $ty { reduction: Reduction::Mean, training: true }
            }

            #[doc = concat!("The loss of `input` against `target`, like `criterion(input, target)`; see [`loss::", stringify!($f), "`].")]
            pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
                loss::$f(input, target, self.reduction)
            }
        }

        loss_module!($ty, $label);
    };
}

simple_loss!(
    /// Mean squared error, like `nn.MSELoss`.
    MSELoss, "MSELoss", mse_loss);
simple_loss!(
    /// Mean absolute error, like `nn.L1Loss`.
    L1Loss, "L1Loss", l1_loss);
simple_loss!(
    /// Binary cross-entropy on probabilities, like `nn.BCELoss`.
    BCELoss, "BCELoss", binary_cross_entropy);
simple_loss!(
    /// Binary cross-entropy on logits, like `nn.BCEWithLogitsLoss`.
    BCEWithLogitsLoss, "BCEWithLogitsLoss", binary_cross_entropy_with_logits);

/// Smooth L1 (Huber-like) loss, like `nn.SmoothL1Loss(beta=1.0)`.
pub struct SmoothL1Loss {
    /// How the per-element losses are combined.
    pub reduction: Reduction,
    /// Where the loss turns from quadratic to linear.
    pub beta: f64,
    training: bool,
}

impl SmoothL1Loss {
    /// `nn.SmoothL1Loss()`: mean reduction, `beta` 1.
    pub fn new() -> SmoothL1Loss {
        SmoothL1Loss {
            reduction: Reduction::Mean,
            beta: 1.0,
            training: true,
        }
    }

    /// Sets `beta` (≥ 0).
    pub fn beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    /// The loss of `input` against `target`; see [`loss::smooth_l1_loss`].
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        loss::smooth_l1_loss(input, target, self.reduction, self.beta)
    }
}

loss_module!(SmoothL1Loss, "SmoothL1Loss");

/// Cross-entropy on logits, like `nn.CrossEntropyLoss(weight=None,
/// ignore_index=-100, reduction='mean', label_smoothing=0.0)`.
pub struct CrossEntropyLoss {
    /// Per-class weights (`[C]`), a buffer named `weight`.
    pub weight: Option<Tensor>,
    /// Targets equal to this are ignored (`None`: none is).
    pub ignore_index: Option<i64>,
    /// How the per-sample losses are combined.
    pub reduction: Reduction,
    /// Label smoothing `ε` in [0, 1].
    pub label_smoothing: f64,
    training: bool,
}

impl CrossEntropyLoss {
    /// `nn.CrossEntropyLoss()`: no weights, `ignore_index` -100, mean, no
    /// smoothing.
    pub fn new() -> CrossEntropyLoss {
        CrossEntropyLoss {
            weight: None,
            ignore_index: Some(-100),
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
            training: true,
        }
    }

    /// Label smoothing `ε`.
    pub fn label_smoothing(mut self, eps: f64) -> Self {
        self.label_smoothing = eps;
        self
    }

    /// The loss of logits `input` against class indices (or probabilities)
    /// `target`; see [`loss::cross_entropy_with`].
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        loss::cross_entropy_with(
            input,
            target,
            self.reduction,
            self.label_smoothing,
            self.weight.as_ref(),
            self.ignore_index,
        )
    }
}

loss_module!(CrossEntropyLoss, "CrossEntropyLoss", buffer: weight);
class_options!(CrossEntropyLoss);

/// Negative log-likelihood of log-probabilities, like
/// `nn.NLLLoss(weight=None, ignore_index=-100, reduction='mean')`.
pub struct NLLLoss {
    /// Per-class weights (`[C]`), a buffer named `weight`.
    pub weight: Option<Tensor>,
    /// Targets equal to this are ignored (`None`: none is).
    pub ignore_index: Option<i64>,
    /// How the per-sample losses are combined.
    pub reduction: Reduction,
    training: bool,
}

impl NLLLoss {
    /// `nn.NLLLoss()`: no weights, `ignore_index` -100, mean.
    pub fn new() -> NLLLoss {
        NLLLoss {
            weight: None,
            ignore_index: Some(-100),
            reduction: Reduction::Mean,
            training: true,
        }
    }

    /// The loss of log-probabilities `input` against class indices
    /// `target`; see [`loss::nll_loss_with`].
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        loss::nll_loss_with(
            input,
            target,
            self.reduction,
            self.weight.as_ref(),
            self.ignore_index,
        )
    }
}

loss_module!(NLLLoss, "NLLLoss", buffer: weight);
class_options!(NLLLoss);
