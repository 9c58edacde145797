//! The typed model of a `network!` declaration. Every node keeps the tokens
//! it was written with, so diagnostics can point at them.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Generics, Ident, Visibility};

use super::expr::Expr;

/// `#[attrs] vis struct Name<const P: usize>(input: [..]) { items }`.
pub struct Network {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub generics: Generics,
    /// `None` when missing or malformed (already reported).
    pub input: Option<Vec<Dim>>,
    pub items: Vec<Item>,
}

impl Network {
    /// Names of the const generic parameters.
    pub fn const_params(&self) -> Vec<String> {
        self.generics
            .const_params()
            .map(|p| p.ident.to_string())
            .collect()
    }

    /// Whether the forward uses an inline `dropout` step, which needs the
    /// generated `training` flag.
    pub fn needs_training_flag(&self) -> bool {
        fn any_dropout(items: &[Item]) -> bool {
            items.iter().any(|item| match &item.layer {
                Layer::Builtin(b) => item.name.is_none() && b.kind == Kind::Dropout,
                Layer::Parallel(p) => p.paths.iter().any(|path| any_dropout(&path.items)),
                _ => false,
            })
        }
        any_dropout(&self.items)
    }

    /// Every item that becomes a field, in declaration order (paths of
    /// parallel blocks included), with the condition of a conditional
    /// shortcut it belongs to.
    pub fn fields(&self) -> Vec<(&Item, Option<&TokenStream>)> {
        fn collect<'a>(
            items: &'a [Item],
            condition: Option<&'a TokenStream>,
            out: &mut Vec<(&'a Item, Option<&'a TokenStream>)>,
        ) {
            for item in items {
                if item.name.is_some() {
                    out.push((item, condition));
                }
                if let Layer::Parallel(p) = &item.layer {
                    for path in &p.paths {
                        collect(&path.items, path.condition.as_ref(), out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        collect(&self.items, None, &mut out);
        out
    }
}

/// A size as written, with its value.
#[derive(Clone)]
pub struct Dim {
    pub value: Expr,
    pub tokens: TokenStream,
}

/// A size per spatial axis, written `k` or `(kh, kw)`.
#[derive(Clone)]
pub struct Pair {
    pub h: Expr,
    pub w: Expr,
    pub tokens: TokenStream,
}

impl Pair {
    /// The default of an option that was not written.
    pub fn splat(v: u64) -> Pair {
        Pair {
            h: Expr::Lit(v),
            w: Expr::Lit(v),
            tokens: TokenStream::new(),
        }
    }

    /// `5×5`, `3×5`.
    pub fn text(&self) -> String {
        format!("{}×{}", self.h.text(), self.w.text())
    }
}

/// One step of the forward: `/// doc  name: Layer -> tap`.
pub struct Item {
    pub attrs: Vec<Attribute>,
    /// An explicit field visibility; otherwise the struct's.
    pub vis: Option<Visibility>,
    /// The field name; `None` for a step inlined into the forward.
    pub name: Option<Ident>,
    pub layer: Layer,
    /// `-> name`: the activation after this step is an output of
    /// `forward_features`.
    pub tap: Option<Ident>,
}

pub enum Layer {
    Builtin(Box<Builtin>),
    /// `[Layer, Layer, ...]`: a `Sequential` numbered like PyTorch's.
    Group(Group),
    /// Another network or a module type that implements `StaticShape`.
    Composed(syn::Type),
    /// Paths that all start from the same input and are joined:
    /// `residual { .. } shortcut { .. }` or `branches { {..}, {..} } -> cat`.
    Parallel(Box<Parallel>),
    /// A layer that failed to parse (already reported): its output shape is
    /// unknown, so checks that depend on it are skipped.
    Invalid,
}

/// A bracketed group; its items are unnamed (checked by the parser).
pub struct Group {
    pub items: Vec<Item>,
    /// The brackets.
    pub span: Span,
}

/// Parallel paths from one input, joined by a sum or a concatenation.
pub struct Parallel {
    pub join: Join,
    /// `residual` or `branches`, for spans.
    pub keyword: Ident,
    /// For a residual block: the residual path, then the shortcut (empty
    /// for an identity shortcut).
    pub paths: Vec<Path>,
}

/// How parallel paths are joined.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Join {
    /// Elementwise sum: every path ends in the same shape.
    Sum,
    /// Concatenation along channels: every path ends in the same spatial size.
    Cat,
}

/// One path of a [`Parallel`] block: a sequence of items whose named
/// layers are fields of the network (so keys read `conv1.weight`,
/// `downsample.0.weight` as in torchvision).
pub struct Path {
    /// `residual`, `shortcut`, `branch a`, for messages.
    pub label: String,
    /// Where errors about the whole path point (its keyword or label).
    pub span: Span,
    /// Empty: the identity.
    pub items: Vec<Item>,
    /// `shortcut if COND { downsample: .. }`: the single layer exists only
    /// when the `bool` const expression holds, otherwise the path is the
    /// identity (the field is an `Option`).
    pub condition: Option<TokenStream>,
}

/// A layer kiln knows the shape rules of.
pub struct Builtin {
    pub kind: Kind,
    /// The layer's name as written (`Conv2d`, `relu`), for spans and labels.
    pub ident: Ident,
    pub args: Args,
}

pub enum Args {
    Conv2d(Box<Conv2dArgs>),
    Linear(LinearArgs),
    /// `BatchNorm2d(num_features)`, `BatchNorm1d(num_features)`.
    BatchNorm(Dim),
    Pool(PoolArgs),
    /// `AdaptiveAvgPool2d(output_size)`.
    Adaptive(Pair),
    /// `Dropout(p)`: an `f64` expression.
    Dropout(TokenStream),
    /// Activations and `Flatten`.
    None,
}

pub struct Conv2dArgs {
    pub in_channels: Dim,
    pub out_channels: Dim,
    pub kernel: Pair,
    pub stride: Option<Pair>,
    pub padding: Option<Pair>,
    pub dilation: Option<Pair>,
    pub groups: Option<Dim>,
    pub bias: Option<TokenStream>,
}

pub struct LinearArgs {
    pub in_features: Dim,
    pub out_features: Dim,
    pub bias: Option<TokenStream>,
}

pub struct PoolArgs {
    pub kernel: Pair,
    pub stride: Option<Pair>,
    pub padding: Option<Pair>,
}

impl PoolArgs {
    /// PyTorch's default stride is the kernel size.
    pub fn stride(&self) -> Pair {
        self.stride.clone().unwrap_or_else(|| self.kernel.clone())
    }
}

/// The layers `network!` knows, each with its module spelling (`ReLU`) and,
/// for stateless ones, its functional spelling (`relu`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Conv2d,
    Linear,
    BatchNorm2d,
    BatchNorm1d,
    MaxPool2d,
    AvgPool2d,
    AdaptiveAvgPool2d,
    Dropout,
    Flatten,
    Relu,
    Sigmoid,
    Tanh,
    Gelu,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Conv2d,
        Kind::Linear,
        Kind::BatchNorm2d,
        Kind::BatchNorm1d,
        Kind::MaxPool2d,
        Kind::AvgPool2d,
        Kind::AdaptiveAvgPool2d,
        Kind::Dropout,
        Kind::Flatten,
        Kind::Relu,
        Kind::Sigmoid,
        Kind::Tanh,
        Kind::Gelu,
    ];

    /// The `::kiln::nn` type.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Conv2d => "Conv2d",
            Kind::Linear => "Linear",
            Kind::BatchNorm2d => "BatchNorm2d",
            Kind::BatchNorm1d => "BatchNorm1d",
            Kind::MaxPool2d => "MaxPool2d",
            Kind::AvgPool2d => "AvgPool2d",
            Kind::AdaptiveAvgPool2d => "AdaptiveAvgPool2d",
            Kind::Dropout => "Dropout",
            Kind::Flatten => "Flatten",
            Kind::Relu => "ReLU",
            Kind::Sigmoid => "Sigmoid",
            Kind::Tanh => "Tanh",
            Kind::Gelu => "GELU",
        }
    }

    /// The inline spelling of a stateless step.
    pub fn step_name(self) -> Option<&'static str> {
        Some(match self {
            Kind::MaxPool2d => "max_pool2d",
            Kind::AvgPool2d => "avg_pool2d",
            Kind::AdaptiveAvgPool2d => "adaptive_avg_pool2d",
            Kind::Dropout => "dropout",
            Kind::Flatten => "flatten",
            Kind::Relu => "relu",
            Kind::Sigmoid => "sigmoid",
            Kind::Tanh => "tanh",
            Kind::Gelu => "gelu",
            Kind::Conv2d | Kind::Linear | Kind::BatchNorm2d | Kind::BatchNorm1d => return None,
        })
    }

    /// Layers with weights or buffers: they need a field name.
    pub fn has_state(self) -> bool {
        self.step_name().is_none()
    }

    /// Whether the layer leaves the shape as it is (not shown in chains).
    pub fn keeps_shape(self) -> bool {
        matches!(
            self,
            Kind::BatchNorm2d
                | Kind::BatchNorm1d
                | Kind::Dropout
                | Kind::Relu
                | Kind::Sigmoid
                | Kind::Tanh
                | Kind::Gelu
        )
    }

    /// Looks up either spelling.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.type_name() == name || k.step_name() == Some(name))
    }

    /// Every spelling, for suggestions.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        Kind::ALL
            .into_iter()
            .flat_map(|k| std::iter::once(k.type_name()).chain(k.step_name()))
    }
}

/// The span of the first token of `tokens`, or `fallback`.
pub fn first_span(tokens: &TokenStream, fallback: Span) -> Span {
    tokens
        .clone()
        .into_iter()
        .next()
        .map_or(fallback, |t| t.span())
}
