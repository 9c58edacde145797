//! 2-D pooling with autograd, over the kernels of `kiln_kernels::cpu::pool`.

use super::util::check_float;
use crate::Tensor;
use crate::backend::{self, Pool2dParams};
use kiln_kernels::cpu::pool::pool2d_output_size;

/// Runs the 4-D pooling `f` on `x`, passing unbatched `[C, H, W]` input as
/// a batch of one.
fn batched(op: &str, x: &Tensor, f: impl FnOnce(&Tensor) -> Tensor) -> Tensor {
    check_float(op, "input", x);
    match x.dim() {
        3 => f(&x.unsqueeze(0)).squeeze_dim(0),
        4 => f(x),
        _ => panic!(
            "{op}: expected a 3-D (unbatched) or 4-D (batched) input, but got input of shape {:?}",
            x.shape()
        ),
    }
}

/// Checks a pooling window against the 4-D input `x` (positive sizes,
/// padding at most half the window, an output of at least one element).
fn check_window(op: &str, x: &Tensor, p: &Pool2dParams) {
    let Pool2dParams {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    } = *p;
    if kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) {
        panic!(
            "{op}: kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} must be positive"
        );
    }
    for d in 0..2 {
        let span = dilation[d] * (kernel[d] - 1) + 1;
        if padding[d] > span / 2 {
            panic!(
                "{op}: pad should be at most half of effective kernel size, but got pad \
                 {padding:?}, kernel {kernel:?} and dilation {dilation:?}"
            );
        }
    }
    let s = x.shape();
    if pool2d_output_size([s[2], s[3]], kernel, stride, padding, dilation, ceil_mode).is_none() {
        panic!(
            "{op}: given input size {:?}, kernel {kernel:?}, stride {stride:?}, padding \
             {padding:?} and dilation {dilation:?}, the calculated output size is too small",
            x.shape()
        )
    }
}

/// 2-D max pooling, like `F.max_pool2d(x, kernel, stride, padding)` (no
/// dilation, floor mode). `x` is `[N, C, H, W]` or `[C, H, W]`.
///
/// ```
/// use kiln_runtime::{Tensor, nn::functional::max_pool2d};
/// let x = Tensor::from_vec((0..16).map(|i| i as f32).collect::<Vec<_>>(), [1, 1, 4, 4]);
/// let y = max_pool2d(&x, [2, 2], [2, 2], [0, 0]);
/// assert_eq!(y.to_vec::<f32>(), vec![5.0, 7.0, 13.0, 15.0]);
/// ```
pub fn max_pool2d(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor {
    max_pool2d_with(x, kernel, stride, padding, [1, 1], false)
}

/// 2-D max pooling with every option of `F.max_pool2d`: `dilation`
/// between window taps and `ceil_mode` (round the output size up).
/// The gradient flows to each window's maximum.
pub fn max_pool2d_with(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Tensor {
    const OP: &str = "max_pool2d";
    let p = Pool2dParams {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    };
    batched(OP, x, |x| {
        check_window(OP, x, &p);
        let (out, indices) = backend::of(x.device()).max_pool2d(&x.detach(), &p);
        let in_shape = x.shape().to_vec();
        Tensor::from_op(out, "MaxPool2DWithIndicesBackward0", &[x], move |g, _| {
            let be = backend::of(g.device());
            vec![Some(be.max_pool2d_backward(g, &indices, &in_shape, &p))]
        })
    })
}

/// 2-D average pooling, like `F.avg_pool2d(x, kernel, stride, padding)`
/// with PyTorch's defaults (`ceil_mode=False`, `count_include_pad=True`).
///
/// ```
/// use kiln_runtime::{Tensor, nn::functional::avg_pool2d};
/// let x = Tensor::from_vec((0..16).map(|i| i as f32).collect::<Vec<_>>(), [1, 1, 4, 4]);
/// let y = avg_pool2d(&x, [2, 2], [2, 2], [0, 0]);
/// assert_eq!(y.to_vec::<f32>(), vec![2.5, 4.5, 10.5, 12.5]);
/// ```
pub fn avg_pool2d(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor {
    avg_pool2d_with(x, kernel, stride, padding, false, true)
}

/// 2-D average pooling with `ceil_mode` and `count_include_pad` (whether
/// zero padding counts in each window's divisor), like `F.avg_pool2d`.
pub fn avg_pool2d_with(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    ceil_mode: bool,
    count_include_pad: bool,
) -> Tensor {
    const OP: &str = "avg_pool2d";
    let p = Pool2dParams {
        kernel,
        stride,
        padding,
        dilation: [1, 1],
        ceil_mode,
    };
    batched(OP, x, |x| {
        check_window(OP, x, &p);
        let out = backend::of(x.device()).avg_pool2d(&x.detach(), &p, count_include_pad);
        let in_shape = x.shape().to_vec();
        Tensor::from_op(out, "AvgPool2DBackward0", &[x], move |g, _| {
            let be = backend::of(g.device());
            vec![Some(be.avg_pool2d_backward(
                g,
                &in_shape,
                &p,
                count_include_pad,
            ))]
        })
    })
}

/// Adaptive 2-D average pooling to `output_size` `[oh, ow]`, like
/// `F.adaptive_avg_pool2d`: output cell `(i, j)` averages input rows
/// `floor(i·H/oh) .. ceil((i+1)·H/oh)` (and likewise columns).
///
/// ```
/// use kiln_runtime::{Tensor, nn::functional::adaptive_avg_pool2d};
/// let x = Tensor::from_vec((0..16).map(|i| i as f32).collect::<Vec<_>>(), [1, 1, 4, 4]);
/// assert_eq!(adaptive_avg_pool2d(&x, [1, 1]).to_vec::<f32>(), vec![7.5]);
/// ```
pub fn adaptive_avg_pool2d(x: &Tensor, output_size: [usize; 2]) -> Tensor {
    const OP: &str = "adaptive_avg_pool2d";
    batched(OP, x, |x| {
        let in_shape = x.shape();
        if output_size.contains(&0) && in_shape[0] * in_shape[1] > 0 {
            panic!(
                "{OP}: output size {output_size:?} must be positive (input {:?})",
                x.shape()
            );
        }
        if in_shape[2] == 0 || in_shape[3] == 0 {
            panic!(
                "{OP}: expected input with non-zero spatial size, but got {:?}",
                x.shape()
            );
        }
        let out = backend::of(x.device()).adaptive_avg_pool2d(&x.detach(), output_size);
        let in_shape = in_shape.to_vec();
        Tensor::from_op(out, "AdaptiveAvgPool2DBackward0", &[x], move |g, _| {
            let be = backend::of(g.device());
            vec![Some(be.adaptive_avg_pool2d_backward(g, &in_shape))]
        })
    })
}
