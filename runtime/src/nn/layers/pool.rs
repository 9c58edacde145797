//! Pooling layers.

use crate::Tensor;
use crate::nn::module::{int_or_pair, pair};
use crate::nn::{Forward, functional};

/// 2-D max pooling, like `nn.MaxPool2d`.
///
/// ```
/// use kiln_runtime::nn::MaxPool2d;
/// let p = MaxPool2d::new([2, 2], [2, 2], [0, 0]);
/// assert_eq!(p.to_string(), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)");
/// ```
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "max_pool2d_extra_repr")]
pub struct MaxPool2d {
    /// Window size.
    #[module(skip)]
    pub kernel_size: [usize; 2],
    /// Step between windows.
    #[module(skip)]
    pub stride: [usize; 2],
    /// Implicit padding (with -∞).
    #[module(skip)]
    pub padding: [usize; 2],
    #[module(training)]
    training: bool,
}

impl MaxPool2d {
    /// Pooling with the given window, stride and padding.
    pub fn new(kernel_size: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> MaxPool2d {
        MaxPool2d {
            kernel_size,
            stride,
            padding,
            training: true,
        }
    }
}

impl Forward for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        functional::max_pool2d(x, self.kernel_size, self.stride, self.padding)
    }
}

/// What `print(model)` shows inside [`MaxPool2d`]'s parentheses (PyTorch's
/// `extra_repr`).
fn max_pool2d_extra_repr(s: &MaxPool2d) -> String {
    format!(
        "kernel_size={}, stride={}, padding={}, dilation=1, ceil_mode=False",
        int_or_pair(s.kernel_size),
        int_or_pair(s.stride),
        int_or_pair(s.padding)
    )
}

/// 2-D average pooling (padding counted in the average), like
/// `nn.AvgPool2d`.
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "avg_pool2d_extra_repr")]
pub struct AvgPool2d {
    /// Window size.
    #[module(skip)]
    pub kernel_size: [usize; 2],
    /// Step between windows.
    #[module(skip)]
    pub stride: [usize; 2],
    /// Implicit zero padding.
    #[module(skip)]
    pub padding: [usize; 2],
    #[module(training)]
    training: bool,
}

impl AvgPool2d {
    /// Pooling with the given window, stride and padding.
    pub fn new(kernel_size: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> AvgPool2d {
        AvgPool2d {
            kernel_size,
            stride,
            padding,
            training: true,
        }
    }
}

impl Forward for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        functional::avg_pool2d(x, self.kernel_size, self.stride, self.padding)
    }
}

/// What `print(model)` shows inside [`AvgPool2d`]'s parentheses (PyTorch's
/// `extra_repr`).
fn avg_pool2d_extra_repr(s: &AvgPool2d) -> String {
    format!(
        "kernel_size={}, stride={}, padding={}",
        int_or_pair(s.kernel_size),
        int_or_pair(s.stride),
        int_or_pair(s.padding)
    )
}

/// Average pooling to a fixed output size, like `nn.AdaptiveAvgPool2d`.
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "adaptive_avg_pool2d_extra_repr")]
pub struct AdaptiveAvgPool2d {
    /// Output height and width.
    #[module(skip)]
    pub output_size: [usize; 2],
    #[module(training)]
    training: bool,
}

impl AdaptiveAvgPool2d {
    /// Pooling to `[h, w]`.
    pub fn new(output_size: [usize; 2]) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d {
            output_size,
            training: true,
        }
    }
}

impl Forward for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        functional::adaptive_avg_pool2d(x, self.output_size)
    }
}

/// What `print(model)` shows inside [`AdaptiveAvgPool2d`]'s parentheses (PyTorch's
/// `extra_repr`).
fn adaptive_avg_pool2d_extra_repr(s: &AdaptiveAvgPool2d) -> String {
    format!("output_size={}", pair(s.output_size))
}
