//! LeNet-5 as the examples train it, declared with `network!` so that its
//! shapes are checked while it compiles. The same model as
//! `../shared/bench/torch_baseline.py`'s `LeNet` (same layers, same
//! parameter names, so state dicts move between the two). Include with
//! `#[path = "common/lenet.rs"] mod lenet;`.

use kiln::network;

network! {
    /// LeNet-5 for 28 × 28 grey digits: padding on the first convolution,
    /// ReLU activations, max pooling.
    pub struct LeNet(input: [1, 28, 28]) {
        conv1: Conv2d(1 -> 6, kernel: 5, padding: 2),
        relu,
        max_pool2d(2),
        conv2: Conv2d(6 -> 16, kernel: 5),
        relu,
        max_pool2d(2),
        flatten,
        fc1: Linear(16 * 5 * 5 -> 120),
        relu,
        fc2: Linear(120 -> 84),
        relu,
        fc3: Linear(84 -> 10),
    }
}
