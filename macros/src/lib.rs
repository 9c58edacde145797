//! kiln's procedural macros: `#[derive(Module)]` and `network!`.

use proc_macro::TokenStream;

mod network;

#[doc = include_str!("network/doc.md")]
#[proc_macro]
pub fn network(input: TokenStream) -> TokenStream {
    network::network(input.into()).into()
}
