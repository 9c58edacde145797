// A const-generic network used as a layer: its checks run for that
// instance in the using network, even under `cargo check`. A network
// declared with errors adds no errors to the networks that use it.
use kiln::network;

network! {
    /// A head generic in its input width, but whose first layer wants 784.
    pub struct Head<const IN: usize>(input: [IN]) {
        fc1: Linear(784 -> 10),
    }
}

network! {
    pub struct Block<const C: usize>(input: [C, 8, 8]) {
        conv: Conv2d(C -> C, kernel: 3),
        max_pool2d(2),
        conv2: Conv2d(C -> C, kernel: 4),
    }
}

network! {
    pub struct Outer(input: [784]) {
        fc: Linear(784 -> 512),
        head: Head<512>,
    }
}

network! {
    pub struct Tower(input: [16, 8, 8]) {
        block: Block<16>,
    }
}

fn main() {}
