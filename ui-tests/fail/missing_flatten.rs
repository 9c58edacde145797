use kiln::network;

network! {
    pub struct Net(input: [1, 9, 9]) {
        conv1: Conv2d(1 -> 16, kernel: 5),
        fc1: Linear(16 * 5 * 5 -> 120),
    }
}

fn main() {}
