//! PyTorch's "Training a Classifier" CIFAR-10 tutorial
//! (`beginner/blitz/cifar10_tutorial`) in kiln, with a VGG-style network
//! (conv / BatchNorm2d / ReLU / MaxPool2d blocks and a dropout classifier,
//! like torchvision's `vgg11_bn`) declared with `network!`, so its shapes
//! are checked while it compiles.
//!
//! The widths are small and the data are synthetic (64 seeded 3×32×32
//! images of 10 classes, each class a fixed random pattern of 4×4-pixel
//! colour blocks plus noise), so
//! the whole run takes a few seconds in the dev profile and needs no
//! download. As in the tutorial: SGD with momentum, cross-entropy, the loss
//! printed as `[epoch, step] loss: …`, `Finished Training`, then the
//! accuracy.
//!
//! ```text
//! cargo run --example tutorial_vgg_cifar
//! ```
//!
//! It prints:
//!
//! ```text
//! Vgg(
//!   (features): Sequential(
//!     (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
//!     ...
//! )
//! input [3, 32, 32] -> output [10], 98922 parameters
//! [1,     1] loss: 2.364
//! [1,     2] loss: 2.415
//! ...
//! [5,     4] loss: 1.653
//! Finished Training
//! Accuracy of the network on the 64 training images: 77 %
//! ```

use kiln::data::{DataLoader, TensorDataset};
use kiln::loss::{Reduction, cross_entropy};
use kiln::optim::SGD;
use kiln::prelude::*;
use std::io::Write;

network! {
    /// A VGG-style CIFAR-10 network, narrowed (8-16-32-32 channels, a
    /// 128-wide classifier).
    pub struct Vgg(input: [3, 32, 32]) {
        features: [
            Conv2d(3 -> 8, kernel: 3, padding: 1), BatchNorm2d(8), ReLU, MaxPool2d(2),
            Conv2d(8 -> 16, kernel: 3, padding: 1), BatchNorm2d(16), ReLU, MaxPool2d(2),
            Conv2d(16 -> 32, kernel: 3, padding: 1), BatchNorm2d(32), ReLU,
            Conv2d(32 -> 32, kernel: 3, padding: 1), BatchNorm2d(32), ReLU, MaxPool2d(2),
        ],
        flatten,
        classifier: [
            Linear(32 * 4 * 4 -> 128), ReLU, Dropout(0.5),
            Linear(128 -> 128), ReLU, Dropout(0.5),
            Linear(128 -> 10),
        ],
    }
}

/// CIFAR-10's classes.
const CLASSES: [&str; 10] = [
    "plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
];
/// Synthetic training images.
const N_IMAGES: usize = 64;
/// Images per batch.
const BATCH_SIZE: usize = 16;

/// What a run produced, for the tests.
pub struct Outcome {
    /// The loss of every step, in order.
    pub losses: Vec<f64>,
    /// The number of parameter elements.
    pub num_parameters: usize,
    /// Accuracy on the training images in eval mode, in percent.
    pub accuracy: f64,
}

/// `N_IMAGES` images: class `c` is pattern `c` (random 8×8 colour blocks
/// scaled up to 32×32) plus unit noise.
fn synthetic_cifar() -> (Tensor, Tensor) {
    let k = CLASSES.len();
    let patterns = Tensor::randn([k, 3, 8, 1, 8, 1])
        .expand(&[k, 3, 8, 4, 8, 4])
        .reshape(&[-1, 3, 32, 32]);
    let labels = Tensor::randint(0, CLASSES.len() as i64, [N_IMAGES]);
    let images = patterns.index_select(0, &labels) + Tensor::randn([N_IMAGES, 3, 32, 32]) * 0.5;
    (images, labels)
}

/// The tutorial: `epochs` passes over the images (4 steps each), printing
/// to `out`.
pub fn run(epochs: usize, out: &mut dyn Write) -> Result<Outcome, Box<dyn std::error::Error>> {
    manual_seed(0);
    let (images, labels) = synthetic_cifar();
    let trainloader = DataLoader::new(TensorDataset::new(vec![
        images.shallow_clone(),
        labels.shallow_clone(),
    ]))
    .batch_size(BATCH_SIZE)
    .shuffle(true)
    .seed(0);

    let mut net = Vgg::new(&Device::Cpu);
    writeln!(out, "{net}")?;
    let num_parameters = net.num_parameters();
    writeln!(
        out,
        "input {:?} -> output {:?}, {num_parameters} parameters",
        Vgg::INPUT_SHAPE,
        Vgg::OUTPUT_SHAPE
    )?;

    let mut optimizer = SGD::new(net.parameters(), 0.01).momentum(0.9);
    let mut losses = Vec::new();
    net.train();
    for epoch in 0..epochs {
        // loop over the dataset multiple times
        for (i, data) in trainloader.iter().enumerate() {
            // get the inputs; data is a list of [inputs, labels]
            let data = data?;
            let (inputs, labels) = (&data[0], &data[1]);

            // zero the parameter gradients
            optimizer.zero_grad();

            // forward + backward + optimize
            let outputs = net.forward(inputs);
            let loss = cross_entropy(&outputs, labels, Reduction::Mean, 0.0);
            loss.backward();
            optimizer.step();

            // print statistics (every step: there are only a few)
            let loss = loss.item();
            writeln!(out, "[{}, {:5}] loss: {loss:.3}", epoch + 1, i + 1)?;
            losses.push(loss);
        }
    }
    writeln!(out, "Finished Training")?;

    // since we're not training, we don't need to calculate the gradients
    net.eval();
    let predicted = no_grad(|| net.forward(&images)).argmax(1, false);
    let correct = predicted.eq(&labels).to_dtype(DType::I64).sum().item();
    let accuracy = 100.0 * correct / N_IMAGES as f64;
    writeln!(
        out,
        "Accuracy of the network on the {N_IMAGES} training images: {accuracy:.0} %"
    )?;
    Ok(Outcome {
        losses,
        num_parameters,
        accuracy,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(5, &mut std::io::stdout())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Serialises the tests: they draw from kiln's global generator, which
    /// `run` seeds.
    static RNG: Mutex<()> = Mutex::new(());

    /// The parameter count worked out layer by layer.
    fn expected_parameters() -> usize {
        let conv = |i: usize, o: usize| i * o * 9 + o;
        let bn = |c: usize| 2 * c;
        let linear = |i: usize, o: usize| i * o + o;
        conv(3, 8)
            + bn(8)
            + conv(8, 16)
            + bn(16)
            + conv(16, 32)
            + bn(32)
            + conv(32, 32)
            + bn(32)
            + linear(512, 128)
            + linear(128, 128)
            + linear(128, 10)
    }

    #[test]
    fn parameter_count_matches_the_layers() {
        let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(
            Vgg::new(&Device::Cpu).num_parameters(),
            expected_parameters()
        );
        assert_eq!(Vgg::OUTPUT_SHAPE, [10]);
    }

    #[test]
    fn a_few_steps_lower_the_loss() {
        let mut printed = Vec::new();
        let o = {
            let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
            run(5, &mut printed).unwrap()
        };
        assert_eq!(o.losses.len(), 5 * N_IMAGES / BATCH_SIZE);
        assert_eq!(o.num_parameters, expected_parameters());
        // Ten classes: an untrained net starts near ln 10 = 2.30.
        assert!((o.losses[0] - 10f64.ln()).abs() < 0.5, "{:?}", o.losses);
        let first: f64 = o.losses[..4].iter().sum::<f64>() / 4.0;
        let last: f64 = o.losses[16..].iter().sum::<f64>() / 4.0;
        assert!(last < 0.8 * first, "{first} -> {last}");
        assert!(o.accuracy > 50.0, "accuracy {}", o.accuracy);

        let printed = String::from_utf8(printed).unwrap();
        assert!(printed.contains("[1,     1] loss: "), "{printed}");
        assert!(printed.contains("Finished Training\n"));
    }
}
