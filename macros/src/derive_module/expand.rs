//! Code generation from the parsed model.

use super::parse::{self, FieldKind, Model};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

/// The `Module`, `Display` and `Debug` impls.
pub fn expand(m: &Model<'_>) -> TokenStream {
    let ident = &m.input.ident;
    let (impl_g, ty_g, where_c) = m.input.generics.split_for_impl();
    let k = &m.krate;
    let p = quote!(#k::nn::__private);
    let type_name = &m.type_name;
    let extra_repr = m.extra_repr.as_ref().map(|f| {
        quote! {
            fn extra_repr(&self) -> ::std::string::String {
                #f(self)
            }
        }
    });

    let mut visit_own = Vec::new();
    let mut tensors_mut = Vec::new();
    let mut children = Vec::new();
    let mut children_mut = Vec::new();
    for f in &m.fields {
        let (member, key, ty) = (&f.member, &f.key, &f.ty);
        let span = ty.span();
        match &f.kind {
            FieldKind::Tensor { buffer } => {
                let kind = if *buffer {
                    quote!(#p::BUFFER)
                } else {
                    quote!(#p::PARAMETER)
                };
                visit_own.push(quote! { v(&#p::join(prefix, #key), &self.#member, #kind); });
                tensors_mut.push(quote! { f(#key, &mut self.#member, #kind); });
            }
            FieldKind::OptTensor { buffer } => {
                let kind = if *buffer {
                    quote!(#p::BUFFER)
                } else {
                    quote!(#p::PARAMETER)
                };
                visit_own.push(quote! { #p::visit_opt(prefix, #key, &self.#member, #kind, v); });
                tensors_mut.push(quote! {
                    if let ::core::option::Option::Some(t) = &mut self.#member {
                        f(#key, t, #kind);
                    }
                });
            }
            FieldKind::Child => {
                let r = quote_spanned!(span=> (#p::casts::<#ty>().0)(&self.#member));
                let w = quote_spanned!(span=> (#p::casts::<#ty>().1)(&mut self.#member));
                children.push(quote! { f(#key, #r); });
                children_mut.push(quote! { f(#key, #w); });
            }
            FieldKind::OptChild(inner) => {
                let span = inner.span();
                let r = quote_spanned!(span=> (#p::casts::<#inner>().0)(m));
                let w = quote_spanned!(span=> (#p::casts::<#inner>().1)(m));
                children.push(quote! {
                    if let ::core::option::Option::Some(m) = &self.#member { f(#key, #r); }
                });
                children_mut.push(quote! {
                    if let ::core::option::Option::Some(m) = &mut self.#member { f(#key, #w); }
                });
            }
        }
    }

    let (set_own, is_training) = match &m.training {
        Some(member) => (quote! { self.#member = training; }, quote! { self.#member }),
        None => (
            quote! {},
            quote! {
                let mut t = ::core::option::Option::None;
                #k::nn::Module::visit_children(self, &mut |_, c| {
                    if t.is_none() { t = ::core::option::Option::Some(c.is_training()); }
                });
                t.unwrap_or(true)
            },
        ),
    };

    quote! {
        #[automatically_derived]
        impl #impl_g #k::nn::Module for #ident #ty_g #where_c {
            fn visit(
                &self,
                prefix: &str,
                v: &mut dyn FnMut(&str, &#k::Tensor, #k::nn::TensorKind),
            ) {
                #(#visit_own)*
                #k::nn::Module::visit_children(self, &mut |name, c| {
                    c.visit(&#p::join_dot(prefix, name), v)
                });
            }
            #[allow(unused_variables)]
            fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn #k::nn::Module)) {
                #(#children)*
            }
            #[allow(unused_variables)]
            fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn #k::nn::Module)) {
                #(#children_mut)*
            }
            #[allow(unused_variables)]
            fn visit_tensors_mut(
                &mut self,
                f: &mut dyn FnMut(&str, &mut #k::Tensor, #k::nn::TensorKind),
            ) {
                #(#tensors_mut)*
            }
            fn set_training(&mut self, training: bool) {
                #set_own
                #k::nn::Module::visit_children_mut(self, &mut |_, c| c.set_training(training));
            }
            fn is_training(&self) -> bool {
                #is_training
            }
            fn type_name(&self) -> &str {
                #type_name
            }
            #extra_repr
        }

        #[automatically_derived]
        impl #impl_g ::core::fmt::Display for #ident #ty_g #where_c {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(&#k::nn::format_module(self))
            }
        }

        #[automatically_derived]
        impl #impl_g ::core::fmt::Debug for #ident #ty_g #where_c {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(&#k::nn::format_module(self))
            }
        }
    }
}

/// A do-nothing `Module` impl emitted next to the errors, so that code
/// using the type does not report more errors.
pub fn stub(input: &syn::DeriveInput) -> TokenStream {
    if !matches!(input.data, syn::Data::Struct(_)) {
        return quote! {};
    }
    let k = parse::crate_path(parse::parse_struct_attrs(&input.attrs, &mut Vec::new()).krate);
    let ident = &input.ident;
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let name = ident.to_string();
    quote! {
        impl #impl_g #k::nn::Module for #ident #ty_g #where_c {
            fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &#k::Tensor, #k::nn::TensorKind)) {}
            fn is_training(&self) -> bool { true }
            fn type_name(&self) -> &str { #name }
        }
    }
}
