// VGG's layout: numbered groups give the keys `features.0.weight`,
// `features.1.bias`, …, `classifier.4.weight`, with the spellings
// torchvision's code uses (`MaxPool2d(kernel: 2, stride: 2)`,
// `ReLU(inplace: true)`, `Dropout(p: 0.5)`). torchvision's VGG-16 itself
// is `kiln::models::Vgg16`, declared the same way and checked with the
// library.
use kiln::models::Vgg16;
use kiln::{Device, Tensor, network};

// A VGG with batch norm for 32×32 images (CIFAR-10), small enough to run.
network! {
    pub struct VggCifar(input: [3, 32, 32]) {
        features: [
            Conv2d(3 -> 8, kernel: 3, padding: 1), BatchNorm2d(8), ReLU(inplace: true),
            MaxPool2d(2),
            Conv2d(8 -> 16, kernel: 3, padding: 1), BatchNorm2d(16), ReLU,
            MaxPool2d(kernel: 2, stride: 2),
        ],
        avgpool: AdaptiveAvgPool2d(2),
        flatten,
        classifier: [
            Dropout, Linear(16 * 2 * 2 -> 32), ReLU(inplace: true), Dropout(p: 0.5),
            Linear(32 -> 10),
        ],
    }
}

const _: () = assert!(Vgg16::<1000>::OUTPUT_SHAPE[0] == 1000);

fn main() {
    assert_eq!(Vgg16::<1000>::INPUT_SHAPE, [3, 224, 224]);
    let net = VggCifar::new(&Device::Cpu);
    let y = net.forward(&Tensor::zeros([4, 3, 32, 32]));
    assert_eq!(y.shape(), &[4, 10]);
    let keys: Vec<String> = kiln::nn::Module::state_dict(&net)
        .keys()
        .map(String::from)
        .collect();
    assert!(keys.contains(&"features.0.weight".to_owned()));
    assert!(keys.contains(&"classifier.4.weight".to_owned()));
}
