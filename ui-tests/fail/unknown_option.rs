use kiln::network;

network! {
    pub struct Net(input: [3, 32, 32]) {
        conv1: Conv2d(3 -> 16, kernel: 3, paddin: 1),
        conv2: Conv2d(16 -> 16, kernal: 3),
        bn: BatchNorm2d(16, eps: 1e-5),
        max_pool2d(2, dilation: 2),
        fc: Linear(16 -> 2, biass: false),
    }
}

fn main() {}
