// Every layer option and step; attributes, docs and visibility carry over.
use kiln::{Device, Tensor, network};

network! {
    /// Exercises every option.
    #[allow(dead_code)]
    pub(crate) struct Everything(input: [3, 33, 40]) {
        /// A rectangular kernel with stride, padding and dilation.
        conv1: Conv2d(3 -> 12, kernel: (3, 5), stride: 2, padding: (1, 2), dilation: (1, 2)),
        gelu,
        /// Grouped, without bias.
        pub conv2: Conv2d(12 -> 24, kernel_size: 3, groups: 3, bias: false),
        bn: BatchNorm2d(24),
        tanh,
        avg_pool2d(3, stride: 2, padding: 1),
        max_pool2d(kernel: (2, 3), stride: (1, 2)),
        pool: AvgPool2d(2),
        sigmoid,
        adaptive_avg_pool2d((2, 3)),
        dropout(0.25),
        flatten,
        fc1: Linear(24 * 2 * 3 -> 32, bias: false),
        bn1: BatchNorm1d(32),
        act: ReLU,
        drop: Dropout(0.1),
        dropout,
        fc2: Linear(32 -> 4),
    }
}

fn main() {
    let net = Everything::new(&Device::Cpu);
    let y = net.forward(&Tensor::zeros([2, 3, 33, 40]));
    assert_eq!(y.shape(), &[2, 4]);
    assert_eq!(Everything::OUTPUT_SHAPE, [4]);
}
