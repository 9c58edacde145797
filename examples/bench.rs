//! Training-step benchmark: the workloads of `../shared/bench/torch_baseline.py`,
//! in kiln, with the same models, optimizers, batch sizes and data.
//!
//! - `lenet_sgd_b64`: LeNet-5, SGD lr 0.05 momentum 0.9, batch 64
//! - `mlp_sgd_b64`: 784→512→512→10 ReLU MLP, same optimizer, batch 64
//! - `lenet_adam_b256`: LeNet-5, Adam lr 1e-3, batch 256
//!
//! Like the PyTorch script: MNIST normalised with mean 0.1307 / std 0.3081
//! held in memory, one seeded permutation, 3 warm-up steps, then one epoch
//! (or `--steps N`) timed, then test accuracy on the 10 000 test images.
//! Prints one JSON line per workload.
//!
//! ```text
//! cargo run --release --example bench [-- --steps N] [--only NAME] [--data DIR] [--device cuda]
//! ```
//!
//! The data directory is `--data`, else `$KILN_DATA`, else `data/mnist`,
//! else `../shared/data/mnist` (the repository's CI copy).

use kiln::data::Mnist;
use kiln::data::transforms::{Compose, Normalize, ToTensor};
use kiln::loss::{Reduction, cross_entropy};
use kiln::network;
use kiln::optim::{Adam, SGD};
use kiln::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

#[path = "common/lenet.rs"]
mod lenet;
use lenet::LeNet;

network! {
    /// The baseline's MLP (`nn.Sequential` named `stack`, as in PyTorch).
    pub struct Mlp(input: [1, 28, 28]) {
        stack: [Flatten, Linear(784 -> 512), ReLU, Linear(512 -> 512), ReLU, Linear(512 -> 10)],
    }
}

struct Args {
    steps: usize,
    only: Option<String>,
    data: PathBuf,
    device: Device,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        steps: usize::MAX,
        only: None,
        data: default_data_dir(),
        device: Device::Cpu,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--steps" => {
                args.steps = value("--steps")?
                    .parse()
                    .map_err(|e| format!("--steps: {e}"))?
            }
            "--only" => args.only = Some(value("--only")?),
            "--data" => args.data = PathBuf::from(value("--data")?),
            "--device" => {
                args.device = value("--device")?
                    .parse()
                    .map_err(|e| format!("--device: {e}"))?
            }
            "-h" | "--help" => {
                println!(
                    "usage: bench [--steps N] [--only lenet_sgd_b64|mlp_sgd_b64|lenet_adam_b256] [--data DIR] [--device cpu|cuda[:i]]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_DATA") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from("data/mnist");
    if local.exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist")
}

/// The whole split as one normalised `[N, 1, 28, 28]` tensor and `[N]` labels.
fn load(
    dir: &PathBuf,
    train: bool,
) -> Result<(Tensor, Tensor), Box<dyn std::error::Error + Send + Sync>> {
    let ds = Mnist::new(dir, train)?.transform(
        Compose::new()
            .then(ToTensor)
            .then(Normalize::new(&[0.1307], &[0.3081])),
    );
    Ok(ds.to_tensors()?)
}

struct Data {
    xtr: Tensor,
    ytr: Tensor,
    xte: Tensor,
    yte: Tensor,
}

fn train<M: Forward + Module>(
    name: &str,
    model: &mut M,
    opt: &mut dyn Optimizer,
    data: &Data,
    batch: usize,
    steps: usize,
    device: &Device,
) {
    manual_seed(0);
    let n_train = data.xtr.shape()[0];
    let perm = Tensor::randperm(n_train);
    let n = steps.min(n_train / batch);
    let step = |i: usize, model: &mut M, opt: &mut dyn Optimizer| {
        let idx = perm.narrow(0, i * batch, batch);
        let x = data.xtr.index_select(0, &idx).to(device);
        let y = data.ytr.index_select(0, &idx).to(device);
        let loss = cross_entropy(&model.forward(&x), &y, Reduction::Mean, 0.0);
        opt.zero_grad();
        loss.backward();
        opt.step();
    };
    for i in 0..3 {
        step(i, model, opt);
    }
    let t0 = Instant::now();
    for i in 0..n {
        step(i, model, opt);
    }
    // The step ends with the optimizer's update; on a GPU wait for it.
    device.synchronize();
    let dt = t0.elapsed().as_secs_f64();
    let acc = no_grad(|| {
        let mut correct = 0i64;
        let n_test = data.xte.shape()[0];
        for start in (0..n_test).step_by(1000) {
            let len = 1000.min(n_test - start);
            let x = data.xte.narrow(0, start, len).to(device);
            let pred = model.forward(&x).argmax(1, false).to(&Device::Cpu);
            let y = data.yte.narrow(0, start, len);
            correct += pred.eq(&y).sum().item() as i64;
        }
        correct as f64 / n_test as f64
    });
    println!(
        "{{\"workload\": \"{name}\", \"batch\": {batch}, \"steps\": {n}, \"ms_per_step\": {:.4}, \"images_per_s\": {:.1}, \"test_acc\": {acc:.4}, \"threads\": {}, \"device\": \"{device}\", \"kiln\": \"{}\"}}",
        1000.0 * dt / n as f64,
        (n * batch) as f64 / dt,
        rayon::current_num_threads(),
        env!("CARGO_PKG_VERSION"),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = parse_args().map_err(|e| {
        eprintln!("bench: {e}");
        std::process::exit(2)
    })?;
    let (xtr, ytr) = load(&args.data, true)?;
    let (xte, yte) = load(&args.data, false)?;
    let data = Data { xtr, ytr, xte, yte };
    let dev = &args.device;
    run_all(&args, &data, dev)
}

fn run_all(
    args: &Args,
    data: &Data,
    dev: &Device,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| o == name);

    manual_seed(0);
    if wanted("lenet_sgd_b64") {
        let mut m = LeNet::new(dev);
        let mut opt = SGD::new(m.parameters(), 0.05).momentum(0.9);
        train("lenet_sgd_b64", &mut m, &mut opt, data, 64, args.steps, dev);
    }
    if wanted("mlp_sgd_b64") {
        let mut m = Mlp::new(dev);
        let mut opt = SGD::new(m.parameters(), 0.05).momentum(0.9);
        train("mlp_sgd_b64", &mut m, &mut opt, data, 64, args.steps, dev);
    }
    if wanted("lenet_adam_b256") {
        let mut m = LeNet::new(dev);
        let mut opt = Adam::new(m.parameters(), 1e-3);
        train(
            "lenet_adam_b256",
            &mut m,
            &mut opt,
            data,
            256,
            args.steps,
            dev,
        );
    }
    Ok(())
}
