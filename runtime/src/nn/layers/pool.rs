//! Pooling layers.

use crate::nn::functional;
use crate::nn::module::{int_or_pair, pair};

/// A pooling layer over a window, like `nn.MaxPool2d(kernel_size, stride,
/// padding)`: `$f` pools, `$extra` follows the window in `extra_repr`.
macro_rules! window_pool {
    ($(#[$doc:meta])* $name:ident, padding: $padding:literal, $f:ident, $extra:literal) => {
        layer! {
            $(#[$doc])*
            pub struct $name {
                /// Window size.
                kernel_size: [usize; 2],
                /// Step between windows.
                stride: [usize; 2],
                #[doc = $padding]
                padding: [usize; 2],
            }
            /// Pooling with the given window, stride and padding.
            fn new;
            forward: |s, x| functional::$f(x, s.kernel_size, s.stride, s.padding);
            extra_repr: |s| format!(
                "kernel_size={}, stride={}, padding={}{}",
                int_or_pair(s.kernel_size),
                int_or_pair(s.stride),
                int_or_pair(s.padding),
                $extra
            );
        }
    };
}

window_pool!(
    /// 2-D max pooling, like `nn.MaxPool2d`.
    ///
    /// ```
    /// use kiln_runtime::nn::MaxPool2d;
    /// let p = MaxPool2d::new([2, 2], [2, 2], [0, 0]);
    /// assert_eq!(p.to_string(), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)");
    /// ```
    MaxPool2d,
    padding: "Implicit padding (with -∞).",
    max_pool2d,
    ", dilation=1, ceil_mode=False"
);

window_pool!(
    /// 2-D average pooling (padding counted in the average), like
    /// `nn.AvgPool2d`.
    AvgPool2d,
    padding: "Implicit zero padding.",
    avg_pool2d,
    ""
);

layer! {
    /// Average pooling to a fixed output size, like `nn.AdaptiveAvgPool2d`.
    pub struct AdaptiveAvgPool2d {
        /// Output height and width.
        output_size: [usize; 2],
    }
    /// Pooling to `[h, w]`.
    fn new;
    forward: |s, x| functional::adaptive_avg_pool2d(x, s.output_size);
    extra_repr: |s| format!("output_size={}", pair(s.output_size));
}
