//! Shape inference: follows the activation's shape (batch dimension left
//! out) from the declared input through every layer. A mismatch that the
//! declaration decides is reported at once; one that only the compiler can
//! decide (const generics, constants, composed modules' declared shapes)
//! becomes a [`Deferred`] const assertion with the same wording.

use std::collections::HashMap;
use std::rc::Rc;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};

use super::diagnostics::{Chain, Errors, count};
use super::expr::{Cmp, Expr, Window, window};
use super::model::{Args, Builtin, Item, Join, Kind, Layer, Network, Pair, Parallel, first_span};

/// The shape of one sample.
#[derive(Clone)]
pub enum Shape {
    /// Rank known while expanding.
    Dims(Vec<Expr>),
    /// A composed module's `OUTPUT_SHAPE`: rank known to the compiler only.
    Opaque(Rc<Opaque>),
    /// Undetermined after an earlier error.
    Unknown,
}

/// `<T as StaticShape>::OUTPUT_SHAPE`.
pub struct Opaque {
    /// A `&'static [usize]` const expression.
    pub tokens: TokenStream,
    /// `Encoder::OUTPUT_SHAPE`, for messages.
    pub text: String,
    /// Whether the type mentions the network's const generics (then its
    /// length cannot size an array on stable Rust).
    pub generic: bool,
}

impl Shape {
    /// `[1,28,28]`.
    pub fn text(&self) -> String {
        match self {
            Shape::Dims(dims) => {
                let dims: Vec<String> = dims.iter().map(Expr::text).collect();
                format!("[{}]", dims.join(","))
            }
            Shape::Opaque(o) => o.text.clone(),
            Shape::Unknown => "[?]".to_owned(),
        }
    }

    /// A `&'static [usize]` expression for const assertions; `None` if
    /// unknown.
    fn slice_tokens(&self) -> Option<TokenStream> {
        match self {
            Shape::Dims(dims) if dims.iter().any(Expr::is_unknown) => None,
            Shape::Dims(dims) => {
                let dims = dims.iter().map(Expr::tokens);
                Some(quote!(&[#(#dims),*]))
            }
            Shape::Opaque(o) => Some(o.tokens.clone()),
            Shape::Unknown => None,
        }
    }
}

/// A check only the compiler can decide: `assert!(cond, message)` in a
/// const context, spanned on the offending argument.
pub struct Deferred {
    pub span: Span,
    pub cond: TokenStream,
    pub message: String,
}

/// A rule that involves a size declared `dyn`, so that only the forward
/// can decide it: expansion calls a `::kiln::nn::static_shape` check right
/// before the layer, and its panic names the network, the layer, the rule
/// and the numbers of that forward.
pub enum RuntimeCheck {
    /// A convolution or pooling window must fit the input
    /// (`check_window`).
    Window {
        message: String,
        /// The kernel, stride, padding and dilation.
        window: Box<[Pair; 4]>,
    },
    /// A `Linear` after a `flatten` of dyn sizes: the features must be
    /// `in_features` (`check_features`).
    Features { message: String, expected: Expr },
}

/// Identifies an [`Item`] of the network being expanded: analysis and
/// expansion walk the same parsed items, so their address is their name.
pub fn item_key(item: &Item) -> usize {
    item as *const Item as usize
}

/// What expansion needs from the analysis.
pub struct Analysis {
    pub input: Shape,
    pub output: Shape,
    pub checks: Vec<Deferred>,
    /// The shapes before and after each top-level item.
    pub items: Vec<(Shape, Shape)>,
    /// The shapes before and after each named item (paths of parallel
    /// blocks included), by field name.
    pub fields: HashMap<String, (Shape, Shape)>,
    /// The run-time checks to make before an item, by [`item_key`].
    pub runtime: HashMap<usize, Vec<RuntimeCheck>>,
}

/// Follows the shapes through `network`, reporting mismatches to `errors`.
pub fn analyze(network: &Network, errors: &mut Errors) -> Analysis {
    let input = match &network.input {
        Some(dims) => Shape::Dims(dims.iter().map(|d| d.value.clone()).collect()),
        None => Shape::Unknown,
    };
    let mut chain = Chain::default();
    chain.push("input", input.text());
    let mut analyzer = Analyzer {
        errors,
        checks: Vec::new(),
        chain,
        const_params: network.const_params(),
        fields: HashMap::new(),
        runtime: HashMap::new(),
        current: 0,
    };
    let mut shape = input.clone();
    let mut items = Vec::with_capacity(network.items.len());
    for item in &network.items {
        let before = shape.clone();
        shape = analyzer.item(item, None, shape);
        items.push((before, shape.clone()));
    }
    Analysis {
        input,
        output: shape,
        checks: analyzer.checks,
        items,
        fields: analyzer.fields,
        runtime: analyzer.runtime,
    }
}

struct Analyzer<'a> {
    errors: &'a mut Errors,
    checks: Vec<Deferred>,
    chain: Chain,
    const_params: Vec<String>,
    fields: HashMap<String, (Shape, Shape)>,
    runtime: HashMap<usize, Vec<RuntimeCheck>>,
    /// The [`item_key`] of the item being analysed.
    current: usize,
}

/// Static-shape helpers, by absolute path.
fn helper(name: &str) -> TokenStream {
    let name = proc_macro2::Ident::new(name, Span::call_site());
    quote!(::kiln::nn::static_shape::#name)
}

impl Analyzer<'_> {
    /// One item; `group` is the group's name and the item's index in it.
    fn item(&mut self, item: &Item, group: Option<(&str, usize)>, shape: Shape) -> Shape {
        let before = shape.clone();
        let outer = std::mem::replace(&mut self.current, item_key(item));
        let after = self.item_shape(item, group, shape);
        self.current = outer;
        if let Some(name) = &item.name {
            self.fields
                .insert(name.to_string(), (before, after.clone()));
        }
        after
    }

    fn item_shape(&mut self, item: &Item, group: Option<(&str, usize)>, shape: Shape) -> Shape {
        let label = match (&item.layer, group, &item.name) {
            (Layer::Builtin(b), Some((g, i)), _) => format!("{g}.{i} ({})", b.ident),
            (Layer::Composed(ty), Some((g, i)), _) => {
                format!("{g}.{i} ({})", compact(ty.to_token_stream()))
            }
            (_, Some((g, i)), _) => format!("{g}.{i}"),
            (_, None, Some(name)) => name.to_string(),
            (Layer::Builtin(b), None, None) => b.ident.to_string(),
            (_, None, None) => "layer".to_owned(),
        };
        match &item.layer {
            Layer::Builtin(b) => {
                let out = self.builtin(&label, b, &shape);
                if !b.kind.keeps_shape() {
                    self.chain.push(label, out.text());
                }
                out
            }
            Layer::Group(g) => {
                let mut shape = shape;
                for (i, inner) in g.items.iter().enumerate() {
                    shape = self.item(inner, Some((&label, i)), shape);
                }
                shape
            }
            Layer::Composed(ty) => {
                let out = self.composed(&label, ty, &shape);
                self.chain.push(label, out.text());
                out
            }
            Layer::Parallel(p) => {
                let out = self.parallel(p, shape);
                let label = match p.join {
                    Join::Sum if p.keyword == "residual" => "residual block",
                    _ => "branches",
                };
                self.chain.push(label, out.text());
                out
            }
            Layer::Invalid => {
                self.chain.push(label, "[?]");
                Shape::Unknown
            }
        }
    }

    /// A residual block or branches: every path from `input`, then the
    /// join's rule between the ends.
    fn parallel(&mut self, p: &Parallel, input: Shape) -> Shape {
        let base = self.chain.clone();
        let start = base.last_entry();
        let mut ends = Vec::with_capacity(p.paths.len());
        for path in &p.paths {
            self.chain = base.clone();
            let mut shape = input.clone();
            for item in &path.items {
                shape = self.item(item, None, shape);
            }
            let mut trace = vec![start.clone()];
            trace.extend(self.chain.render_since(base.len()));
            ends.push((shape, format!("{}: {}", path.label, trace.join(" → "))));
        }
        self.chain = base;
        let traces: Vec<&str> = ends.iter().map(|(_, t)| t.as_str()).collect();
        let traces = format!(" ({})", traces.join("; "));
        let (first, _) = &ends[0];
        let first_label = &p.paths[0].label;
        let what = match (p.join, p.keyword == "residual") {
            (Join::Sum, true) => "residual block",
            (Join::Sum, false) => "branches -> sum",
            (Join::Cat, _) => "branches -> cat",
        };
        for (path, (end, _)) in p.paths.iter().zip(&ends).skip(1) {
            let rule = match p.join {
                Join::Sum => "the sum needs every path to end in the same shape",
                Join::Cat => {
                    "concatenating along channels needs every path to end in the same height and width"
                }
            };
            if let Some(condition) = &path.condition {
                let cond_text = compact(condition.clone());
                // With the layer: its output against the residual path's.
                let present = format!(
                    "{what}: when `{cond_text}` holds, {} ends in {} but {first_label} ends in {}; {rule}{traces}",
                    path.label,
                    end.text(),
                    first.text()
                );
                self.conditional(path.span, condition, true, end, first, p.join, present);
                // Without it: the identity, the block's input.
                let absent = format!(
                    "{what}: when `{cond_text}` does not hold, the shortcut is the identity, so the \
                     block's input {} must match the end of {first_label}, {}; {rule}{traces}",
                    input.text(),
                    first.text()
                );
                self.conditional(path.span, condition, false, &input, first, p.join, absent);
                continue;
            }
            let hint = if path.items.is_empty() {
                projection_hint(&input, first)
            } else {
                String::new()
            };
            let message = format!(
                "{what}: {} ends in {} but {first_label} ends in {}; {rule}{hint}{traces}",
                path.label,
                end.text(),
                first.text()
            );
            match fit(end, first, p.join) {
                Fit::Yes | Fit::Unknown => {}
                Fit::No => self.errors.at(path.span, message),
                Fit::Deferred(cond) => self.checks.push(Deferred {
                    span: path.span,
                    cond,
                    message,
                }),
            }
        }
        match p.join {
            Join::Sum => ends
                .iter()
                .map(|(s, _)| s.clone())
                .find(|s| !matches!(s, Shape::Unknown))
                .unwrap_or(Shape::Unknown),
            Join::Cat => {
                let mut channels = Expr::Lit(0);
                for (end, _) in &ends {
                    let c = match dims3(end) {
                        Some(d) => d[0].clone(),
                        None => Expr::Unknown,
                    };
                    channels =
                        Expr::binary(super::expr::Op::Add, &channels, &c).unwrap_or(Expr::Unknown);
                }
                match dims3(first) {
                    Some([_, h, w]) => Shape::Dims(vec![channels, h, w]),
                    None => Shape::Unknown,
                }
            }
        }
    }

    /// A deferred check of a conditional shortcut: when `condition` is
    /// `holds`, `end` must fit `reference`.
    #[allow(clippy::too_many_arguments)]
    fn conditional(
        &mut self,
        span: Span,
        condition: &TokenStream,
        holds: bool,
        end: &Shape,
        reference: &Shape,
        join: Join,
        message: String,
    ) {
        let guard = if holds {
            quote!(!(#condition))
        } else {
            quote!((#condition))
        };
        let cond = match fit(end, reference, join) {
            Fit::Yes | Fit::Unknown => return,
            Fit::No => guard,
            Fit::Deferred(c) => quote!(#guard || #c),
        };
        self.checks.push(Deferred {
            span,
            cond,
            message,
        });
    }

    fn fail(&mut self, at: &TokenStream, message: String) {
        let message = format!("{message}{}", self.chain.render());
        self.errors.spanned(at, message);
    }

    fn defer(&mut self, at: &TokenStream, cond: TokenStream, message: String) {
        let message = format!("{message}{}", self.chain.render());
        self.checks.push(Deferred {
            span: first_span(at, Span::call_site()),
            cond,
            message,
        });
    }

    /// Records a check the forward makes before the current item.
    fn at_run_time(&mut self, check: RuntimeCheck) {
        self.runtime.entry(self.current).or_default().push(check);
    }

    /// Requires `got == want`; `message` words the mismatch.
    fn require_eq(&mut self, got: &Expr, want: &Expr, at: &TokenStream, message: String) {
        match got.compare(want) {
            Cmp::Equal | Cmp::Unknown => {}
            Cmp::Differ => self.fail(at, message),
            Cmp::Deferred => {
                let (g, w) = (got.tokens(), want.tokens());
                let eq = helper("dim_eq");
                self.defer(at, quote!(#eq(#g, #w)), message);
            }
        }
    }

    /// The dims of `shape` if it has `rank` of them. Otherwise reports
    /// `{label}: expects {expected} but … produces …{hint}` and returns
    /// `None`. An opaque shape gets a deferred rank check.
    fn rank(
        &mut self,
        label: &str,
        shape: &Shape,
        ranks: &[usize],
        expected: &str,
        hint: &str,
        at: &TokenStream,
    ) -> Option<Vec<Expr>> {
        match shape {
            Shape::Dims(dims) if ranks.contains(&dims.len()) => Some(dims.clone()),
            Shape::Dims(_) => {
                let message = format!(
                    "{label}: expects {expected} input but {} {}{hint}",
                    self.chain.producer_or("the input is"),
                    shape.text()
                );
                self.fail(at, message);
                None
            }
            Shape::Opaque(o) => {
                let rank = ranks[0];
                let tokens = &o.tokens;
                let message = format!(
                    "{label}: expects {expected} input but the shape that {} produces \
                     ({}) has a different number of dimensions",
                    self.chain.producer_noun(),
                    o.text
                );
                self.defer(at, quote!(#tokens.len() == #rank), message);
                let at = helper("dim_at");
                Some(
                    (0..rank)
                        .map(|i| Expr::atom(quote!(#at(#tokens, #i)), format!("{}[{i}]", o.text)))
                        .collect(),
                )
            }
            Shape::Unknown => None,
        }
    }

    fn builtin(&mut self, label: &str, b: &Builtin, shape: &Shape) -> Shape {
        let at = b.ident.to_token_stream();
        match &b.args {
            Args::Conv2d(c) => {
                let dims = self.rank(
                    label,
                    shape,
                    &[3],
                    "a [channels, height, width]",
                    "",
                    &c.in_channels.tokens,
                );
                let [ch, h, w] = dims.map_or([Expr::Unknown, Expr::Unknown, Expr::Unknown], |d| {
                    [d[0].clone(), d[1].clone(), d[2].clone()]
                });
                let message = format!(
                    "{label}: expects {} but {} {}",
                    count(&c.in_channels.value.text(), "input channel"),
                    self.chain.producer(),
                    count(&ch.text(), "channel")
                );
                self.require_eq(&ch, &c.in_channels.value, &c.in_channels.tokens, message);
                if let Some(groups) = &c.groups {
                    for (dim, what) in [(&c.in_channels, "input"), (&c.out_channels, "output")] {
                        self.divisible(label, dim, groups, what);
                    }
                }
                let stride = c.stride.clone().unwrap_or_else(|| Pair::splat(1));
                let padding = c.padding.clone().unwrap_or_else(|| Pair::splat(0));
                let dilation = c.dilation.clone().unwrap_or_else(|| Pair::splat(1));
                let (oh, ow) = self.window(
                    label, "kernel", &h, &w, &c.kernel, &stride, &padding, &dilation,
                );
                Shape::Dims(vec![c.out_channels.value.clone(), oh, ow])
            }
            Args::Pool(p) => {
                let dims = self.rank(label, shape, &[3], "a [channels, height, width]", "", &at);
                let [ch, h, w] = dims.map_or([Expr::Unknown, Expr::Unknown, Expr::Unknown], |d| {
                    [d[0].clone(), d[1].clone(), d[2].clone()]
                });
                let padding = p.padding.clone().unwrap_or_else(|| Pair::splat(0));
                let (oh, ow) = self.window(
                    label,
                    "window",
                    &h,
                    &w,
                    &p.kernel,
                    &p.stride(),
                    &padding,
                    &Pair::splat(1),
                );
                Shape::Dims(vec![ch, oh, ow])
            }
            Args::Adaptive(size) => {
                let dims = self.rank(label, shape, &[3], "a [channels, height, width]", "", &at);
                let ch = dims.map_or(Expr::Unknown, |d| d[0].clone());
                Shape::Dims(vec![ch, size.h.clone(), size.w.clone()])
            }
            Args::Linear(l) => {
                let hint = format!("; add `flatten` before {label}");
                let dims = self.rank(
                    label,
                    shape,
                    &[1],
                    "a flat [features]",
                    &hint,
                    &l.in_features.tokens,
                );
                if let Some(dims) = dims {
                    let message = format!(
                        "{label}: expects {} but {} {}",
                        count(&l.in_features.value.text(), "input feature"),
                        self.chain.producer(),
                        dims[0].text()
                    );
                    if dims[0].is_dynamic() && !l.in_features.value.is_dynamic() {
                        self.at_run_time(RuntimeCheck::Features {
                            message: format!("{message}{}", self.chain.render()),
                            expected: l.in_features.value.clone(),
                        });
                    }
                    self.require_eq(
                        &dims[0],
                        &l.in_features.value,
                        &l.in_features.tokens,
                        message,
                    );
                }
                Shape::Dims(vec![l.out_features.value.clone()])
            }
            Args::BatchNorm(n) => {
                let (ranks, expected, hint): (&[usize], _, _) = if b.kind == Kind::BatchNorm2d {
                    (
                        &[3],
                        "a [channels, height, width]",
                        "; BatchNorm1d normalises flat features",
                    )
                } else {
                    (&[1, 2], "a [features] or [channels, length]", "")
                };
                let dims = self.rank(label, shape, ranks, expected, hint, &n.tokens);
                if let Some(dims) = dims {
                    let message = format!(
                        "{label}: expects {} but {} {}",
                        count(&n.value.text(), "channel"),
                        self.chain.producer(),
                        count(&dims[0].text(), "channel")
                    );
                    self.require_eq(&dims[0], &n.value, &n.tokens, message);
                }
                shape.clone()
            }
            Args::Dropout(_) => shape.clone(),
            Args::None if b.kind == Kind::Flatten => match shape {
                Shape::Dims(dims) => Shape::Dims(vec![Expr::product(dims)]),
                Shape::Opaque(o) => {
                    let (numel, tokens) = (helper("numel"), &o.tokens);
                    Shape::Dims(vec![Expr::atom(
                        quote!(#numel(#tokens)),
                        format!("numel({})", o.text),
                    )])
                }
                Shape::Unknown => Shape::Dims(vec![Expr::Unknown]),
            },
            Args::None => shape.clone(),
        }
    }

    /// `dim % groups == 0`.
    fn divisible(
        &mut self,
        label: &str,
        dim: &super::model::Dim,
        groups: &super::model::Dim,
        what: &str,
    ) {
        let message = || {
            format!(
                "{label}: {} {what} channels cannot be split into {} groups",
                dim.value.text(),
                groups.value.text()
            )
        };
        match (dim.value.lit(), groups.value.lit()) {
            (Some(d), Some(g)) => {
                if g != 0 && d % g != 0 {
                    let message = message();
                    self.errors.spanned(&groups.tokens, message);
                }
            }
            _ => {
                let (d, g) = (dim.value.tokens(), groups.value.tokens());
                let message = message();
                self.defer(&groups.tokens, quote!(#g > 0 && #d % #g == 0), message);
            }
        }
    }

    /// The spatial output of a convolution or pooling window; reports a
    /// window larger than its (padded) input.
    #[allow(clippy::too_many_arguments)]
    fn window(
        &mut self,
        label: &str,
        noun: &str,
        h: &Expr,
        w: &Expr,
        kernel: &Pair,
        stride: &Pair,
        padding: &Pair,
        dilation: &Pair,
    ) -> (Expr, Expr) {
        let oh = window(h, &kernel.h, &stride.h, &padding.h, &dilation.h);
        let ow = window(w, &kernel.w, &stride.w, &padding.w, &dilation.w);
        let mut padded = String::new();
        if !padding.tokens.is_empty() {
            padded = format!(" (with padding {})", padding.text());
        }
        if !dilation.tokens.is_empty() {
            padded.push_str(&format!(" (dilation {})", dilation.text()));
        }
        let message = format!(
            "{label}: its {} {noun} does not fit the {}×{} input{}{padded}, so the output would be empty",
            kernel.text(),
            h.text(),
            w.text(),
            match self.chain.last_label() {
                "input" => String::new(),
                producer => format!(" that {producer} produces"),
            },
        );
        let mut symbolic = Vec::new();
        let mut fits = |out: Window, input: &Expr| match out {
            Window::TooLarge => None,
            Window::Fits(e) => {
                if e.is_symbolic() && !e.is_dynamic() && e.compare(input) != Cmp::Equal {
                    symbolic.push(e.tokens());
                }
                Some(e)
            }
        };
        let (oh, ow) = (fits(oh, h), fits(ow, w));
        if oh.is_none() || ow.is_none() {
            self.fail(&kernel.tokens, message);
        } else {
            if h.is_dynamic() || w.is_dynamic() {
                self.at_run_time(RuntimeCheck::Window {
                    message: format!("{message}{}", self.chain.render()),
                    window: Box::new([
                        kernel.clone(),
                        stride.clone(),
                        padding.clone(),
                        dilation.clone(),
                    ]),
                });
            }
            if !symbolic.is_empty() {
                self.defer(&kernel.tokens, quote!(#(#symbolic > 0)&&*), message);
            }
        }
        let (oh, ow) = (oh.unwrap_or(Expr::Unknown), ow.unwrap_or(Expr::Unknown));
        (oh, ow)
    }

    /// A module used as a layer: its declared input must be the current
    /// shape; its output is its declared output.
    fn composed(&mut self, label: &str, ty: &syn::Type, shape: &Shape) -> Shape {
        let at = ty.to_token_stream();
        let name = compact(at.clone());
        let trait_path = quote!(::kiln::nn::static_shape::StaticShape);
        let input = quote!(<#ty as #trait_path>::INPUT_SHAPE);
        if let Some(current) = shape.slice_tokens() {
            let producer = self.chain.producer_noun();
            let message = match shape {
                Shape::Opaque(o) => format!(
                    "{label}: {name} does not accept the output of {producer}: the input shape \
                     it declares (StaticShape::INPUT_SHAPE) differs from {}",
                    o.text
                ),
                _ => format!(
                    "{label}: {name} does not accept {}, the output of {producer}: the input \
                     shape it declares (StaticShape::INPUT_SHAPE) differs",
                    shape.text()
                ),
            };
            let message = message.replace("the output of the input", "the input");
            let eq = helper("shape_eq");
            self.defer(&at, quote!(#eq(#input, #current)), message);
        }
        let generic = mentions_params(&at, &self.const_params);
        Shape::Opaque(Rc::new(Opaque {
            tokens: quote!(<#ty as #trait_path>::OUTPUT_SHAPE),
            text: format!("{name}::OUTPUT_SHAPE"),
            generic,
        }))
    }
}

/// Whether the end of one path fits another's under a join.
enum Fit {
    Yes,
    No,
    /// Only the compiler can tell: this `bool` const expression.
    Deferred(TokenStream),
    /// Undetermined (an earlier error, or sizes known only at run time).
    Unknown,
}

fn fit(a: &Shape, b: &Shape, join: Join) -> Fit {
    match (a, b) {
        (Shape::Unknown, _) | (_, Shape::Unknown) => Fit::Unknown,
        (Shape::Dims(x), Shape::Dims(y)) => {
            if x.len() != y.len() || (join == Join::Cat && x.len() != 3) {
                return Fit::No;
            }
            let skip = usize::from(join == Join::Cat);
            let mut deferred = Vec::new();
            for (p, q) in x.iter().zip(y).skip(skip) {
                match p.compare(q) {
                    Cmp::Differ => return Fit::No,
                    Cmp::Deferred => {
                        let (p, q, eq) = (p.tokens(), q.tokens(), helper("dim_eq"));
                        deferred.push(quote!(#eq(#p, #q)));
                    }
                    Cmp::Equal | Cmp::Unknown => {}
                }
            }
            if deferred.is_empty() {
                Fit::Yes
            } else {
                Fit::Deferred(quote!(#(#deferred)&&*))
            }
        }
        _ => match (a.slice_tokens(), b.slice_tokens()) {
            (Some(x), Some(y)) => {
                let f = helper(if join == Join::Cat {
                    "spatial_eq"
                } else {
                    "shape_eq"
                });
                Fit::Deferred(quote!(#f(#x, #y)))
            }
            _ => Fit::Unknown,
        },
    }
}

/// `[c, h, w]` of an image shape (a composed module's through `dim_at`).
fn dims3(shape: &Shape) -> Option<[Expr; 3]> {
    match shape {
        Shape::Dims(d) if d.len() == 3 => Some([d[0].clone(), d[1].clone(), d[2].clone()]),
        Shape::Opaque(o) => {
            let (at, tokens) = (helper("dim_at"), &o.tokens);
            Some(
                [0usize, 1, 2]
                    .map(|i| Expr::atom(quote!(#at(#tokens, #i)), format!("{}[{i}]", o.text))),
            )
        }
        _ => None,
    }
}

/// For an identity shortcut that does not fit: the projection torchvision
/// uses (a 1×1 convolution with the stride, and batch norm).
fn projection_hint(input: &Shape, residual: &Shape) -> String {
    let (Some([ci, hi, _]), Some([co, ho, _])) = (dims3(input), dims3(residual)) else {
        return String::new();
    };
    if matches!(ci, Expr::Unknown) || matches!(co, Expr::Unknown) {
        return String::new();
    }
    let stride = match (hi.lit(), ho.lit()) {
        (Some(i), Some(o)) if o > 0 && o < i => format!(", stride: {}", i.div_ceil(o)),
        _ => String::new(),
    };
    format!(
        "; add a projection: `shortcut {{ downsample: [Conv2d({} -> {}, kernel: 1{stride}, bias: false), BatchNorm2d({})] }}`",
        ci.text(),
        co.text(),
        co.text()
    )
}

/// Whether `tokens` (at any depth) mention one of `params`.
fn mentions_params(tokens: &TokenStream, params: &[String]) -> bool {
    tokens.clone().into_iter().any(|tt| match tt {
        proc_macro2::TokenTree::Ident(i) => params.iter().any(|p| i == p),
        proc_macro2::TokenTree::Group(g) => mentions_params(&g.stream(), params),
        _ => false,
    })
}

/// Tokens as a user writes them: `Block<32>`, not `Block < 32 >`.
pub fn compact(tokens: TokenStream) -> String {
    let text = tokens.to_string();
    let mut out = String::with_capacity(text.len());
    for part in text.split(' ') {
        let glue = matches!(part, "<" | ">" | "::" | "," | ")" | "]")
            || out.ends_with('<')
            || out.ends_with("::")
            || out.ends_with('(')
            || out.ends_with('[')
            || out.is_empty();
        if !glue {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    /// The output shape's text and the errors.
    fn run(tokens: TokenStream) -> (String, Vec<String>, Vec<String>) {
        let mut errors = Errors::default();
        let network = super::super::parse::parse(tokens, &mut errors).expect("header parses");
        let analysis = analyze(&network, &mut errors);
        let checks = analysis.checks.iter().map(|c| c.message.clone()).collect();
        (analysis.output.text(), errors.messages(), checks)
    }

    /// The body of the `network!` in `kiln::models::LeNet5`'s file, with
    /// `edit` applied to its text.
    fn library_lenet(edit: impl Fn(&str) -> String) -> TokenStream {
        let file = include_str!("../../../src/models/lenet.rs");
        let body = file
            .split_once("network! {")
            .expect("a network! invocation")
            .1;
        let body = &body[..body.find("\n}\n").expect("the invocation's end")];
        edit(body).parse().expect("the declaration tokenizes")
    }

    #[test]
    fn lenet() {
        let (out, errors, checks) = run(library_lenet(str::to_owned));
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(checks.is_empty());
        assert_eq!(out, "[10]");
    }

    /// The issue's example: LeNet-5 with conv1's padding forgotten.
    #[test]
    fn the_issue_example() {
        let without_padding = |body: &str| body.replace("kernel: 5, padding: 2", "kernel: 5");
        let (_, errors, _) = run(library_lenet(without_padding));
        assert_eq!(
            errors,
            [
                "fc1: expects 400 input features but flatten produces 256 (input [1,28,28] → \
              conv1 [6,24,24] → max_pool2d [6,12,12] → conv2 [16,8,8] → max_pool2d [16,4,4] → \
              flatten [256])"
            ]
        );
    }

    #[test]
    fn vgg_group_numbering_and_output() {
        let (out, errors, _) = run(quote! {
            pub struct Vgg(input: [3, 32, 32]) {
                features: [
                    Conv2d(3 -> 64, kernel: 3, padding: 1), BatchNorm2d(64), ReLU, MaxPool2d(2),
                    Conv2d(64 -> 128, kernel: 3, padding: 1), BatchNorm2d(128), ReLU, MaxPool2d(2),
                ],
                avgpool: AdaptiveAvgPool2d((7, 7)),
                flatten,
                classifier: [Linear(128 * 7 * 7 -> 10), ReLU, Dropout(0.5)],
            }
        });
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(out, "[10]");
        let (_, errors, _) = run(quote! {
            pub struct Vgg(input: [3, 32, 32]) {
                features: [Conv2d(3 -> 64, kernel: 3), ReLU, Conv2d(32 -> 64, kernel: 3)],
            }
        });
        assert_eq!(
            errors,
            [
                "features.2 (Conv2d): expects 32 input channels but features.0 (Conv2d) produces \
              64 channels (input [3,32,32] → features.0 (Conv2d) [64,30,30])"
            ]
        );
    }

    #[test]
    fn every_mismatch_once_without_cascade() {
        let (out, errors, _) = run(quote! {
            struct Net(input: [1, 8, 8]) {
                conv1: Conv2d(3 -> 6, kernel: 3),
                conv2: Conv2d(6 -> 8, kernel: 9),
                conv3: Conv2d(8 -> 8, kernel: 3),
                bn: BatchNorm2d(6),
                fc: Linear(10 -> 4),
                fc2: Linear(5 -> 2),
            }
        });
        assert_eq!(out, "[2]");
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(
            errors[0].starts_with("conv1: expects 3 input channels but the input has 1 channel")
        );
        assert!(errors[1].starts_with(
            "conv2: its 9×9 kernel does not fit the 6×6 input that conv1 produces, so the output would be empty"
        ));
        // conv3's spatial input is unknown after conv2: no second error.
        assert!(errors[2].starts_with("bn: expects 6 channels but conv3 produces 8"));
        assert!(errors[3].starts_with(
            "fc: expects a flat [features] input but conv3 produces [8,?,?]; add `flatten` before fc"
        ));
        assert!(errors[4].starts_with("fc2: expects 5 input features but fc produces 4"));
    }

    #[test]
    fn const_generics_are_deferred() {
        let (out, errors, checks) = run(quote! {
            pub struct Mlp<const HIDDEN: usize>(input: [784]) {
                fc1: Linear(784 -> HIDDEN),
                relu,
                fc2: Linear(HIDDEN -> 10),
                fc3: Linear(2 * HIDDEN -> 10),
            }
        });
        assert_eq!(out, "[10]");
        assert!(errors.is_empty());
        assert_eq!(
            checks,
            [
                "fc3: expects 2*HIDDEN input features but fc2 produces 10 (input [784] → fc1 [HIDDEN] → fc2 [10])"
            ]
        );
    }

    #[test]
    fn symbolic_images() {
        let (out, errors, checks) = run(quote! {
            pub struct Net<const C: usize, const S: usize>(input: [C, S, S]) {
                conv1: Conv2d(C -> 16, kernel: 3, padding: 1),
                conv2: Conv2d(16 -> 16, kernel: 5),
                max_pool2d(2),
            }
        });
        assert!(errors.is_empty());
        assert_eq!(out, "[16,(S-4-2)/2+1,(S-4-2)/2+1]");
        assert_eq!(checks.len(), 2, "{checks:#?}");
        assert!(
            checks[0].starts_with(
                "conv2: its 5×5 kernel does not fit the S×S input that conv1 produces"
            )
        );
    }

    #[test]
    fn composition() {
        let (out, errors, checks) = run(quote! {
            pub struct Net(input: [1, 28, 28]) {
                encoder: Encoder,
                flatten,
                fc: Linear(64 -> 10),
            }
        });
        assert!(errors.is_empty());
        assert_eq!(out, "[10]");
        assert_eq!(
            checks,
            [
                "encoder: Encoder does not accept [1,28,28], the input: the input shape it declares (StaticShape::INPUT_SHAPE) differs (input [1,28,28])",
                "fc: expects 64 input features but flatten produces numel(Encoder::OUTPUT_SHAPE) (input [1,28,28] → encoder Encoder::OUTPUT_SHAPE → flatten [numel(Encoder::OUTPUT_SHAPE)])",
            ]
        );
    }

    #[test]
    fn residual_blocks() {
        let (out, errors, checks) = run(quote! {
            pub struct Block(input: [64, 32, 32]) {
                residual {
                    conv1: Conv2d(64 -> 128, kernel: 3, stride: 2, padding: 1),
                    relu,
                    conv2: Conv2d(128 -> 128, kernel: 3, padding: 1),
                } shortcut {
                    downsample: [Conv2d(64 -> 128, kernel: 1, stride: 2), BatchNorm2d(128)],
                },
                relu,
                fc: Linear(128 -> 1),
            }
        });
        assert!(checks.is_empty());
        assert_eq!(out, "[1]");
        assert_eq!(
            errors,
            [
                "fc: expects a flat [features] input but residual block produces [128,16,16]; add \
                 `flatten` before fc (input [64,32,32] → residual block [128,16,16])"
            ]
        );
        let (_, errors, _) = run(quote! {
            pub struct Block(input: [64, 32, 32]) {
                residual { conv1: Conv2d(64 -> 128, kernel: 3, stride: 2, padding: 1) },
            }
        });
        assert_eq!(
            errors,
            [
                "residual block: the identity shortcut ends in [64,32,32] but the residual path ends in \
                 [128,16,16]; the sum needs every path to end in the same shape; add a projection: \
                 `shortcut { downsample: [Conv2d(64 -> 128, kernel: 1, stride: 2, bias: false), \
                 BatchNorm2d(128)] }` (the residual path: input [64,32,32] → conv1 [128,16,16]; the \
                 identity shortcut: input [64,32,32])"
            ]
        );
    }

    #[test]
    fn conditional_shortcuts_are_checked_per_instance() {
        let (out, errors, checks) = run(quote! {
            pub struct Block<const IN: usize, const OUT: usize, const S: usize>(input: [IN, dyn H, dyn W]) {
                residual {
                    conv1: Conv2d(IN -> OUT, kernel: 3, stride: S, padding: 1),
                } shortcut if S != 1 {
                    downsample: Conv2d(IN -> OUT, kernel: 1, stride: S),
                },
            }
        });
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(out, "[OUT,(H+2*1-1*(3-1)-1)/S+1,(W+2*1-1*(3-1)-1)/S+1]");
        // With the projection the widths agree (OUT); without it the input's
        // IN must equal OUT, which only an instance decides.
        assert_eq!(checks.len(), 1, "{checks:#?}");
        assert!(checks[0].starts_with(
            "residual block: when `S != 1` does not hold, the shortcut is the identity, so the \
             block's input [IN,H,W] must match the end of the residual path, [OUT,"
        ));
    }

    #[test]
    fn branches_concatenate_channels() {
        let (out, errors, _) = run(quote! {
            pub struct Mix(input: [8, 16, 16]) {
                branches {
                    a: { conv_a: Conv2d(8 -> 4, kernel: 1) },
                    b: { conv_b: Conv2d(8 -> 6, kernel: 3, padding: 1), relu },
                    c: { conv_c: Conv2d(8 -> 2, kernel: 3) },
                } -> cat,
            }
        });
        assert_eq!(out, "[12,16,16]");
        assert_eq!(
            errors,
            [
                "branches -> cat: branch `c` ends in [2,14,14] but branch `a` ends in [4,16,16]; \
                 concatenating along channels needs every path to end in the same height and width \
                 (branch `a`: input [8,16,16] → conv_a [4,16,16]; branch `b`: input [8,16,16] → \
                 conv_b [6,16,16]; branch `c`: input [8,16,16] → conv_c [2,14,14])"
            ]
        );
    }

    #[test]
    fn compact_types() {
        assert_eq!(compact(quote!(Block<32>)), "Block<32>");
        assert_eq!(
            compact(quote!(crate::m::Block<32, 4>)),
            "crate::m::Block<32, 4>"
        );
    }
}
