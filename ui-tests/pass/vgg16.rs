// torchvision's VGG-16 layout: numbered groups give the keys
// `features.0.weight`, `features.1.bias`, …, `classifier.6.weight`.
use kiln::{Device, Tensor, network};

network! {
    /// VGG-16 (configuration D) for 224×224 RGB images.
    pub struct Vgg16(input: [3, 224, 224]) {
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
            MaxPool2d(kernel: 2, stride: 2),
        ],
        avgpool: AdaptiveAvgPool2d((7, 7)),
        flatten,
        classifier: [
            Linear(512 * 7 * 7 -> 4096), ReLU(inplace: true), Dropout(0.5),
            Linear(4096 -> 4096), ReLU(inplace: true), Dropout(p: 0.5),
            Linear(4096 -> 1000),
        ],
    }
}

// The same network with batch norm, for 32×32 images (CIFAR-10), small
// enough to run.
network! {
    pub struct VggCifar(input: [3, 32, 32]) {
        features: [
            Conv2d(3 -> 8, kernel: 3, padding: 1), BatchNorm2d(8), ReLU, MaxPool2d(2),
            Conv2d(8 -> 16, kernel: 3, padding: 1), BatchNorm2d(16), ReLU, MaxPool2d(2),
        ],
        avgpool: AdaptiveAvgPool2d(2),
        flatten,
        classifier: [Dropout, Linear(16 * 2 * 2 -> 10)],
    }
}

const _: () = assert!(Vgg16::OUTPUT_SHAPE[0] == 1000);

#[allow(dead_code)]
fn type_checks(device: &Device, x: &Tensor) -> Tensor {
    Vgg16::new(device).forward(x)
}

fn main() {
    assert_eq!(Vgg16::INPUT_SHAPE, [3, 224, 224]);
    assert_eq!(Vgg16::OUTPUT_SHAPE, [1000]);
    let net = VggCifar::new(&Device::Cpu);
    let y = net.forward(&Tensor::zeros([4, 3, 32, 32]));
    assert_eq!(y.shape(), &[4, 10]);
}
