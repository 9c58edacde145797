//! kiln's procedural macros: `#[derive(Module)]` and `network!`.

use proc_macro::TokenStream;

mod network;

/// Declares a model struct and its forward at once; the shapes of its
/// layers are checked while it compiles.
///
/// ```ignore
/// kiln::network! {
///     /// LeNet-5 for 28×28 grey images.
///     pub struct LeNet(input: [1, 28, 28]) {
///         conv1: Conv2d(1 -> 6, kernel: 5, padding: 2),
///         relu,
///         max_pool2d(2),
///         conv2: Conv2d(6 -> 16, kernel: 5),
///         relu,
///         max_pool2d(2),
///         flatten,
///         fc1: Linear(16 * 5 * 5 -> 120),
///         relu,
///         fc2: Linear(120 -> 84),
///         relu,
///         fc3: Linear(84 -> 10),
///     }
/// }
/// ```
///
/// A layer that does not fit is a compile error on that layer, naming what
/// it expects, what it gets and the shapes that led there. See the crate
/// `kiln`'s documentation of `network!` for the full syntax.
#[proc_macro]
pub fn network(input: TokenStream) -> TokenStream {
    network::network(input.into()).into()
}
