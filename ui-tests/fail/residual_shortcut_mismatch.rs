// The projection shortcut forgets the stride: it ends in 32×32 while the
// residual path ends in 16×16. The error points at `shortcut` and shows
// the trace of both paths.
use kiln::network;

network! {
    pub struct Stage(input: [64, 32, 32]) {
        residual {
            conv1: Conv2d(64 -> 128, kernel: 3, stride: 2, padding: 1, bias: false),
            bn1: BatchNorm2d(128),
            relu,
            conv2: Conv2d(128 -> 128, kernel: 3, padding: 1, bias: false),
            bn2: BatchNorm2d(128),
        } shortcut {
            downsample: [Conv2d(64 -> 128, kernel: 1, bias: false), BatchNorm2d(128)],
        },
        relu,
    }
}

fn main() {}
