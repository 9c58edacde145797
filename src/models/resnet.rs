//! ResNet-18/34/50 as torchvision declares them (`torchvision.models.resnet`,
//! v1.5: a Bottleneck's stride is on its 3×3 convolution).

use crate::network;

network! {
    /// torchvision's `BasicBlock`: two 3×3 convolutions with batch norm, and
    /// a shortcut that is the identity, or a 1×1 convolution with batch norm
    /// (`downsample`) when the block changes width or stride.
    pub struct BasicBlock<const IN: usize, const OUT: usize, const STRIDE: usize>(
        input: [IN, dyn H, dyn W]
    ) {
        residual {
            conv1: Conv2d(IN -> OUT, kernel: 3, stride: STRIDE, padding: 1, bias: false),
            bn1: BatchNorm2d(OUT),
            relu,
            conv2: Conv2d(OUT -> OUT, kernel: 3, padding: 1, bias: false),
            bn2: BatchNorm2d(OUT),
        } shortcut if STRIDE != 1 || IN != OUT {
            downsample: [Conv2d(IN -> OUT, kernel: 1, stride: STRIDE, bias: false), BatchNorm2d(OUT)],
        },
        relu,
    }
}

network! {
    /// torchvision's `Bottleneck` (ResNet v1.5): 1×1 down to `WIDTH`
    /// channels, 3×3 with the stride, 1×1 up to `4 * WIDTH`; the shortcut
    /// projects when the block changes width or stride.
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
    /// ResNet-18 (`torchvision.models.resnet18`) with `CLASSES` outputs,
    /// for RGB images of any size.
    pub struct ResNet18<const CLASSES: usize = 1000>(input: [3, dyn H, dyn W]) {
        conv1: Conv2d(3 -> 64, kernel: 7, stride: 2, padding: 3, bias: false),
        bn1: BatchNorm2d(64),
        relu,
        max_pool2d(3, stride: 2, padding: 1),
        layer1: [BasicBlock<64, 64, 1>, BasicBlock<64, 64, 1>],
        layer2: [BasicBlock<64, 128, 2>, BasicBlock<128, 128, 1>],
        layer3: [BasicBlock<128, 256, 2>, BasicBlock<256, 256, 1>],
        layer4: [BasicBlock<256, 512, 2>, BasicBlock<512, 512, 1>],
        avgpool: AdaptiveAvgPool2d(1),
        flatten,
        fc: Linear(512 -> CLASSES),
    }
}

network! {
    /// ResNet-34 (`torchvision.models.resnet34`) with `CLASSES` outputs,
    /// for RGB images of any size.
    pub struct ResNet34<const CLASSES: usize = 1000>(input: [3, dyn H, dyn W]) {
        conv1: Conv2d(3 -> 64, kernel: 7, stride: 2, padding: 3, bias: false),
        bn1: BatchNorm2d(64),
        relu,
        max_pool2d(3, stride: 2, padding: 1),
        layer1: [BasicBlock<64, 64, 1>, BasicBlock<64, 64, 1>, BasicBlock<64, 64, 1>],
        layer2: [
            BasicBlock<64, 128, 2>, BasicBlock<128, 128, 1>,
            BasicBlock<128, 128, 1>, BasicBlock<128, 128, 1>,
        ],
        layer3: [
            BasicBlock<128, 256, 2>, BasicBlock<256, 256, 1>, BasicBlock<256, 256, 1>,
            BasicBlock<256, 256, 1>, BasicBlock<256, 256, 1>, BasicBlock<256, 256, 1>,
        ],
        layer4: [BasicBlock<256, 512, 2>, BasicBlock<512, 512, 1>, BasicBlock<512, 512, 1>],
        avgpool: AdaptiveAvgPool2d(1),
        flatten,
        fc: Linear(512 -> CLASSES),
    }
}

network! {
    /// ResNet-50 (`torchvision.models.resnet50`, v1.5) with `CLASSES`
    /// outputs, for RGB images of any size.
    pub struct ResNet50<const CLASSES: usize = 1000>(input: [3, dyn H, dyn W]) {
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
        fc: Linear(2048 -> CLASSES),
    }
}
