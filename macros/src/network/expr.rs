//! Sizes as the shape checker sees them: a number known while expanding,
//! a const expression known only to the compiler (a const generic, a
//! constant, a composed module's declared shape), or unknown because an
//! earlier error left it undetermined.

use std::rc::Rc;

use proc_macro2::{Literal, TokenStream};
use quote::{ToTokens, quote};

use super::diagnostics::Errors;

/// A `usize` size.
#[derive(Clone)]
pub enum Expr {
    /// Known while expanding.
    Lit(u64),
    /// A const-evaluable `usize` expression.
    Sym(Rc<Sym>),
    /// Undetermined after an earlier error; checks involving it are skipped.
    Unknown,
}

/// A symbolic size: the tokens that compute it in a const context and the
/// text that diagnostics show for it.
pub struct Sym {
    pub tokens: TokenStream,
    pub text: String,
    prec: Prec,
    /// Derived from an input dimension declared `dyn`: known only at run
    /// time, so no compile-time check involves it (its tokens are the
    /// `DYN` sentinel of `static_shape`).
    dynamic: bool,
}

/// Binding strength, for printing without redundant parentheses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Prec {
    Sum,
    Product,
    Atom,
}

/// The arithmetic a declaration may use in sizes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Rem => "%",
        }
    }

    fn prec(self) -> Prec {
        match self {
            Op::Add | Op::Sub => Prec::Sum,
            _ => Prec::Product,
        }
    }
}

/// How two sizes compare while expanding.
#[derive(Debug, PartialEq, Eq)]
pub enum Cmp {
    /// Provably equal.
    Equal,
    /// Provably different.
    Differ,
    /// Only the compiler can tell: needs a const assertion.
    Deferred,
    /// One side is undetermined after an earlier error: no check.
    Unknown,
}

impl Expr {
    /// An atomic symbolic size (a path, a helper call).
    pub fn atom(tokens: TokenStream, text: impl Into<String>) -> Self {
        Expr::Sym(Rc::new(Sym {
            tokens,
            text: text.into(),
            prec: Prec::Atom,
            dynamic: false,
        }))
    }

    /// A size known only at run time (`dyn H` in the input shape), or
    /// computed from one.
    pub fn dynamic(text: impl Into<String>, prec: Prec) -> Self {
        Expr::Sym(Rc::new(Sym {
            tokens: quote!(::kiln::nn::static_shape::DYN),
            text: text.into(),
            prec,
            dynamic: true,
        }))
    }

    /// Whether the size is only known at run time.
    pub fn is_dynamic(&self) -> bool {
        matches!(self, Expr::Sym(s) if s.dynamic)
    }

    /// A call of a `::kiln::nn::static_shape` helper; unknown if any
    /// argument is.
    /// `text` is how diagnostics show it, an expression of precedence
    /// `prec` (so that a product puts it in parentheses when needed).
    pub fn helper(name: &str, args: &[&Expr], text: impl Into<String>, prec: Prec) -> Self {
        if args.iter().any(|a| matches!(a, Expr::Unknown)) {
            return Expr::Unknown;
        }
        if args.iter().any(|a| a.is_dynamic()) {
            return Expr::dynamic(text, prec);
        }
        let func = proc_macro2::Ident::new(name, proc_macro2::Span::call_site());
        let args = args.iter().map(|a| a.tokens());
        Expr::Sym(Rc::new(Sym {
            tokens: quote!(::kiln::nn::static_shape::#func(#(#args),*)),
            text: text.into(),
            prec,
            dynamic: false,
        }))
    }

    pub fn lit(&self) -> Option<u64> {
        match self {
            Expr::Lit(v) => Some(*v),
            _ => None,
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Expr::Unknown)
    }

    /// Whether this size is a const expression that the compiler must
    /// evaluate.
    pub fn is_symbolic(&self) -> bool {
        matches!(self, Expr::Sym(_))
    }

    /// How diagnostics show the size.
    pub fn text(&self) -> String {
        match self {
            Expr::Lit(v) => v.to_string(),
            Expr::Sym(s) => s.text.clone(),
            Expr::Unknown => "?".to_owned(),
        }
    }

    fn prec(&self) -> Prec {
        match self {
            Expr::Sym(s) => s.prec,
            _ => Prec::Atom,
        }
    }

    /// The tokens computing the size (an unsuffixed literal when known).
    pub fn tokens(&self) -> TokenStream {
        match self {
            Expr::Lit(v) => Literal::u64_unsuffixed(*v).into_token_stream(),
            Expr::Sym(s) => s.tokens.clone(),
            // Only reachable in code that is never emitted (errors stop
            // expansion before it); keep the output well-formed anyway.
            Expr::Unknown => quote!(0),
        }
    }

    pub fn compare(&self, other: &Expr) -> Cmp {
        match (self, other) {
            (Expr::Unknown, _) | (_, Expr::Unknown) => Cmp::Unknown,
            (Expr::Lit(a), Expr::Lit(b)) if a == b => Cmp::Equal,
            (Expr::Lit(_), Expr::Lit(_)) => Cmp::Differ,
            (Expr::Sym(a), Expr::Sym(b)) if a.text == b.text => Cmp::Equal,
            (a, b) if a.is_dynamic() || b.is_dynamic() => Cmp::Unknown,
            _ => Cmp::Deferred,
        }
    }

    /// `a op b`, folded when both are known. Errors on a known negative
    /// result or a division by zero.
    pub fn binary(op: Op, a: &Expr, b: &Expr) -> Result<Expr, String> {
        match (a, b) {
            (Expr::Unknown, _) | (_, Expr::Unknown) => Ok(Expr::Unknown),
            (Expr::Lit(x), Expr::Lit(y)) => {
                let value = match op {
                    Op::Add => x.checked_add(*y),
                    Op::Sub => x.checked_sub(*y),
                    Op::Mul => x.checked_mul(*y),
                    Op::Div => x.checked_div(*y),
                    Op::Rem => x.checked_rem(*y),
                };
                value.map(Expr::Lit).ok_or_else(|| match op {
                    Op::Sub => format!("`{x} - {y}` is negative; sizes are unsigned"),
                    Op::Div | Op::Rem => "division by zero".to_owned(),
                    _ => format!("`{x} {} {y}` overflows", op.symbol()),
                })
            }
            (_, Expr::Lit(0)) if matches!(op, Op::Div | Op::Rem) => {
                Err("division by zero".to_owned())
            }
            (x, Expr::Lit(0)) if matches!(op, Op::Add | Op::Sub) => Ok(x.clone()),
            (Expr::Lit(0), y) if op == Op::Add => Ok(y.clone()),
            (x, Expr::Lit(1)) if matches!(op, Op::Mul | Op::Div) => Ok(x.clone()),
            (Expr::Lit(1), y) if op == Op::Mul => Ok(y.clone()),
            _ => {
                let prec = op.prec();
                let left = paren_if(a, a.prec() < prec);
                // `a - (b - c)`, `a / (b * c)`: the right side needs
                // parentheses at equal precedence unless `op` is associative.
                let right_needs = b.prec() < prec
                    || (b.prec() == prec && matches!(op, Op::Sub | Op::Div | Op::Rem));
                let right = paren_if(b, right_needs);
                let text = format!("{left}{}{right}", op.symbol());
                if a.is_dynamic() || b.is_dynamic() {
                    return Ok(Expr::dynamic(text, prec));
                }
                let (ta, tb) = (a.tokens(), b.tokens());
                let tokens = match op {
                    Op::Add => quote!((#ta + #tb)),
                    Op::Sub => quote!((#ta - #tb)),
                    Op::Mul => quote!((#ta * #tb)),
                    Op::Div => quote!((#ta / #tb)),
                    Op::Rem => quote!((#ta % #tb)),
                };
                Ok(Expr::Sym(Rc::new(Sym {
                    tokens,
                    text,
                    prec,
                    dynamic: false,
                })))
            }
        }
    }

    /// The product of `dims` (a flattened size).
    /// Symbolic products are computed by `static_shape::numel`, which
    /// keeps a [`DYN`](super) size of a composed module's output `DYN`
    /// instead of overflowing.
    pub fn product(dims: &[Expr]) -> Expr {
        let mut acc = Expr::Lit(1);
        for d in dims {
            acc = Expr::binary(Op::Mul, &acc, d).unwrap_or(Expr::Unknown);
        }
        match &acc {
            Expr::Sym(s) if !s.dynamic && dims.len() > 1 => {
                let dims = dims.iter().map(Expr::tokens);
                Expr::Sym(Rc::new(Sym {
                    tokens: quote!(::kiln::nn::static_shape::numel(&[#(#dims),*])),
                    text: s.text.clone(),
                    prec: s.prec,
                    dynamic: false,
                }))
            }
            _ => acc,
        }
    }

    /// Converts a size written in the declaration. Accepts integer
    /// literals, paths (const generics, constants) and `+ - * / %` of
    /// those, in parentheses as needed.
    pub fn from_syn(expr: &syn::Expr, errors: &mut Errors) -> Option<Expr> {
        match expr {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(int),
                ..
            }) if matches!(int.suffix(), "" | "usize") => match int.base10_parse::<u64>() {
                Ok(v) => Some(Expr::Lit(v)),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            syn::Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
                let text = path
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect::<Vec<_>>()
                    .join("::");
                Some(Expr::atom(path.to_token_stream(), text))
            }
            syn::Expr::Paren(inner) => Expr::from_syn(&inner.expr, errors),
            syn::Expr::Group(inner) => Expr::from_syn(&inner.expr, errors),
            syn::Expr::Binary(bin) => {
                let op = match bin.op {
                    syn::BinOp::Add(_) => Op::Add,
                    syn::BinOp::Sub(_) => Op::Sub,
                    syn::BinOp::Mul(_) => Op::Mul,
                    syn::BinOp::Div(_) => Op::Div,
                    syn::BinOp::Rem(_) => Op::Rem,
                    _ => {
                        errors.spanned(bin.op, "only `+ - * / %` can combine sizes");
                        return None;
                    }
                };
                let left = Expr::from_syn(&bin.left, errors);
                let right = Expr::from_syn(&bin.right, errors);
                match Expr::binary(op, &left?, &right?) {
                    Ok(v) => Some(v),
                    Err(msg) => {
                        errors.spanned(expr, msg);
                        None
                    }
                }
            }
            _ => {
                errors.spanned(
                    expr,
                    "expected a size: an integer, a constant or const generic, \
                     or `+ - * / %` of those",
                );
                None
            }
        }
    }
}

fn paren_if(e: &Expr, paren: bool) -> String {
    if paren {
        format!("({})", e.text())
    } else {
        e.text()
    }
}

/// The size along one axis after a convolution or pooling window:
/// `(input + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`.
pub enum Window {
    /// The output size.
    Fits(Expr),
    /// The window is larger than the padded input: no output.
    TooLarge,
}

/// Applies the window formula along one axis. Symbolic sizes give a
/// symbolic result (the caller asserts it is positive); an input that keeps
/// its size (`padding = dilation·(kernel−1)/2`, stride 1) stays the same
/// expression, so "same" convolutions on const-generic sizes need no check.
pub fn window(
    input: &Expr,
    kernel: &Expr,
    stride: &Expr,
    padding: &Expr,
    dilation: &Expr,
) -> Window {
    if let (Some(i), Some(k), Some(s), Some(p), Some(d)) = (
        input.lit(),
        kernel.lit(),
        stride.lit(),
        padding.lit(),
        dilation.lit(),
    ) {
        if k == 0 || s == 0 || d == 0 {
            // Already reported by the parser ("must be positive").
            return Window::Fits(Expr::Unknown);
        }
        // The one copy of the rule, shared with the kernels.
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        return match kiln_window::output_size(size(i), size(k), size(s), size(p), size(d), false) {
            Some(out) => Window::Fits(Expr::Lit(out as u64)),
            None => Window::TooLarge,
        };
    }
    if [input, kernel, stride, padding, dilation]
        .iter()
        .any(|e| e.is_unknown())
    {
        return Window::Fits(Expr::Unknown);
    }
    let text = match (kernel.lit(), stride.lit(), padding.lit(), dilation.lit()) {
        (Some(k), Some(s), Some(p), Some(d)) => {
            let delta = 2 * p as i128 - d as i128 * (k as i128 - 1);
            if s == 1 && delta == 0 {
                return Window::Fits(input.clone());
            }
            let shifted = match (delta - 1).signum() {
                0 => input.text(),
                1 => format!("{}+{}", input.text(), delta - 1),
                _ => format!("{}-{}", input.text(), 1 - delta),
            };
            if s == 1 {
                match delta.signum() {
                    0 => input.text(),
                    1 => format!("{}+{delta}", input.text()),
                    _ => format!("{}-{}", input.text(), -delta),
                }
            } else {
                format!("({shifted})/{s}+1")
            }
        }
        _ => format!(
            "({}+2*{}-{}*({}-1)-1)/{}+1",
            input.text(),
            padding.text(),
            dilation.text(),
            kernel.text(),
            stride.text()
        ),
    };
    // Every form above is a sum (`H+2`, `(H-1)/2+1`, ...).
    Window::Fits(Expr::helper(
        "conv_out",
        &[input, kernel, stride, padding, dilation],
        text,
        Prec::Sum,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Expr {
        let mut errors = Errors::default();
        let e = Expr::from_syn(&syn::parse_str(src).unwrap(), &mut errors);
        assert!(errors.is_empty(), "{:?}", errors.messages());
        e.unwrap()
    }

    #[test]
    fn folds_literals() {
        assert_eq!(parse("16 * 5 * 5").lit(), Some(400));
        assert_eq!(parse("(3 + 1) * 2 - 1").lit(), Some(7));
    }

    #[test]
    fn prints_symbols_with_minimal_parentheses() {
        assert_eq!(parse("2 * H").text(), "2*H");
        assert_eq!(parse("(H + 1) * 2").text(), "(H+1)*2");
        assert_eq!(parse("H - (A - B)").text(), "H-(A-B)");
        assert_eq!(parse("H * 1 + 0").text(), "H");
        assert_eq!(parse("cfg::WIDTH / 2").text(), "cfg::WIDTH/2");
    }

    #[test]
    fn rejects_negative_and_other_expressions() {
        let mut errors = Errors::default();
        assert!(Expr::from_syn(&syn::parse_str("3 - 4").unwrap(), &mut errors).is_none());
        assert!(Expr::from_syn(&syn::parse_str("f(3)").unwrap(), &mut errors).is_none());
        assert!(Expr::from_syn(&syn::parse_str("3 / 0").unwrap(), &mut errors).is_none());
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn compares() {
        assert_eq!(parse("4").compare(&parse("2 * 2")), Cmp::Equal);
        assert_eq!(parse("4").compare(&parse("5")), Cmp::Differ);
        assert_eq!(parse("H").compare(&parse("H")), Cmp::Equal);
        assert_eq!(parse("H").compare(&parse("2 * H")), Cmp::Deferred);
        assert_eq!(parse("H").compare(&Expr::Unknown), Cmp::Unknown);
    }

    #[test]
    fn window_formula() {
        let l = |v| Expr::Lit(v);
        let out = |w: Window| match w {
            Window::Fits(e) => e.text(),
            Window::TooLarge => "too large".to_owned(),
        };
        assert_eq!(out(window(&l(28), &l(5), &l(1), &l(2), &l(1))), "28");
        assert_eq!(out(window(&l(28), &l(5), &l(1), &l(0), &l(1))), "24");
        assert_eq!(out(window(&l(24), &l(2), &l(2), &l(0), &l(1))), "12");
        assert_eq!(out(window(&l(7), &l(3), &l(2), &l(1), &l(1))), "4");
        assert_eq!(out(window(&l(4), &l(5), &l(1), &l(0), &l(1))), "too large");
        assert_eq!(out(window(&l(3), &l(5), &l(1), &l(0), &l(1))), "too large");
        assert_eq!(out(window(&l(5), &l(3), &l(1), &l(0), &l(2))), "1");
        let h = parse("H");
        assert_eq!(out(window(&h, &l(3), &l(1), &l(1), &l(1))), "H");
        assert_eq!(out(window(&h, &l(5), &l(1), &l(0), &l(1))), "H-4");
        assert_eq!(out(window(&h, &l(2), &l(2), &l(0), &l(1))), "(H-2)/2+1");
    }
}
