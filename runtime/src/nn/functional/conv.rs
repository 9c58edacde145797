//! 2-D convolution with autograd: the checks, the backend's fused kernel
//! and its backward.

use super::util::{check_float, check_same, from_weighted_op};
use crate::Tensor;
use crate::backend::{self, Conv2dParams};
use kiln_kernels::cpu::conv::conv2d_output_size;

/// 2-D cross-correlation over NCHW input, like `F.conv2d`.
///
/// `x` is `[N, C, H, W]` (or unbatched `[C, H, W]`), `weight`
/// `[O, C / groups, kH, kW]`, `bias` `[O]`; the result is `[N, O, oH, oW]`
/// with `oH = (H + 2·padding - dilation·(kH - 1) - 1) / stride + 1`.
///
/// ```
/// use kiln_runtime::{Tensor, nn::functional::conv2d};
/// let x = Tensor::ones([1, 1, 3, 3]);
/// let w = Tensor::ones([1, 1, 2, 2]);
/// let y = conv2d(&x, &w, None, [1, 1], [0, 0], [1, 1], 1);
/// assert_eq!(y.shape(), &[1, 1, 2, 2]);
/// assert_eq!(y.to_vec::<f32>(), vec![4.0; 4]);
/// ```
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Tensor {
    const OP: &str = "conv2d";
    if x.dim() == 3 {
        return conv2d(
            &x.unsqueeze(0),
            weight,
            bias,
            stride,
            padding,
            dilation,
            groups,
        )
        .squeeze_dim(0);
    }
    if x.dim() != 4 {
        panic!(
            "{OP}: expected a 3-D (unbatched) or 4-D (batched) input, but got input of shape {:?}",
            x.shape()
        );
    }
    if weight.dim() != 4 {
        panic!(
            "{OP}: expected a 4-D weight [out_channels, in_channels / groups, kH, kW], but got \
             weight of shape {:?}",
            weight.shape()
        );
    }
    check_float(OP, "input", x);
    check_same(OP, "weight", weight, x);
    if groups == 0 {
        panic!("{OP}: non-positive groups is not supported");
    }
    if stride.contains(&0) || dilation.contains(&0) {
        panic!("{OP}: stride {stride:?} and dilation {dilation:?} must be positive");
    }
    let in_shape = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    let w_shape = [
        weight.shape()[0],
        weight.shape()[1],
        weight.shape()[2],
        weight.shape()[3],
    ];
    let (c, o) = (in_shape[1], w_shape[0]);
    if c % groups != 0 || o % groups != 0 {
        panic!(
            "{OP}: input channels ({c}) and output channels ({o}) must both be divisible by \
             groups ({groups}) (input {:?}, weight {:?})",
            x.shape(),
            weight.shape()
        );
    }
    if w_shape[1] * groups != c {
        panic!(
            "{OP}: given groups={groups}, weight of size {:?}, expected input {:?} to have {} \
             channels, but got {c} channels instead",
            weight.shape(),
            x.shape(),
            w_shape[1] * groups
        );
    }
    if let Some(b) = bias {
        check_same(OP, "bias", b, x);
        if b.shape() != [o] {
            panic!(
                "{OP}: expected bias of shape [{o}] for weight {:?}, but got {:?}",
                weight.shape(),
                b.shape()
            );
        }
    }
    let p = Conv2dParams {
        stride,
        padding,
        dilation,
        groups,
    };
    // Only checked here: the backend computes the output shape itself.
    let _ = conv2d_output_size([in_shape[2], in_shape[3]], [w_shape[2], w_shape[3]], &p)
        .unwrap_or_else(|| {
            panic!(
                "{OP}: calculated output size is too small (input {:?}, weight {:?}, stride \
                 {stride:?}, padding {padding:?}, dilation {dilation:?}): kernel size can't be \
                 greater than the padded input size",
                x.shape(),
                weight.shape()
            )
        });
    let (xd, wd) = (x.detach(), weight.detach());
    let bd = bias.map(Tensor::detach);
    let dev = backend::of(x.device());
    // A pass that will be differentiated keeps what its backward can reuse
    // (on the CPU, a Winograd layer's transformed weights and input).
    let differentiated = crate::autograd::is_grad_enabled()
        && (x.requires_grad() || weight.requires_grad() || bias.is_some_and(Tensor::requires_grad));
    let (out, kept) = if differentiated {
        dev.conv2d_keeping(&xd, &wd, bd.as_ref(), &p)
    } else {
        (dev.conv2d(&xd, &wd, bd.as_ref(), &p), None)
    };
    let saved = [xd.shallow_clone(), wd.shallow_clone()];
    let backward = move |g: &Tensor, need: [bool; 3]| {
        let dev = backend::of(g.device());
        let (gx, gw, gb) = match &kept {
            Some(kept) => dev.conv2d_backward_reusing(&xd, &wd, g, &p, need, kept),
            None => dev.conv2d_backward(&xd, &wd, g, &p, need),
        };
        [gx, gw, gb]
    };
    from_weighted_op(
        out,
        "ConvolutionBackward0",
        (x, weight, bias),
        saved,
        backward,
    )
}
