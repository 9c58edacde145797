// A network used as a layer of another: the seam is checked by a const
// assertion on the use.
use kiln::nn::static_shape::StaticShape;
use kiln::nn::{Conv2d, Conv2dOptions, Forward};
use kiln::{Device, Tensor, network};

network! {
    pub struct Encoder(input: [1, 28, 28]) {
        conv: Conv2d(1 -> 32, kernel: 3, stride: 2, padding: 1),
        relu,
        max_pool2d(2),
    }
}

network! {
    pub struct Decoder(input: [16, 7, 7]) {
        flatten,
        fc: Linear(16 * 7 * 7 -> 10),
    }
}

network! {
    pub struct Autoencoder(input: [1, 28, 28]) {
        encoder: Encoder,
        decoder: Decoder,
    }
}

/// A hand-written module declaring 64 channels.
#[derive(kiln::Module)]
pub struct Block {
    conv: Conv2d,
}

impl Block {
    pub fn new(device: &Device) -> Self {
        Block {
            conv: Conv2d::new(64, 64, Conv2dOptions::new([3, 3]).padding([1, 1]), device),
        }
    }
}

impl Forward for Block {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.conv.forward(x)
    }
}

impl StaticShape for Block {
    const INPUT_SHAPE: &'static [usize] = &[64, 7, 7];
    const OUTPUT_SHAPE: &'static [usize] = &[64, 7, 7];
}

network! {
    pub struct WithBlock(input: [1, 28, 28]) {
        encoder: Encoder,
        block: Block,
    }
}

network! {
    pub struct FlatAfterBlock(input: [64, 7, 7]) {
        block: Block,
        fc: Linear(64 -> 10),
    }
}

fn main() {}
