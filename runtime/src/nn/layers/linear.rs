//! `Linear`: `y = x Wᵀ + b`.

use super::{default_bias, default_weight};
use crate::nn::{Forward, functional};
use crate::{Device, Tensor, TensorOptions};

/// Fully connected layer `y = x @ weight.T + bias`, like `nn.Linear`.
///
/// Initialised as PyTorch does: `weight` and `bias` uniform in
/// `[-1/√in_features, 1/√in_features]` (kaiming_uniform_ with `a = √5`).
///
/// ```
/// use kiln_runtime::{Device, Tensor, nn::{Forward, Linear}};
/// let fc = Linear::new(3, 2, &Device::Cpu);
/// assert_eq!(fc.forward(&Tensor::ones([4, 3])).shape(), &[4, 2]);
/// assert_eq!(fc.to_string(), "Linear(in_features=3, out_features=2, bias=True)");
/// ```
#[derive(kiln_macros::Module)]
#[module(crate = "crate", extra_repr = "linear_extra_repr")]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, or `None` for `bias=False`.
    pub bias: Option<Tensor>,
    /// Input size.
    #[module(skip)]
    pub in_features: usize,
    /// Output size.
    #[module(skip)]
    pub out_features: usize,
    #[module(training)]
    training: bool,
}

impl Linear {
    /// A layer with bias, on `device`.
    pub fn new(in_features: usize, out_features: usize, device: &Device) -> Linear {
        Linear::with_bias(in_features, out_features, true, device)
    }

    /// A layer with or without bias, on `device`.
    pub fn with_bias(
        in_features: usize,
        out_features: usize,
        bias: bool,
        device: &Device,
    ) -> Linear {
        let opts = TensorOptions::default().device(device);
        let weight = default_weight(&[out_features, in_features], opts);
        let bias = bias.then(|| default_bias(out_features, in_features, opts));
        Linear {
            weight,
            bias,
            in_features,
            out_features,
            training: true,
        }
    }
}

impl Forward for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        functional::linear(x, &self.weight, self.bias.as_ref())
    }
}

/// What `print(model)` shows inside [`Linear`]'s parentheses (PyTorch's
/// `extra_repr`).
fn linear_extra_repr(s: &Linear) -> String {
    format!(
        "in_features={}, out_features={}, bias={}",
        s.in_features,
        s.out_features,
        if s.bias.is_some() { "True" } else { "False" }
    )
}
