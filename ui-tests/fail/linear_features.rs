// The example: conv1 lost its padding, so flatten gives 256, not 400.
use kiln::network;

network! {
    pub struct LeNet(input: [1, 28, 28]) {
        conv1: Conv2d(1 -> 6, kernel: 5),
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

fn main() {}
