use kiln::network;

network! {
    pub struct LeNet(input: [1, 28, 28]) {
        conv1: Conv2d(1 -> 6, kernel: 5, padding: 2),
        relu,
        max_pool2d(2),
        conv2: Conv2d(6 -> 16, kernel: 5),
        relu,
        max_pool2d(2),
        fc1: Linear(16 * 5 * 5 -> 120),
    }
}

fn main() {}
