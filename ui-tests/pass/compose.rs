// Composition: a network used as a layer of another, and a hand-written
// `#[derive(Module)]` type that declares its shapes with `StaticShape`.
use kiln::nn::static_shape::StaticShape;
use kiln::nn::{BatchNorm2d, Conv2d, Conv2dOptions, Forward};
use kiln::{Device, Tensor, network};

network! {
    pub struct Encoder(input: [1, 28, 28]) {
        conv: Conv2d(1 -> 32, kernel: 3, stride: 2, padding: 1),
        relu,
        pool: MaxPool2d(2),
    }
}

/// A residual-free conv block over `C` channels of 7×7 maps.
#[derive(kiln::Module)]
pub struct Block<const C: usize> {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl<const C: usize> Block<C> {
    pub fn new(device: &Device) -> Self {
        Block {
            conv: Conv2d::new(C, C, Conv2dOptions::new([3, 3]).padding([1, 1]), device),
            bn: BatchNorm2d::new(C, device),
        }
    }
}

impl<const C: usize> Forward for Block<C> {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.bn.forward(&self.conv.forward(x)).relu()
    }
}

impl<const C: usize> StaticShape for Block<C> {
    const INPUT_SHAPE: &'static [usize] = &[C, 7, 7];
    const OUTPUT_SHAPE: &'static [usize] = &[C, 7, 7];
}

network! {
    /// Encoder, then blocks, then a classifier: every seam is checked at
    /// compile time.
    pub struct Classifier(input: [1, 28, 28]) {
        encoder: Encoder,
        block: Block<32>,
        blocks: [Block<32>, Block<32>],
        flatten,
        fc: Linear(32 * 7 * 7 -> 10),
    }
}

network! {
    // A network that ends in a composed module: its OUTPUT_SHAPE comes from
    // the module's declaration.
    pub struct Features(input: [1, 28, 28]) {
        encoder: Encoder,
        block: Block<32>,
    }
}

fn main() {
    assert_eq!(<Encoder as StaticShape>::OUTPUT_SHAPE, &[32, 7, 7]);
    assert_eq!(Features::OUTPUT_SHAPE, [32, 7, 7]);
    let net = Classifier::new(&Device::Cpu);
    let y = net.forward(&Tensor::zeros([3, 1, 28, 28]));
    assert_eq!(y.shape(), &[3, 10]);
    let f = Features::new(&Device::Cpu).forward(&Tensor::zeros([3, 1, 28, 28]));
    assert_eq!(f.shape(), &[3, 32, 7, 7]);
}
