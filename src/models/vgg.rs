//! VGG-11 and VGG-16 with and without batch norm, as torchvision declares
//! them (`torchvision.models.vgg11`, `vgg11_bn`, `vgg16`, `vgg16_bn`), for
//! 224×224 RGB images and `CLASSES` outputs.

use crate::network;

network! {
    /// `torchvision.models.vgg11` with `CLASSES` outputs.
    pub struct Vgg11<const CLASSES: usize = 1000>(input: [3, 224, 224]) {
        features: [
            Conv2d(3 -> 64, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
            Conv2d(64 -> 128, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
            Conv2d(128 -> 256, kernel: 3, padding: 1), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
            Conv2d(256 -> 512, kernel: 3, padding: 1), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
            Conv2d(512 -> 512, kernel: 3, padding: 1), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
        ],
        avgpool: AdaptiveAvgPool2d((7, 7)),
        flatten,
        classifier: [
            Linear(512 * 7 * 7 -> 4096), ReLU, Dropout(0.5),
            Linear(4096 -> 4096), ReLU, Dropout(0.5),
            Linear(4096 -> CLASSES),
        ],
    }
}

network! {
    /// `torchvision.models.vgg11_bn` with `CLASSES` outputs.
    pub struct Vgg11Bn<const CLASSES: usize = 1000>(input: [3, 224, 224]) {
        features: [
            Conv2d(3 -> 64, kernel: 3, padding: 1), BatchNorm2d(64), ReLU,
            MaxPool2d(2),
            Conv2d(64 -> 128, kernel: 3, padding: 1), BatchNorm2d(128), ReLU,
            MaxPool2d(2),
            Conv2d(128 -> 256, kernel: 3, padding: 1), BatchNorm2d(256), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), BatchNorm2d(256), ReLU,
            MaxPool2d(2),
            Conv2d(256 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            MaxPool2d(2),
            Conv2d(512 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            MaxPool2d(2),
        ],
        avgpool: AdaptiveAvgPool2d((7, 7)),
        flatten,
        classifier: [
            Linear(512 * 7 * 7 -> 4096), ReLU, Dropout(0.5),
            Linear(4096 -> 4096), ReLU, Dropout(0.5),
            Linear(4096 -> CLASSES),
        ],
    }
}

network! {
    /// `torchvision.models.vgg16` with `CLASSES` outputs.
    pub struct Vgg16<const CLASSES: usize = 1000>(input: [3, 224, 224]) {
        features: [
            Conv2d(3 -> 64, kernel: 3, padding: 1), ReLU,
            Conv2d(64 -> 64, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
            Conv2d(64 -> 128, kernel: 3, padding: 1), ReLU,
            Conv2d(128 -> 128, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
            Conv2d(128 -> 256, kernel: 3, padding: 1), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
            Conv2d(256 -> 512, kernel: 3, padding: 1), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
            Conv2d(512 -> 512, kernel: 3, padding: 1), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), ReLU,
            MaxPool2d(2),
        ],
        avgpool: AdaptiveAvgPool2d((7, 7)),
        flatten,
        classifier: [
            Linear(512 * 7 * 7 -> 4096), ReLU, Dropout(0.5),
            Linear(4096 -> 4096), ReLU, Dropout(0.5),
            Linear(4096 -> CLASSES),
        ],
    }
}

network! {
    /// `torchvision.models.vgg16_bn` with `CLASSES` outputs.
    pub struct Vgg16Bn<const CLASSES: usize = 1000>(input: [3, 224, 224]) {
        features: [
            Conv2d(3 -> 64, kernel: 3, padding: 1), BatchNorm2d(64), ReLU,
            Conv2d(64 -> 64, kernel: 3, padding: 1), BatchNorm2d(64), ReLU,
            MaxPool2d(2),
            Conv2d(64 -> 128, kernel: 3, padding: 1), BatchNorm2d(128), ReLU,
            Conv2d(128 -> 128, kernel: 3, padding: 1), BatchNorm2d(128), ReLU,
            MaxPool2d(2),
            Conv2d(128 -> 256, kernel: 3, padding: 1), BatchNorm2d(256), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), BatchNorm2d(256), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), BatchNorm2d(256), ReLU,
            MaxPool2d(2),
            Conv2d(256 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            MaxPool2d(2),
            Conv2d(512 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            Conv2d(512 -> 512, kernel: 3, padding: 1), BatchNorm2d(512), ReLU,
            MaxPool2d(2),
        ],
        avgpool: AdaptiveAvgPool2d((7, 7)),
        flatten,
        classifier: [
            Linear(512 * 7 * 7 -> 4096), ReLU, Dropout(0.5),
            Linear(4096 -> 4096), ReLU, Dropout(0.5),
            Linear(4096 -> CLASSES),
        ],
    }
}
