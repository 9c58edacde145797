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

/// Whether two shapes are equal.
pub const fn shape_eq(a: &[usize], b: &[usize]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
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
        n = n.saturating_mul(shape[i]);
        i += 1;
    }
    n
}

/// The size along one axis after a convolution or pooling window:
/// `(input + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`, as
/// PyTorch computes it ([`kiln_kernels::window::output_size`], the rule the
/// kernels use); 0 when the window does not fit (or `stride`, `kernel` or
/// `dilation` is 0).
pub const fn conv_out(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> usize {
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
        for d in self.0 {
            write!(f, ", {d}")?;
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
        const CHECKED: () = assert!(conv_out(32, 3, 1, 1, 1) == 32);
        let () = CHECKED;
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
