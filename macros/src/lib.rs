//! kiln's procedural macros: `#[derive(Module)]` and `network!`.

mod derive_module;

/// Derives `kiln::nn::Module` (plus `Display`/`Debug` printing the module
/// tree) for a struct of layers, modules, `Vec`s/`Option`s of modules and
/// tensors; see `kiln::nn::Module` and the `kiln::Module` docs for the
/// field rules and the `#[module(...)]` attributes.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    derive_module::derive(input.into()).into()
}
