//! `Linear`: `y = x Wᵀ + b`.

use super::param;
use crate::nn::{Forward, functional, init};
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
        let weight = Tensor::zeros_opts([out_features, in_features], opts);
        init::kaiming_uniform_(
            &weight,
            5f64.sqrt(),
            init::FanMode::FanIn,
            init::Nonlinearity::LeakyReLU,
        );
        let bias = bias.then(|| {
            let b = Tensor::zeros_opts([out_features], opts);
            let bound = if in_features > 0 {
                1.0 / (in_features as f64).sqrt()
            } else {
                0.0
            };
            init::uniform_(&b, -bound, bound);
            param(b)
        });
        Linear {
            weight: param(weight),
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
