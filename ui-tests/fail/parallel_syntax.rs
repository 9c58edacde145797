// Malformed residual blocks and branches: each is reported, and the rest
// of the declaration is still checked.
use kiln::network;

network! {
    pub struct NoJoin(input: [8, 4, 4]) {
        branches {
            a: { conv_a: Conv2d(8 -> 8, kernel: 1) },
            b: { conv_b: Conv2d(8 -> 8, kernel: 1) },
        },
    }
}

network! {
    pub struct Misc(input: [8, dyn, 4]) {
        residual {
            conv1: Conv2d(8 -> 8, kernel: 3, padding: 1) -> inner,
            bn1: BatchNorm2d(8),
        } shortcut if true {
            proj: Conv2d(8 -> 8, kernel: 1),
            bn: BatchNorm2d(8),
        },
        group: [residual { conv2: Conv2d(8 -> 8, kernel: 1) }],
        branches { only: { conv3: Conv2d(8 -> 8, kernel: 1) } } -> cat,
    }
}

fn main() {}
