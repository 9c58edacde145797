//! LeNet-5 for 28×28 grey digits (MNIST), as the examples train it and the
//! fixtures and golden sets store it.

use crate::network;

network! {
    /// LeNet-5 for 28×28 grey digits: padding on the first convolution,
    /// ReLU activations, max pooling, 10 outputs. The same model as
    /// `../shared/bench/torch_baseline.py`'s `LeNet`, with PyTorch's key
    /// names (`conv1.weight`, ..., `fc3.bias`), so state dicts move between
    /// the two.
    ///
    /// ```
    /// use kiln::models::LeNet5;
    /// use kiln::{Device, Tensor};
    /// // The shapes are constants, usable at compile time.
    /// const _: () = assert!(LeNet5::OUTPUT_SHAPE[0] == 10);
    /// assert_eq!(LeNet5::INPUT_SHAPE, [1, 28, 28]);
    /// let net = LeNet5::new(&Device::Cpu);
    /// assert_eq!(net.forward(&Tensor::zeros([2, 1, 28, 28])).shape(), &[2, 10]);
    /// // Fields are the named layers, public like the struct.
    /// let _: &kiln::nn::Conv2d = &net.conv1;
    /// let _: &kiln::nn::Linear = &net.fc3;
    /// ```
    pub struct LeNet5(input: [1, 28, 28]) {
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

#[cfg(test)]
mod tests {
    use super::LeNet5;
    use crate::{Device, Tensor};

    /// A wrong input panics naming the network and both shapes.
    #[test]
    #[should_panic(expected = "LeNet5::forward: expected input of shape [N, 1, 28, 28]")]
    fn wrong_input_names_both_shapes() {
        LeNet5::new(&Device::Cpu).forward(&Tensor::zeros([2, 3, 28, 28]));
    }
}
