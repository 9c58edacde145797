use kiln::network;

network! {
    pub struct Net(input: [3, 32, 32]) {
        conv1: Conv2d(3 -> 16, kernel: 3, stride: 0),
        conv2: Conv2d(3 -> 16, kernel: 3, groups: 2),
        conv3: Conv2d(3 -> 0, kernel: 3),
        conv4: Conv2d(3 -> 16, kernel: (3, 3, 3)),
        conv5: Conv2d(3 -> 16, kernel: 3, bias: 1),
        max_pool2d(2, padding: 2),
        dropout(1.5),
        fc: Linear(3 - 4 -> 10),
        fc2: Linear(in_features: 10, out_features: 2),
        fc3: Linear(2 -> f(3)),
    }
}

fn main() {}
