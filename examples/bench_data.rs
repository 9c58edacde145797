//! Measures how fast the data pipeline feeds LeNet training: one epoch of
//! the MNIST training set, batch 64, ToTensor + Normalize, shuffled, with
//! 0, 1 and 2 worker threads. Prints one JSON line per setting: first with
//! a consumer that does nothing (raw pipeline throughput), then with one
//! that sleeps 1 ms per batch, standing in for a training step on a GPU,
//! to show the workers overlapping loading with training.
//!
//! `cargo run --release --example bench_data [-- MNIST_DIR]` (default:
//! `$KILN_DATA`, else `../shared/data/mnist`).

use kiln::data::transforms::{Compose, Normalize, ToTensor};
use kiln::data::{DataLoader, Mnist};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("KILN_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist"));
    let t = Instant::now();
    let train = Mnist::train(&dir)?.transform(
        Compose::new()
            .then(ToTensor)
            .then(Normalize::new(&[0.1307], &[0.3081])),
    );
    let load_s = t.elapsed().as_secs_f64();
    println!(
        "{{\"event\":\"load\",\"samples\":{},\"seconds\":{load_s:.3}}}",
        train.labels().len()
    );
    let loader = DataLoader::new(train).batch_size(64).shuffle(true).seed(0);
    let mut loader = Some(loader);
    for (workers, consumer_ms) in [(0usize, 0u64), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)] {
        let l = loader
            .take()
            .expect("loader")
            .num_workers(workers)
            .prefetch(4);
        let t = Instant::now();
        let (mut batches, mut samples, mut checksum) = (0usize, 0usize, 0.0f64);
        for batch in &l {
            let (x, y) = batch?;
            batches += 1;
            samples += y.shape()[0];
            checksum += x.narrow(0, 0, 1).to_vec::<f32>()[0] as f64;
            if consumer_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(consumer_ms));
            }
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{{\"workers\":{workers},\"consumer_ms_per_batch\":{consumer_ms},\"batch_size\":64,\"batches\":{batches},\"samples\":{samples},\"seconds\":{s:.3},\"batches_per_sec\":{:.1},\"samples_per_sec\":{:.0},\"checksum\":{checksum:.3}}}",
            batches as f64 / s,
            samples as f64 / s
        );
        loader = Some(l);
    }
    Ok(())
}
