use kiln::network;

network! {
    pub struct Vgg(input: [3, 32, 32]) {
        features: [
            Conv2d(3 -> 64, kernel: 3, padding: 1), ReLU,
            Conv2d(64 -> 64, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
            Conv2d(128 -> 128, kernel: 3, padding: 1), ReLU,
        ],
        flatten,
        classifier: [Linear(128 * 16 * 16 -> 10)],
    }
}

network! {
    pub struct Misused(input: [3, 32, 32]) {
        features: [
            conv: Conv2d(3 -> 8, kernel: 3),
            ReLU -> early,
            [MaxPool2d(2)],
        ],
        empty: [],
    }
}

fn main() {}
