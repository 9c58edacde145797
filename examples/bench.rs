//! Training-step benchmark: the workloads of `../shared/bench/torch_baseline.py`,
//! in kiln, with the same models, optimizers, batch sizes and data.
//!
//! - `lenet_sgd_b64`: LeNet-5, SGD lr 0.05 momentum 0.9, batch 64
//! - `mlp_sgd_b64`: 784→512→512→10 ReLU MLP, same optimizer, batch 64
//! - `lenet_adam_b256`: LeNet-5, Adam lr 1e-3, batch 256
//! - `vgg11bn_half_sgd_b32`: VGG-11 with batch norm at half width on
//!   3×32×32 (CIFAR-10-shaped) synthetic images, SGD lr 0.05 momentum 0.9
//!   weight decay 5e-4, batch 32
//!
//! Like the PyTorch script: MNIST normalised with mean 0.1307 / std 0.3081
//! held in memory, one seeded permutation, 3 warm-up steps, then one epoch
//! (or `--steps N`) timed, then test accuracy on the 10 000 test images.
//! The VGG workload trains on 2048 N(0, 1) images and random labels drawn
//! from a generator seeded 0 (the same numbers as PyTorch's), 3 warm-up
//! steps, then `min(steps, 100)` timed, and reports the final loss.
//! Prints one JSON line per workload, with the CPU's SIMD features and the
//! kernels they select (`"cpu"`).
//!
//! ```text
//! cargo run --release --example bench [-- --steps N] [--only NAME] [--data DIR] [--device cuda]
//! ```
//!
//! The data directory is `--data`, else `$KILN_DATA`, else `data/mnist`,
//! else `../shared/data/mnist` (the repository's CI copy).

use kiln::Generator;
use kiln::data::Mnist;
use kiln::data::transforms::{Compose, Normalize, ToTensor};
use kiln::loss::{Reduction, cross_entropy};
use kiln::network;
use kiln::optim::{Adam, SGD};
use kiln::prelude::*;
use kiln_kernels::cpu::isa::cpu_features;
use std::path::PathBuf;
use std::time::Instant;

use kiln::models::LeNet5;

network! {
    /// The baseline's VGG-11 with batch norm at half width (CFG
    /// `[32, M, 64, M, 128, 128, M, 256, 256, M, 256, 256, M]`), then
    /// `Linear(256, 10)`.
    pub struct Vgg11BnHalf(input: [3, 32, 32]) {
        features: [
            Conv2d(3 -> 32, kernel: 3, padding: 1), BatchNorm2d(32), ReLU, MaxPool2d(2),
            Conv2d(32 -> 64, kernel: 3, padding: 1), BatchNorm2d(64), ReLU, MaxPool2d(2),
            Conv2d(64 -> 128, kernel: 3, padding: 1), BatchNorm2d(128), ReLU,
            Conv2d(128 -> 128, kernel: 3, padding: 1), BatchNorm2d(128), ReLU, MaxPool2d(2),
            Conv2d(128 -> 256, kernel: 3, padding: 1), BatchNorm2d(256), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), BatchNorm2d(256), ReLU, MaxPool2d(2),
            Conv2d(256 -> 256, kernel: 3, padding: 1), BatchNorm2d(256), ReLU,
            Conv2d(256 -> 256, kernel: 3, padding: 1), BatchNorm2d(256), ReLU, MaxPool2d(2),
        ],
        flatten,
        classifier: Linear(256 -> 10),
    }
}

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
                    "usage: bench [--steps N] [--only lenet_sgd_b64|mlp_sgd_b64|lenet_adam_b256|vgg11bn_half_sgd_b32] [--data DIR] [--device cpu|cuda[:i]]"
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
        "{{\"workload\": \"{name}\", \"batch\": {batch}, \"steps\": {n}, \"ms_per_step\": {:.4}, \"images_per_s\": {:.1}, \"test_acc\": {acc:.4}, \"threads\": {}, \"device\": \"{device}\", \"cpu\": {}, \"kiln\": \"{}\"}}",
        1000.0 * dt / n as f64,
        (n * batch) as f64 / dt,
        rayon::current_num_threads(),
        cpu_features().to_json(),
        env!("CARGO_PKG_VERSION"),
    );
}

/// The baseline's `train_synthetic`: CIFAR-shaped synthetic data (2048
/// seeded N(0, 1) images and random labels from a generator seeded 0, as
/// `torch.Generator().manual_seed(0)` draws them), batches taken in order
/// with wrap-around, 3 warm-up steps, `min(steps, 100)` timed steps.
fn train_synthetic<M: Forward + Module>(
    name: &str,
    model: &mut M,
    opt: &mut dyn Optimizer,
    batch: usize,
    steps: usize,
    device: &Device,
) {
    const N: usize = 2048;
    let mut g = Generator::new(0);
    let x = Tensor::randn_with([N, 3, 32, 32], TensorOptions::default(), &mut g);
    let y = Tensor::randint_with(0, 10, [N], Some(&mut g));
    let n = steps.min(100);
    let step = |i: usize, model: &mut M, opt: &mut dyn Optimizer| {
        let start = (i * batch) % N;
        let xb = x.narrow(0, start, batch).to(device);
        let yb = y.narrow(0, start, batch).to(device);
        let loss = cross_entropy(&model.forward(&xb), &yb, Reduction::Mean, 0.0);
        opt.zero_grad();
        loss.backward();
        opt.step();
        loss
    };
    for i in 0..3 {
        step(i, model, opt);
    }
    let t0 = Instant::now();
    let mut last = None;
    for i in 0..n {
        last = Some(step(i, model, opt));
    }
    device.synchronize();
    let dt = t0.elapsed().as_secs_f64();
    let final_loss = last.map_or(f64::NAN, |l| l.item());
    println!(
        "{{\"workload\": \"{name}\", \"batch\": {batch}, \"steps\": {n}, \"ms_per_step\": {:.4}, \"images_per_s\": {:.1}, \"final_loss\": {final_loss:.6}, \"threads\": {}, \"device\": \"{device}\", \"cpu\": {}, \"kiln\": \"{}\"}}",
        1000.0 * dt / n as f64,
        (n * batch) as f64 / dt,
        rayon::current_num_threads(),
        cpu_features().to_json(),
        env!("CARGO_PKG_VERSION"),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = parse_args().map_err(|e| {
        eprintln!("bench: {e}");
        std::process::exit(2)
    })?;
    let dev = &args.device;
    run_all(&args, dev)
}

/// The MNIST workloads' names (the VGG one needs no data set).
const MNIST_WORKLOADS: [&str; 3] = ["lenet_sgd_b64", "mlp_sgd_b64", "lenet_adam_b256"];
/// The synthetic-data workload.
const VGG: &str = "vgg11bn_half_sgd_b32";

fn run_all(args: &Args, dev: &Device) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    if let Some(o) = &args.only
        && !MNIST_WORKLOADS.contains(&o.as_str())
        && o != VGG
    {
        return Err(format!("--only: unknown workload {o:?}").into());
    }

    manual_seed(0);
    if MNIST_WORKLOADS.iter().any(|w| wanted(w)) {
        let (xtr, ytr) = load(&args.data, true)?;
        let (xte, yte) = load(&args.data, false)?;
        let data = Data { xtr, ytr, xte, yte };
        run_mnist(args, &data, dev);
    }
    if wanted(VGG) {
        let mut m = Vgg11BnHalf::new(dev);
        m.train();
        let mut opt = SGD::new(m.parameters(), 0.05)
            .momentum(0.9)
            .weight_decay(5e-4);
        train_synthetic(VGG, &mut m, &mut opt, 32, args.steps, dev);
    }
    Ok(())
}

fn run_mnist(args: &Args, data: &Data, dev: &Device) {
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    if wanted("lenet_sgd_b64") {
        let mut m = LeNet5::new(dev);
        let mut opt = SGD::new(m.parameters(), 0.05).momentum(0.9);
        train("lenet_sgd_b64", &mut m, &mut opt, data, 64, args.steps, dev);
    }
    if wanted("mlp_sgd_b64") {
        let mut m = Mlp::new(dev);
        let mut opt = SGD::new(m.parameters(), 0.05).momentum(0.9);
        train("mlp_sgd_b64", &mut m, &mut opt, data, 64, args.steps, dev);
    }
    if wanted("lenet_adam_b256") {
        let mut m = LeNet5::new(dev);
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
}
