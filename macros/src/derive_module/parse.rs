//! Attributes and field types into a typed model.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericArgument, Member, PathArguments, Type};

/// What the derive does with one field.
pub enum FieldKind {
    /// `Tensor`: a parameter (or a buffer with `#[module(buffer)]`).
    Tensor { buffer: bool },
    /// `Option<Tensor>`: an optional parameter or buffer.
    OptTensor { buffer: bool },
    /// Any other type: a child module (checked through the trait bound).
    Child,
    /// `Option<M>`: a child module when present; holds `M`.
    OptChild(Box<Type>),
}

/// A registered field.
pub struct Field {
    /// How the struct names it (`conv1` or `0`).
    pub member: Member,
    /// The key used in dotted names (the field name or its rename).
    pub key: String,
    /// The declared type (for spans and trait-bound checks).
    pub ty: Type,
    /// What it is.
    pub kind: FieldKind,
}

/// The whole struct.
pub struct Model<'a> {
    /// The input, for its name and generics.
    pub input: &'a DeriveInput,
    /// The class name printed by `print(model)`.
    pub type_name: String,
    /// Registered fields in declaration order.
    pub fields: Vec<Field>,
    /// The `#[module(training)] bool` field.
    pub training: Option<Member>,
    /// Path of the kiln crate in the generated code: `::kiln` unless
    /// `#[module(crate = "...")]` says otherwise (kiln-runtime's own
    /// layers use `crate`).
    pub krate: syn::Path,
    /// `#[module(extra_repr = "path")]`: a `fn(&Self) -> String` giving
    /// the text inside the parentheses of `print(model)`.
    pub extra_repr: Option<syn::Path>,
}

/// The struct-level `#[module(...)]` attributes.
pub struct StructAttrs {
    /// `name = "..."`.
    pub type_name: Option<String>,
    /// `crate = "..."`.
    pub krate: Option<syn::Path>,
    /// `extra_repr = "..."`.
    pub extra_repr: Option<syn::Path>,
}

/// Parses a string literal holding a path, with a spanned error naming
/// the attribute.
fn lit_path(lit: &syn::LitStr, what: &str, example: &str) -> syn::Result<syn::Path> {
    lit.parse::<syn::Path>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!(
                "`{what}` must be a path such as {example}, not {:?}",
                lit.value()
            ),
        )
    })
}

/// Parses the struct's `#[module(name = "...", crate = "...",
/// extra_repr = "...")]` attributes.
pub fn parse_struct_attrs(attrs: &[syn::Attribute], errors: &mut Vec<syn::Error>) -> StructAttrs {
    let mut out = StructAttrs {
        type_name: None,
        krate: None,
        extra_repr: None,
    };
    for attr in attrs.iter().filter(|a| a.path().is_ident("module")) {
        let res = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit: syn::LitStr = meta.value()?.parse()?;
                out.type_name = Some(lit.value());
            } else if meta.path.is_ident("crate") {
                let lit: syn::LitStr = meta.value()?.parse()?;
                out.krate = Some(lit_path(&lit, "crate", "\"kiln\" or \"crate\"")?);
            } else if meta.path.is_ident("extra_repr") {
                let lit: syn::LitStr = meta.value()?.parse()?;
                out.extra_repr = Some(lit_path(&lit, "extra_repr", "\"Self::describe\"")?);
            } else {
                return Err(meta.error(
                    "unknown module attribute on a struct; expected `name = \"...\"`, \
                     `crate = \"...\"` or `extra_repr = \"...\"`",
                ));
            }
            Ok(())
        });
        if let Err(e) = res {
            errors.push(e);
        }
    }
    out
}

/// The path the generated code names the kiln crate by.
pub fn crate_path(krate: Option<syn::Path>) -> syn::Path {
    krate.unwrap_or_else(|| syn::parse_quote!(::kiln))
}

#[derive(Default)]
struct FieldAttrs {
    skip: Option<Span>,
    rename: Option<(String, Span)>,
    training: Option<Span>,
    buffer: Option<Span>,
}

fn parse_field_attrs(attrs: &[syn::Attribute], errors: &mut Vec<syn::Error>) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("module")) {
        let res = attr.parse_nested_meta(|meta| {
            let span = meta.path.span();
            if meta.path.is_ident("skip") {
                out.skip = Some(span);
            } else if meta.path.is_ident("training") {
                out.training = Some(span);
            } else if meta.path.is_ident("buffer") {
                out.buffer = Some(span);
            } else if meta.path.is_ident("rename") {
                let lit: syn::LitStr = meta.value()?.parse()?;
                let name = lit.value();
                if name.is_empty() || name.contains('.') {
                    return Err(syn::Error::new(
                        lit.span(),
                        "a module name can't be empty or contain \".\"",
                    ));
                }
                out.rename = Some((name, lit.span()));
            } else {
                return Err(meta.error(
                    "unknown module attribute; expected `skip`, `rename = \"...\"`, `training` or `buffer`",
                ));
            }
            Ok(())
        });
        if let Err(e) = res {
            errors.push(e);
        }
    }
    if let (Some(s), Some(_)) = (out.skip, &out.rename) {
        errors.push(syn::Error::new(s, "`skip` and `rename` cannot be combined"));
    }
    if let (Some(s), Some(_)) = (out.training, out.skip.or(out.rename.as_ref().map(|r| r.1))) {
        errors.push(syn::Error::new(
            s,
            "`training` marks the train/eval flag; it cannot be combined with `skip` or `rename`",
        ));
    }
    out
}

/// The last path segment of `ty` and its single generic type argument.
fn last_segment(ty: &Type) -> Option<(String, Option<&Type>)> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let seg = p.path.segments.last()?;
    let arg = match &seg.arguments {
        PathArguments::AngleBracketed(a) if a.args.len() == 1 => match &a.args[0] {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        },
        _ => None,
    };
    Some((seg.ident.to_string(), arg))
}

fn is_tensor(ty: &Type) -> bool {
    matches!(last_segment(ty), Some((n, None)) if n == "Tensor")
}

fn is_bool(ty: &Type) -> bool {
    matches!(last_segment(ty), Some((n, None)) if n == "bool")
}

const PLAIN: &[&str] = &[
    "bool", "char", "str", "String", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16",
    "u32", "u64", "u128", "usize", "f32", "f64", "PathBuf", "Path", "Device", "DType",
];

/// Why `ty` is obviously plain data rather than a module, if it is.
fn plain_reason(ty: &Type) -> Option<String> {
    match ty {
        Type::Reference(_) => Some("a reference".into()),
        Type::Array(_) | Type::Slice(_) => Some("an array".into()),
        Type::Tuple(_) => Some("a tuple".into()),
        Type::Ptr(_) | Type::BareFn(_) => Some("not a module type".into()),
        _ => match last_segment(ty)? {
            (n, None) if PLAIN.contains(&n.as_str()) => Some(format!("`{n}`")),
            (n, Some(inner)) if n == "Vec" || n == "Option" || n == "Box" => {
                plain_reason(inner).map(|r| format!("`{n}` of {r}"))
            }
            _ => None,
        },
    }
}

impl<'a> Model<'a> {
    /// Parses and validates the input, collecting every error.
    pub fn from_input(input: &'a DeriveInput) -> Result<Model<'a>, Vec<syn::Error>> {
        let mut errors = Vec::new();
        let fields = match &input.data {
            Data::Struct(s) => &s.fields,
            Data::Enum(e) => {
                return Err(vec![syn::Error::new(
                    e.enum_token.span,
                    "#[derive(Module)] supports structs only; an enum cannot register parameters (wrap the variants' modules in a struct with `Option` fields)",
                )]);
            }
            Data::Union(u) => {
                return Err(vec![syn::Error::new(
                    u.union_token.span,
                    "#[derive(Module)] supports structs only, not unions",
                )]);
            }
        };
        let attrs = parse_struct_attrs(&input.attrs, &mut errors);
        let type_name = attrs.type_name.unwrap_or_else(|| input.ident.to_string());
        let mut out = Vec::new();
        let mut training: Option<Member> = None;
        let mut keys: Vec<(String, Span)> = Vec::new();
        let iter: Vec<(Member, &syn::Field)> = match fields {
            Fields::Named(f) => f
                .named
                .iter()
                .map(|f| (Member::Named(f.ident.clone().expect("named")), f))
                .collect(),
            Fields::Unnamed(f) => f
                .unnamed
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        Member::Unnamed(syn::Index {
                            index: i as u32,
                            span: f.span(),
                        }),
                        f,
                    )
                })
                .collect(),
            Fields::Unit => Vec::new(),
        };
        for (member, f) in iter {
            let attrs = parse_field_attrs(&f.attrs, &mut errors);
            if attrs.skip.is_some() {
                continue;
            }
            if let Some(span) = attrs.training {
                if !is_bool(&f.ty) {
                    errors.push(syn::Error::new_spanned(
                        &f.ty,
                        "`#[module(training)]` must be on a `bool` field (it stores train/eval mode)",
                    ));
                } else if training.is_some() {
                    errors.push(syn::Error::new(
                        span,
                        "only one field can be `#[module(training)]`",
                    ));
                } else {
                    training = Some(member);
                }
                continue;
            }
            let key = match (&attrs.rename, &member) {
                (Some((n, _)), _) => n.clone(),
                (None, Member::Named(i)) => i.to_string().trim_start_matches("r#").to_string(),
                (None, Member::Unnamed(i)) => i.index.to_string(),
            };
            let key_span = attrs.rename.as_ref().map_or(f.span(), |r| r.1);
            if keys.iter().any(|(k, _)| *k == key) {
                errors.push(syn::Error::new(
                    key_span,
                    format!("duplicate module key `{key}`"),
                ));
            }
            keys.push((key.clone(), key_span));
            let kind = if is_tensor(&f.ty) {
                FieldKind::Tensor {
                    buffer: attrs.buffer.is_some(),
                }
            } else if let Some((_, Some(inner))) =
                last_segment(&f.ty).filter(|(n, _)| n == "Option")
            {
                if is_tensor(inner) {
                    FieldKind::OptTensor {
                        buffer: attrs.buffer.is_some(),
                    }
                } else if let Some(r) = plain_reason(inner) {
                    errors.push(plain_error(&member, &f.ty, &format!("`Option` of {r}")));
                    continue;
                } else {
                    FieldKind::OptChild(Box::new(inner.clone()))
                }
            } else if let Some(r) = plain_reason(&f.ty) {
                errors.push(plain_error(&member, &f.ty, &r));
                continue;
            } else {
                FieldKind::Child
            };
            if let (Some(s), FieldKind::Child | FieldKind::OptChild(_)) = (attrs.buffer, &kind) {
                errors.push(syn::Error::new(
                    s,
                    "`buffer` applies to `Tensor` fields only",
                ));
            }
            out.push(Field {
                member,
                key,
                ty: f.ty.clone(),
                kind,
            });
        }
        if errors.is_empty() {
            Ok(Model {
                input,
                type_name,
                fields: out,
                training,
                krate: crate_path(attrs.krate),
                extra_repr: attrs.extra_repr,
            })
        } else {
            Err(errors)
        }
    }
}

fn plain_error(member: &Member, ty: &Type, what: &str) -> syn::Error {
    let name = match member {
        Member::Named(i) => format!("`{i}`"),
        Member::Unnamed(i) => format!("`{}`", i.index),
    };
    syn::Error::new_spanned(
        ty,
        format!(
            "field {name} is {what}, which is not a module; mark it `#[module(skip)]` to keep it as plain data"
        ),
    )
}
