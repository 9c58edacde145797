// ResNet-50 declared in full with `network!` (what `examples/bench_check`
// times under `cargo check`): a generic Bottleneck with a conditional
// projection, instantiated 16 times in four numbered stages.
use kiln::{Device, Tensor, network};

network! {
    /// torchvision's `Bottleneck` (ResNet v1.5: the stride is on the 3×3).
    pub struct Bottleneck<const IN: usize, const WIDTH: usize, const STRIDE: usize>(
        input: [IN, dyn H, dyn W]
    ) {
        residual {
            conv1: Conv2d(IN -> WIDTH, kernel: 1, bias: false),
            bn1: BatchNorm2d(WIDTH),
            relu,
            conv2: Conv2d(WIDTH -> WIDTH, kernel: 3, stride: STRIDE, padding: 1, bias: false),
            bn2: BatchNorm2d(WIDTH),
            relu,
            conv3: Conv2d(WIDTH -> 4 * WIDTH, kernel: 1, bias: false),
            bn3: BatchNorm2d(4 * WIDTH),
        } shortcut if STRIDE != 1 || IN != 4 * WIDTH {
            downsample: [
                Conv2d(IN -> 4 * WIDTH, kernel: 1, stride: STRIDE, bias: false),
                BatchNorm2d(4 * WIDTH),
            ],
        },
        relu,
    }
}

network! {
    /// ResNet-50 for RGB images of any size.
    pub struct ResNet50(input: [3, dyn H, dyn W]) {
        conv1: Conv2d(3 -> 64, kernel: 7, stride: 2, padding: 3, bias: false),
        bn1: BatchNorm2d(64),
        relu,
        max_pool2d(3, stride: 2, padding: 1),
        layer1: [Bottleneck<64, 64, 1>, Bottleneck<256, 64, 1>, Bottleneck<256, 64, 1>],
        layer2: [
            Bottleneck<256, 128, 2>, Bottleneck<512, 128, 1>,
            Bottleneck<512, 128, 1>, Bottleneck<512, 128, 1>,
        ],
        layer3: [
            Bottleneck<512, 256, 2>, Bottleneck<1024, 256, 1>, Bottleneck<1024, 256, 1>,
            Bottleneck<1024, 256, 1>, Bottleneck<1024, 256, 1>, Bottleneck<1024, 256, 1>,
        ],
        layer4: [Bottleneck<1024, 512, 2>, Bottleneck<2048, 512, 1>, Bottleneck<2048, 512, 1>],
        avgpool: AdaptiveAvgPool2d(1),
        flatten,
        fc: Linear(2048 -> 1000),
    }
}

fn main() {
    // Shapes only: building ResNet-50 allocates 25M parameters.
    assert_eq!(ResNet50::OUTPUT_SHAPE, [1000]);
    let _ = |d: &Device, x: &Tensor| ResNet50::new(d).forward(x);
}
