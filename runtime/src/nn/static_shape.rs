//! Shapes known while compiling, so that models compose without losing
//! `network!`'s shape check.
//!
//! A type that declares the shape of one input sample and one output
//! sample (batch dimension left out) implements [`StaticShape`]. Every
//! `network!` does; a hand-written `#[derive(Module)]` type may too, and can
//! then be used as a layer of a `network!`, which checks the fit with a
//! const assertion:
//!
//! ```ignore
//! impl kiln::nn::static_shape::StaticShape for Block {
//!     const INPUT_SHAPE: &'static [usize] = &[32, 8, 8];
//!     const OUTPUT_SHAPE: &'static [usize] = &[32, 8, 8];
//! }
//! ```
//!
//! The `const fn`s below are what `network!`'s expansion evaluates in
//! those assertions; they saturate instead of overflowing, so an unfitting
//! shape reads as the assertion's message and not as an arithmetic error.
//! This module uses `core` only.

use core::fmt;

/// The shapes of one input and one output sample of a module (without the
/// batch dimension), known while compiling.
pub trait StaticShape {
    /// The shape of one input sample, e.g. `[1, 28, 28]`.
    const INPUT_SHAPE: &'static [usize];
    /// The shape of one output sample, e.g. `[10]`.
    const OUTPUT_SHAPE: &'static [usize];

    /// Evaluating this constant runs the type's compile-time shape checks
    /// that depend on its const generics (and those of the modules it is
    /// made of); it fails to compile, with a message naming the layer, if
    /// one does not hold. `network!` evaluates it in `new`, and in every
    /// network that uses the type as a layer. Hand-written implementations
    /// can leave the default.
    const SHAPE_CHECKS: () = ();

    /// `true` only for the stand-in that `network!` generates for a
    /// declaration with errors: networks that use it skip their checks
    /// against it, so only the declaration's own errors are reported.
    #[doc(hidden)]
    const DECLARED_WITH_ERRORS: bool = false;
}

/// A size known only at run time: an input dimension declared `dyn H` in
/// `network!` (`input: [3, dyn H, dyn W]`), and every size computed from
/// one. It matches any size in the comparisons below; the forward checks
/// the real sizes.
pub const DYN: usize = usize::MAX;

/// Whether two sizes are equal (a [`DYN`] size matches any).
pub const fn dim_eq(a: usize, b: usize) -> bool {
    a == b || a == DYN || b == DYN
}

/// Whether two shapes are equal (a [`DYN`] size matches any).
pub const fn shape_eq(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && dims_eq_from(a, b, 0)
}

/// Whether two shapes have the same rank and agree on every dimension but
/// the first (channels): what a concatenation along channels needs.
pub const fn spatial_eq(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && !a.is_empty() && dims_eq_from(a, b, 1)
}

/// Whether the equal-rank shapes `a` and `b` agree on every dimension
/// from `first` on.
const fn dims_eq_from(a: &[usize], b: &[usize], first: usize) -> bool {
    let mut i = first;
    while i < a.len() {
        if !dim_eq(a[i], b[i]) {
            return false;
        }
        i += 1;
    }
    true
}

/// `shape[index]`, or 0 when `shape` is shorter (a rank mismatch is
/// reported by its own assertion).
pub const fn dim_at(shape: &[usize], index: usize) -> usize {
    if index < shape.len() { shape[index] } else { 0 }
}

/// The number of elements of one sample of `shape` (saturating).
pub const fn numel(shape: &[usize]) -> usize {
    let mut n: usize = 1;
    let mut i = 0;
    while i < shape.len() {
        if shape[i] == DYN {
            return DYN;
        }
        n = n.saturating_mul(shape[i]);
        i += 1;
    }
    n
}

/// The size along one axis after a convolution or pooling window:
/// `(input + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`, as
/// PyTorch computes it ([`kiln_kernels::window::output_size`], the rule the
/// kernels use); 0 when the window does not fit (or `stride`, `kernel` or
/// `dilation` is 0); [`DYN`] when `input` is.
pub const fn conv_out(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> usize {
    if input == DYN {
        return DYN;
    }
    match kiln_kernels::window::output_size(input, kernel, stride, padding, dilation, false) {
        Some(out) => out,
        None => 0,
    }
}

/// Copies a shape into an array of its length (`N` must be
/// `shape.len()`; missing entries are 0).
pub const fn to_array<const N: usize>(shape: &[usize]) -> [usize; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N && i < shape.len() {
        out[i] = shape[i];
        i += 1;
    }
    out
}

/// `[N, 1, 28, 28]`: a shape with a leading batch dimension named `N`.
struct Batched<'a>(&'a [usize]);

impl fmt::Display for Batched<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[N")?;
        for &d in self.0 {
            if d == DYN {
                f.write_str(", _")?;
            } else {
                write!(f, ", {d}")?;
            }
        }
        f.write_str("]")
    }
}

/// The input check at the top of a `network!`'s forward: `got` must be a
/// batch of samples of shape `expected`.
///
/// # Panics
///
/// If it is not, with a message naming the network and both shapes.
#[track_caller]
pub fn check_input(network: &str, expected: &[usize], got: &[usize]) {
    let fits = got.len() == expected.len() + 1 && shape_eq(&got[1..], expected);
    if !fits {
        let hint = if got.len() == expected.len() && shape_eq(got, expected) {
            " (a single sample: add the batch dimension, e.g. with `unsqueeze(0)`)"
        } else {
            ""
        };
        panic!(
            "{network}::forward: expected input of shape {} (N = batch size), got {got:?}{hint}",
            Batched(expected)
        );
    }
}

/// The run-time check of a `network!` residual block or branches, before
/// the join: `paths` are each path's label and output shape (batch
/// included). A sum (`cat` false) needs equal shapes; a concatenation
/// along channels the same rank and every dimension but channels equal.
///
/// # Panics
///
/// If a path does not fit the first, naming the network, the block, the
/// rule and both shapes.
#[track_caller]
pub fn check_join(network: &str, block: &str, cat: bool, paths: &[(&str, &[usize])]) {
    let Some(&(first_label, first)) = paths.first() else {
        return;
    };
    for &(label, shape) in &paths[1..] {
        let fits = if cat {
            shape.len() == first.len()
                && shape.len() >= 2
                && shape[0] == first[0]
                && shape[2..] == first[2..]
        } else {
            shape == first
        };
        if !fits {
            let rule = if cat {
                "concatenating along channels needs every path to end in the same batch size, height and width"
            } else {
                "the sum needs every path to end in the same shape"
            };
            panic!(
                "{network}::forward: {block}: {label} ends in {shape:?} but {first_label} ends in {first:?}; {rule}"
            );
        }
    }
}

/// The run-time check before a `network!` convolution or pooling layer
/// whose input has a size declared `dyn`: the `kernel` window (with
/// `stride`, `padding`, `dilation`) must fit the height and width of
/// `input` (a batch, `[N, C, H, W]`). `message` names the layer, the rule
/// and the declared shapes.
///
/// # Panics
///
/// If the window does not fit, with `message` and this forward's numbers.
#[track_caller]
pub fn check_window(
    network: &str,
    message: &str,
    input: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) {
    let [.., h, w] = *input else {
        return; // the layer itself reports a wrong rank
    };
    let oh = conv_out(h, kernel[0], stride[0], padding[0], dilation[0]);
    let ow = conv_out(w, kernel[1], stride[1], padding[1], dilation[1]);
    if oh == 0 || ow == 0 {
        panic!(
            "{network}::forward: {message}; in this forward the input is {h}×{w} \
             (batch of shape {input:?}), which would give a {oh}×{ow} output"
        );
    }
}

/// The run-time check before a `network!` `Linear` whose input features
/// depend on a size declared `dyn` (a `flatten` of a `dyn`-sized map): the
/// batch `input` (`[N, features]`) must have `expected` features.
///
/// # Panics
///
/// If it has not, with `message` and this forward's number.
#[track_caller]
pub fn check_features(network: &str, message: &str, input: &[usize], expected: usize) {
    if let [_, got] = *input
        && got != expected
    {
        panic!(
            "{network}::forward: {message}; in this forward that is {got} (batch of shape {input:?})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert!(shape_eq(&[1, 2], &[1, 2]));
        assert!(!shape_eq(&[1, 2], &[1, 2, 3]));
        assert_eq!(dim_at(&[3, 4], 1), 4);
        assert_eq!(dim_at(&[3, 4], 2), 0);
        assert_eq!(numel(&[16, 5, 5]), 400);
        assert_eq!(conv_out(28, 5, 1, 2, 1), 28);
        assert_eq!(conv_out(24, 2, 2, 0, 1), 12);
        assert_eq!(conv_out(4, 5, 1, 0, 1), 0);
        assert_eq!(conv_out(7, 3, 2, 1, 1), 4);
        assert_eq!(to_array::<2>(&[7, 7]), [7, 7]);
        assert!(shape_eq(&[3, DYN, DYN], &[3, 32, 17]));
        assert!(!shape_eq(&[3, DYN], &[4, 32]));
        assert!(spatial_eq(&[3, 8, 8], &[5, 8, 8]));
        assert!(!spatial_eq(&[3, 8, 8], &[3, 8, 4]));
        assert_eq!(numel(&[512, DYN]), DYN);
        assert_eq!(conv_out(DYN, 3, 2, 1, 1), DYN);
        const CHECKED: () = assert!(conv_out(32, 3, 1, 1, 1) == 32);
        let () = CHECKED;
    }

    #[test]
    fn joins() {
        check_join(
            "B",
            "residual block",
            false,
            &[("a", &[2, 4, 8, 8]), ("b", &[2, 4, 8, 8])],
        );
        check_join(
            "B",
            "branches -> cat",
            true,
            &[("a", &[2, 4, 8, 8]), ("b", &[2, 6, 8, 8])],
        );
    }

    #[test]
    #[should_panic(
        expected = "Block::forward: residual block: the identity shortcut ends in [2, 64, 8, 8] but the residual path ends in [2, 128, 4, 4]; the sum needs every path to end in the same shape"
    )]
    fn rejects_a_residual_mismatch() {
        check_join(
            "Block",
            "residual block",
            false,
            &[
                ("the residual path", &[2, 128, 4, 4]),
                ("the identity shortcut", &[2, 64, 8, 8]),
            ],
        );
    }

    #[test]
    #[should_panic(
        expected = "expected input of shape [N, 3, _, _] (N = batch size), got [2, 4, 9, 9]"
    )]
    fn dynamic_input_dims_accept_any_size() {
        check_input("Net", &[3, DYN, DYN], &[2, 3, 9, 7]);
        check_input("Net", &[3, DYN, DYN], &[2, 4, 9, 9]);
    }

    #[test]
    fn accepts_a_batch() {
        check_input("LeNet", &[1, 28, 28], &[64, 1, 28, 28]);
    }

    #[test]
    #[should_panic(
        expected = "LeNet::forward: expected input of shape [N, 1, 28, 28] (N = batch size), got [64, 3, 28, 28]"
    )]
    fn rejects_a_wrong_shape() {
        check_input("LeNet", &[1, 28, 28], &[64, 3, 28, 28]);
    }

    #[test]
    #[should_panic(expected = "(a single sample: add the batch dimension")]
    fn rejects_a_single_sample() {
        check_input("LeNet", &[1, 28, 28], &[1, 28, 28]);
    }
}
