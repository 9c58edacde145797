use kiln::network;

network! {
    pub struct Net(input: [1, 16, 16]) {
        conv1: Conv2d(1 -> 8, kernel: 5),
        max_pool2d(2),
        conv2: Conv2d(8 -> 8, kernel: 3),
        max_pool2d(2),
        conv3: Conv2d(8 -> 8, kernel: (1, 5)),
    }
}

network! {
    pub struct Pooled(input: [8, 3, 3]) {
        max_pool2d(4),
    }
}

fn main() {}
