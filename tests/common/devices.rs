//! Moving a check's tensors to each device it runs on, for the gradient
//! checks (`gradcheck_nn.rs`, `gradcheck_ops.rs`).

use kiln::{Device, Tensor};

/// `inputs` on `device`: leaves again, requiring grad where they did.
pub fn on(inputs: &[Tensor], device: Device) -> Vec<Tensor> {
    inputs
        .iter()
        .map(|t| t.detach().to(&device).requires_grad_(t.requires_grad()))
        .collect()
}

/// `t` (a constant a check closes over) on `like`'s device.
pub fn here(t: &Tensor, like: &Tensor) -> Tensor {
    t.to(&like.device())
}
