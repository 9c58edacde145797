// Feature extraction (the perceptual-loss tutorial's VGG slices): `-> name`
// marks an output of `forward_features`.
use kiln::{Device, Tensor, network};

network! {
    /// The first blocks of VGG-16, returning the activations after
    /// relu1_2, relu2_2 and relu3_3.
    pub struct VggFeatures(input: [3, 64, 64]) {
        slice1: [
            Conv2d(3 -> 64, kernel: 3, padding: 1), ReLU,
            Conv2d(64 -> 64, kernel: 3, padding: 1), ReLU,
        ] -> h_relu1_2,
        slice2: [
            MaxPool2d(2),
            Conv2d(64 -> 128, kernel: 3, padding: 1), ReLU,
            Conv2d(128 -> 128, kernel: 3, padding: 1), ReLU,
        ] -> h_relu2_2,
        slice3: [
            MaxPool2d(2),
            Conv2d(128 -> 256, kernel: 3, padding: 1), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), ReLU,
        ] -> h_relu3_3,
    }
}

network! {
    // Marks on inline steps and named layers alike; layers after the last
    // mark only run in `forward`.
    struct Small(input: [1, 8, 8]) {
        conv: Conv2d(1 -> 4, kernel: 3) -> conv_out,
        relu -> activated,
        flatten,
        fc: Linear(4 * 6 * 6 -> 2),
    }
}

fn main() {
    let net = VggFeatures::new(&Device::Cpu);
    let out: VggFeaturesOutputs = net.forward_features(&Tensor::zeros([1, 3, 64, 64]));
    assert_eq!(out.h_relu1_2.shape(), &[1, 64, 64, 64]);
    assert_eq!(out.h_relu2_2.shape(), &[1, 128, 32, 32]);
    assert_eq!(out.h_relu3_3.shape(), &[1, 256, 16, 16]);
    assert_eq!(
        net.forward(&Tensor::zeros([1, 3, 64, 64])).shape(),
        &[1, 256, 16, 16]
    );

    let small = Small::new(&Device::Cpu);
    let x = Tensor::zeros([5, 1, 8, 8]);
    let SmallOutputs {
        conv_out,
        activated,
    } = small.forward_features(&x);
    assert_eq!(conv_out.shape(), &[5, 4, 6, 6]);
    assert_eq!(activated.shape(), &[5, 4, 6, 6]);
    assert_eq!(small.forward(&x).shape(), &[5, 2]);
}
