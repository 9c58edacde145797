// A generic block declared once and instantiated per stage: each
// instantiation is checked where it is used. Here the shortcut's condition
// forgets the change of width, so `Block<64, 128, 1>` would add a 64-channel
// identity to a 128-channel residual; and a stage chains a 128-channel
// block into one that expects 64.
use kiln::models::BasicBlock;
use kiln::network;

network! {
    pub struct Block<const IN: usize, const OUT: usize, const STRIDE: usize>(
        input: [IN, dyn H, dyn W]
    ) {
        residual {
            conv1: Conv2d(IN -> OUT, kernel: 3, stride: STRIDE, padding: 1, bias: false),
        } shortcut if STRIDE != 1 {
            downsample: [Conv2d(IN -> OUT, kernel: 1, stride: STRIDE, bias: false)],
        },
    }
}

network! {
    pub struct Widen(input: [64, dyn H, dyn W]) {
        layer1: [Block<64, 128, 1>],
    }
}

network! {
    pub struct Stages(input: [64, dyn H, dyn W]) {
        layer2: [BasicBlock<64, 128, 2>, BasicBlock<64, 128, 1>],
    }
}

fn main() {}
