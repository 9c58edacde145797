//! The classic `torch.utils.data` DataLoader demo (Morvan Zhou's PyTorch
//! tutorial "Batch training", `tutorial-contents/305_batch_train.py`) in
//! kiln: a `TensorDataset` of ten points `x = 1..10`, `y = 10..1`, a
//! `DataLoader` with `batch_size = 5` and `shuffle = true`, three epochs.
//!
//! The original seeds PyTorch's global generator with `torch.manual_seed(1)`;
//! so does this port (`manual_seed(1)`), and since kiln's default generator
//! draws PyTorch's CPU streams and its `DataLoader` shuffles as PyTorch's
//! `RandomSampler` does, the printout is the original's, line for line.
//!
//! ```text
//! cargo run --example tutorial_dataloader
//! ```
//!
//! It prints each epoch's batches as NumPy arrays, like the original's
//! `print('Epoch: ', epoch, '| Step: ', step, '| batch x: ', batch_x.numpy(), ...)`
//! (these are the lines PyTorch 2.15 prints):
//!
//! ```text
//! Epoch:  0 | Step:  0 | batch x:  [5. 3. 1. 7. 9.] | batch y:  [ 6.  8. 10.  4.  2.]
//! Epoch:  0 | Step:  1 | batch x:  [ 8. 10.  2.  6.  4.] | batch y:  [3. 1. 9. 5. 7.]
//! Epoch:  1 | Step:  0 | batch x:  [5. 9. 2. 6. 1.] | batch y:  [ 6.  2.  9.  5. 10.]
//! ...
//! ```

use kiln::data::{DataLoader, TensorDataset};
use kiln::prelude::*;
use std::io::Write;

/// Samples per batch.
const BATCH_SIZE: usize = 5;

/// One batch as plain numbers: `(batch_x, batch_y)`.
pub type Batch = (Vec<f32>, Vec<f32>);

/// Formats a 1-D array like NumPy's `print(array)`: whole numbers as `3.`,
/// integer parts right-aligned and fractions left-aligned to a common
/// width, e.g. `[ 1.  10.   0.5]`.
fn numpy_1d(values: &[f32]) -> String {
    let parts: Vec<(String, String)> = values
        .iter()
        .map(|v| {
            let s = format!("{v}");
            match s.split_once('.') {
                Some((i, f)) => (i.to_string(), f.to_string()),
                None => (s, String::new()),
            }
        })
        .collect();
    let int_w = parts.iter().map(|(i, _)| i.len()).max().unwrap_or(0);
    let frac_w = parts.iter().map(|(_, f)| f.len()).max().unwrap_or(0);
    let cells: Vec<String> = parts
        .iter()
        .map(|(i, f)| format!("{i:>int_w$}.{f:<frac_w$}"))
        .collect();
    format!("[{}]", cells.join(" "))
}

/// The demo: `epochs` epochs over the ten points, printing every batch to
/// `out`. Returns the batches of each epoch.
pub fn run(epochs: usize, out: &mut dyn Write) -> std::io::Result<Vec<Vec<Batch>>> {
    manual_seed(1); // reproducible
    let x = Tensor::linspace(1.0, 10.0, 10); // this is x data (torch tensor)
    let y = Tensor::linspace(10.0, 1.0, 10); // this is y data (torch tensor)

    let torch_dataset = TensorDataset::new(vec![x, y]);
    let loader = DataLoader::new(torch_dataset)
        .batch_size(BATCH_SIZE) // mini batch size
        .shuffle(true); // random shuffle for training

    let mut epochs_seen = Vec::new();
    for epoch in 0..epochs {
        // train entire dataset `epochs` times
        let mut batches = Vec::new();
        for (step, batch) in loader.iter().enumerate() {
            // for each training step
            let batch = batch.expect("in-memory batches do not fail");
            let (batch_x, batch_y) = (batch[0].to_vec::<f32>(), batch[1].to_vec::<f32>());
            // train your data...
            writeln!(
                out,
                "Epoch:  {epoch} | Step:  {step} | batch x:  {} | batch y:  {}",
                numpy_1d(&batch_x),
                numpy_1d(&batch_y)
            )?;
            batches.push((batch_x, batch_y));
        }
        epochs_seen.push(batches);
    }
    Ok(epochs_seen)
}

fn main() -> std::io::Result<()> {
    run(3, &mut std::io::stdout())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard};

    /// `run` seeds the default generator: the tests take turns.
    fn turn() -> MutexGuard<'static, ()> {
        static TURN: Mutex<()> = Mutex::new(());
        TURN.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn every_epoch_is_two_batches_of_five_covering_each_point_once() {
        let _turn = turn();
        let epochs = run(3, &mut std::io::sink()).unwrap();
        assert_eq!(epochs.len(), 3);
        for batches in &epochs {
            assert_eq!(batches.len(), 2);
            let mut xs: Vec<f32> = Vec::new();
            for (bx, by) in batches {
                assert_eq!((bx.len(), by.len()), (BATCH_SIZE, BATCH_SIZE));
                // Shuffling keeps each x with its own y (y = 11 - x).
                for (x, y) in bx.iter().zip(by) {
                    assert_eq!(x + y, 11.0, "pair ({x}, {y}) was split");
                }
                xs.extend(bx);
            }
            xs.sort_by(f32::total_cmp);
            let want: Vec<f32> = (1..=10).map(|v| v as f32).collect();
            assert_eq!(xs, want, "each point exactly once per epoch");
        }
        // Shuffled: not in dataset order, and a fresh order every epoch.
        let order = |e: &Vec<Batch>| -> Vec<f32> { e.iter().flat_map(|b| b.0.clone()).collect() };
        let sorted: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        assert!(epochs.iter().any(|e| order(e) != sorted));
        assert!(order(&epochs[0]) != order(&epochs[1]) || order(&epochs[1]) != order(&epochs[2]));
    }

    #[test]
    fn seeded_output_is_the_same_every_run_and_pytorchs() {
        let _turn = turn();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        run(3, &mut a).unwrap();
        run(3, &mut b).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert_eq!(text.lines().count(), 6);
        // What the original prints with PyTorch 2.15 after torch.manual_seed(1).
        let pytorch = [
            "Epoch:  0 | Step:  0 | batch x:  [5. 3. 1. 7. 9.] | batch y:  [ 6.  8. 10.  4.  2.]",
            "Epoch:  0 | Step:  1 | batch x:  [ 8. 10.  2.  6.  4.] | batch y:  [3. 1. 9. 5. 7.]",
            "Epoch:  1 | Step:  0 | batch x:  [5. 9. 2. 6. 1.] | batch y:  [ 6.  2.  9.  5. 10.]",
            "Epoch:  1 | Step:  1 | batch x:  [ 3.  4.  7. 10.  8.] | batch y:  [8. 7. 4. 1. 3.]",
            "Epoch:  2 | Step:  0 | batch x:  [6. 9. 4. 8. 7.] | batch y:  [5. 2. 7. 3. 4.]",
            "Epoch:  2 | Step:  1 | batch x:  [10.  3.  2.  1.  5.] | batch y:  [ 1.  8.  9. 10.  6.]",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), pytorch);
    }

    #[test]
    fn arrays_print_like_numpy() {
        assert_eq!(numpy_1d(&[6.0, 7.0, 2.0, 3.0, 1.0]), "[6. 7. 2. 3. 1.]");
        assert_eq!(numpy_1d(&[5.0, 4.0, 10.0]), "[ 5.  4. 10.]");
        assert_eq!(numpy_1d(&[1.0, 0.5, 10.25]), "[ 1.    0.5  10.25]");
    }
}
