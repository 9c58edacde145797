//! kiln's procedural macros: `#[derive(Module)]` and `network!`.

#![warn(missing_docs)]

use proc_macro::TokenStream;

mod derive_module;
mod network;

/// Derives `kiln::nn::Module` (plus `Display`/`Debug` printing the module
/// tree) for a struct of layers, modules, `Vec`s/`Option`s of modules and
/// tensors; see `kiln::nn::Module` and the `kiln::Module` docs for the
/// field rules and the `#[module(...)]` attributes.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    derive_module::derive(input.into()).into()
}

#[doc = include_str!("network/doc.md")]
#[proc_macro]
pub fn network(input: TokenStream) -> TokenStream {
    network::network(input.into()).into()
}
