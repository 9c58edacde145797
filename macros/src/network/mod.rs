//! `network!`: declares a model struct and its forward at once, checking
//! the shapes of its layers while it compiles.
//!
//! The pipeline follows serde_derive: [`parse`] builds a typed
//! [`model`] that keeps spans, [`shape`] infers and checks the shapes
//! (collecting every error), and [`expand`] generates the code, or a stub
//! next to the `compile_error!`s so no follow-on errors appear.

mod diagnostics;
mod expand;
mod expr;
mod model;
mod parse;
mod shape;

use proc_macro2::TokenStream;

/// Expands one `network! { ... }` invocation.
pub fn network(tokens: TokenStream) -> TokenStream {
    let mut errors = diagnostics::Errors::default();
    let Some(network) = parse::parse(tokens, &mut errors) else {
        return errors.to_compile_errors();
    };
    let analysis = shape::analyze(&network, &mut errors);
    if errors.is_empty() {
        expand::expand(&network, &analysis)
    } else {
        let mut out = errors.to_compile_errors();
        out.extend(expand::stub(&network));
        out
    }
}
