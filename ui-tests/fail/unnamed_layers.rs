use kiln::network;

network! {
    pub struct Net(input: [3, 32, 32]) {
        Conv2d(3 -> 16, kernel: 3),
        [ReLU, MaxPool2d(2)],
        Block<16>,
        BatchNorm2d(16),
    }
}

fn main() {}
