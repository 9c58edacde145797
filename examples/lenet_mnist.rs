//! The main job: train LeNet-5 on MNIST.
//!
//! ```text
//! cargo run --release --example lenet_mnist [-- OPTIONS]
//! ```
//!
//! LeNet-5 is `kiln::models::LeNet5`, declared with `network!` (its shapes
//! checked while it compiles); MNIST comes through `Mnist` + `DataLoader` (normalised with
//! mean 0.1307 / std 0.3081, shuffled, loaded by worker threads). Training
//! uses cross-entropy and, by default, SGD with Nesterov momentum under a
//! learning-rate schedule stepped every batch: a linear warm-up over the
//! first fifth of an epoch, then exponential decay (halved each epoch;
//! `--lr-decay`). Neither depends on the number of epochs, so a run can be
//! stopped and resumed, or extended, and still follow the same rates
//! (`--schedule cosine` instead decays to zero at the end of
//! `--schedule-epochs`, default `--epochs`). Each epoch
//! shows a progress bar with the running loss and images/s, then the test
//! loss and accuracy. At the end the model is saved as safetensors (with
//! PyTorch's key names, loadable by `torch`), the loss and accuracy curves
//! are drawn to a PNG, and one JSON line is printed on stdout:
//!
//! ```text
//! {"epochs": 3, "test_accuracy": 0.99, "test_loss": 0.03, "train_seconds": 5.2, "images_per_second": 34000}
//! ```
//!
//! At the end of each epoch the whole training state (model, optimizer,
//! schedule, RNG state, epoch and the curves so far) goes to `--state PATH`
//! as one checkpoint; `--resume PATH` continues from one, with `--epochs`
//! still the total (as in PyTorch's ImageNet example): `--epochs 1` then
//! `--epochs 2 --resume` ends exactly, bit for bit, where `--epochs 2` does.
//! (With `--schedule cosine` the schedule's length is part of the run: the
//! first run then sets `--schedule-epochs` to the final total.)
//!
//! Run with `--help` for the options. The data directory is `--data DIR`,
//! else `$KILN_DATA`, else `data/mnist`; when the files are not there the
//! example says so and downloads them (`--no-download` to only report).

#[path = "common/plot.rs"]
mod plot;

use indicatif::{ProgressBar, ProgressStyle};
use kiln::data::transforms::{Compose, Normalize, ToTensor};
use kiln::data::{DataError, DataLoader, DistributedSampler, Mnist, download_mnist};
use kiln::distributed::{self as dist, Backend, DistributedDataParallel};
use kiln::io::{Dict, ModuleCheckpoint, Value, load_checkpoint, save_checkpoint};
use kiln::loss::{Reduction, cross_entropy};
use kiln::optim::lr_scheduler::{CosineDecayWarmup, LambdaLR, LrScheduler};
use kiln::optim::{Adam, AdamW, RMSprop, SGD};
use kiln::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln::models::LeNet5;

/// MNIST's per-pixel mean and standard deviation over the training set.
const MNIST_MEAN: f32 = 0.1307;
const MNIST_STD: f32 = 0.3081;

const USAGE: &str = "\
Train LeNet-5 on MNIST.

usage: lenet_mnist [OPTIONS]

  --epochs N          passes over the training set (default 3)
  --batch-size N      images per step (default 64)
  --lr X              peak learning rate (default: 0.05 for sgd, 1e-3 otherwise)
  --optimizer NAME    sgd (Nesterov momentum 0.9), adam, adamw or rmsprop (default sgd)
  --data DIR          where the MNIST files are (default $KILN_DATA, else data/mnist)
  --no-download       when the files are missing, report it and stop
  --checkpoint PATH   where to save the trained model (default lenet_mnist.safetensors)
  --plot PATH         where to draw the loss/accuracy curves (default lenet_mnist.png)
  --device DEV        cpu, cuda or cuda:N (default cpu)
  --workers N         data-loading threads (default 1)
  --seed N            seed for initialisation and shuffling (default 0)
  --limit N           train on the first N images only (for quick runs)
  --state PATH        where to write the training checkpoint at the end of each epoch
                      (default lenet_mnist_state.safetensors)
  --resume PATH       continue from such a checkpoint; --epochs stays the total
  --schedule NAME     exp (warm-up, then the rate times --lr-decay each epoch) or
                      cosine (warm-up, then cosine to zero at --schedule-epochs) (default exp)
  --lr-decay X        exp: the factor per epoch, applied smoothly every step (default 0.5)
  --schedule-epochs N cosine: the schedule's length (default --epochs); a run meant to
                      be resumed later sets it to the final total
  --distributed       data-parallel over the ranks of `mpirun -n R` (the
                      global --batch-size is split across them; rank 0 saves)
  -h, --help          this text";

/// The optimizers `--optimizer` accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum OptimizerKind {
    Sgd,
    Adam,
    AdamW,
    RmsProp,
}

impl OptimizerKind {
    fn parse(s: &str) -> Result<OptimizerKind, String> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            "rmsprop" => Ok(OptimizerKind::RmsProp),
            _ => Err(format!(
                "--optimizer: unknown optimizer {s:?} (expected sgd, adam, adamw or rmsprop)"
            )),
        }
    }

    fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 0.05,
            _ => 1e-3,
        }
    }

    fn build(self, params: Vec<Tensor>, lr: f64) -> Box<dyn Optimizer> {
        match self {
            OptimizerKind::Sgd => Box::new(SGD::new(params, lr).momentum(0.9).nesterov(true)),
            OptimizerKind::Adam => Box::new(Adam::new(params, lr)),
            OptimizerKind::AdamW => Box::new(AdamW::new(params, lr)),
            OptimizerKind::RmsProp => Box::new(RMSprop::new(params, lr)),
        }
    }
}

/// The command line.
#[derive(Clone, Debug)]
struct Options {
    epochs: usize,
    batch_size: usize,
    lr: Option<f64>,
    optimizer: OptimizerKind,
    data: PathBuf,
    download: bool,
    checkpoint: PathBuf,
    plot: PathBuf,
    device: Device,
    workers: usize,
    seed: u64,
    limit: Option<usize>,
    state: PathBuf,
    resume: Option<PathBuf>,
    schedule: ScheduleKind,
    lr_decay: f64,
    schedule_epochs: Option<usize>,
    distributed: bool,
}

impl Options {
    /// The defaults, with the data directory taken from `kiln_data` (the
    /// value of `$KILN_DATA`) when given.
    fn defaults(kiln_data: Option<PathBuf>) -> Options {
        Options {
            epochs: 3,
            batch_size: 64,
            lr: None,
            optimizer: OptimizerKind::Sgd,
            data: kiln_data.unwrap_or_else(|| PathBuf::from("data/mnist")),
            download: true,
            checkpoint: PathBuf::from("lenet_mnist.safetensors"),
            plot: PathBuf::from("lenet_mnist.png"),
            device: Device::Cpu,
            workers: 1,
            seed: 0,
            limit: None,
            state: PathBuf::from("lenet_mnist_state.safetensors"),
            resume: None,
            schedule: ScheduleKind::Exp,
            lr_decay: 0.5,
            schedule_epochs: None,
            distributed: false,
        }
    }

    /// Parses the arguments after the program name; `Ok(None)` for `--help`.
    fn parse(
        args: impl IntoIterator<Item = String>,
        kiln_data: Option<PathBuf>,
    ) -> Result<Option<Options>, String> {
        fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            v.parse()
                .map_err(|e| format!("{flag}: cannot parse {v:?}: {e}"))
        }
        let mut o = Options::defaults(kiln_data);
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            // Accept both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let takes_value = !matches!(
                flag.as_str(),
                "-h" | "--help" | "--no-download" | "--distributed"
            );
            let value = if takes_value {
                match inline {
                    Some(v) => v,
                    None => it.next().ok_or(format!("{flag} needs a value"))?,
                }
            } else {
                String::new()
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--no-download" => o.download = false,
                "--distributed" => o.distributed = true,
                "--epochs" => o.epochs = number(&flag, &value)?,
                "--batch-size" => o.batch_size = number(&flag, &value)?,
                "--lr" => o.lr = Some(number(&flag, &value)?),
                "--optimizer" => o.optimizer = OptimizerKind::parse(&value)?,
                "--data" => o.data = PathBuf::from(value),
                "--checkpoint" => o.checkpoint = PathBuf::from(value),
                "--plot" => o.plot = PathBuf::from(value),
                "--device" => o.device = number(&flag, &value)?,
                "--workers" => o.workers = number(&flag, &value)?,
                "--seed" => o.seed = number(&flag, &value)?,
                "--limit" => o.limit = Some(number(&flag, &value)?),
                "--state" => o.state = PathBuf::from(value),
                "--resume" => o.resume = Some(PathBuf::from(value)),
                "--schedule" => o.schedule = ScheduleKind::parse(&value)?,
                "--lr-decay" => o.lr_decay = number(&flag, &value)?,
                "--schedule-epochs" => o.schedule_epochs = Some(number(&flag, &value)?),
                _ => return Err(format!("unknown option {arg:?} (see --help)")),
            }
        }
        if o.epochs == 0 || o.batch_size == 0 {
            return Err("--epochs and --batch-size must be at least 1".into());
        }
        if let Some(lr) = o.lr
            && !(lr.is_finite() && lr > 0.0)
        {
            return Err(format!("--lr must be a positive number, got {lr}"));
        }
        if !(o.lr_decay.is_finite() && o.lr_decay > 0.0 && o.lr_decay <= 1.0) {
            return Err(format!("--lr-decay must be in (0, 1], got {}", o.lr_decay));
        }
        Ok(Some(o))
    }

    fn lr(&self) -> f64 {
        self.lr.unwrap_or(self.optimizer.default_lr())
    }
}

/// The learning-rate schedules `--schedule` accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ScheduleKind {
    /// Warm-up, then `lr · decay^(steps since warm-up / steps per epoch)`.
    Exp,
    /// Warm-up, then cosine to zero at the end of `--schedule-epochs`.
    Cosine,
}

impl ScheduleKind {
    fn parse(s: &str) -> Result<ScheduleKind, String> {
        match s.to_ascii_lowercase().as_str() {
            "exp" => Ok(ScheduleKind::Exp),
            "cosine" => Ok(ScheduleKind::Cosine),
            _ => Err(format!(
                "--schedule: unknown schedule {s:?} (expected exp or cosine)"
            )),
        }
    }
}

/// The schedule `opts` asks for, stepped once per batch, and a line that
/// describes it (saved in the training state: resuming under a different
/// schedule would silently change the run, so it is refused).
fn build_schedule(
    opts: &Options,
    opt: &dyn Optimizer,
    steps_per_epoch: usize,
) -> (Box<dyn LrScheduler>, String) {
    let warmup = (steps_per_epoch / 5).max(1);
    match opts.schedule {
        ScheduleKind::Exp => {
            let (decay, per_epoch) = (opts.lr_decay, steps_per_epoch as f64);
            let w = warmup as i64;
            let schedule = LambdaLR::new(opt, move |t| {
                if t < w {
                    (t + 1) as f64 / w as f64
                } else {
                    decay.powf((t - w) as f64 / per_epoch)
                }
            });
            let text = format!(
                "exp: peak {} warmup {warmup} decay {decay} per {steps_per_epoch} steps",
                opts.lr()
            );
            (Box::new(schedule), text)
        }
        ScheduleKind::Cosine => {
            let total =
                (steps_per_epoch * opts.schedule_epochs.unwrap_or(opts.epochs).max(1)).max(2);
            let warmup = warmup.min(total - 1);
            let schedule = CosineDecayWarmup::new(opt, opts.lr(), warmup, total);
            let text = format!(
                "cosine: peak {} warmup {warmup} total {total} steps",
                opts.lr()
            );
            (Box::new(schedule), text)
        }
    }
}

/// What one epoch measured.
#[derive(Clone, Debug)]
struct EpochStats {
    train_loss: f64,
    test_loss: f64,
    test_accuracy: f64,
    train_seconds: f64,
    images: usize,
}

/// What a whole run measured.
#[derive(Clone, Debug)]
struct Summary {
    epochs: Vec<EpochStats>,
    /// `(fractional epoch, running train loss)` sampled along training.
    loss_curve: Vec<(f64, f64)>,
}

impl Summary {
    fn train_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.train_seconds).sum()
    }

    fn images_per_second(&self) -> f64 {
        let images: usize = self.epochs.iter().map(|e| e.images).sum();
        images as f64 / self.train_seconds().max(1e-9)
    }

    fn json_line(&self) -> String {
        let last = self.epochs.last().expect("at least one epoch");
        format!(
            "{{\"epochs\": {}, \"test_accuracy\": {:.4}, \"test_loss\": {:.4}, \"train_seconds\": {:.2}, \"images_per_second\": {:.0}}}",
            self.epochs.len(),
            last.test_accuracy,
            last.test_loss,
            self.train_seconds(),
            self.images_per_second()
        )
    }
}

fn mnist_transform() -> Compose {
    Compose::new()
        .then(ToTensor)
        .then(Normalize::new(&[MNIST_MEAN], &[MNIST_STD]))
}

/// Opens both splits from `dir`; when a file is missing says so and, if
/// allowed, downloads the set and tries again.
fn open_mnist(dir: &Path, download: bool) -> Result<(Mnist, Mnist), String> {
    let open =
        || -> Result<(Mnist, Mnist), DataError> { Ok((Mnist::train(dir)?, Mnist::test(dir)?)) };
    match open() {
        Ok(sets) => Ok(sets),
        Err(e @ DataError::Io { .. }) => {
            eprintln!("MNIST is not in {}: {e}", dir.display());
            if !download {
                return Err(format!(
                    "put the four MNIST files (train-images-idx3-ubyte, train-labels-idx1-ubyte, \
                     t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or .gz) in {}, or point \
                     --data / KILN_DATA at a folder that has them, or run again without \
                     --no-download to fetch them",
                    dir.display()
                ));
            }
            eprintln!("downloading MNIST into {} ...", dir.display());
            download_mnist(dir).map_err(|e| {
                format!("{e},\nor point --data / KILN_DATA at a folder that has them")
            })?;
            open().map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("cannot read MNIST from {}: {e}", dir.display())),
    }
}

/// A subset of a dataset: its first `len` items.
struct Prefix<D> {
    inner: D,
    len: usize,
}

impl<D: kiln::data::Dataset> kiln::data::Dataset for Prefix<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        self.len.min(self.inner.len())
    }
    fn get(&self, index: usize) -> Result<D::Item, DataError> {
        if index >= self.len() {
            return Err(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            });
        }
        self.inner.get(index)
    }
}

/// Mean loss and accuracy of `model` on `loader`, in eval mode.
fn evaluate<D>(
    model: &mut LeNet5,
    loader: &DataLoader<D, (Tensor, Tensor)>,
    device: &Device,
) -> Result<(f64, f64), DataError>
where
    D: kiln::data::Dataset + 'static,
{
    model.eval();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0i64, 0usize);
    no_grad(|| -> Result<(), DataError> {
        for batch in loader {
            let (x, y) = batch?;
            let (x, y) = (x.to(device), y.to(device));
            let logits = model.forward(&x);
            loss_sum += cross_entropy(&logits, &y, Reduction::Sum, 0.0).item();
            correct += logits.argmax(1, false).eq(&y).sum().item() as i64;
            seen += y.shape()[0];
        }
        Ok(())
    })?;
    model.train();
    let n = seen.max(1) as f64;
    Ok((loss_sum / n, correct as f64 / n))
}

fn progress_bar(len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30.cyan/blue}] {pos:>4}/{len} {elapsed_precise} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Trains `model` as `opts` says and returns what it measured; `quiet`
/// hides the progress bars and per-epoch lines (for tests).
fn train(
    model: &mut LeNet5,
    train_set: Mnist,
    test_set: Mnist,
    opts: &Options,
    quiet: bool,
) -> Result<Summary, String> {
    let device = &opts.device;
    let n_train = opts
        .limit
        .unwrap_or(usize::MAX)
        .min(kiln::data::Dataset::len(&train_set));
    // `--distributed`: each rank loads its shard (DistributedSampler), the
    // global batch split evenly; alone, the loader shuffles as always.
    let world = dist::world_size();
    let sampler = if opts.distributed {
        DistributedSampler::new(n_train).seed(opts.seed)
    } else {
        DistributedSampler::with_replicas(n_train, 1, 0).shuffle(false)
    };
    let train_loader = DataLoader::new(sampler.wrap(Prefix {
        inner: train_set.transform(mnist_transform()),
        len: n_train,
    }))
    .batch_size(opts.batch_size / world)
    .shuffle(!opts.distributed)
    .seed(opts.seed)
    .num_workers(opts.workers)
    .prefetch(8);
    let test_loader = DataLoader::new(test_set.transform(mnist_transform()))
        .batch_size(1000)
        .num_workers(opts.workers);

    let steps_per_epoch = train_loader.len();
    let mut opt = opts.optimizer.build(model.parameters(), opts.lr());
    // A resumed run continues the saved schedule.
    let (mut schedule, schedule_text) = build_schedule(opts, &*opt, steps_per_epoch);

    let mut summary = Summary {
        epochs: Vec::new(),
        loss_curve: Vec::new(),
    };
    let mut first_epoch = 1;
    if let Some(path) = &opts.resume {
        first_epoch = resume(
            path,
            model,
            &mut *opt,
            &mut *schedule,
            &schedule_text,
            &mut summary,
        )? + 1;
        if first_epoch > opts.epochs {
            return Err(format!(
                "{} is already at epoch {}; ask for more --epochs",
                path.display(),
                first_epoch - 1
            ));
        }
        // The loader's shuffle order depends on the epoch number.
        train_loader.set_epoch(first_epoch as u64 - 1);
    }
    model.train();
    for epoch in first_epoch..=opts.epochs {
        sampler.set_epoch(epoch as u64);
        let bar = if quiet || !dist::is_main_process() {
            ProgressBar::hidden()
        } else {
            progress_bar(steps_per_epoch, epoch, opts.epochs)
        };
        let t0 = Instant::now();
        let (mut running, mut epoch_loss, mut images) = (None::<f64>, 0.0f64, 0usize);
        for (i, batch) in train_loader.iter().enumerate() {
            let (x, y) = batch.map_err(|e| e.to_string())?;
            let (x, y) = (x.to(device), y.to(device));
            let loss = cross_entropy(&model.forward(&x), &y, Reduction::Mean, 0.0);
            opt.zero_grad();
            loss.backward();
            opt.step();
            schedule.step();

            let l = loss.item();
            let n = y.shape()[0] * world;
            epoch_loss += l * n as f64;
            images += n;
            // An exponential moving average, as most training loops show.
            let r = running.map_or(l, |r| 0.98 * r + 0.02 * l);
            running = Some(r);
            if i % 10 == 0 || i + 1 == steps_per_epoch {
                let secs = t0.elapsed().as_secs_f64().max(1e-9);
                bar.set_position(i as u64 + 1);
                bar.set_message(format!(
                    "loss {r:.4}  {:.0} img/s  lr {:.4}",
                    images as f64 / secs,
                    opt.lr()
                ));
                summary.loss_curve.push((
                    epoch as f64 - 1.0 + (i + 1) as f64 / steps_per_epoch as f64,
                    r,
                ));
            }
        }
        device.synchronize();
        let train_seconds = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let (test_loss, test_accuracy) =
            evaluate(model, &test_loader, device).map_err(|e| e.to_string())?;
        let stats = EpochStats {
            train_loss: epoch_loss / images.max(1) as f64,
            test_loss,
            test_accuracy,
            train_seconds,
            images,
        };
        if !quiet && dist::is_main_process() {
            // Resident memory after each epoch: flat from epoch 1 on.
            let resident = kiln_kernels::cpu::alloc::resident_bytes().map_or(String::new(), |b| {
                format!(", resident {:.1} MB", b as f64 / 1e6)
            });
            println!(
                "epoch {epoch}/{}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%, {:.1} s ({:.0} images/s){resident}",
                opts.epochs,
                stats.train_loss,
                stats.test_loss,
                100.0 * stats.test_accuracy,
                stats.train_seconds,
                stats.images as f64 / stats.train_seconds.max(1e-9)
            );
        }
        summary.epochs.push(stats);
        // Rank 0 alone writes (the ranks hold the same model); the others
        // wait so that nobody reads a half-written state.
        if dist::is_main_process() {
            save_state(
                &opts.state,
                epoch,
                model,
                &*opt,
                &*schedule,
                &schedule_text,
                &summary,
            )?;
        }
        dist::barrier();
    }
    Ok(summary)
}

/// Writes the training state after `epoch` to `path` (atomically: a run
/// killed while saving keeps the previous epoch's file).
fn save_state(
    path: &Path,
    epoch: usize,
    model: &LeNet5,
    opt: &dyn Optimizer,
    schedule: &dyn LrScheduler,
    schedule_text: &str,
    summary: &Summary,
) -> Result<(), String> {
    let stats: Vec<Value> = summary
        .epochs
        .iter()
        .map(|e| {
            let mut d = Dict::new();
            d.insert("train_loss", e.train_loss);
            d.insert("test_loss", e.test_loss);
            d.insert("test_accuracy", e.test_accuracy);
            d.insert("train_seconds", e.train_seconds);
            d.insert("images", e.images);
            Value::Dict(d)
        })
        .collect();
    let curve: Vec<Value> = summary
        .loss_curve
        .iter()
        .map(|&(x, y)| Value::from(vec![x, y]))
        .collect();
    let mut ckpt = Dict::new();
    ckpt.insert("epoch", epoch);
    ckpt.insert("model_state_dict", model.state_dict());
    ckpt.insert("optimizer_state_dict", opt.state_dict());
    ckpt.insert("scheduler_state_dict", schedule.state_dict());
    ckpt.insert("schedule", schedule_text);
    ckpt.insert("rng_state", kiln::get_rng_state());
    ckpt.insert("epoch_stats", Value::List(stats));
    ckpt.insert("loss_curve", Value::List(curve));
    save_checkpoint(&ckpt, path).map_err(|e| format!("saving the training state: {e}"))
}

/// Restores what [`save_state`] wrote; returns the epoch it was saved at.
fn resume(
    path: &Path,
    model: &mut LeNet5,
    opt: &mut dyn Optimizer,
    schedule: &mut dyn LrScheduler,
    schedule_text: &str,
    summary: &mut Summary,
) -> Result<usize, String> {
    let bad = |what: &str| format!("--resume {}: {what}", path.display());
    let ckpt = load_checkpoint(path).map_err(|e| bad(&e.to_string()))?;
    let epoch = ckpt
        .get("epoch")
        .and_then(Value::as_int)
        .ok_or_else(|| bad("no epoch"))?;
    match ckpt.get("schedule").and_then(Value::as_str) {
        Some(saved) if saved == schedule_text => {}
        Some(saved) => {
            return Err(bad(&format!(
                "it was trained under the schedule `{saved}` but this run asks for \
                 `{schedule_text}`; resume with the same --lr, --batch-size, --limit, \
                 --schedule and --lr-decay (or --schedule-epochs)"
            )));
        }
        None => return Err(bad("no schedule")),
    }
    let weights = ckpt
        .state_dict("model_state_dict")
        .ok_or_else(|| bad("no model_state_dict"))?;
    model
        .load_state_dict(&weights, true)
        .map_err(|e| bad(&e.to_string()))?;
    let dict = |k: &str| ckpt.dict(k).ok_or_else(|| bad(&format!("no {k}")));
    opt.load_state_dict(dict("optimizer_state_dict")?)
        .map_err(|e| bad(&e.to_string()))?;
    schedule
        .load_state_dict(dict("scheduler_state_dict")?)
        .map_err(|e| bad(&e.to_string()))?;
    let rng = ckpt
        .get("rng_state")
        .and_then(Value::as_tensor)
        .filter(|t| t.dtype() == DType::U8 && t.shape() == kiln::get_rng_state().shape())
        .ok_or_else(|| bad("no usable rng_state"))?;
    kiln::set_rng_state(rng);
    let num = |d: &Dict, k: &str| d.get(k).and_then(Value::as_float);
    for e in ckpt
        .get("epoch_stats")
        .and_then(Value::as_list)
        .unwrap_or_default()
    {
        let d = e.as_dict().ok_or_else(|| bad("bad epoch_stats"))?;
        let stats = (|| {
            Some(EpochStats {
                train_loss: num(d, "train_loss")?,
                test_loss: num(d, "test_loss")?,
                test_accuracy: num(d, "test_accuracy")?,
                train_seconds: num(d, "train_seconds")?,
                images: d.get("images").and_then(Value::as_int)? as usize,
            })
        })()
        .ok_or_else(|| bad("bad epoch_stats"))?;
        summary.epochs.push(stats);
    }
    for p in ckpt
        .get("loss_curve")
        .and_then(Value::as_list)
        .unwrap_or_default()
    {
        match p.as_list() {
            Some([x, y]) => summary.loss_curve.push((
                x.as_float().ok_or_else(|| bad("bad loss_curve"))?,
                y.as_float().ok_or_else(|| bad("bad loss_curve"))?,
            )),
            _ => return Err(bad("bad loss_curve")),
        }
    }
    Ok(epoch.max(0) as usize)
}

fn plot_curves(path: &Path, s: &Summary) -> Result<(), Box<dyn std::error::Error>> {
    use plot::{Panel, Series};
    let per_epoch = |f: fn(&EpochStats) -> f64| {
        s.epochs
            .iter()
            .enumerate()
            .map(|(i, e)| ((i + 1) as f64, f(e)))
            .collect::<Vec<_>>()
    };
    plot::write_png(
        path,
        1200,
        450,
        &[
            Panel {
                title: "LeNet-5 on MNIST: loss".into(),
                x_label: "epoch".into(),
                y_label: "cross-entropy".into(),
                series: vec![
                    Series::new("train (running)", s.loss_curve.clone()),
                    Series::new("test", per_epoch(|e| e.test_loss)),
                ],
                log_y: true,
                y_limits: None,
            },
            Panel {
                title: "test accuracy".into(),
                x_label: "epoch".into(),
                y_label: "accuracy (%)".into(),
                series: vec![Series::new("test", per_epoch(|e| 100.0 * e.test_accuracy))],
                log_y: false,
                y_limits: Some((0.0, 100.0)),
            },
        ],
    )
}

/// Trains, saves and plots; `Ok(None)` on the ranks other than 0 of a
/// `--distributed` job (rank 0 reports).
fn run(opts: &Options) -> Result<Option<Summary>, String> {
    opts.device
        .check_available()
        .map_err(|e| format!("--device {}: {e}", opts.device))?;
    let _group = if opts.distributed {
        let group = dist::init_process_group(Backend::Mpi).map_err(|e| e.to_string())?;
        if !opts.batch_size.is_multiple_of(dist::world_size()) {
            return Err(format!(
                "--batch-size {} does not split evenly over {} ranks",
                opts.batch_size,
                dist::world_size()
            ));
        }
        Some(group)
    } else {
        None
    };
    // Only rank 0 downloads; the others wait and then open its files.
    let opened = dist::on_rank_zero(|| open_mnist(&opts.data, opts.download));
    let (train_set, test_set) = match opened {
        Some(r) => r?,
        None => open_mnist(&opts.data, false)?,
    };
    manual_seed(opts.seed);
    let (mut alone, mut wrapped);
    let model: &mut LeNet5 = if opts.distributed {
        // Rank 0's initial weights everywhere; gradients averaged in
        // buckets while backward runs.
        wrapped = DistributedDataParallel::new(LeNet5::new(&opts.device));
        wrapped.module_mut()
    } else {
        alone = LeNet5::new(&opts.device);
        &mut alone
    };
    if opts.distributed {
        println!(
            "rank {} of {} (local rank {}), {} images per rank and step",
            dist::rank(),
            dist::world_size(),
            dist::local_rank(),
            opts.batch_size / dist::world_size()
        );
    }
    if !dist::is_main_process() {
        train(model, train_set, test_set, opts, true)?;
        // Rank 0 writes the checkpoint and the plot; wait for it.
        dist::barrier();
        return Ok(None);
    }
    println!(
        "LeNet-5: {} parameters on {}; {} epochs, batch {}, {:?} lr {}, data {}",
        model.num_parameters(),
        opts.device,
        opts.epochs,
        opts.batch_size,
        opts.optimizer,
        opts.lr(),
        opts.data.display()
    );
    let summary = train(model, train_set, test_set, opts, false)?;
    let saved = model
        .save_safetensors(&opts.checkpoint)
        .map_err(|e| format!("saving the checkpoint: {e}"));
    // The other ranks wait at this barrier while rank 0 saves and draws.
    let _release = Defer(dist::barrier);
    saved?;
    println!("saved the model to {}", opts.checkpoint.display());
    match plot_curves(&opts.plot, &summary) {
        Ok(()) => println!("drew the curves to {}", opts.plot.display()),
        // The model is trained and saved: a plotting problem (no fonts) is
        // worth a warning, not a failed run.
        Err(e) => eprintln!("warning: could not draw {}: {e}", opts.plot.display()),
    }
    Ok(Some(summary))
}

/// Runs its function when dropped (the barrier that releases the other
/// ranks once rank 0 has written, on every return path).
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

fn main() {
    let kiln_data = std::env::var_os("KILN_DATA").map(PathBuf::from);
    let opts = match Options::parse(std::env::args().skip(1), kiln_data) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("lenet_mnist: {e}");
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok(Some(summary)) => println!("{}", summary.json_line()),
        Ok(None) => {}
        Err(e) => {
            eprintln!("lenet_mnist: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn shared_mnist() -> PathBuf {
        std::env::var_os("KILN_DATA").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist"),
            PathBuf::from,
        )
    }

    #[test]
    fn options_parse_flags_env_and_errors() {
        let o = Options::parse(args(""), None).unwrap().unwrap();
        assert_eq!(o.data, PathBuf::from("data/mnist"));
        assert_eq!((o.epochs, o.batch_size, o.lr()), (3, 64, 0.05));
        let o = Options::parse(args(""), Some("/x".into()))
            .unwrap()
            .unwrap();
        assert_eq!(o.data, PathBuf::from("/x"), "KILN_DATA sets the default");
        let o = Options::parse(
            args("--data /y --epochs 5 --batch-size=128 --optimizer adam --device cuda:1 --no-download"),
            Some("/x".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.data, PathBuf::from("/y"), "the flag beats KILN_DATA");
        assert_eq!((o.epochs, o.batch_size), (5, 128));
        assert_eq!((o.optimizer, o.lr()), (OptimizerKind::Adam, 1e-3));
        assert_eq!(o.device, Device::Cuda(1));
        assert!(!o.download);
        assert!(Options::parse(args("--help"), None).unwrap().is_none());
        let o = Options::parse(args(""), None).unwrap().unwrap();
        assert_eq!((o.schedule, o.lr_decay), (ScheduleKind::Exp, 0.5));
        let o = Options::parse(args("--schedule cosine --lr-decay 0.9"), None)
            .unwrap()
            .unwrap();
        assert_eq!((o.schedule, o.lr_decay), (ScheduleKind::Cosine, 0.9));
        for (bad, says) in [
            ("--schedule step", "unknown schedule"),
            ("--lr-decay 1.5", "--lr-decay must be in (0, 1]"),
            ("--epochs", "needs a value"),
            ("--epochs x", "--epochs: cannot parse"),
            ("--optimizer lbfgs", "unknown optimizer"),
            ("--device tpu", "unknown device"),
            ("--lr -1", "positive"),
            ("--frobnicate 1", "unknown option"),
        ] {
            let err = Options::parse(args(bad), None).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn missing_data_says_what_to_do_without_touching_the_network() {
        let dir = std::env::temp_dir().join(format!("kiln-lenet-missing-{}", std::process::id()));
        let err = open_mnist(&dir, false).expect_err("no data there");
        assert!(
            err.contains("KILN_DATA") && err.contains("--no-download"),
            "{err}"
        );
        assert!(!dir.exists(), "reporting must not create the folder");
    }

    /// Held by every test here that seeds and draws from the process-wide
    /// generator (`manual_seed`, weight init, shuffling): the test harness
    /// runs tests on parallel threads, and two trainings interleaving their
    /// draws would each see a different stream.
    fn global_rng() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn a_short_run_learns_and_reports_json() {
        let _rng = global_rng();
        let dir = shared_mnist();
        if !kiln::testing::fixture_or_skip(&dir.join("train-images-idx3-ubyte.gz"), "MNIST") {
            return;
        }
        let (train_set, test_set) = open_mnist(&dir, false).unwrap();
        let mut opts = Options::defaults(Some(dir));
        opts.epochs = 1;
        opts.limit = Some(6400);
        opts.workers = 1;
        opts.state =
            std::env::temp_dir().join(format!("kiln-lenet-state-{}.st", std::process::id()));
        manual_seed(0);
        let mut model = LeNet5::new(&Device::Cpu);
        let s = train(&mut model, train_set, test_set, &opts, true).unwrap();
        let e = &s.epochs[0];
        assert_eq!(e.images, 6400);
        assert!(e.test_accuracy > 0.90, "100 steps of LeNet: {e:?}");
        assert!(e.test_loss < 0.4, "{e:?}");
        let json: serde_json::Value = serde_json::from_str(&s.json_line()).unwrap();
        for key in [
            "epochs",
            "test_accuracy",
            "test_loss",
            "train_seconds",
            "images_per_second",
        ] {
            assert!(json[key].is_number(), "{key} in {json}");
        }
        let png = std::env::temp_dir().join(format!("kiln-lenet-{}.png", std::process::id()));
        plot_curves(&png, &s).unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        std::fs::remove_file(png).ok();
        std::fs::remove_file(&opts.state).ok();
    }

    /// Options for the quick resume runs: 640 images, 10 steps an epoch.
    fn resume_opts(dir: PathBuf, epochs: usize, state: &Path) -> Options {
        let mut o = Options::defaults(Some(dir));
        o.epochs = epochs;
        o.limit = Some(640);
        o.workers = 1;
        o.state = state.to_path_buf();
        o
    }

    /// The last epoch's test loss and accuracy, bit for bit, and the
    /// trained weights.
    fn outcome(s: &Summary, model: &LeNet5) -> String {
        let e = s.epochs.last().unwrap();
        let weights: Vec<u32> = model
            .state_dict()
            .iter()
            .flat_map(|(_, t)| t.to_vec::<f32>())
            .map(f32::to_bits)
            .collect();
        let h = weights.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &w| {
            (h ^ u64::from(w)).wrapping_mul(0x100_0000_01b3)
        });
        format!(
            "epochs {} test_loss {:e} test_accuracy {:e} train_losses {:?} weights {h:x}",
            s.epochs.len(),
            e.test_loss,
            e.test_accuracy,
            s.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>()
        )
    }

    /// Run in a new process by `resuming_ends_where_an_uninterrupted_run_ends`.
    #[test]
    #[ignore = "helper: run in a child process by resuming_ends_where_an_uninterrupted_run_ends"]
    fn resume_child() {
        let state = PathBuf::from(std::env::var_os("KILN_LENET_STATE").expect("KILN_LENET_STATE"));
        let out = PathBuf::from(std::env::var_os("KILN_LENET_OUT").expect("KILN_LENET_OUT"));
        let dir = shared_mnist();
        let (train_set, test_set) = open_mnist(&dir, false).unwrap();
        let mut opts = resume_opts(dir, 2, &state);
        opts.resume = Some(state.clone());
        manual_seed(opts.seed);
        let mut model = LeNet5::new(&Device::Cpu);
        let s = train(&mut model, train_set, test_set, &opts, true).unwrap();
        std::fs::write(out, outcome(&s, &model)).unwrap();
    }

    #[test]
    fn resuming_ends_where_an_uninterrupted_run_ends() {
        let _rng = global_rng();
        let dir = shared_mnist();
        if !kiln::testing::fixture_or_skip(&dir.join("train-images-idx3-ubyte.gz"), "MNIST") {
            return;
        }
        let tmp = std::env::temp_dir();
        let state = tmp.join(format!("kiln-lenet-resume-{}.st", std::process::id()));
        let out = tmp.join(format!("kiln-lenet-resume-{}.txt", std::process::id()));
        let straight = {
            let (train_set, test_set) = open_mnist(&dir, false).unwrap();
            let opts = resume_opts(
                dir.clone(),
                2,
                &tmp.join(format!("kiln-lenet-s-{}.st", std::process::id())),
            );
            manual_seed(opts.seed);
            let mut model = LeNet5::new(&Device::Cpu);
            let s = train(&mut model, train_set, test_set, &opts, true).unwrap();
            std::fs::remove_file(&opts.state).unwrap();
            outcome(&s, &model)
        };
        {
            let (train_set, test_set) = open_mnist(&dir, false).unwrap();
            // The same options but one epoch: the issue's `--epochs 1` then
            // `--epochs 2 --resume`.
            let opts = resume_opts(dir.clone(), 1, &state);
            manual_seed(opts.seed);
            let mut model = LeNet5::new(&Device::Cpu);
            train(&mut model, train_set, test_set, &opts, true).unwrap();
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "tests::resume_child",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env("KILN_LENET_STATE", &state)
            .env("KILN_LENET_OUT", &out)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "the resumed run failed:\n{}{}",
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr)
        );
        let resumed = std::fs::read_to_string(&out).unwrap();
        assert_eq!(resumed, straight);
        // Resuming past the requested total is refused with a message.
        let (train_set, test_set) = open_mnist(&dir, false).unwrap();
        let mut opts = resume_opts(dir.clone(), 2, &state);
        opts.resume = Some(state.clone());
        let err = train(
            &mut LeNet5::new(&Device::Cpu),
            train_set,
            test_set,
            &opts,
            true,
        )
        .unwrap_err();
        assert!(err.contains("already at epoch 2"), "{err}");
        // So is resuming under another schedule, which would change the run.
        let (train_set, test_set) = open_mnist(&dir, false).unwrap();
        let mut opts = resume_opts(dir, 3, &state);
        opts.resume = Some(state.clone());
        opts.lr_decay = 0.9;
        let err = train(
            &mut LeNet5::new(&Device::Cpu),
            train_set,
            test_set,
            &opts,
            true,
        )
        .unwrap_err();
        assert!(err.contains("it was trained under the schedule `exp: peak 0.05 warmup 2 decay 0.5 per 10 steps` but this run asks for `exp: peak 0.05 warmup 2 decay 0.9 per 10 steps`"), "{err}");
        std::fs::remove_file(&state).unwrap();
        std::fs::remove_file(&out).unwrap();
    }
}
