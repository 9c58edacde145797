use kiln::network;

network! {
    pub struct Net(input: [3, 32, 32]) {
        conv1: Conv2d(3 -> 16, kernel: 3, padding: 1),
        conv2: Conv2d(32 -> 64, kernel: 3),
    }
}

network! {
    pub struct Grey(input: [1, 28, 28]) {
        conv1: Conv2d(3 -> 6, kernel: 5),
    }
}

fn main() {}
