//! `#[derive(Module)]`: parse the struct into a typed model (keeping
//! spans), collect every error, then expand. On errors the expansion is the
//! `compile_error!`s plus a stub `Module` impl, so that uses of the type do
//! not add a cascade of follow-on errors.

mod expand;
mod parse;

use proc_macro2::TokenStream;

/// Entry point of the derive.
pub fn derive(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<syn::DeriveInput>(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    match parse::Model::from_input(&input) {
        Ok(model) => expand::expand(&model),
        Err(errors) => {
            let errs = errors.iter().map(syn::Error::to_compile_error);
            let stub = expand::stub(&input);
            quote::quote! { #(#errs)* #stub }
        }
    }
}
