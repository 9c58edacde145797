// The LeNet-5: named layers, inline steps, an integer expression.
use kiln::{Device, Tensor, network};

network! {
    /// LeNet-5 for 28×28 grey images.
    pub struct LeNet(input: [1, 28, 28]) {
        conv1: Conv2d(1 -> 6, kernel: 5, padding: 2),
        relu,
        max_pool2d(2),
        conv2: Conv2d(6 -> 16, kernel: 5),
        relu,
        max_pool2d(2),
        flatten,
        fc1: Linear(16 * 5 * 5 -> 120),
        relu,
        fc2: Linear(120 -> 84),
        relu,
        fc3: Linear(84 -> 10),
    }
}

// The shapes are constants, usable at compile time.
const _: () = assert!(LeNet::OUTPUT_SHAPE[0] == 10);

fn main() {
    assert_eq!(LeNet::INPUT_SHAPE, [1, 28, 28]);
    assert_eq!(LeNet::OUTPUT_SHAPE, [10]);
    let net = LeNet::new(&Device::Cpu);
    let y = net.forward(&Tensor::zeros([2, 1, 28, 28]));
    assert_eq!(y.shape(), &[2, 10]);
    // Fields are the named layers, public like the struct.
    let _: &kiln::nn::Conv2d = &net.conv1;
    let _: &kiln::nn::Linear = &net.fc3;

    // A wrong input panics with both shapes.
    std::panic::set_hook(Box::new(|_| {}));
    let wrong = std::panic::catch_unwind(|| net.forward(&Tensor::zeros([2, 3, 28, 28])));
    let message = wrong.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("LeNet::forward: expected input of shape [N, 1, 28, 28]"),
        "{message}"
    );
}
