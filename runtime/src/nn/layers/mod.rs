//! The standard layers of `torch.nn`, one file per family.

/// A layer whose only state is a few hyper-parameters: the struct (each
/// field public and skipped by the `Module` derive), `new` taking the fields
/// in order, `Forward` and the `extra_repr` text `print(model)` shows inside
/// the parentheses. A layer without fields also gets `Default`.
macro_rules! layer {
    (
        $(#[$doc:meta])*
        pub struct $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* $(,)? }
        $(#[$new_doc:meta])*
        fn new;
        forward: |$s:pat_param, $x:ident| $fwd:expr;
        extra_repr: |$r:pat_param| $extra:expr;
    ) => {
        $(#[$doc])*
        #[derive(kiln_macros::Module)]
        #[module(crate = "crate", extra_repr = "Self::extra_repr_text")]
        pub struct $name {
            $(
                $(#[$fdoc])*
                #[module(skip)]
                pub $field: $ty,
            )*
            #[module(training)]
            training: bool,
        }

        impl $name {
            $(#[$new_doc])*
            pub fn new($($field: $ty),*) -> $name {
                $name {
                    $($field,)*
                    training: true,
                }
            }

            fn extra_repr_text(&self) -> String {
                let $r = self;
                String::from($extra)
            }
        }

        impl crate::nn::Forward for $name {
            fn forward(&self, $x: &crate::Tensor) -> crate::Tensor {
                let $s = self;
                $fwd
            }
        }

        layer!(@default $name $($field)*);
    };
    (@default $name:ident) => {
        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }
    };
    (@default $name:ident $($field:ident)+) => {};
}

mod activation;
mod conv;
mod dropout;
mod embedding;
mod linear;
mod norm;
mod pool;
mod sequential;

pub use activation::{GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh, Threshold};
pub use conv::{Conv2d, Conv2dOptions};
pub use dropout::{Dropout, Flatten};
pub use embedding::Embedding;
pub use linear::Linear;
pub use norm::{BatchNorm1d, BatchNorm2d, BatchNormOptions, LayerNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use sequential::Sequential;

/// A weight parameter of `shape` initialised as PyTorch's `Linear` and
/// `Conv2d` do (`kaiming_uniform_` with `a = √5`).
pub(crate) fn default_weight(shape: &[usize], opts: crate::TensorOptions) -> crate::Tensor {
    let weight = crate::Tensor::zeros_opts(shape, opts);
    crate::nn::init::kaiming_uniform_(
        &weight,
        5f64.sqrt(),
        crate::nn::init::FanMode::FanIn,
        crate::nn::init::Nonlinearity::LeakyReLU,
    );
    param(weight)
}

/// A bias parameter of `len` initialised as PyTorch's `Linear` and
/// `Conv2d` do: uniform in `±1/√fan_in` (zero for no inputs).
pub(crate) fn default_bias(len: usize, fan_in: usize, opts: crate::TensorOptions) -> crate::Tensor {
    let b = crate::Tensor::zeros_opts([len], opts);
    let bound = if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    };
    crate::nn::init::uniform_(&b, -bound, bound);
    param(b)
}

/// A fresh parameter: `t` as a leaf that requires grad.
pub(crate) fn param(t: crate::Tensor) -> crate::Tensor {
    t.detach().requires_grad_(true)
}
