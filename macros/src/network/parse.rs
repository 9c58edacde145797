//! Parses a `network!` body into the [`model`](super::model), collecting
//! every error instead of stopping at the first: a malformed layer is
//! reported, skipped up to the next `,` and kept as [`Layer::Invalid`] so
//! the rest of the declaration is still checked.

use std::collections::HashMap;

use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, GenericParam, Generics, Ident, Token, Visibility};

use super::diagnostics::{Errors, closest, did_you_mean};
use super::expr::Expr;
use super::model::{
    Args, Builtin, Conv2dArgs, Dim, Group, Item, Join, Kind, Layer, LinearArgs, Network, Pair,
    Parallel, Path, PoolArgs,
};

/// Parses a declaration. `None` when not even the struct header could be
/// read (the errors say why); otherwise the model, with the errors found
/// on the way in `errors`.
pub fn parse(tokens: TokenStream, errors: &mut Errors) -> Option<Network> {
    let parser = |input: ParseStream| parse_network(input, errors);
    match parser.parse2(tokens) {
        Ok(network) => Some(network),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

fn parse_network(input: ParseStream, errors: &mut Errors) -> syn::Result<Network> {
    let attrs = input.call(Attribute::parse_outer)?;
    let vis: Visibility = input.parse()?;
    if !input.peek(Token![struct]) {
        return Err(input.error(
            "expected `struct`: network! declares a struct and its forward, e.g. \
             `pub struct LeNet(input: [1, 28, 28]) { conv1: Conv2d(1 -> 6, kernel: 5), relu, ... }`",
        ));
    }
    input.parse::<Token![struct]>()?;
    let name: Ident = input.parse()?;
    let mut generics: Generics = input.parse()?;
    check_generics(&generics, errors);

    let shape = if input.peek(syn::token::Paren) {
        let content;
        let paren = syn::parenthesized!(content in input);
        parse_input(&content, paren.span.join(), &name, errors)
    } else {
        errors.spanned(
            &name,
            format!(
                "missing input shape: declare the shape of one sample, without the batch \
                 dimension, after the name, e.g. `struct {name}(input: [1, 28, 28]) {{ ... }}`"
            ),
        );
        None
    };
    if input.peek(Token![where]) {
        generics.where_clause = Some(input.parse()?);
    }
    if !input.peek(syn::token::Brace) {
        return Err(input.error(
            "expected the layers in braces: `{ conv1: Conv2d(1 -> 6, kernel: 5), relu, ... }`",
        ));
    }
    let content;
    syn::braced!(content in input);
    let items = parse_items(&content, errors, Context::Top);
    if !input.is_empty() {
        errors.push(
            input.error("unexpected tokens after the network: `network!` declares one network"),
        );
        skip_rest(input);
    }

    let network = Network {
        attrs,
        vis,
        name,
        generics,
        input: shape,
        items,
    };
    validate(&network, errors);
    Ok(network)
}

/// Only const generics make sense: layers own their data and work on
/// `Tensor`s of any element type.
fn check_generics(generics: &Generics, errors: &mut Errors) {
    for param in &generics.params {
        if !matches!(param, GenericParam::Const(_)) {
            errors.spanned(
                param,
                "network! supports const generic parameters only, e.g. `const HIDDEN: usize`",
            );
        }
    }
}

/// `input: [1, 28, 28]`, inside the parentheses after the name.
fn parse_input(
    content: ParseStream,
    span: Span,
    name: &Ident,
    errors: &mut Errors,
) -> Option<Vec<Dim>> {
    let example = format!("`struct {name}(input: [1, 28, 28])`");
    if content.is_empty() {
        errors.at(
            span,
            format!("missing input shape: write the shape of one sample, e.g. {example}"),
        );
        return None;
    }
    let rest = |content: ParseStream| content.parse::<TokenStream>().unwrap_or_default();
    if !content.peek(Ident) {
        let tokens = rest(content);
        errors.spanned(
            tokens,
            format!("expected `input: [...]`, the shape of one sample, e.g. {example}"),
        );
        return None;
    }
    let key: Ident = content.parse().ok()?;
    if key != "input" {
        errors.spanned(
            &key,
            format!("expected `input: [...]`, the shape of one sample, e.g. {example}"),
        );
        rest(content);
        return None;
    }
    if content.parse::<Token![:]>().is_err() || !content.peek(syn::token::Bracket) {
        let tokens = rest(content);
        let tokens = if tokens.is_empty() {
            key.to_token_stream()
        } else {
            tokens
        };
        errors.spanned(
            tokens,
            format!(
                "the input shape is a list of sizes in brackets, without the batch \
                 dimension, e.g. {example}"
            ),
        );
        return None;
    }
    let bracket: proc_macro2::Group = content.parse().ok()?;
    let before = errors.len();
    let dims: Vec<Dim> = split_commas(bracket.stream())
        .into_iter()
        .filter_map(|tokens| parse_input_dim(tokens, errors))
        .collect();
    let _ = content.parse::<Option<Token![,]>>();
    if !content.is_empty() {
        let tokens = rest(content);
        errors.spanned(tokens, "unexpected tokens after the input shape");
    }
    for d in &dims {
        require_positive(&d.value, &d.tokens, "a dimension", errors);
    }
    if errors.len() > before {
        return None;
    }
    if dims.is_empty() {
        errors.at(
            bracket.span(),
            format!("the input shape needs at least one dimension, e.g. {example}"),
        );
        return None;
    }
    Some(dims)
}

/// One input dimension: a size, or `dyn H`, a size known only at run time.
fn parse_input_dim(tokens: TokenStream, errors: &mut Errors) -> Option<Dim> {
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    match trees.as_slice() {
        [TokenTree::Ident(kw), TokenTree::Ident(name)] if kw == "dyn" => Some(Dim {
            value: Expr::dynamic(name.to_string(), super::expr::Prec::Atom),
            tokens,
        }),
        [TokenTree::Ident(kw), ..] if kw == "dyn" => {
            errors.spanned(
                &tokens,
                "expected a name after `dyn`: a size known only at run time, e.g. `input: [3, dyn H, dyn W]`",
            );
            None
        }
        _ => parse_dim(tokens, "dimension", errors),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Directly in the network's body.
    Top,
    /// Inside a bracketed group.
    Group,
    /// Inside a path of a residual block or of branches.
    Path,
}

fn parse_items(content: ParseStream, errors: &mut Errors, context: Context) -> Vec<Item> {
    let mut items = Vec::new();
    while !content.is_empty() {
        match parse_item(content, errors, context) {
            Ok(item) => items.push(item),
            Err(e) => {
                errors.push(e);
                skip_item(content);
            }
        }
        if content.is_empty() {
            break;
        }
        if content.parse::<Token![,]>().is_err() {
            errors.push(content.error("expected `,` between layers"));
            skip_item(content);
            let _ = content.parse::<Option<Token![,]>>();
        }
    }
    items
}

fn parse_item(input: ParseStream, errors: &mut Errors, context: Context) -> syn::Result<Item> {
    let attrs = input.call(Attribute::parse_outer)?;
    if let Some(parallel) = parse_parallel(input, errors, context)? {
        let tap = parse_tap(input)?;
        return Ok(Item {
            attrs,
            vis: None,
            name: None,
            layer: parallel,
            tap,
        });
    }
    let vis = if input.peek(Token![pub]) {
        Some(input.parse::<Visibility>()?)
    } else {
        None
    };
    let name = if input.peek(Ident) && input.peek2(Token![:]) && !input.peek2(Token![::]) {
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        Some(name)
    } else {
        None
    };
    let layer = parse_layer(input, errors, context, name.is_some())?;
    let tap = parse_tap(input)?;
    Ok(Item {
        attrs,
        vis,
        name,
        layer,
        tap,
    })
}

/// `-> name` after an item.
fn parse_tap(input: ParseStream) -> syn::Result<Option<Ident>> {
    if !input.peek(Token![->]) {
        return Ok(None);
    }
    input.parse::<Token![->]>()?;
    Some(input.parse::<Ident>().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected the output's name after `->`, e.g. `relu -> h_relu1`",
        )
    }))
    .transpose()
}

/// `residual { .. } [shortcut [if COND] { .. }]` or
/// `branches { [label:] { .. }, .. } -> cat|sum`; `None` if the input does
/// not start with one.
fn parse_parallel(
    input: ParseStream,
    errors: &mut Errors,
    context: Context,
) -> syn::Result<Option<Layer>> {
    if !(input.peek(Ident) && input.peek2(syn::token::Brace)) {
        return Ok(None);
    }
    let keyword: Ident = input.fork().parse()?;
    if keyword != "residual" && keyword != "branches" {
        return Ok(None);
    }
    input.parse::<Ident>()?;
    let nested = context != Context::Top;
    let parallel = if keyword == "residual" {
        let content;
        syn::braced!(content in input);
        let items = parse_items(&content, errors, Context::Path);
        if items.is_empty() {
            errors.spanned(
                &keyword,
                "the residual path is empty: list its layers, e.g. \
                 `residual { conv1: Conv2d(64 -> 64, kernel: 3, padding: 1), .. }`",
            );
        }
        let mut paths = vec![Path {
            label: "the residual path".to_owned(),
            span: keyword.span(),
            items,
            condition: None,
        }];
        let shortcut = input.peek(Ident) && input.fork().parse::<Ident>()? == "shortcut";
        if shortcut {
            let kw: Ident = input.parse()?;
            let condition = if input.peek(Token![if]) {
                input.parse::<Token![if]>()?;
                let mut cond = TokenStream::new();
                while !input.is_empty() && !input.peek(syn::token::Brace) {
                    cond.extend([input.parse::<TokenTree>()?]);
                }
                if cond.is_empty() {
                    errors.spanned(&kw, "expected a condition after `shortcut if`");
                }
                Some(cond)
            } else {
                None
            };
            if !input.peek(syn::token::Brace) {
                return Err(input.error(
                    "expected the shortcut's layers in braces, e.g. \
                     `shortcut { downsample: [Conv2d(64 -> 128, kernel: 1, stride: 2, bias: false), BatchNorm2d(128)] }`",
                ));
            }
            let content;
            syn::braced!(content in input);
            let items = parse_items(&content, errors, Context::Path);
            if condition.is_some() && (items.len() != 1 || items[0].name.is_none()) {
                errors.spanned(
                    &kw,
                    "a conditional shortcut holds one named layer (an `Option` field), e.g. \
                     `shortcut if STRIDE != 1 || IN != OUT { downsample: [Conv2d(IN -> OUT, kernel: 1, stride: STRIDE, bias: false), BatchNorm2d(OUT)] }`",
                );
            }
            paths.push(Path {
                label: "the shortcut".to_owned(),
                span: kw.span(),
                items,
                condition,
            });
        } else {
            paths.push(Path {
                label: "the identity shortcut".to_owned(),
                span: keyword.span(),
                items: Vec::new(),
                condition: None,
            });
        }
        Parallel {
            join: Join::Sum,
            keyword: keyword.clone(),
            paths,
        }
    } else {
        let content;
        syn::braced!(content in input);
        let mut paths = Vec::new();
        while !content.is_empty() {
            let (label, span) = if content.peek(Ident) && content.peek2(Token![:]) {
                let label: Ident = content.parse()?;
                content.parse::<Token![:]>()?;
                (format!("branch `{label}`"), label.span())
            } else {
                (format!("branch {}", paths.len()), content.span())
            };
            if !content.peek(syn::token::Brace) {
                return Err(content.error(
                    "expected a branch in braces: `branches { a: { conv1: Conv2d(..), relu }, b: { .. } } -> cat`",
                ));
            }
            let inner;
            let brace = syn::braced!(inner in content);
            let span = if label.starts_with("branch `") {
                span
            } else {
                brace.span.join()
            };
            let items = parse_items(&inner, errors, Context::Path);
            paths.push(Path {
                label,
                span,
                items,
                condition: None,
            });
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        if paths.len() < 2 {
            errors.spanned(
                &keyword,
                "branches needs at least two paths, e.g. `branches { a: { .. }, b: { .. } } -> cat`",
            );
        }
        let fork = input.fork();
        let how = fork
            .parse::<Token![->]>()
            .and_then(|_| fork.parse::<Ident>())
            .ok();
        let join = match how.as_ref().map(Ident::to_string).as_deref() {
            Some("cat") => Some(Join::Cat),
            Some("sum") => Some(Join::Sum),
            _ => None,
        };
        if join.is_some() {
            input.parse::<Token![->]>()?;
            input.parse::<Ident>()?;
        }
        let Some(join) = join else {
            // Reported; the block is kept (as invalid) so the declaration
            // is not also reported as empty.
            errors.push(input.error(
                "expected how the branches are joined after them: `-> cat` (along channels) or `-> sum`",
            ));
            return Ok(Some(Layer::Invalid));
        };
        Parallel {
            join,
            keyword: keyword.clone(),
            paths,
        }
    };
    if nested {
        errors.spanned(
            &keyword,
            format!(
                "`{keyword}` blocks cannot be nested in a group or another block: declare the \
                 block as its own `network!` and use it as a layer (`layer1: [BasicBlock<64, 64, 1>, ..]`)"
            ),
        );
        return Ok(Some(Layer::Invalid));
    }
    Ok(Some(Layer::Parallel(Box::new(parallel))))
}

fn parse_layer(
    input: ParseStream,
    errors: &mut Errors,
    context: Context,
    named: bool,
) -> syn::Result<Layer> {
    if input.peek(syn::token::Bracket) {
        let content;
        let bracket = syn::bracketed!(content in input);
        let span = bracket.span.join();
        let items = parse_items(&content, errors, Context::Group);
        if context == Context::Group {
            errors.at(
                span,
                "groups cannot be nested: list the layers in the enclosing group",
            );
            return Ok(Layer::Invalid);
        }
        if items.is_empty() {
            errors.at(
                span,
                "this group is empty: list its layers, e.g. `[Conv2d(3 -> 64, kernel: 3), ReLU]`",
            );
            return Ok(Layer::Invalid);
        }
        return Ok(Layer::Group(Group { items, span }));
    }

    // A known layer, or an unknown one written like one.
    if input.peek(Ident) && !input.peek2(Token![::]) && !input.peek2(Token![<]) {
        let ident: Ident = input.fork().parse()?;
        let text = ident.to_string();
        if let Some(kind) = Kind::from_name(&text) {
            input.parse::<Ident>()?;
            let args = if input.peek(syn::token::Paren) {
                let content;
                let paren = syn::parenthesized!(content in input);
                Some(RawArgs::split(content.parse()?, paren.span.join()))
            } else {
                None
            };
            return Ok(build_builtin(kind, ident, args, errors));
        }
        let fork = input.fork();
        fork.parse::<Ident>()?;
        let has_args = fork.peek(syn::token::Paren);
        let lowercase = text.starts_with(|c: char| c.is_ascii_lowercase());
        let case_typo = Kind::all_names().any(|n| n.eq_ignore_ascii_case(&text));
        let unnamed_top = context != Context::Group && !named;
        if has_args || lowercase || case_typo || unnamed_top {
            input.parse::<Ident>()?;
            if has_args {
                input.parse::<proc_macro2::Group>()?;
            }
            errors.spanned(&ident, unknown_layer(&text, has_args, unnamed_top));
            return Ok(Layer::Invalid);
        }
    }

    if !input.peek(Ident::peek_any) && !input.peek(Token![::]) && !input.peek(Token![<]) {
        return Err(input.error(
            "expected a layer: `Conv2d(..)`, `Linear(..)`, a step such as `relu`, \
             a group `[..]` or a module type",
        ));
    }
    let ty: syn::Type = input.parse()?;
    if context != Context::Group && !named {
        errors.spanned(
            &ty,
            format!(
                "a module used as a layer needs a field name, e.g. `{}: {}`",
                field_name_for(&ty),
                super::shape::compact(ty.to_token_stream())
            ),
        );
        return Ok(Layer::Invalid);
    }
    Ok(Layer::Composed(ty))
}

/// `Encoder` → `encoder`, for examples in messages.
fn field_name_for(ty: &syn::Type) -> String {
    let name = match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map_or("layer".to_owned(), |s| s.ident.to_string()),
        _ => "layer".to_owned(),
    };
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

const LAYER_LIST: &str = "Conv2d, Linear, BatchNorm1d, BatchNorm2d, MaxPool2d, AvgPool2d, \
                          AdaptiveAvgPool2d, Dropout, Flatten, ReLU, Sigmoid, Tanh, GELU";

fn unknown_layer(text: &str, has_args: bool, unnamed_top: bool) -> String {
    if let Some(suggestion) = closest(text, Kind::all_names()) {
        return format!("unknown layer `{text}`; did you mean `{suggestion}`?");
    }
    let mut message = format!("unknown layer `{text}`; the layers are {LAYER_LIST}");
    if has_args {
        message.push_str(" (a module used as a layer is written as its type, without arguments)");
    } else if unnamed_top {
        let ty: syn::Type = syn::parse_str(text).unwrap_or_else(|_| syn::parse_quote!(Layer));
        message.push_str(&format!(
            " (a module used as a layer needs a field name, e.g. `{}: {text}`)",
            field_name_for(&ty)
        ));
    }
    message
}

/// Skips to the next `,` outside angle brackets (error recovery).
fn skip_item(input: ParseStream) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        let mut depth = 0usize;
        let mut after_minus = false;
        while let Some((tt, next)) = rest.token_tree() {
            if let TokenTree::Punct(p) = &tt {
                match p.as_char() {
                    ',' if depth == 0 => return Ok(((), rest)),
                    '<' => depth += 1,
                    '>' if !after_minus => depth = depth.saturating_sub(1),
                    _ => {}
                }
                after_minus = p.as_char() == '-' && p.spacing() == Spacing::Joint;
            } else {
                after_minus = false;
            }
            rest = next;
        }
        Ok(((), rest))
    });
}

fn skip_rest(input: ParseStream) {
    let _ = input.parse::<TokenStream>();
}

/// Splits at top-level commas, dropping empty pieces (a trailing comma).
fn split_commas(tokens: TokenStream) -> Vec<TokenStream> {
    let mut pieces = Vec::new();
    let mut current = TokenStream::new();
    for tt in tokens {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ',' => {
                pieces.push(std::mem::take(&mut current));
            }
            _ => current.extend([tt]),
        }
    }
    pieces.push(current);
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// Splits `a -> b` at its first top-level `->`.
fn split_arrow(tokens: &TokenStream) -> Option<(TokenStream, TokenStream)> {
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    let at = trees.windows(2).position(|w| match (&w[0], &w[1]) {
        (TokenTree::Punct(a), TokenTree::Punct(b)) => {
            a.as_char() == '-' && a.spacing() == Spacing::Joint && b.as_char() == '>'
        }
        _ => false,
    })?;
    Some((
        trees[..at].iter().cloned().collect(),
        trees[at + 2..].iter().cloned().collect(),
    ))
}

/// A size written in the declaration. `what` names it in errors.
fn parse_dim(tokens: TokenStream, what: &str, errors: &mut Errors) -> Option<Dim> {
    if tokens.is_empty() {
        return None;
    }
    let expr: syn::Expr = match syn::parse2(tokens.clone()) {
        Ok(e) => e,
        Err(_) => {
            errors.spanned(
                &tokens,
                format!("expected a {what}: an integer, a constant or const generic, or `+ - * / %` of those"),
            );
            return None;
        }
    };
    let value = Expr::from_syn(&expr, errors)?;
    Some(Dim { value, tokens })
}

/// `5`, `(3, 5)` or `[3, 5]`.
fn parse_pair(tokens: TokenStream, what: &str, errors: &mut Errors) -> Option<Pair> {
    let mut trees = tokens.clone().into_iter();
    if let (Some(TokenTree::Group(group)), None) = (trees.next(), trees.next())
        && matches!(
            group.delimiter(),
            Delimiter::Parenthesis | Delimiter::Bracket
        )
    {
        let parts = split_commas(group.stream());
        return match parts.as_slice() {
            [single] => {
                let d = parse_dim(single.clone(), what, errors)?;
                Some(Pair {
                    h: d.value.clone(),
                    w: d.value,
                    tokens,
                })
            }
            [h, w] => {
                let h = parse_dim(h.clone(), what, errors);
                let w = parse_dim(w.clone(), what, errors);
                Some(Pair {
                    h: h?.value,
                    w: w?.value,
                    tokens,
                })
            }
            _ => {
                errors.spanned(
                    &tokens,
                    format!("expected one {what} or a pair `(height, width)`"),
                );
                None
            }
        };
    }
    let d = parse_dim(tokens, what, errors)?;
    Some(Pair {
        h: d.value.clone(),
        w: d.value,
        tokens: d.tokens,
    })
}

/// Reports a literal zero.
fn require_positive(value: &Expr, tokens: &TokenStream, what: &str, errors: &mut Errors) {
    if value.lit() == Some(0) {
        errors.spanned(tokens, format!("{what} must be at least 1"));
    }
}

/// The raw arguments of `Layer(...)`: positional ones and `name: value`
/// options.
struct RawArgs {
    positional: Vec<TokenStream>,
    named: Vec<(Ident, TokenStream)>,
    span: Span,
}

impl RawArgs {
    fn split(tokens: TokenStream, span: Span) -> RawArgs {
        let mut positional = Vec::new();
        let mut named = Vec::new();
        for piece in split_commas(tokens) {
            let trees: Vec<TokenTree> = piece.clone().into_iter().collect();
            match trees.as_slice() {
                [TokenTree::Ident(key), TokenTree::Punct(colon), value @ ..]
                    if colon.as_char() == ':' && colon.spacing() == Spacing::Alone =>
                {
                    named.push((key.clone(), value.iter().cloned().collect()));
                }
                _ => positional.push(piece),
            }
        }
        RawArgs {
            positional,
            named,
            span,
        }
    }
}

/// The arguments of one layer, checked against what the layer accepts.
struct Options {
    kind: Kind,
    positional: Vec<TokenStream>,
    named: HashMap<&'static str, TokenStream>,
    /// An unknown option was reported: requirements are not reported on
    /// top of it (the unknown option is likely the misspelt requirement).
    had_unknown: bool,
    /// `in_features: ..` was reported as "use an arrow" (once per layer).
    reported_sizes: bool,
    span: Option<Span>,
}

/// Options each layer accepts: the canonical name, then aliases.
fn accepted(kind: Kind) -> &'static [(&'static str, &'static [&'static str])] {
    const WINDOW: &[(&str, &[&str])] = &[
        ("kernel", &["kernel_size"]),
        ("stride", &[]),
        ("padding", &[]),
    ];
    match kind {
        Kind::Conv2d => &[
            ("kernel", &["kernel_size"]),
            ("stride", &[]),
            ("padding", &[]),
            ("dilation", &[]),
            ("groups", &[]),
            ("bias", &[]),
        ],
        Kind::Linear => &[("bias", &[])],
        Kind::MaxPool2d | Kind::AvgPool2d => WINDOW,
        Kind::AdaptiveAvgPool2d => &[("output_size", &[])],
        Kind::Dropout => &[("p", &[]), ("inplace", &[])],
        Kind::Relu => &[("inplace", &[])],
        Kind::BatchNorm2d
        | Kind::BatchNorm1d
        | Kind::Flatten
        | Kind::Sigmoid
        | Kind::Tanh
        | Kind::Gelu => &[],
    }
}

/// How a layer is written, for messages.
fn usage(kind: Kind) -> &'static str {
    match kind {
        Kind::Conv2d => {
            "`Conv2d(in_channels -> out_channels, kernel: 3)`, optionally with \
             `stride`, `padding`, `dilation`, `groups`, `bias`"
        }
        Kind::Linear => "`Linear(in_features -> out_features)`, optionally with `bias: false`",
        Kind::BatchNorm2d => "`BatchNorm2d(num_channels)`",
        Kind::BatchNorm1d => "`BatchNorm1d(num_features)`",
        Kind::MaxPool2d => "`MaxPool2d(kernel)`, optionally with `stride`, `padding`",
        Kind::AvgPool2d => "`AvgPool2d(kernel)`, optionally with `stride`, `padding`",
        Kind::AdaptiveAvgPool2d => "`AdaptiveAvgPool2d((height, width))`",
        Kind::Dropout => "`Dropout(p)`",
        Kind::Flatten => "`Flatten` (it keeps the batch dimension and flattens the rest)",
        Kind::Relu => "`ReLU`",
        Kind::Sigmoid => "`Sigmoid`",
        Kind::Tanh => "`Tanh`",
        Kind::Gelu => "`GELU`",
    }
}

impl Options {
    fn new(kind: Kind, ident: &Ident, raw: Option<RawArgs>, errors: &mut Errors) -> Options {
        let mut options = Options {
            kind,
            positional: Vec::new(),
            named: HashMap::new(),
            had_unknown: false,
            reported_sizes: false,
            span: None,
        };
        let Some(raw) = raw else {
            return options;
        };
        options.span = Some(raw.span);
        options.positional = raw.positional;
        let spec = accepted(kind);
        for (key, value) in raw.named {
            let text = key.to_string();
            let Some((canonical, _)) = spec
                .iter()
                .find(|(name, aliases)| *name == text || aliases.contains(&text.as_str()))
            else {
                options.had_unknown = true;
                if matches!(kind, Kind::Conv2d | Kind::Linear)
                    && matches!(
                        text.as_str(),
                        "in_features" | "out_features" | "in_channels" | "out_channels"
                    )
                {
                    if !options.reported_sizes {
                        options.reported_sizes = true;
                        errors.spanned(
                            &key,
                            format!("sizes are written with an arrow: {}", usage(kind)),
                        );
                    }
                    continue;
                }
                let names = spec.iter().map(|(n, _)| *n);
                let list = if spec.is_empty() {
                    format!("{ident} takes no options")
                } else {
                    format!(
                        "{ident} accepts {}",
                        spec.iter()
                            .map(|(n, _)| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                errors.spanned(
                    &key,
                    format!(
                        "unknown option `{text}` for {ident}{} ({list})",
                        did_you_mean(&text, names)
                    ),
                );
                continue;
            };
            if value.is_empty() {
                errors.spanned(&key, format!("missing value for `{text}`"));
                continue;
            }
            if options.named.insert(canonical, value).is_some() {
                errors.spanned(&key, format!("`{canonical}` is given twice"));
            }
        }
        options
    }

    /// Takes an option, or the positional argument at `index` (PyTorch's
    /// order) when `index` is given.
    fn take(
        &mut self,
        name: &'static str,
        index: Option<usize>,
        errors: &mut Errors,
    ) -> Option<TokenStream> {
        let named = self.named.remove(name);
        let positional = index.and_then(|i| self.positional.get(i).cloned());
        match (named, positional) {
            (Some(n), Some(_)) => {
                errors.spanned(
                    &n,
                    format!("`{name}` is given twice: as an argument and as an option"),
                );
                Some(n)
            }
            (n, p) => n.or(p),
        }
    }

    /// Reports positional arguments past the first `max`.
    fn check_positional(&self, max: usize, errors: &mut Errors) {
        if self.positional.len() > max {
            let extra: TokenStream = self.positional[max..].iter().cloned().collect();
            let message = if max == 0 {
                format!(
                    "{} takes no arguments; it is written {}",
                    self.kind.type_name(),
                    usage(self.kind)
                )
            } else {
                format!("too many arguments; write {}", usage(self.kind))
            };
            errors.spanned(extra, message);
        }
    }

    /// Reports a missing required argument, unless an unknown option was
    /// already reported (most likely the requirement, misspelt).
    fn missing(&self, ident: &Ident, what: &str, errors: &mut Errors) {
        if !self.had_unknown {
            let span = self.span.unwrap_or_else(|| ident.span());
            errors.at(
                span,
                format!("{ident} needs {what}: write {}", usage(self.kind)),
            );
        }
    }
}

/// `p` of a dropout: a float literal in `[0, 1]`, or any `f64` expression.
fn parse_probability(tokens: TokenStream, errors: &mut Errors) -> Option<TokenStream> {
    let expr: syn::Expr = match syn::parse2(tokens.clone()) {
        Ok(e) => e,
        Err(_) => {
            errors.spanned(&tokens, "expected a probability, e.g. `0.5`");
            return None;
        }
    };
    let value = match &expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Float(f),
            ..
        }) => f.base10_parse::<f64>().ok(),
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => i.base10_parse::<u64>().ok().map(|v| v as f64),
        _ => return Some(tokens),
    };
    match value {
        Some(p) if (0.0..=1.0).contains(&p) => {
            Some(proc_macro2::Literal::f64_unsuffixed(p).into_token_stream())
        }
        _ => {
            errors.spanned(&tokens, "a dropout probability must be between 0 and 1");
            None
        }
    }
}

/// `bias: true/false` or a `bool` expression.
fn parse_bool(tokens: TokenStream, errors: &mut Errors) -> Option<TokenStream> {
    match syn::parse2::<syn::Lit>(tokens.clone()) {
        Ok(syn::Lit::Bool(_)) | Err(_) => Some(tokens),
        Ok(_) => {
            errors.spanned(&tokens, "expected `true` or `false`");
            None
        }
    }
}

/// Interprets the arguments of a known layer.
fn build_builtin(kind: Kind, ident: Ident, raw: Option<RawArgs>, errors: &mut Errors) -> Layer {
    let before = errors.len();
    let mut o = Options::new(kind, &ident, raw, errors);
    let args = match kind {
        Kind::Conv2d | Kind::Linear => {
            let channels = match o.positional.as_slice() {
                [] => {
                    let what = if kind == Kind::Conv2d {
                        "its channel counts"
                    } else {
                        "its feature counts"
                    };
                    o.missing(&ident, what, errors);
                    None
                }
                [first, rest @ ..] => match split_arrow(first) {
                    Some((a, b)) if !a.is_empty() && !b.is_empty() => {
                        o.check_positional(1, errors);
                        let noun = if kind == Kind::Conv2d {
                            "channel count"
                        } else {
                            "feature count"
                        };
                        let a = parse_dim(a, noun, errors);
                        let b = parse_dim(b, noun, errors);
                        for d in a.iter().chain(&b) {
                            require_positive(&d.value, &d.tokens, &format!("a {noun}"), errors);
                        }
                        a.zip(b)
                    }
                    _ => {
                        let all: TokenStream =
                            std::iter::once(first).chain(rest).cloned().collect();
                        let (from, to) = if kind == Kind::Conv2d {
                            ("in_channels", "out_channels")
                        } else {
                            ("in_features", "out_features")
                        };
                        errors.spanned(
                            all,
                            format!("expected `{from} -> {to}`: write {}", usage(kind)),
                        );
                        None
                    }
                },
            };
            if kind == Kind::Linear {
                let bias = o
                    .take("bias", None, errors)
                    .and_then(|t| parse_bool(t, errors));
                channels.map(|(in_features, out_features)| {
                    Args::Linear(LinearArgs {
                        in_features,
                        out_features,
                        bias,
                    })
                })
            } else {
                let kernel = o.take("kernel", None, errors);
                if kernel.is_none() {
                    o.missing(&ident, "a kernel size", errors);
                }
                let kernel = kernel.and_then(|t| parse_pair(t, "kernel size", errors));
                let stride = take_pair(&mut o, "stride", errors);
                let padding = take_pair(&mut o, "padding", errors);
                let dilation = take_pair(&mut o, "dilation", errors);
                let groups = o
                    .take("groups", None, errors)
                    .and_then(|t| parse_dim(t, "group count", errors));
                let bias = o
                    .take("bias", None, errors)
                    .and_then(|t| parse_bool(t, errors));
                for (p, what) in [
                    (&kernel, "a kernel size"),
                    (&stride, "a stride"),
                    (&dilation, "a dilation"),
                ] {
                    if let Some(p) = p {
                        require_positive(&p.h, &p.tokens, what, errors);
                        if p.h.lit() != Some(0) {
                            require_positive(&p.w, &p.tokens, what, errors);
                        }
                    }
                }
                if let Some(g) = &groups {
                    require_positive(&g.value, &g.tokens, "the group count", errors);
                }
                match (channels, kernel) {
                    (Some((in_channels, out_channels)), Some(kernel)) => {
                        Some(Args::Conv2d(Box::new(Conv2dArgs {
                            in_channels,
                            out_channels,
                            kernel,
                            stride,
                            padding,
                            dilation,
                            groups,
                            bias,
                        })))
                    }
                    _ => None,
                }
            }
        }
        Kind::BatchNorm2d | Kind::BatchNorm1d => {
            o.check_positional(1, errors);
            match o.positional.first().cloned() {
                Some(t) => parse_dim(t, "feature count", errors).map(|d| {
                    require_positive(&d.value, &d.tokens, "the feature count", errors);
                    Args::BatchNorm(d)
                }),
                None => {
                    o.missing(&ident, "its number of channels", errors);
                    None
                }
            }
        }
        Kind::MaxPool2d | Kind::AvgPool2d => {
            o.check_positional(3, errors);
            let kernel = o.take("kernel", Some(0), errors);
            if kernel.is_none() {
                o.missing(&ident, "a window size", errors);
            }
            let kernel = kernel.and_then(|t| parse_pair(t, "window size", errors));
            let stride = o
                .take("stride", Some(1), errors)
                .and_then(|t| parse_pair(t, "stride", errors));
            let padding = o
                .take("padding", Some(2), errors)
                .and_then(|t| parse_pair(t, "padding", errors));
            if let Some(k) = &kernel {
                require_positive(&k.h, &k.tokens, "a window size", errors);
            }
            if let Some(s) = &stride {
                require_positive(&s.h, &s.tokens, "a stride", errors);
            }
            if let (Some(k), Some(p)) = (&kernel, &padding) {
                for (k, p) in [(&k.h, &p.h), (&k.w, &p.w)] {
                    if let (Some(k), Some(pv)) = (k.lit(), p.lit())
                        && pv * 2 > k
                    {
                        errors.spanned(
                            p_tokens(padding.as_ref()),
                            format!("padding {pv} is more than half the {k}-wide window (PyTorch rejects it)"),
                        );
                        break;
                    }
                }
            }
            kernel.map(|kernel| {
                Args::Pool(PoolArgs {
                    kernel,
                    stride,
                    padding,
                })
            })
        }
        Kind::AdaptiveAvgPool2d => {
            o.check_positional(1, errors);
            match o.take("output_size", Some(0), errors) {
                Some(t) => parse_pair(t, "output size", errors).map(|p| {
                    require_positive(&p.h, &p.tokens, "an output size", errors);
                    require_positive(&p.w, &p.tokens, "an output size", errors);
                    Args::Adaptive(p)
                }),
                None => {
                    o.missing(&ident, "an output size", errors);
                    None
                }
            }
        }
        Kind::Dropout => {
            o.check_positional(1, errors);
            o.named.remove("inplace");
            match o.take("p", Some(0), errors) {
                Some(t) => parse_probability(t, errors).map(Args::Dropout),
                None => Some(Args::Dropout(quote::quote!(0.5))),
            }
        }
        Kind::Flatten | Kind::Relu | Kind::Sigmoid | Kind::Tanh | Kind::Gelu => {
            o.check_positional(0, errors);
            Some(Args::None)
        }
    };
    match args {
        Some(args) if errors.len() == before => {
            Layer::Builtin(Box::new(Builtin { kind, ident, args }))
        }
        _ => Layer::Invalid,
    }
}

fn take_pair(o: &mut Options, name: &'static str, errors: &mut Errors) -> Option<Pair> {
    o.take(name, None, errors)
        .and_then(|t| parse_pair(t, name, errors))
}

fn p_tokens(p: Option<&Pair>) -> TokenStream {
    p.map(|p| p.tokens.clone()).unwrap_or_default()
}

fn is_doc(attr: &Attribute) -> bool {
    attr.path().is_ident("doc")
}

/// Checks that need the whole declaration: names, where unnamed steps and
/// groups may appear, outputs.
fn validate(network: &Network, errors: &mut Errors) {
    if network.items.is_empty() {
        errors.spanned(
            &network.name,
            "a network needs at least one layer, e.g. `{ fc: Linear(784 -> 10) }`",
        );
    }
    let mut names = Names {
        training_flag: network.needs_training_flag(),
        fields: HashMap::new(),
        taps: HashMap::new(),
    };
    validate_items(&network.items, false, &mut names, errors);
}

/// The names seen so far in one declaration.
struct Names<'a> {
    training_flag: bool,
    fields: HashMap<String, &'a Ident>,
    taps: HashMap<String, &'a Ident>,
}

/// The rules for the items of the body or of a path of a parallel block
/// (`in_path`).
fn validate_items<'a>(
    items: &'a [Item],
    in_path: bool,
    names: &mut Names<'a>,
    errors: &mut Errors,
) {
    for item in items {
        if let Some(tap) = &item.tap {
            if in_path {
                errors.spanned(
                    tap,
                    "an output cannot be taken inside a residual block or branch: mark the \
                     whole block with `-> name`",
                );
            } else if names.taps.insert(tap.to_string(), tap).is_some() {
                errors.spanned(tap, format!("duplicate output name `{tap}`"));
            }
        }
        match &item.name {
            Some(name) => {
                if names.fields.insert(name.to_string(), name).is_some() {
                    errors.spanned(
                        name,
                        format!(
                            "duplicate layer name `{name}`: an earlier layer already uses it \
                             (each named layer becomes a field)"
                        ),
                    );
                } else if names.training_flag && name == "training" {
                    errors.spanned(
                        name,
                        "the name `training` is taken by the train/eval flag that the inline \
                         `dropout` step needs; rename this layer",
                    );
                }
            }
            None => {
                if let Some(vis) = &item.vis {
                    errors.spanned(vis, "an unnamed step has no field to make public");
                }
                if let Some(attr) = item.attrs.iter().find(|a| !is_doc(a)) {
                    errors.spanned(
                        attr,
                        "attributes apply to fields, and an unnamed step has none; name the layer to keep it",
                    );
                }
                match &item.layer {
                    Layer::Builtin(b) if b.kind.has_state() => {
                        let example = match b.kind {
                            Kind::Conv2d => "conv1",
                            Kind::Linear => "fc1",
                            _ => "bn1",
                        };
                        errors.spanned(
                            &b.ident,
                            format!(
                                "{} has parameters that are saved by name, so it needs a field name, \
                                 e.g. `{example}: {}(..)`",
                                b.kind.type_name(),
                                b.kind.type_name()
                            ),
                        );
                    }
                    Layer::Group(g) => errors.at(
                        g.span,
                        "a group needs a field name, e.g. `features: [..]`: its layers are saved \
                         as `features.0.weight`, `features.1.running_mean`, …",
                    ),
                    _ => {}
                }
            }
        }
        match &item.layer {
            Layer::Group(group) => validate_group(group, errors),
            Layer::Parallel(p) => {
                for path in &p.paths {
                    validate_items(&path.items, true, names, errors);
                }
            }
            _ => {}
        }
    }
}

fn validate_group(group: &Group, errors: &mut Errors) {
    for item in &group.items {
        if let Some(name) = &item.name {
            errors.spanned(
                name,
                "layers in a group are numbered (`.0`, `.1`, …) like torch.nn.Sequential, so they take no name",
            );
        }
        if let Some(vis) = &item.vis {
            errors.spanned(
                vis,
                "layers in a group are not fields, so they take no visibility",
            );
        }
        if let Some(attr) = item.attrs.iter().find(|a| !is_doc(a)) {
            errors.spanned(
                attr,
                "layers in a group are not fields, so they take no attributes",
            );
        }
        if let Some(tap) = &item.tap {
            errors.spanned(
                tap,
                "an output cannot be taken inside a group: end the group after this layer, \
                 mark the group with `-> name` and continue in a new group",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors_of(tokens: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        parse(tokens, &mut errors);
        errors.messages()
    }

    #[test]
    fn parses_lenet() {
        let mut errors = Errors::default();
        let net = parse(
            quote! {
                /// LeNet.
                pub struct LeNet(input: [1, 28, 28]) {
                    conv1: Conv2d(1 -> 6, kernel: 5, padding: 2),
                    relu,
                    max_pool2d(2),
                    flatten,
                    fc1: Linear(16 * 5 * 5 -> 120, bias: false) -> hidden,
                    features: [Conv2d(3 -> 64, kernel: (3, 5)), ReLU, MaxPool2d(2, stride: 1)],
                    block: Block<32, 4>,
                    enc: crate::models::Encoder,
                }
            },
            &mut errors,
        )
        .unwrap();
        assert!(errors.is_empty(), "{:?}", errors.messages());
        assert_eq!(net.items.len(), 8);
        assert_eq!(net.input.as_ref().unwrap().len(), 3);
        let Layer::Builtin(fc1) = &net.items[4].layer else {
            panic!()
        };
        let Args::Linear(l) = &fc1.args else { panic!() };
        assert_eq!(l.in_features.value.lit(), Some(400));
        assert_eq!(net.items[4].tap.as_ref().unwrap(), "hidden");
        let Layer::Group(g) = &net.items[5].layer else {
            panic!()
        };
        assert_eq!(g.items.len(), 3);
        assert!(matches!(net.items[6].layer, Layer::Composed(_)));
        assert!(matches!(net.items[7].layer, Layer::Composed(_)));
    }

    #[test]
    fn reports_every_error() {
        let errors = errors_of(quote! {
            struct Net(input: [1, 28, 28]) {
                conv1: Conv2D(1 -> 6, kernel: 5),
                conv2: Conv2d(6 -> 16, kernal: 5),
                Conv2d(16 -> 16, kernel: 3),
                conv2: Linear(1, 2),
                relu,
            }
        });
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert_eq!(errors[0], "unknown layer `Conv2D`; did you mean `Conv2d`?");
        assert!(
            errors[1].starts_with("unknown option `kernal` for Conv2d; did you mean `kernel`?")
        );
        assert!(errors[2].starts_with("expected `in_features -> out_features`"));
        assert!(errors[3].starts_with("Conv2d has parameters that are saved by name"));
        assert!(errors[4].starts_with("duplicate layer name `conv2`"));
    }

    #[test]
    fn input_shape_errors() {
        assert!(errors_of(quote!(struct N { relu }))[0].starts_with("missing input shape"));
        assert!(
            errors_of(quote!(struct N(inptu: [1]) { relu }))[0]
                .starts_with("expected `input: [...]`")
        );
        assert!(
            errors_of(quote!(struct N(input: 28) { relu }))[0]
                .starts_with("the input shape is a list")
        );
        assert!(
            errors_of(quote!(struct N(input: []) { relu }))[0].contains("at least one dimension")
        );
        assert!(errors_of(quote!(struct N(input: [0]) { relu }))[0].contains("at least 1"));
    }

    #[test]
    fn recovers_after_a_syntax_error() {
        let errors = errors_of(quote! {
            struct Net(input: [4]) {
                fc1: Linear(4 -> 4) extra tokens,
                fc2: Linear(4 -> 4, bias: 3),
            }
        });
        assert_eq!(
            errors,
            ["expected `,` between layers", "expected `true` or `false`"]
        );
    }
}
