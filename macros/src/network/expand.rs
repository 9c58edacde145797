//! Generates the struct, its constructor, forward and shape constants from a
//! checked declaration; or, when the declaration has errors, a stub that
//! keeps uses of the type compiling so only the real errors show.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::Ident;

use super::expr::Expr;
use super::model::{Args, Builtin, Item, Join, Kind, Layer, Network, Pair, Parallel};
use std::collections::HashMap;

use super::shape::{Analysis, RuntimeCheck, Shape, item_key};

/// The full expansion of a declaration without errors.
pub fn expand(network: &Network, analysis: &Analysis) -> TokenStream {
    let name = &network.name;
    let vis = &network.vis;
    let generics = &network.generics;
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let is_generic = !generics.params.is_empty();

    // Per-sample shapes, as docs show them.
    let input_text = doc_shape(&analysis.input, None);
    let output_text = doc_shape(&analysis.output, None);
    let batch_input = doc_shape(&analysis.input, Some("N"));
    let batch_output = doc_shape(&analysis.output, Some("N"));

    let attrs = &network.attrs;
    let has_docs = attrs.iter().any(|a| a.path().is_ident("doc"));
    let separator = has_docs.then(|| quote!(#[doc = ""]));
    let summary = format!(
        " Input `{input_text}` → output `{output_text}` per sample; `forward` takes \
         `{batch_input}`. Declared with `network!`, which checked its layers' shapes."
    );

    // Fields and their initialisers.
    let mut fields = Vec::new();
    let mut inits = Vec::new();
    for (item, condition) in network.fields() {
        let Some(field) = &item.name else { continue };
        let field_vis = item.vis.as_ref().unwrap_or(vis);
        let mut ty = field_type(&item.layer);
        let field_attrs = &item.attrs;
        let separator = (!field_attrs.is_empty()).then(|| quote!(#[doc = ""]));
        let mut doc = match analysis.fields.get(&field.to_string()) {
            Some((before, after)) => format!(
                " Shape `{}` → `{}` per sample.",
                doc_shape(before, None),
                doc_shape(after, None)
            ),
            None => String::new(),
        };
        let mut init = construct(&item.layer);
        if let Some(condition) = condition {
            doc.push_str(&format!(
                " Present when `{}`.",
                super::shape::compact(condition.clone())
            ));
            ty = quote!(::core::option::Option<#ty>);
            init = quote! {
                if #condition {
                    ::core::option::Option::Some(#init)
                } else {
                    ::core::option::Option::None
                }
            };
        }
        fields.push(quote! {
            #(#field_attrs)*
            #separator
            #[doc = #doc]
            #field_vis #field: #ty,
        });
        inits.push(quote!(#field: #init,));
    }
    if network.needs_training_flag() {
        fields.push(quote! {
            /// Whether the inline `dropout` steps are active (`train()` / `eval()`).
            #[module(training)]
            training: bool,
        });
        inits.push(quote!(training: true,));
    }

    // Shape constants.
    let input_dims = match &analysis.input {
        Shape::Dims(dims) => dims.clone(),
        _ => Vec::new(),
    };
    let input_len = input_dims.len();
    let input_tokens: Vec<TokenStream> = input_dims.iter().map(Expr::tokens).collect();
    let input_doc =
        format!(" The shape of one input sample, `{input_text}`: `forward` takes `{batch_input}`.");
    let output_doc = format!(
        " The shape of one output sample, `{output_text}`: `forward` returns `{batch_output}`."
    );
    let (output_const, output_slice) = match &analysis.output {
        Shape::Dims(dims) => {
            let len = dims.len();
            let dims: Vec<TokenStream> = dims.iter().map(Expr::tokens).collect();
            (
                quote!(pub const OUTPUT_SHAPE: [usize; #len] = [#(#dims),*];),
                quote!(&[#(#dims),*]),
            )
        }
        Shape::Opaque(o) if !o.generic => {
            let tokens = &o.tokens;
            (
                quote! {
                    pub const OUTPUT_SHAPE: [usize; #tokens.len()] =
                        ::kiln::nn::static_shape::to_array(#tokens);
                },
                tokens.clone(),
            )
        }
        Shape::Opaque(o) => {
            let tokens = &o.tokens;
            (
                quote!(pub const OUTPUT_SHAPE: &'static [usize] = #tokens;),
                tokens.clone(),
            )
        }
        Shape::Unknown => (
            quote!(
                pub const OUTPUT_SHAPE: [usize; 0] = [];
            ),
            quote!(&[]),
        ),
    };

    // Compile-time checks the expansion could not decide.
    let asserts: Vec<TokenStream> = analysis
        .checks
        .iter()
        .map(|check| {
            let cond = &check.cond;
            let message = check.message.replace('{', "{{").replace('}', "}}");
            quote_spanned!(check.span=> ::core::assert!(#cond, #message);)
        })
        .collect();
    // Modules used as layers: their own checks run with ours, so a
    // non-generic network that uses `Mlp<64>` checks it under `cargo check`
    // (a generic type's checks otherwise only run when `new` is
    // monomorphised, i.e. in `cargo build`).
    let mut composed: Vec<&syn::Type> = Vec::new();
    collect_composed(&network.items, &mut composed);
    let composed_checks = composed.iter().map(|ty| {
        let span = ty_span(ty);
        quote_spanned!(span=> let () = <#ty as ::kiln::nn::static_shape::StaticShape>::SHAPE_CHECKS;)
    });
    // A module declared with errors is a stub whose shapes mean nothing:
    // checks against it are skipped, the errors are reported where it is
    // declared.
    let guarded = if composed.is_empty() || asserts.is_empty() {
        quote!(#(#asserts)*)
    } else {
        let stubs = composed
            .iter()
            .map(|ty| quote!(<#ty as ::kiln::nn::static_shape::StaticShape>::DECLARED_WITH_ERRORS));
        quote!(if !(#(#stubs)||*) { #(#asserts)* })
    };
    let shape_checks = (!asserts.is_empty() || !composed.is_empty())
        .then(|| quote!(const SHAPE_CHECKS: () = { #guarded #(#composed_checks)* };));
    // rustc notes where a failing constant is evaluated: point it at the
    // network's name rather than at the whole macro.
    let check_span = name.span();
    let force_checks = quote_spanned!(check_span=>
        <Self as ::kiln::nn::static_shape::StaticShape>::SHAPE_CHECKS
    );
    let (free_checks, new_checks) = match (shape_checks.is_some(), is_generic) {
        (false, _) => (None, None),
        (true, false) => (
            Some(quote_spanned!(check_span=>
                const _: () = <#name as ::kiln::nn::static_shape::StaticShape>::SHAPE_CHECKS;
            )),
            None,
        ),
        (true, true) => (None, Some(quote!(let () = #force_checks;))),
    };

    // Forward passes.
    let x = Ident::new("x", Span::mixed_site());
    let name_text = name.to_string();
    let check_input = quote! {
        ::kiln::nn::static_shape::check_input(#name_text, &Self::INPUT_SHAPE, #x.shape());
    };
    let steps = Steps {
        network: &name_text,
        runtime: &analysis.runtime,
    };
    let forward_body = steps.forward(&network.items, &x, None);
    let forward_doc = format!(
        " Runs the network on a batch of shape `{batch_input}` and returns `{batch_output}`.\n\n\
         # Panics\n\nIf `x` is not of shape `{batch_input}`."
    );

    let taps: Vec<(&Item, &Shape)> = network
        .items
        .iter()
        .zip(&analysis.items)
        .filter(|(item, _)| item.tap.is_some())
        .map(|(item, (_, after))| (item, after))
        .collect();
    let (outputs_struct, forward_features) = if taps.is_empty() {
        (None, None)
    } else {
        let outputs = format_ident!("{}Outputs", name);
        let tap_fields = taps.iter().map(|(item, shape)| {
            let tap = item.tap.as_ref().expect("filtered on taps");
            let after = match &item.name {
                Some(n) => format!("`{n}`"),
                None => match &item.layer {
                    Layer::Builtin(b) => format!("the `{}` step", b.ident),
                    _ => "its step".to_owned(),
                },
            };
            let doc = format!(
                " The activation after {after}: `{}`.",
                doc_shape(shape, Some("N"))
            );
            quote!(#[doc = #doc] pub #tap: ::kiln::Tensor,)
        });
        let struct_doc = format!(
            " The named intermediate activations of [`{name}`], returned by \
             [`{name}::forward_features`]."
        );
        let last = network
            .items
            .iter()
            .rposition(|item| item.tap.is_some())
            .expect("taps is not empty");
        let body = steps.forward(&network.items[..=last], &x, Some(&outputs));
        let doc = format!(
            " Runs the network on a batch of shape `{batch_input}` up to its last marked \
             output and returns the marked activations.\n\n# Panics\n\nIf `x` is not of shape \
             `{batch_input}`."
        );
        (
            Some(quote! {
                #[doc = #struct_doc]
                #vis struct #outputs {
                    #(#tap_fields)*
                }
            }),
            Some(quote! {
                #[doc = #doc]
                #[track_caller]
                pub fn forward_features(&self, #x: &::kiln::Tensor) -> #outputs {
                    #check_input
                    #body
                }
            }),
        )
    };

    quote! {
        #(#attrs)*
        #separator
        #[doc = #summary]
        #[derive(::kiln::Module)]
        #vis struct #name #generics #where_clause {
            #(#fields)*
        }

        impl #impl_generics #name #ty_generics #where_clause {
            #[doc = #input_doc]
            pub const INPUT_SHAPE: [usize; #input_len] = [#(#input_tokens),*];
            #[doc = #output_doc]
            #output_const

            /// Creates the network on `device`, each layer initialised as PyTorch
            /// initialises it by default.
            pub fn new(device: &::kiln::Device) -> Self {
                #new_checks
                Self { #(#inits)* }
            }

            #[doc = #forward_doc]
            #[track_caller]
            pub fn forward(&self, #x: &::kiln::Tensor) -> ::kiln::Tensor {
                #check_input
                #forward_body
            }

            #forward_features
        }

        impl #impl_generics ::kiln::nn::Forward for #name #ty_generics #where_clause {
            #[track_caller]
            fn forward(&self, #x: &::kiln::Tensor) -> ::kiln::Tensor {
                #name::forward(self, #x)
            }
        }

        impl #impl_generics ::kiln::nn::static_shape::StaticShape for #name #ty_generics #where_clause {
            const INPUT_SHAPE: &'static [usize] = &[#(#input_tokens),*];
            const OUTPUT_SHAPE: &'static [usize] = #output_slice;
            #shape_checks
        }

        #outputs_struct
        #free_checks
    }
}

/// `[1, 28, 28]`, or `[N, 1, 28, 28]` with a batch name.
fn doc_shape(shape: &Shape, batch: Option<&str>) -> String {
    let mut dims: Vec<String> = batch.map(str::to_owned).into_iter().collect();
    match shape {
        Shape::Dims(d) => dims.extend(d.iter().map(Expr::text)),
        Shape::Opaque(o) => dims.push(format!("..{}", o.text)),
        Shape::Unknown => dims.push("?".to_owned()),
    }
    format!("[{}]", dims.join(", "))
}

fn field_type(layer: &Layer) -> TokenStream {
    match layer {
        Layer::Builtin(b) => {
            let ty = Ident::new(b.kind.type_name(), b.ident.span());
            quote_spanned!(b.ident.span()=> ::kiln::nn::#ty)
        }
        Layer::Group(g) => quote_spanned!(g.span=> ::kiln::nn::Sequential),
        Layer::Composed(ty) => ty.to_token_stream(),
        Layer::Parallel(_) | Layer::Invalid => quote!(()),
    }
}

fn pair(p: &Pair) -> TokenStream {
    let (h, w) = (p.h.tokens(), p.w.tokens());
    quote!([#h, #w])
}

/// The expression constructing a layer (uses `device`).
fn construct(layer: &Layer) -> TokenStream {
    match layer {
        Layer::Builtin(b) => construct_builtin(b),
        Layer::Group(g) => {
            let seq = Ident::new("seq", Span::mixed_site());
            let items = g.items.iter().map(|item| {
                let layer = construct(&item.layer);
                quote!(let #seq = #seq.push(#layer);)
            });
            quote_spanned! {g.span=> {
                let #seq = ::kiln::nn::Sequential::new();
                #(#items)*
                #seq
            }}
        }
        Layer::Composed(ty) => {
            let span = ty_span(ty);
            quote_spanned!(span=> <#ty>::new(device))
        }
        Layer::Parallel(_) | Layer::Invalid => quote!(()),
    }
}

/// Every composed module type, in groups too.
fn collect_composed<'a>(items: &'a [Item], out: &mut Vec<&'a syn::Type>) {
    for item in items {
        match &item.layer {
            Layer::Composed(ty) => out.push(ty),
            Layer::Group(g) => collect_composed(&g.items, out),
            Layer::Parallel(p) => {
                for path in &p.paths {
                    collect_composed(&path.items, out);
                }
            }
            _ => {}
        }
    }
}

fn ty_span(ty: &syn::Type) -> Span {
    ty.to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

fn construct_builtin(b: &Builtin) -> TokenStream {
    let span = b.ident.span();
    let ty = Ident::new(b.kind.type_name(), span);
    match &b.args {
        Args::Conv2d(c) => {
            let (i, o, k) = (
                c.in_channels.value.tokens(),
                c.out_channels.value.tokens(),
                pair(&c.kernel),
            );
            let mut options = quote_spanned!(span=> ::kiln::nn::Conv2dOptions::new(#k));
            for (name, value) in [
                ("stride", &c.stride),
                ("padding", &c.padding),
                ("dilation", &c.dilation),
            ] {
                if let Some(value) = value {
                    let method = Ident::new(name, span);
                    let value = pair(value);
                    options = quote_spanned!(span=> #options.#method(#value));
                }
            }
            if let Some(groups) = &c.groups {
                let g = groups.value.tokens();
                options = quote_spanned!(span=> #options.groups(#g));
            }
            if let Some(bias) = &c.bias {
                options = quote_spanned!(span=> #options.bias(#bias));
            }
            quote_spanned!(span=> ::kiln::nn::Conv2d::new(#i, #o, #options, device))
        }
        Args::Linear(l) => {
            let (i, o) = (l.in_features.value.tokens(), l.out_features.value.tokens());
            match &l.bias {
                Some(bias) => {
                    quote_spanned!(span=> ::kiln::nn::Linear::with_bias(#i, #o, #bias, device))
                }
                None => quote_spanned!(span=> ::kiln::nn::Linear::new(#i, #o, device)),
            }
        }
        Args::BatchNorm(n) => {
            let n = n.value.tokens();
            quote_spanned!(span=> ::kiln::nn::#ty::new(#n, device))
        }
        Args::Pool(p) => {
            let (k, s) = (pair(&p.kernel), pair(&p.stride()));
            let pad = pair(&p.padding.clone().unwrap_or_else(|| Pair::splat(0)));
            quote_spanned!(span=> ::kiln::nn::#ty::new(#k, #s, #pad))
        }
        Args::Adaptive(size) => {
            let size = pair(size);
            quote_spanned!(span=> ::kiln::nn::#ty::new(#size))
        }
        Args::Dropout(p) => quote_spanned!(span=> ::kiln::nn::#ty::new(#p)),
        Args::None => quote_spanned!(span=> ::kiln::nn::#ty::new()),
    }
}

/// The forward statements through `items`, starting from the `&Tensor`
/// named `x`. Without `outputs`, the last step is the body's value; with
/// it, marked activations are kept and returned in that struct.
/// What the forward's code generation reads besides the items: the
/// network's name (for messages) and the analysis's run-time checks.
struct Steps<'a> {
    network: &'a str,
    runtime: &'a HashMap<usize, Vec<RuntimeCheck>>,
}

impl Steps<'_> {
    fn forward(&self, items: &[Item], x: &Ident, outputs: Option<&Ident>) -> TokenStream {
        let mut body = TokenStream::new();
        let mut current = x.clone();
        let mut kept = Vec::new();
        for (i, item) in items.iter().enumerate() {
            body.extend(self.checks(item, &current));
            let step = match &item.layer {
                Layer::Parallel(p) => self.parallel(p, &current, x),
                Layer::Group(g)
                    if g.items
                        .iter()
                        .any(|i| self.runtime.contains_key(&item_key(i))) =>
                {
                    self.group(item, &g.items, &current, x)
                }
                _ => forward_step(item, &current),
            };
            let last = i + 1 == items.len();
            if last && outputs.is_none() {
                body.extend(step);
                return body;
            }
            body.extend(quote!(let #x = #step;));
            current = x.clone();
            if let (Some(tap), Some(_)) = (&item.tap, outputs) {
                body.extend(quote!(let #tap = #x;));
                current = tap.clone();
                kept.push(tap.clone());
            }
        }
        if let Some(outputs) = outputs {
            body.extend(quote!(#outputs { #(#kept),* }));
        }
        body
    }

    /// The run-time checks (see [`RuntimeCheck`]) to make on `input` before
    /// `item`.
    fn checks(&self, item: &Item, input: &Ident) -> TokenStream {
        let network = self.network;
        let checks = self.runtime.get(&item_key(item)).into_iter().flatten();
        checks
            .map(|check| match check {
                RuntimeCheck::Window { message, window } => {
                    let [k, s, p, d] = window.as_ref().each_ref().map(pair);
                    let check = helper_path("check_window");
                    quote!(#check(#network, #message, #input.shape(), #k, #s, #p, #d);)
                }
                RuntimeCheck::Features { message, expected } => {
                    let expected = expected.tokens();
                    let check = helper_path("check_features");
                    quote!(#check(#network, #message, #input.shape(), #expected);)
                }
            })
            .collect()
    }

    /// A group whose layers need run-time checks, as an expression reading
    /// `input`: its layers one by one (`self.group[i]`, the same modules its
    /// `Sequential` holds), each after its checks, instead of the
    /// `Sequential`'s own forward. A group nested in it runs whole.
    fn group(&self, item: &Item, items: &[Item], input: &Ident, x: &Ident) -> TokenStream {
        let name = item
            .name
            .as_ref()
            .expect("groups are named (checked by the parser)");
        let mut body = quote!(let #x: &::kiln::Tensor = &#input;);
        for (i, inner) in items.iter().enumerate() {
            body.extend(self.checks(inner, x));
            body.extend(quote!(let #x = ::kiln::nn::Forward::forward(&self.#name[#i], &#x);));
        }
        quote!({ #body #x })
    }

    /// A parallel block as an expression reading `input`: every path from the
    /// same input, a run-time check of the join (it names the block and both
    /// shapes; sizes declared `dyn` are only known then), then the sum or the
    /// concatenation along channels.
    fn parallel(&self, p: &Parallel, input: &Ident, x: &Ident) -> TokenStream {
        let network = self.network;
        let span = p.keyword.span();
        let ends: Vec<Ident> = (0..p.paths.len())
            .map(|i| Ident::new(&format!("path{i}"), Span::mixed_site()))
            .collect();
        let paths = p.paths.iter().zip(&ends).map(|(path, end)| {
        let value = match (&path.condition, path.items.as_slice()) {
            (_, []) => quote!(::kiln::Tensor::shallow_clone(#x)),
            (Some(_), [item]) => {
                let name = item.name.as_ref().expect("checked by the parser");
                let m = Ident::new("m", Span::mixed_site());
                quote! {
                    match &self.#name {
                        ::core::option::Option::Some(#m) => ::kiln::nn::Forward::forward(#m, #x),
                        ::core::option::Option::None => ::kiln::Tensor::shallow_clone(#x),
                    }
                }
            }
            _ => {
                let steps = self.forward(&path.items, x, None);
                quote!({ #steps })
            }
        };
        quote!(let #end: ::kiln::Tensor = #value;)
    });
        let labels = p.paths.iter().map(|path| path.label.as_str());
        let (what, join) = match p.join {
            Join::Sum if p.keyword == "residual" => ("residual block", quote!(false)),
            Join::Sum => ("branches -> sum", quote!(false)),
            Join::Cat => ("branches -> cat", quote!(true)),
        };
        let check = helper_path("check_join");
        let joined = match p.join {
            Join::Sum => {
                let first = &ends[0];
                let rest = &ends[1..];
                quote!({
                    let mut sum = #first;
                    #(sum = ::kiln::Tensor::add(&sum, &#rest);)*
                    sum
                })
            }
            Join::Cat => quote!(::kiln::Tensor::cat(&[#(&#ends),*], 1)),
        };
        quote_spanned! {span=> {
            let #x: &::kiln::Tensor = &#input;
            #(#paths)*
            #check(#network, #what, #join, &[#((#labels, #ends.shape())),*]);
            #joined
        }}
    }
}

/// `::kiln::nn::static_shape::name`.
fn helper_path(name: &str) -> TokenStream {
    let name = Ident::new(name, Span::call_site());
    quote!(::kiln::nn::static_shape::#name)
}

/// One step of the forward, as an expression reading `input`.
fn forward_step(item: &Item, input: &Ident) -> TokenStream {
    if let Some(name) = &item.name {
        let span = match &item.layer {
            Layer::Composed(ty) => ty_span(ty),
            Layer::Builtin(b) => b.ident.span(),
            _ => name.span(),
        };
        return quote_spanned!(span=> ::kiln::nn::Forward::forward(&self.#name, &#input));
    }
    let Layer::Builtin(b) = &item.layer else {
        // Unnamed groups and modules are rejected by the parser.
        return quote!(#input);
    };
    let span = b.ident.span();
    let functional = quote_spanned!(span=> ::kiln::nn::functional);
    match (&b.args, b.kind) {
        (Args::Pool(p), kind) => {
            let func = Ident::new(
                if kind == Kind::MaxPool2d {
                    "max_pool2d"
                } else {
                    "avg_pool2d"
                },
                span,
            );
            let (k, s) = (pair(&p.kernel), pair(&p.stride()));
            let pad = pair(&p.padding.clone().unwrap_or_else(|| Pair::splat(0)));
            quote_spanned!(span=> #functional::#func(&#input, #k, #s, #pad))
        }
        (Args::Adaptive(size), _) => {
            let size = pair(size);
            quote_spanned!(span=> #functional::adaptive_avg_pool2d(&#input, #size))
        }
        (Args::Dropout(p), _) => {
            quote_spanned!(span=> #functional::dropout(&#input, #p, self.training))
        }
        (_, Kind::Flatten) => quote_spanned!(span=> #input.flatten(1, -1)),
        (_, kind) => {
            let method = Ident::new(kind.step_name().unwrap_or("relu"), span);
            quote_spanned!(span=> #input.#method())
        }
    }
}

/// What stands in for the network when its declaration has errors: the
/// struct with its name, const generics and docs, `new` / `forward` /
/// `forward_features` generic enough to accept any use, and the traits a
/// layer needs (its `StaticShape` says `DECLARED_WITH_ERRORS`), so the only
/// errors shown are the declaration's.
pub fn stub(network: &Network) -> TokenStream {
    let Network {
        vis,
        name,
        generics,
        ..
    } = network;
    let docs = network.attrs.iter().filter(|a| a.path().is_ident("doc"));
    // Type and lifetime parameters were reported; left in, they would be
    // unused (and clash with the stub's own `T`).
    let mut generics = generics.clone();
    generics.params = generics
        .params
        .into_iter()
        .filter(|p| matches!(p, syn::GenericParam::Const(_)))
        .collect();
    generics.where_clause = None;
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let message = format!("`{name}` was declared with errors");
    // Duplicates were reported; left in, they would clash as fields.
    let mut taps: Vec<&Ident> = Vec::new();
    for tap in network.items.iter().filter_map(|i| i.tap.as_ref()) {
        if !taps.contains(&tap) {
            taps.push(tap);
        }
    }
    let features = (!taps.is_empty()).then(|| {
        let outputs = format_ident!("{}Outputs", name);
        quote! {
            #[allow(dead_code)]
            #vis struct #outputs<T> { #(pub #taps: T,)* }
            #[allow(dead_code)]
            impl #impl_generics #name #ty_generics #where_clause {
                pub fn forward_features<T>(&self, _x: &T) -> #outputs<T> {
                    ::core::panic!(#message)
                }
            }
        }
    });
    quote! {
        #(#docs)*
        #[allow(dead_code)]
        #[derive(::kiln::Module)]
        #vis struct #name #generics #where_clause {}

        #[allow(dead_code)]
        impl #impl_generics #name #ty_generics #where_clause {
            pub fn new<D: ?::core::marker::Sized>(_device: &D) -> Self {
                ::core::panic!(#message)
            }
            pub fn forward<T>(&self, _x: &T) -> T {
                ::core::panic!(#message)
            }
        }

        // So that networks using this one as a layer add no errors of their own.
        impl #impl_generics ::kiln::nn::Forward for #name #ty_generics #where_clause {
            fn forward(&self, _x: &::kiln::Tensor) -> ::kiln::Tensor {
                ::core::panic!(#message)
            }
        }
        impl #impl_generics ::kiln::nn::static_shape::StaticShape for #name #ty_generics #where_clause {
            const INPUT_SHAPE: &'static [usize] = &[];
            const OUTPUT_SHAPE: &'static [usize] = &[];
            const DECLARED_WITH_ERRORS: bool = true;
        }
        #features
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    /// Expands a declaration and parses the result as Rust items.
    fn expand(tokens: proc_macro2::TokenStream) -> syn::File {
        let out = super::super::network(tokens);
        syn::parse2(out).expect("the expansion is valid Rust")
    }

    #[test]
    fn expansions_are_valid_rust() {
        let file = expand(quote! {
            /// Docs.
            pub struct Net<const H: usize>(input: [3, 32, 32]) {
                features: [Conv2d(3 -> 8, kernel: 3, padding: 1), ReLU, MaxPool2d(2)] -> f,
                pool: AdaptiveAvgPool2d(4),
                flatten,
                dropout(0.2),
                fc1: Linear(8 * 4 * 4 -> H, bias: false),
                block: Block<H>,
                fc2: Linear(H -> 10),
            }
        });
        let names: Vec<String> = file
            .items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Struct(s) => Some(s.ident.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["Net", "NetOutputs"]);
    }

    #[test]
    fn a_declaration_with_errors_expands_to_errors_and_a_stub() {
        let file = expand(quote! {
            pub struct Net(input: [1, 28, 28]) {
                fc: Linear(10 -> 2),
            }
        });
        let text = quote!(#file).to_string();
        assert!(text.contains("compile_error"));
        assert!(text.contains("DECLARED_WITH_ERRORS"));
    }
}
