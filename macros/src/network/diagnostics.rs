//! Error collection and the wording helpers shared by the parser and the
//! shape checker: "did you mean" suggestions, shape chains, plurals.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// Every error found in one declaration, in source order of discovery.
#[derive(Default)]
pub struct Errors(Vec<syn::Error>);

impl Errors {
    /// Records an error spanning `tokens` (first to last token).
    pub fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.0.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error at `span`.
    pub fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.0.push(syn::Error::new(span, message));
    }

    /// Records an error produced by syn (a syntax error).
    pub fn push(&mut self, error: syn::Error) {
        self.0.push(error);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages, for unit tests.
    #[cfg(test)]
    pub fn messages(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// One `compile_error!` per error, each at its own span, in source
    /// order (the parser and the shape checker find them in two passes).
    pub fn to_compile_errors(&self) -> TokenStream {
        let mut errors: Vec<&syn::Error> = self.0.iter().collect();
        if proc_macro::is_available() {
            errors.sort_by_key(|e| {
                let span = e.span().unwrap();
                (span.line(), span.column())
            });
        }
        errors
            .into_iter()
            .map(syn::Error::to_compile_error)
            .collect()
    }
}

/// Edit distance counting a swap of neighbours as one edit (optimal string
/// alignment), ignoring ASCII case.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely
/// typo: at most one edit for short words, a third of the length for longer
/// ones. A difference of case alone always qualifies. Among close
/// candidates, those written in the same style (`relu` / `ReLU`) come
/// first.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let lower = |s: &str| s.starts_with(|c: char| c.is_ascii_lowercase());
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (lower(c) != lower(word), edit_distance(word, c), c))
        .filter(|(_, d, _)| *d <= limit)
        .min_by_key(|(style, d, _)| (*style, *d))
        .map(|(_, _, c)| c)
}

/// `"; did you mean `x`?"` or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(word, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

/// `1 channel`, `6 channels`.
pub fn count(n: &str, noun: &str) -> String {
    if n == "1" {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The shapes from the input to the current layer, as the diagnostics show
/// them: `input [1,28,28] → conv1 [6,24,24] → …`. Steps that keep the shape
/// (activations, dropout, batch norm) are left out.
#[derive(Clone, Default)]
pub struct Chain {
    entries: Vec<(String, String)>,
}

/// Chains longer than this show their start and end only.
const CHAIN_MAX: usize = 10;

impl Chain {
    pub fn push(&mut self, label: impl Into<String>, shape: impl Into<String>) {
        self.entries.push((label.into(), shape.into()));
    }

    /// The number of steps so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The last step as `conv1 [6,24,24]`, or `input [..]` at the start.
    pub fn last_entry(&self) -> String {
        self.entries
            .last()
            .map_or_else(|| "input [?]".to_owned(), |(l, s)| format!("{l} {s}"))
    }

    /// The steps after the first `from` ones, as `conv1 [..] → bn1 [..]`
    /// (the trace of a path of a parallel block).
    pub fn render_since(&self, from: usize) -> Vec<String> {
        self.entries[from.min(self.entries.len())..]
            .iter()
            .map(|(l, s)| format!("{l} {s}"))
            .collect()
    }

    /// The label of the step that produced the current shape.
    pub fn last_label(&self) -> &str {
        self.entries.last().map_or("input", |(l, _)| l.as_str())
    }

    /// `"the input has"` or `"conv1 produces"`.
    pub fn producer(&self) -> String {
        self.producer_or("the input has")
    }

    /// `for_input` when the shape is the input's, else `"conv1 produces"`.
    pub fn producer_or(&self, for_input: &str) -> String {
        match self.last_label() {
            "input" => for_input.to_owned(),
            label => format!("{label} produces"),
        }
    }

    /// `"the input"` or `"conv1"`: the step as a noun.
    pub fn producer_noun(&self) -> String {
        match self.last_label() {
            "input" => "the input".to_owned(),
            label => label.to_owned(),
        }
    }

    /// ` (input [1,28,28] → conv1 [6,24,24])`, eliding the middle of long
    /// chains.
    pub fn render(&self) -> String {
        let item = |(l, s): &(String, String)| format!("{l} {s}");
        let parts: Vec<String> = if self.entries.len() > CHAIN_MAX {
            let head = self.entries.iter().take(2).map(item);
            let tail = self.entries[self.entries.len() - (CHAIN_MAX - 3)..]
                .iter()
                .map(item);
            head.chain(std::iter::once("…".to_owned()))
                .chain(tail)
                .collect()
        } else {
            self.entries.iter().map(item).collect()
        };
        format!(" ({})", parts.join(" → "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let kinds = ["Conv2d", "Linear", "ReLU", "relu", "max_pool2d"];
        assert_eq!(closest("Conv2D", kinds), Some("Conv2d"));
        assert_eq!(closest("Relu", kinds), Some("ReLU"));
        assert_eq!(closest("relu6", kinds), Some("relu"));
        assert_eq!(closest("conv2d", kinds), Some("Conv2d"));
        assert_eq!(closest("maxpool2d", kinds), Some("max_pool2d"));
        assert_eq!(closest("Encoder", kinds), None);
        assert_eq!(closest("paddin", ["padding", "stride"]), Some("padding"));
        assert_eq!(closest("inptu", ["input"]), Some("input"));
        assert_eq!(
            did_you_mean("strid", ["padding", "stride"]),
            "; did you mean `stride`?"
        );
    }

    #[test]
    fn chain_is_elided_in_the_middle() {
        let mut chain = Chain::default();
        for i in 0..20 {
            chain.push(format!("l{i}"), "[1]");
        }
        let text = chain.render();
        assert!(
            text.starts_with(" (l0 [1] → l1 [1] → … → l13 [1]"),
            "{text}"
        );
        assert!(text.ends_with("l19 [1])"), "{text}");
    }
}
