//! kiln's runtime: tensors, autograd, neural-network layers, losses,
//! optimizers, data loading and checkpoints. Most users reach it through
//! the `kiln` facade crate.

#![warn(missing_docs)]

#[macro_use]
mod macros;

pub mod autograd;
pub mod backend;
pub mod data;
pub mod device;
pub mod distributed;
pub mod dtype;
pub mod io;
pub mod layout;
pub mod loss;
pub mod nn;
mod ops;
pub mod optim;
pub mod rng;
pub mod state_dict;
pub mod storage;
mod tensor;
#[doc(hidden)]
pub mod testing;

pub use device::{Device, DeviceUnavailable, ParseDeviceError};
pub use dtype::{DType, Element};
pub use layout::Layout;
pub use ops::indexing::{__stepped, IndexValue, IntoIndex, SetValue, Slice, TensorIndex};
pub use rng::{Generator, get_rng_state, manual_seed, set_rng_state};
pub use state_dict::StateDict;
pub use tensor::IntoDims;
pub use tensor::{Tensor, TensorList, TensorOptions};
