//! The standard layers of `torch.nn`, one file per family.

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

/// Implements [`Module`](crate::nn::Module), `Display` and `Debug` for a
/// leaf layer with a `training: bool` field and the listed tensor fields
/// (`params`/`buffers` are `Tensor`, `opt_*` are `Option<Tensor>`),
/// visited in the order given (PyTorch: parameters, then buffers).
macro_rules! leaf_module {
    (
        $ty:ty, $name:expr,
        params: [$($p:ident),*],
        opt_params: [$($op:ident),*],
        opt_buffers: [$($ob:ident),*],
        extra_repr: |$s:ident| $extra:expr
    ) => {
        impl $crate::nn::Module for $ty {
            #[allow(unused_variables)]
            fn visit(
                &self,
                prefix: &str,
                v: &mut dyn FnMut(&str, &$crate::Tensor, $crate::nn::TensorKind),
            ) {
                $( v(&format!("{prefix}{}", stringify!($p)), &self.$p, $crate::nn::TensorKind::Parameter); )*
                $( if let Some(t) = &self.$op {
                    v(&format!("{prefix}{}", stringify!($op)), t, $crate::nn::TensorKind::Parameter);
                } )*
                $( if let Some(t) = &self.$ob {
                    v(&format!("{prefix}{}", stringify!($ob)), t, $crate::nn::TensorKind::Buffer);
                } )*
            }
            #[allow(unused_variables)]
            fn visit_tensors_mut(
                &mut self,
                f: &mut dyn FnMut(&str, &mut $crate::Tensor, $crate::nn::TensorKind),
            ) {
                $( f(stringify!($p), &mut self.$p, $crate::nn::TensorKind::Parameter); )*
                $( if let Some(t) = &mut self.$op {
                    f(stringify!($op), t, $crate::nn::TensorKind::Parameter);
                } )*
                $( if let Some(t) = &mut self.$ob {
                    f(stringify!($ob), t, $crate::nn::TensorKind::Buffer);
                } )*
            }
            fn set_training(&mut self, training: bool) {
                self.training = training;
            }
            fn is_training(&self) -> bool {
                self.training
            }
            fn type_name(&self) -> &str {
                $name
            }
            fn extra_repr(&self) -> String {
                let $s = self;
                $extra
            }
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&$crate::nn::format_module(self))
            }
        }
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&$crate::nn::format_module(self))
            }
        }
    };
}
pub(crate) use leaf_module;

/// A fresh parameter: `t` as a leaf that requires grad.
pub(crate) fn param(t: crate::Tensor) -> crate::Tensor {
    t.detach().requires_grad_(true)
}
