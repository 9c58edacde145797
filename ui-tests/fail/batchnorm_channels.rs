use kiln::network;

network! {
    pub struct Net(input: [3, 32, 32]) {
        conv1: Conv2d(3 -> 64, kernel: 3, padding: 1),
        bn1: BatchNorm2d(32),
        relu,
        flatten,
        bn2: BatchNorm2d(65536),
    }
}

fn main() {}
