// The mistake: a convolution lost its padding, so flatten gives
// fewer features than the Linear declares (the full LeNet-5 case is a unit
// test of the shape analysis).
use kiln::network;

network! {
    pub struct Net(input: [1, 28, 28]) {
        conv1: Conv2d(1 -> 6, kernel: 5),
        flatten,
        fc1: Linear(6 * 28 * 28 -> 120),
    }
}

fn main() {}
