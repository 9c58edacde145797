// ResNet blocks: generic BasicBlock/Bottleneck from kiln::models, numbered
// stages (`layer1.0.conv1.weight`, `layer2.0.downsample.0.weight`), input
// sizes known only at run time, and Inception-style branches.
use kiln::models::{BasicBlock, Bottleneck, ResNet50};
use kiln::nn::Module;
use kiln::{Device, Tensor, network};

network! {
    /// A small ResNet for 32×32 images with a fixed input size.
    pub struct Small(input: [3, 32, 32]) {
        conv1: Conv2d(3 -> 16, kernel: 3, padding: 1, bias: false),
        bn1: BatchNorm2d(16),
        relu,
        layer1: [BasicBlock<16, 16, 1>, BasicBlock<16, 16, 1>],
        layer2: [BasicBlock<16, 32, 2>],
        layer3: [Bottleneck<32, 16, 2>],
        avgpool: AdaptiveAvgPool2d(1),
        flatten,
        fc: Linear(64 -> 10),
    }
}

network! {
    /// A residual block written in place, with a projection.
    pub struct Inline(input: [8, dyn H, dyn W]) {
        residual {
            conv1: Conv2d(8 -> 16, kernel: 3, stride: 2, padding: 1),
            relu,
            conv2: Conv2d(16 -> 16, kernel: 3, padding: 1),
        } shortcut {
            downsample: [Conv2d(8 -> 16, kernel: 1, stride: 2), BatchNorm2d(16)],
        },
        relu -> block,
        branches {
            a: { conv_a: Conv2d(16 -> 4, kernel: 1) },
            b: { max_pool2d(3, stride: 1, padding: 1) },
        } -> cat,
        pool: AdaptiveAvgPool2d(1),
        flatten,
        fc: Linear(20 -> 2),
    }
}

fn main() {
    let d = Device::Cpu;
    let small = Small::new(&d);
    assert_eq!(small.forward(&Tensor::zeros([1, 3, 32, 32])).shape(), &[1, 10]);
    let keys: Vec<String> = small.state_dict().keys().map(String::from).collect();
    assert!(keys.contains(&"layer2.0.downsample.0.weight".to_owned()));
    assert!(!keys.iter().any(|k| k.starts_with("layer1.0.downsample")));
    let inline = Inline::new(&d);
    let out = inline.forward_features(&Tensor::zeros([2, 8, 12, 12]));
    assert_eq!(out.block.shape(), &[2, 16, 6, 6]);
    assert_eq!(inline.forward(&Tensor::zeros([2, 8, 9, 7])).shape(), &[2, 2]);
    let _ = ResNet50::<1000>::INPUT_SHAPE;
}
