//! The output-size rule of a convolution or pooling window, in one place.
//!
//! [`output_size`] is the only copy of PyTorch's formula
//! `(in + 2·padding − dilation·(kernel − 1) − 1) / stride + 1` (rounded up
//! with `ceil_mode`) in kiln: the CPU and CUDA kernels, `nn::functional`,
//! the const-generic shape helpers (`kiln::nn::static_shape::conv_out`) and
//! the `network!` macro's compile-time shape checker all call it. It has no
//! dependencies so that the proc-macro crate can use it without pulling in
//! the compute kernels.

#![no_std]
#![warn(missing_docs)]

/// Output length along one axis of a window (convolution or pooling) slid
/// over `input` elements, exactly as PyTorch computes it
/// (`pooling_output_shape` in ATen, which convolutions share with
/// `ceil_mode = false`):
///
/// `out = floor_or_ceil((input + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1`,
///
/// rounding up when `ceil_mode`, except that in ceil mode a last window that
/// would start in the right padding is dropped.
///
/// `None` when the output would be empty (the window does not fit the
/// padded input) or when `kernel`, `stride` or `dilation` is zero. The
/// pooling-only rule "padding at most half the effective kernel" is not
/// checked here: convolutions allow any padding.
///
/// ```
/// use kiln_window::output_size;
/// assert_eq!(output_size(28, 5, 1, 0, 1, false), Some(24)); // LeNet conv
/// assert_eq!(output_size(24, 2, 2, 0, 1, false), Some(12)); // 2×2 max pool
/// assert_eq!(output_size(5, 2, 2, 0, 1, true), Some(3)); // ceil_mode
/// assert_eq!(output_size(4, 5, 1, 0, 1, false), None); // too large
/// ```
pub const fn output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    // Effective window length; `checked_*` so absurd parameters give
    // `None` instead of an overflow.
    let Some(span) = dilation.checked_mul(kernel - 1) else {
        return None;
    };
    let Some(span) = span.checked_add(1) else {
        return None;
    };
    let Some(twice_pad) = padding.checked_mul(2) else {
        return None;
    };
    let Some(padded) = input.checked_add(twice_pad) else {
        return None;
    };
    let round_up = if ceil_mode { stride - 1 } else { 0 };
    // The numerator `padded - span + round_up`, which must not be negative.
    let Some(top) = padded.checked_add(round_up) else {
        return None;
    };
    if top < span {
        return None;
    }
    let mut out = (top - span) / stride + 1;
    // Ceil mode: the last window must start inside the input or the left
    // padding (PyTorch drops one that starts in the right padding).
    if ceil_mode && (out - 1) * stride >= input + padding {
        out -= 1;
    }
    if out == 0 { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::output_size;

    /// ATen's `pooling_output_shape_pad_lr`, transcribed with its signed
    /// arithmetic and `div_rtn` (division rounding towards −∞); an output
    /// below 1 is PyTorch's "output size is too small" error.
    fn aten(input: i64, kernel: i64, stride: i64, pad: i64, dilation: i64, ceil: bool) -> i64 {
        let num = input + 2 * pad - dilation * (kernel - 1) - 1 + if ceil { stride - 1 } else { 0 };
        let mut out = num.div_euclid(stride) + 1;
        if ceil && (out - 1) * stride >= input + pad {
            out -= 1;
        }
        out
    }

    #[test]
    fn matches_aten_exhaustively() {
        let mut checked = 0;
        for input in 0..=24 {
            for kernel in 1..=7 {
                for stride in 1..=5 {
                    for padding in 0..=4 {
                        for dilation in 1..=3 {
                            for ceil in [false, true] {
                                let want = aten(input, kernel, stride, padding, dilation, ceil);
                                let got = output_size(
                                    input as usize,
                                    kernel as usize,
                                    stride as usize,
                                    padding as usize,
                                    dilation as usize,
                                    ceil,
                                );
                                let want = (want > 0).then_some(want as usize);
                                assert_eq!(
                                    got, want,
                                    "in {input}, k {kernel}, s {stride}, p {padding}, \
                                     d {dilation}, ceil {ceil}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 25 * 7 * 5 * 5 * 3 * 2);
    }

    /// Without ceil mode the result is the number of window positions that
    /// lie entirely inside the padded input.
    #[test]
    fn floor_mode_counts_windows_that_fit() {
        for input in 0..=20usize {
            for kernel in 1..=6usize {
                for stride in 1..=4usize {
                    for padding in 0..=3usize {
                        for dilation in 1..=3usize {
                            let span = dilation * (kernel - 1) + 1;
                            let fits = (0..)
                                .take_while(|o| o * stride + span <= input + 2 * padding)
                                .count();
                            let want = (fits > 0).then_some(fits);
                            let got = output_size(input, kernel, stride, padding, dilation, false);
                            assert_eq!(got, want, "in {input} k {kernel} s {stride} p {padding}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_zero_parameters_and_overflow() {
        assert_eq!(output_size(10, 0, 1, 0, 1, false), None);
        assert_eq!(output_size(10, 3, 0, 0, 1, false), None);
        assert_eq!(output_size(10, 3, 1, 0, 0, false), None);
        assert_eq!(output_size(10, 3, 1, usize::MAX, 1, false), None);
        assert_eq!(output_size(10, usize::MAX, 1, 0, 2, false), None);
        assert_eq!(output_size(usize::MAX, 1, 1, 0, 1, true), Some(usize::MAX));
    }

    #[test]
    fn usable_in_const_context() {
        const OUT: Option<usize> = output_size(32, 3, 1, 1, 1, false);
        assert_eq!(OUT, Some(32));
    }
}
