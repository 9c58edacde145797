//! The classic `torch.optim` comparison (Morvan Zhou's PyTorch tutorial
//! "Optimizers", `tutorial-contents/306_optimizer.py`) in kiln: fit
//! `y = x² + 0.2·noise` on 1 000 points in `[-1, 1]` (batch 32, 12 epochs)
//! with four copies of the same small net (1 → 20 ReLU → 1), each trained
//! by a different optimizer on the same batches with an MSE loss:
//!
//! - SGD (lr 0.01)
//! - Momentum: SGD (lr 0.01, momentum 0.8)
//! - RMSprop (lr 0.01, alpha 0.9)
//! - Adam (lr 0.01, betas (0.9, 0.99))
//!
//! The original plots the four per-step loss curves with matplotlib; this
//! writes them to a PNG (`examples/common/plot.rs`).
//!
//! ```text
//! cargo run --example tutorial_optimizers [-- --out optimizers.png]
//! ```
//!
//! It prints `Epoch:  N` per epoch like the original, followed by each
//! optimizer's mean loss over that epoch, then where the plot went:
//!
//! ```text
//! Epoch:  0 | SGD 0.2124 | Momentum 0.1711 | RMSprop 0.1042 | Adam 0.1670
//! Epoch:  1 | SGD 0.1179 | Momentum 0.0903 | RMSprop 0.0487 | Adam 0.0536
//! ...
//! Epoch:  11 | SGD 0.0731 | Momentum 0.0436 | RMSprop 0.0441 | Adam 0.0430
//! Wrote the loss curves to optimizers.png
//! ```

#[path = "common/plot.rs"]
mod plot;

use kiln::data::{DataLoader, TensorDataset};
use kiln::loss::{Reduction, mse_loss};
use kiln::optim::{Adam, RMSprop, SGD};
use kiln::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

#[path = "common/out_arg.rs"]
mod out_arg;
use out_arg::parse_out_arg;

/// Learning rate of every optimizer.
const LR: f64 = 0.01;
/// Samples per batch.
const BATCH_SIZE: usize = 32;
/// Passes over the data.
const EPOCH: usize = 12;
/// The optimizers' names, in the order of the curves.
const LABELS: [&str; 4] = ["SGD", "Momentum", "RMSprop", "Adam"];

network! {
    /// The default network: one hidden layer of 20 ReLU units.
    pub struct Net(input: [1]) {
        hidden: Linear(1 -> 20),
        relu,
        predict: Linear(20 -> 1),
    }
}

/// What a run produced, for the tests.
pub struct Outcome {
    /// Each optimizer's loss at every step, in [`LABELS`] order.
    pub losses_his: [Vec<f64>; 4],
    /// Each optimizer's mean loss per epoch.
    pub epoch_means: [Vec<f64>; 4],
}

/// The four optimizers, each over its own copy of the net.
fn optimizers(nets: &[Net; 4]) -> [Box<dyn Optimizer>; 4] {
    [
        Box::new(SGD::new(nets[0].parameters(), LR)),
        Box::new(SGD::new(nets[1].parameters(), LR).momentum(0.8)),
        Box::new(RMSprop::new(nets[2].parameters(), LR).alpha(0.9)),
        Box::new(Adam::new(nets[3].parameters(), LR).betas(0.9, 0.99)),
    ]
}

/// The tutorial: trains the four nets for `epochs` epochs, printing to `out`,
/// and writes the per-step loss curves to the PNG `png`.
pub fn run(
    epochs: usize,
    png: &Path,
    out: &mut dyn Write,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    manual_seed(1); // reproducible

    // fake dataset
    let x = Tensor::linspace(-1.0, 1.0, 1000).unsqueeze(1);
    let y = x.pow_scalar(2.0) + Tensor::randn(x.shape()) * 0.2;

    // put the dataset into a torch dataset
    let torch_dataset = TensorDataset::new(vec![x, y]);
    let loader = DataLoader::new(torch_dataset)
        .batch_size(BATCH_SIZE)
        .shuffle(true)
        .seed(1);

    // four copies of the same network, so only the optimizer differs
    let device = Device::Cpu;
    let template = Net::new(&device);
    let copy = || -> Result<Net, Box<dyn std::error::Error>> {
        let mut net = Net::new(&device);
        net.load_state_dict(&template.state_dict(), true)?;
        Ok(net)
    };
    let nets = [copy()?, copy()?, copy()?, copy()?];
    let mut opts = optimizers(&nets);

    let mut losses_his: [Vec<f64>; 4] = Default::default(); // record loss
    let mut epoch_means: [Vec<f64>; 4] = Default::default();

    // training
    for epoch in 0..epochs {
        let start = losses_his[0].len();
        for b in &loader {
            // for each training step
            let b = b?;
            let (b_x, b_y) = (&b[0], &b[1]);
            for ((net, opt), l_his) in nets.iter().zip(&mut opts).zip(&mut losses_his) {
                let output = net.forward(b_x); // get output for every net
                let loss = mse_loss(&output, b_y, Reduction::Mean); // compute loss for every net
                opt.zero_grad(); // clear gradients for next train
                loss.backward(); // backpropagation, compute gradients
                opt.step(); // apply gradients
                l_his.push(loss.item()); // loss recorder
            }
        }
        let mut line = format!("Epoch:  {epoch}");
        for ((label, l_his), means) in LABELS.iter().zip(&losses_his).zip(&mut epoch_means) {
            let steps = &l_his[start..];
            let mean = steps.iter().sum::<f64>() / steps.len() as f64;
            means.push(mean);
            line += &format!(" | {label} {mean:.4}");
        }
        writeln!(out, "{line}")?;
    }

    let series = LABELS
        .iter()
        .zip(&losses_his)
        .map(|(label, l_his)| {
            let points = l_his
                .iter()
                .enumerate()
                .map(|(step, &l)| (step as f64, l))
                .collect();
            plot::Series::new(*label, points)
        })
        .collect();
    let panel = plot::Panel {
        title: "y = x² + 0.2·noise, 1 → 20 → 1 ReLU net".into(),
        x_label: "Steps".into(),
        y_label: "Loss".into(),
        series,
        log_y: true,
        y_limits: None,
    };
    plot::write_png(png, 900, 600, &[panel])?;
    writeln!(out, "Wrote the loss curves to {}", png.display())?;
    Ok(Outcome {
        losses_his,
        epoch_means,
    })
}

/// `--out PATH` (default `optimizers.png`).
fn parse_args() -> Result<PathBuf, String> {
    parse_out_arg(
        PathBuf::from("optimizers.png"),
        "usage: tutorial_optimizers [--out PATH]   (default optimizers.png)",
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let png = parse_args()?;
    run(EPOCH, &png, &mut std::io::stdout())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_optimizer_lowers_the_loss_and_the_plot_is_written() {
        let dir = std::env::temp_dir().join(format!("kiln-tutorial-optim-{}", std::process::id()));
        let png = dir.join("curves.png");
        let mut printed = Vec::new();
        let o = run(EPOCH, &png, &mut printed).unwrap();

        // 1000 points in batches of 32: 32 steps per epoch.
        for (label, l_his) in LABELS.iter().zip(&o.losses_his) {
            assert_eq!(l_his.len(), EPOCH * 32, "{label}");
            assert!(l_his.iter().all(|l| l.is_finite()), "{label}");
        }
        for (label, means) in LABELS.iter().zip(&o.epoch_means) {
            let (first, last) = (means[0], means[EPOCH - 1]);
            assert!(last < 0.8 * first, "{label}: {first} -> {last}");
            // The noise alone costs 0.2² = 0.04; nothing fits below it.
            assert!(last > 0.03, "{label}: {last}");
        }
        // The adaptive and momentum methods end below plain SGD.
        let sgd_last = o.epoch_means[0][EPOCH - 1];
        for (label, means) in LABELS.iter().zip(&o.epoch_means).skip(1) {
            assert!(means[EPOCH - 1] < sgd_last, "{label} vs SGD");
        }

        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.len() > 1000);
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        std::fs::remove_dir_all(&dir).unwrap();

        let printed = String::from_utf8(printed).unwrap();
        assert_eq!(
            printed
                .lines()
                .filter(|l| l.starts_with("Epoch:  "))
                .count(),
            EPOCH
        );
    }
}
