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
/// let total = clip_grad_norm_(&[p.clone()], 1.0, 2.0);
/// assert!((total - 5.0).abs() < 1e-6);
/// let g = p.grad().unwrap().to_vec::<f32>();
/// assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5);
/// ```
pub fn clip_grad_norm_(params: &[Tensor], max_norm: f64, norm_type: f64) -> f64 {
    let grads: Vec<Tensor> = params.iter().filter_map(Tensor::grad).collect();
    if grads.is_empty() {
        return 0.0;
    }
    let total = if norm_type.is_infinite() {
        grads
            .iter()
            .flat_map(|g| g.to_vec::<f64>())
            .fold(0.0f64, |m, x| m.max(x.abs()))
    } else {
        let sum: f64 = grads
            .iter()
            .map(|g| {
                let n: f64 = g
                    .to_vec::<f64>()
                    .iter()
                    .map(|x| x.abs().powf(norm_type))
                    .sum::<f64>()
                    .powf(1.0 / norm_type);
                n.powf(norm_type)
            })
            .sum();
        sum.powf(1.0 / norm_type)
    };
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        no_grad(|| {
            for g in &grads {
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
            let v: Vec<f64> = g
                .to_vec::<f64>()
                .iter()
                .map(|x| x.clamp(-clip, clip))
                .collect();
            no_grad(|| g.copy_(&Tensor::from_vec(v, g.shape())));
        }
    }
}
