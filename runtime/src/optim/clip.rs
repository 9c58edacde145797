//! Gradient clipping.

use crate::Tensor;
use crate::autograd::no_grad;

/// Scales the gradients of `params` so that their joint `norm_type`-norm
/// is at most `max_norm`, like `torch.nn.utils.clip_grad_norm_`, and
/// returns the total norm before clipping. The scale is
/// `max_norm / (total + 1e-6)`, applied only when below 1. `norm_type` may
/// be `f64::INFINITY` (largest absolute value).
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::clip_grad_norm_;
/// let p = Tensor::zeros([2]).requires_grad_(true);
/// p.set_grad(Some(Tensor::from([3.0f32, 4.0])));
/// let total = clip_grad_norm_(&[p.shallow_clone()], 1.0, 2.0);
/// assert!((total - 5.0).abs() < 1e-6);
/// let g = p.grad().unwrap().to_vec::<f32>();
/// assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5);
/// ```
pub fn clip_grad_norm_(params: &[Tensor], max_norm: f64, norm_type: f64) -> f64 {
    let grads: Vec<Tensor> = params.iter().filter_map(Tensor::grad).collect();
    if grads.is_empty() {
        return 0.0;
    }
    clip_grad_norm_all(&grads, max_norm, norm_type)
}

/// The body of [`clip_grad_norm_`]: the norm is reduced where the
/// gradients live, in float64, and read back once (the function returns
/// it); the scaling runs there too.
fn clip_grad_norm_all(grads: &[Tensor], max_norm: f64, norm_type: f64) -> f64 {
    crate::ops::device::same_device("clip_grad_norm_", &grads.iter().collect::<Vec<_>>());
    let total = no_grad(|| {
        let parts: Vec<Tensor> = grads
            .iter()
            .map(|g| {
                if g.numel() == 0 {
                    return g.f64_scalar_like(0.0);
                }
                let a = g.to_dtype(crate::DType::F64).abs();
                if norm_type.is_infinite() {
                    a.max()
                } else {
                    a.pow_scalar(norm_type).sum()
                }
            })
            .collect();
        let all = Tensor::stack(&parts.iter().collect::<Vec<_>>(), 0);
        if norm_type.is_infinite() {
            all.max().item()
        } else {
            all.sum().item().powf(1.0 / norm_type)
        }
    });
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        no_grad(|| {
            for g in grads {
                g.mul_scalar_(coef);
            }
        });
    }
    total
}

/// Clamps every gradient element of `params` to `[-clip, clip]`, like
/// `torch.nn.utils.clip_grad_value_`.
pub fn clip_grad_value_(params: &[Tensor], clip: f64) {
    for p in params {
        if let Some(g) = p.grad() {
            no_grad(|| g.copy_(&g.clamp(Some(-clip), Some(clip))));
        }
    }
}
