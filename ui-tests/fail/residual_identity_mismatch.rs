// A residual block whose residual path changes width and stride while the
// shortcut is the identity: the sum cannot add them. The error points at
// the block and suggests torchvision's projection.
use kiln::network;

network! {
    pub struct Stage(input: [64, 32, 32]) {
        residual {
            conv1: Conv2d(64 -> 128, kernel: 3, stride: 2, padding: 1, bias: false),
        },
        relu,
    }
}

fn main() {}
