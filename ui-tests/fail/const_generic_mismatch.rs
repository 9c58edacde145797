// Checks that depend on const generics fail when the type is instantiated.
use kiln::{Device, network};

network! {
    pub struct Mlp<const HIDDEN: usize>(input: [784]) {
        fc1: Linear(784 -> HIDDEN),
        relu,
        fc2: Linear(2 * HIDDEN -> 10),
    }
}

network! {
    pub struct Cnn<const S: usize>(input: [1, S, S]) {
        conv1: Conv2d(1 -> 8, kernel: 5),
        max_pool2d(2),
    }
}

fn main() {
    let _ = Mlp::<64>::new(&Device::Cpu);
    let _ = Cnn::<4>::new(&Device::Cpu);
}
