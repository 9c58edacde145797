//! `Conv2d` and its options.

use super::{default_bias, default_weight};
use crate::nn::module::pair;
use crate::nn::{Forward, functional};
use crate::{Device, Tensor, TensorOptions};

/// Hyper-parameters of a [`Conv2d`], built like PyTorch's keyword
/// arguments: `Conv2dOptions::new([3, 3]).stride([1, 1]).padding([1, 1])`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Kernel height and width.
    pub kernel_size: [usize; 2],
    /// Stride (default 1).
    pub stride: [usize; 2],
    /// Zero padding on each side (default 0).
    pub padding: [usize; 2],
    /// Spacing between kernel taps (default 1).
    pub dilation: [usize; 2],
    /// Channel groups (default 1).
    pub groups: usize,
    /// Whether the layer has a bias (default true).
    pub bias: bool,
}

impl Conv2dOptions {
    /// Defaults for a `kernel_size` kernel.
    pub fn new(kernel_size: [usize; 2]) -> Self {
        Conv2dOptions {
            kernel_size,
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
        }
    }
    setters! {
        /// Sets the stride.
        stride: [usize; 2];
        /// Sets the padding.
        padding: [usize; 2];
        /// Sets the dilation.
        dilation: [usize; 2];
        /// Sets the number of groups.
        groups: usize;
        /// With or without bias.
        bias: bool;
    }
}

/// 2-D convolution over `[N, C, H, W]` inputs, like `nn.Conv2d`.
///
/// Initialised as PyTorch does: weight and bias uniform in
/// `[-1/√fan_in, 1/√fan_in]` with `fan_in = in_channels/groups · kh · kw`.
///
/// ```
/// use kiln_runtime::{Device, nn::{Conv2d, Conv2dOptions}};
/// let c = Conv2d::new(1, 6, Conv2dOptions::new([5, 5]).padding([2, 2]), &Device::Cpu);
/// assert_eq!(c.to_string(), "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))");
/// ```
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "conv2d_extra_repr")]
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, or `None`.
    pub bias: Option<Tensor>,
    /// Input channels.
    #[module(skip)]
    pub in_channels: usize,
    /// Output channels.
    #[module(skip)]
    pub out_channels: usize,
    /// Kernel size, stride, padding, dilation, groups.
    #[module(skip)]
    pub options: Conv2dOptions,
    #[module(training)]
    training: bool,
}

impl Conv2d {
    /// A convolution from `in_channels` to `out_channels` on `device`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        options: Conv2dOptions,
        device: &Device,
    ) -> Conv2d {
        let g = options.groups;
        assert!(
            g > 0 && in_channels.is_multiple_of(g) && out_channels.is_multiple_of(g),
            "Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by groups ({g})"
        );
        let [kh, kw] = options.kernel_size;
        let opts = TensorOptions::default().device(device);
        let weight = default_weight(&[out_channels, in_channels / g, kh, kw], opts);
        let fan_in = in_channels / g * kh * kw;
        let bias = options
            .bias
            .then(|| default_bias(out_channels, fan_in, opts));
        Conv2d {
            weight,
            bias,
            in_channels,
            out_channels,
            options,
            training: true,
        }
    }
}

impl Forward for Conv2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        let o = &self.options;
        functional::conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            o.stride,
            o.padding,
            o.dilation,
            o.groups,
        )
    }
}

/// What `print(model)` shows inside [`Conv2d`]'s parentheses (PyTorch's
/// `extra_repr`).
fn conv2d_extra_repr(s: &Conv2d) -> String {
    let o = &s.options;
    let mut r = format!(
        "{}, {}, kernel_size={}, stride={}",
        s.in_channels,
        s.out_channels,
        pair(o.kernel_size),
        pair(o.stride)
    );
    if o.padding != [0, 0] {
        r += &format!(", padding={}", pair(o.padding));
    }
    if o.dilation != [1, 1] {
        r += &format!(", dilation={}", pair(o.dilation));
    }
    if o.groups != 1 {
        r += &format!(", groups={}", o.groups);
    }
    if s.bias.is_none() {
        r += ", bias=False";
    }
    r
}
