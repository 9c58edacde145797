//! PyTorch's "Quickstart" tutorial (`beginner/basics/quickstart_tutorial`)
//! in kiln: data in a `DataLoader`, a model, a loss and an optimizer, and
//! the tutorial's `train` / `test` loops, printed the same way.
//!
//! The PyTorch original classifies FashionMNIST; this version keeps its
//! structure but fits a small linear model (a linear regression,
//! `y = x·w + b` with 4 features) to seeded synthetic data, so it needs no
//! download and runs in a second. The optimizer is SGD with momentum.
//!
//! ```text
//! cargo run --example tutorial_quickstart
//! ```
//!
//! It prints, like the original:
//!
//! ```text
//! Using cpu device
//! Shape of X [N, F]: [64, 4]
//! Shape of y: [64, 1] float32
//! LinearRegression(
//!   (linear): Linear(in_features=4, out_features=1, bias=True)
//! )
//! Epoch 1
//! -------------------------------
//! loss: 36.417519  [   64/ 6400]
//! loss: 30.581577  [ 1344/ 6400]
//! ...
//! Test Error:
//!  Avg loss: 0.467084
//!
//! Epoch 2
//! ...
//! Done!
//! Learned w: [2.0019, -3.4007, 1.7014, 0.4984], b: 4.1997 (true w: [2.0, -3.4, 1.7, 0.5], b: 4.2)
//! ```

use kiln::data::{DataLoader, TensorDataset};
use kiln::loss::{Reduction, mse_loss};
use kiln::optim::SGD;
use kiln::prelude::*;
use std::io::Write;

network! {
    /// The model: one fully connected layer, `y = x·wᵀ + b`.
    pub struct LinearRegression(input: [4]) {
        linear: Linear(4 -> 1),
    }
}

/// The weights the synthetic data are drawn from.
const TRUE_W: [f32; 4] = [2.0, -3.4, 1.7, 0.5];
/// The bias the synthetic data are drawn from.
const TRUE_B: f32 = 4.2;

/// What a run produced, for the tests.
pub struct Outcome {
    /// The average test loss after each epoch.
    pub test_losses: Vec<f64>,
    /// The first training batch's loss (before any update).
    pub first_batch_loss: f64,
    /// The learned weights.
    pub weight: Vec<f32>,
    /// The learned bias.
    pub bias: f32,
}

/// `n` samples `x ~ N(0, 1)⁴`, `y = x·TRUE_W + TRUE_B + 0.1·ε`.
fn synthetic(n: usize) -> TensorDataset {
    let x = Tensor::randn([n, 4]);
    let w = Tensor::from_vec(TRUE_W.to_vec(), [4, 1]);
    let y = x.matmul(&w) + f64::from(TRUE_B) + Tensor::randn([n, 1]) * 0.1;
    TensorDataset::new(vec![x, y])
}

/// The tutorial's `train(dataloader, model, loss_fn, optimizer)`: one epoch,
/// printing the loss every 20 batches. Returns the first batch's loss.
fn train(
    loader: &DataLoader<TensorDataset, Vec<Tensor>>,
    model: &LinearRegression,
    optimizer: &mut SGD,
    out: &mut dyn Write,
) -> std::io::Result<f64> {
    let size = loader.dataset().tensors()[0].size(0);
    let mut first = f64::NAN;
    for (batch, xy) in loader.iter().enumerate() {
        let xy = xy.expect("in-memory batches do not fail");
        let (x, y) = (&xy[0], &xy[1]);
        // Compute prediction error.
        let pred = model.forward(x);
        let loss = mse_loss(&pred, y, Reduction::Mean);
        // Backpropagation.
        loss.backward();
        optimizer.step();
        optimizer.zero_grad();

        let loss = loss.item();
        if batch == 0 {
            first = loss;
        }
        if batch % 20 == 0 {
            let current = (batch + 1) * x.size(0);
            writeln!(out, "loss: {loss:>7.6}  [{current:>5}/{size:>5}]")?;
        }
    }
    Ok(first)
}

/// The tutorial's `test(dataloader, model, loss_fn)`: the average loss over
/// the test set, without recording gradients.
fn test(
    loader: &DataLoader<TensorDataset, Vec<Tensor>>,
    model: &LinearRegression,
    out: &mut dyn Write,
) -> std::io::Result<f64> {
    let num_batches = loader.len();
    let mut test_loss = 0.0;
    no_grad(|| {
        for xy in loader {
            let xy = xy.expect("in-memory batches do not fail");
            let pred = model.forward(&xy[0]);
            test_loss += mse_loss(&pred, &xy[1], Reduction::Mean).item();
        }
    });
    test_loss /= num_batches as f64;
    writeln!(out, "Test Error: \n Avg loss: {test_loss:>8.6} \n")?;
    Ok(test_loss)
}

/// The whole tutorial: `epochs` epochs over 6 400 training and 1 000 test
/// samples, batch 64, SGD lr 0.001 momentum 0.9, printing to `out`.
pub fn run(epochs: usize, out: &mut dyn Write) -> std::io::Result<Outcome> {
    manual_seed(0);
    let device = Device::Cpu;
    writeln!(out, "Using {device} device")?;

    let batch_size = 64;
    let train_loader = DataLoader::new(synthetic(6400))
        .batch_size(batch_size)
        .shuffle(true)
        .seed(0);
    let test_loader = DataLoader::new(synthetic(1000)).batch_size(batch_size);
    if let Some(Ok(xy)) = test_loader.iter().next() {
        writeln!(out, "Shape of X [N, F]: {:?}", xy[0].shape())?;
        writeln!(out, "Shape of y: {:?} {}", xy[1].shape(), xy[1].dtype())?;
    }

    let model = LinearRegression::new(&device);
    writeln!(out, "{model}")?;
    let mut optimizer = SGD::new(model.parameters(), 1e-3).momentum(0.9);

    let mut test_losses = Vec::new();
    let mut first_batch_loss = f64::NAN;
    for t in 0..epochs {
        writeln!(out, "Epoch {}\n-------------------------------", t + 1)?;
        let first = train(&train_loader, &model, &mut optimizer, out)?;
        if t == 0 {
            first_batch_loss = first;
        }
        test_losses.push(test(&test_loader, &model, out)?);
    }
    writeln!(out, "Done!")?;

    let weight = model.linear.weight.to_vec::<f32>();
    let bias = model
        .linear
        .bias
        .as_ref()
        .expect("Linear has a bias")
        .item() as f32;
    let fmt: Vec<String> = weight.iter().map(|w| format!("{w:.4}")).collect();
    writeln!(
        out,
        "Learned w: [{}], b: {bias:.4} (true w: {TRUE_W:?}, b: {TRUE_B})",
        fmt.join(", ")
    )?;
    Ok(Outcome {
        test_losses,
        first_batch_loss,
        weight,
        bias,
    })
}

fn main() -> std::io::Result<()> {
    run(5, &mut std::io::stdout())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_regression_recovers_the_true_weights() {
        let mut printed = Vec::new();
        let o = run(3, &mut printed).unwrap();
        // The noise floor is 0.1² = 0.01; the untrained model is far above it.
        assert!(
            o.first_batch_loss > 5.0,
            "first loss {}",
            o.first_batch_loss
        );
        let last = *o.test_losses.last().unwrap();
        assert!(last < 0.02, "final test loss {last}");
        assert!(last < o.first_batch_loss / 100.0);
        assert!(o.test_losses[0] > 2.0 * last, "{:?}", o.test_losses);
        for (w, t) in o.weight.iter().zip(TRUE_W) {
            assert!((w - t).abs() < 0.05, "w {w} vs {t}");
        }
        assert!((o.bias - TRUE_B).abs() < 0.05, "b {}", o.bias);

        let printed = String::from_utf8(printed).unwrap();
        let epochs = printed.lines().filter(|l| l.starts_with("Epoch ")).count();
        assert_eq!(epochs, 3);
        // 100 batches per epoch, one line every 20.
        let loss_lines = printed.lines().filter(|l| l.starts_with("loss: ")).count();
        assert_eq!(loss_lines, 3 * 5);
        assert!(printed.contains("[   64/ 6400]"), "{printed}");
        assert!(printed.ends_with("Done!\n") || printed.contains("Done!\nLearned"));
    }
}
