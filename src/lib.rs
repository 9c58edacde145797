//! kiln: PyTorch's programming model in Rust, with model shapes checked
//! while they compile.

#![warn(missing_docs)]

pub use kiln_runtime::*;

// `network!` and `#[derive(Module)]` expand to `::kiln::` paths; this lets
// the models below use them inside this crate.
extern crate self as kiln;

pub mod models;

/// `#[derive(Module)]`: implements [`nn::Module`] (plus `Display` and
/// `Debug`, which print the module tree like PyTorch's `print(model)`) for
/// a struct whose fields are layers, other modules, `Vec`s (children
/// `0`, `1`, ...) or `Option`s of modules, and tensors (parameters).
///
/// Keys are the field names (`conv1.weight`, `blocks.2.bn.running_mean`;
/// tuple structs use `0`, `1`, ...). Own tensors come first, then children,
/// as in PyTorch. Field attributes:
///
/// - `#[module(skip)]`: plain data, not registered;
/// - `#[module(rename = "0")]`: register under another key;
/// - `#[module(training)]` on a `bool`: stores the train/eval flag;
/// - `#[module(buffer)]` on a `Tensor`/`Option<Tensor>`: a buffer rather
///   than a parameter.
///
/// Struct attributes:
///
/// - `#[module(name = "LeNet")]`: the printed class name;
/// - `#[module(extra_repr = "path")]`: a `fn(&Self) -> String` whose text
///   `print(model)` shows inside the parentheses, like PyTorch's
///   `extra_repr` (kiln's own layers use it for `Linear(in_features=...)`);
/// - `#[module(crate = "path")]`: the path the generated code names the
///   kiln crate by (default `::kiln`), like serde's `#[serde(crate = ...)]`,
///   for crates that re-export kiln under another name; kiln-runtime's own
///   layers use `crate = "crate"`.
///
/// The trait [`nn::Module`] and this derive macro live in different
/// namespaces, like serde's `Serialize`.
///
/// ```
/// use kiln::nn::{Conv2d, Conv2dOptions, Forward, Linear, Module};
/// use kiln::{Device, Tensor};
///
/// #[derive(kiln::Module)]
/// struct Net {
///     conv: Conv2d,
///     fc: Linear,
///     #[module(skip)]
///     scale: f32,
/// }
///
/// let d = Device::Cpu;
/// let net = Net {
///     conv: Conv2d::new(1, 2, Conv2dOptions::new([3, 3]), &d),
///     fc: Linear::new(8, 2, &d),
///     scale: 1.0,
/// };
/// let keys: Vec<String> = net.state_dict().keys().map(String::from).collect();
/// assert_eq!(keys, ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]);
/// ```
pub use kiln_macros::Module;

/// `network!`: declares a model and its forward with shapes checked at compile time.
pub use kiln_macros::network;

/// The names most programs need, like `import torch`.
pub mod prelude {
    pub use kiln_macros::{Module, network};
    pub use kiln_runtime::autograd::{self, no_grad};
    pub use kiln_runtime::nn::{self, Forward, Layer, Module};
    pub use kiln_runtime::optim::{self, Optimizer, lr_scheduler::LrScheduler};
    pub use kiln_runtime::{DType, Device, Tensor, TensorOptions, manual_seed, tensor};
}
