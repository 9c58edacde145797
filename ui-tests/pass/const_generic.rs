// Const-generic hyper-parameters: checks that depend on them run when the
// type is instantiated.
use kiln::nn::static_shape::StaticShape;
use kiln::{Device, Tensor, network};

network! {
    /// A two-layer perceptron for MNIST with a configurable hidden width.
    pub struct Mlp<const HIDDEN: usize>(input: [784]) {
        fc1: Linear(784 -> HIDDEN),
        relu,
        fc2: Linear(HIDDEN -> 10),
    }
}

network! {
    /// A small CNN over `C`-channel `S`×`S` images.
    pub struct Cnn<const C: usize, const S: usize>(input: [C, S, S]) {
        conv1: Conv2d(C -> 16, kernel: 3, padding: 1),
        relu,
        conv2: Conv2d(16 -> 16, kernel: 3, padding: 1),
        relu,
        adaptive_avg_pool2d(1),
        flatten,
        fc: Linear(16 -> 10),
    }
}

network! {
    /// Sizes can also come from constants.
    pub struct Wide<const W: usize>(input: [INPUT]) {
        fc1: Linear(INPUT -> 2 * W),
        gelu,
        fc2: Linear(2 * W -> W),
        /// A composed network; `W` must be 784 to feed it.
        block: Mlp<784>,
    }
}

const INPUT: usize = 784 / 2;

fn main() {
    let mlp = Mlp::<64>::new(&Device::Cpu);
    assert_eq!(mlp.forward(&Tensor::zeros([2, 784])).shape(), &[2, 10]);
    assert_eq!(Mlp::<64>::OUTPUT_SHAPE, [10]);
    assert_eq!(<Mlp<32> as StaticShape>::INPUT_SHAPE, &[784]);

    let cnn = Cnn::<3, 32>::new(&Device::Cpu);
    assert_eq!(Cnn::<3, 32>::INPUT_SHAPE, [3, 32, 32]);
    assert_eq!(
        cnn.forward(&Tensor::zeros([2, 3, 32, 32])).shape(),
        &[2, 10]
    );
    let wide = Wide::<784>::new(&Device::Cpu);
    assert_eq!(wide.forward(&Tensor::zeros([2, 392])).shape(), &[2, 10]);
    assert_eq!(Wide::<784>::OUTPUT_SHAPE, [10]);
}
