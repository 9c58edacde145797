//! Neural-network building blocks, like `torch.nn`: the [`Module`] trait,
//! the standard layers, [`init`] and [`functional`].

pub mod functional;
pub mod init;
mod layers;
mod loss_modules;
mod module;
pub mod static_shape;

pub use layers::*;
pub use loss_modules::{
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss,
};
pub use module::{
    AsModule, Forward, Layer, LoadReport, LoadStateDictError, Module, TensorKind, format_module,
    py_float,
};

#[doc(hidden)]
pub use module::__private;
