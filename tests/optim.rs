//! Optimizers, parameter groups, schedulers and clipping.

use kiln::loss::{Reduction, mse_loss};
use kiln::nn::{Forward, Linear, Module, ReLU, Sequential};
use kiln::optim::lr_scheduler::{
    CosineAnnealingLR, CosineDecayWarmup, ExponentialLR, LambdaLR, LrScheduler, MultiStepLR, StepLR,
};
use kiln::optim::{Adam, AdamW, Optimizer, ParamGroup, RMSprop, SGD, clip_grad_norm_};
use kiln::{Device, Tensor};

const CPU: Device = Device::Cpu;

fn mlp() -> Sequential {
    Sequential::new()
        .push(Linear::new(4, 16, &CPU))
        .push(ReLU::new())
        .push(Linear::new(16, 1, &CPU))
}

/// Trains a small MLP on a fixed regression task; returns first and last loss.
fn train(make: impl Fn(Vec<Tensor>) -> Box<dyn Optimizer>, steps: usize) -> (f64, f64) {
    kiln::manual_seed(7);
    let net = mlp();
    let x = Tensor::randn([64, 4]);
    let w = Tensor::from([[0.5f32], [-1.0], [2.0], [0.25]]);
    let y = x.matmul(&w).add_scalar(0.3);
    let mut opt = make(net.parameters());
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..steps {
        opt.zero_grad();
        let loss = mse_loss(&net.forward(&x), &y, Reduction::Mean);
        loss.backward();
        opt.step();
        last = loss.item();
        first.get_or_insert(last);
    }
    (first.unwrap(), last)
}

#[test]
fn every_optimizer_drives_the_loss_down() {
    type Make = Box<dyn Fn(Vec<Tensor>) -> Box<dyn Optimizer>>;
    let cases: Vec<(&str, Make)> = vec![
        ("sgd", Box::new(|p| Box::new(SGD::new(p, 0.05)))),
        (
            "sgd momentum",
            Box::new(|p| Box::new(SGD::new(p, 0.02).momentum(0.9))),
        ),
        (
            "sgd nesterov wd",
            Box::new(|p| {
                Box::new(
                    SGD::new(p, 0.02)
                        .momentum(0.9)
                        .nesterov(true)
                        .weight_decay(1e-4),
                )
            }),
        ),
        ("adam", Box::new(|p| Box::new(Adam::new(p, 0.01)))),
        (
            "adam amsgrad",
            Box::new(|p| Box::new(Adam::new(p, 0.01).amsgrad(true))),
        ),
        ("adamw", Box::new(|p| Box::new(AdamW::new(p, 0.01)))),
        ("rmsprop", Box::new(|p| Box::new(RMSprop::new(p, 0.005)))),
        (
            "rmsprop centered momentum",
            Box::new(|p| Box::new(RMSprop::new(p, 0.002).centered(true).momentum(0.5))),
        ),
    ];
    for (name, make) in cases {
        let (first, last) = train(make, 300);
        assert!(last < first * 0.05, "{name}: loss {first} -> {last}");
    }
}

#[test]
fn gradients_accumulate_without_zero_grad() {
    let fc = Linear::new(3, 2, &CPU);
    let x = Tensor::ones([1, 3]);
    fc.forward(&x).sum().backward();
    let g1 = fc.weight.grad().unwrap().to_vec::<f32>();
    fc.forward(&x).sum().backward();
    let g2 = fc.weight.grad().unwrap().to_vec::<f32>();
    assert!(g1.iter().zip(&g2).all(|(a, b)| (2.0 * a - b).abs() < 1e-6));
    let opt = SGD::new(fc.parameters(), 0.1);
    opt.zero_grad();
    assert!(fc.weight.grad().is_none());
}

#[test]
fn frozen_parameter_is_left_unchanged_by_step() {
    let net = mlp();
    let mut opt = SGD::new(net.parameters(), 0.1).momentum(0.9);
    let first = net.get(0).unwrap();
    first.requires_grad_(false);
    let frozen: Vec<Vec<f32>> = first.parameters().iter().map(|p| p.to_vec()).collect();
    let head_before = net.get(2).unwrap().parameters()[0].to_vec::<f32>();
    for _ in 0..3 {
        opt.zero_grad();
        net.forward(&Tensor::randn([8, 4]))
            .pow_scalar(2.0)
            .sum()
            .backward();
        opt.step();
    }
    let after: Vec<Vec<f32>> = first.parameters().iter().map(|p| p.to_vec()).collect();
    assert_eq!(frozen, after);
    assert!(opt.momentum_buffer(&first.parameters()[0]).is_none());
    assert_ne!(
        head_before,
        net.get(2).unwrap().parameters()[0].to_vec::<f32>()
    );
}

#[test]
fn parameter_groups_get_their_own_learning_rate() {
    let a = Tensor::zeros([2]).requires_grad_(true);
    let b = Tensor::zeros([2]).requires_grad_(true);
    let mut opt = SGD::with_groups(
        vec![
            ParamGroup::new(vec![a.shallow_clone()]).lr(1e-5),
            ParamGroup::new(vec![b.shallow_clone()]),
        ],
        1e-2,
    );
    a.set_grad(Some(Tensor::ones([2])));
    b.set_grad(Some(Tensor::ones([2])));
    opt.step();
    assert_eq!(a.to_vec::<f32>(), [-1e-5f32; 2]);
    assert_eq!(b.to_vec::<f32>(), [-1e-2f32; 2]);
    assert_eq!(opt.param_groups()[0].get_lr(), 1e-5);
    opt.param_groups_mut()[1].set_lr(0.5);
    opt.step();
    assert_eq!(b.to_vec::<f32>(), [-0.51f32; 2]);
}

#[test]
fn optimizer_state_is_inspectable() {
    let p = Tensor::from([1.0f32, 2.0]).requires_grad_(true);
    let mut adam = Adam::new(vec![p.shallow_clone()], 0.1).betas(0.9, 0.99);
    p.set_grad(Some(Tensor::from([1.0f32, -1.0])));
    adam.step();
    adam.step();
    assert_eq!(adam.step_count(&p), 2);
    let m = adam.exp_avg(&p).unwrap().to_vec::<f32>();
    assert!((m[0] - 0.19).abs() < 1e-6 && (m[1] + 0.19).abs() < 1e-6);
    let v = adam.exp_avg_sq(&p).unwrap().to_vec::<f32>();
    assert!((v[0] - 0.0199).abs() < 1e-6);
    // Parameters without a gradient are skipped.
    let q = Tensor::zeros([1]).requires_grad_(true);
    let mut sgd = SGD::new(vec![q.shallow_clone()], 1.0).momentum(0.9);
    sgd.step();
    assert!(sgd.momentum_buffer(&q).is_none());
    assert_eq!(q.to_vec::<f32>(), [0.0]);
}

/// Two groups (base rates 0.1 and 0.01) and the rates a scheduler sets
/// over `n` epochs, as `get_last_lr()` reports them after each step.
fn sequence<S: LrScheduler>(n: usize, make: impl FnOnce(&SGD) -> S) -> Vec<Vec<f64>> {
    let p = Tensor::zeros([1]).requires_grad_(true);
    let q = Tensor::zeros([1]).requires_grad_(true);
    let opt = SGD::with_groups(
        vec![ParamGroup::new(vec![p]), ParamGroup::new(vec![q]).lr(0.01)],
        0.1,
    );
    let mut s = make(&opt);
    let mut out = vec![s.get_last_lr()];
    for _ in 0..n {
        s.step();
        let lrs = s.get_last_lr();
        assert_eq!(
            lrs,
            [
                opt.param_groups()[0].get_lr(),
                opt.param_groups()[1].get_lr()
            ]
        );
        out.push(lrs);
    }
    out
}

fn assert_formula(got: &[Vec<f64>], f: impl Fn(f64, usize) -> f64) {
    for (e, lrs) in got.iter().enumerate() {
        for (lr, base) in lrs.iter().zip([0.1, 0.01]) {
            let want = f(base, e);
            assert!(
                (lr - want).abs() <= 1e-12 + 1e-9 * want.abs(),
                "epoch {e}: lr {lr}, formula {want}"
            );
        }
    }
}

#[test]
fn step_lr_multistep_exponential_lambda() {
    assert_formula(&sequence(12, |o| StepLR::new(o, 3, 0.1)), |b, e| {
        b * 0.1f64.powi((e / 3) as i32)
    });
    assert_formula(
        &sequence(10, |o| MultiStepLR::new(o, &[2, 5, 5], 0.5)),
        |b, e| b * 0.5f64.powi([2, 5, 5].iter().filter(|&&m| m <= e).count() as i32),
    );
    assert_formula(&sequence(10, |o| ExponentialLR::new(o, 0.9)), |b, e| {
        b * 0.9f64.powi(e as i32)
    });
    assert_formula(
        &sequence(10, |o| LambdaLR::new(o, |e| 1.0 / (1.0 + e as f64))),
        |b, e| b / (1.0 + e as f64),
    );
}

#[test]
fn cosine_annealing_matches_closed_form_past_t_max() {
    let (t, eta) = (5usize, 0.001);
    let seq = sequence(2 * t + 3, |o| CosineAnnealingLR::new(o, t, eta));
    assert_formula(&seq, |b, e| {
        eta + (b - eta) * (1.0 + (std::f64::consts::PI * e as f64 / t as f64).cos()) / 2.0
    });
    assert!((seq[t][0] - eta).abs() < 1e-12);
}

#[test]
fn cosine_decay_warmup_phases() {
    let (warmup, total) = (4usize, 12usize);
    // Peak 0.1 for the first group; the second keeps its 1/10 ratio.
    let seq = sequence(total + 2, |o| CosineDecayWarmup::new(o, 0.1, warmup, total));
    assert_formula(&seq, |b, e| {
        if e < warmup {
            b * (e + 1) as f64 / warmup as f64
        } else if e < total {
            let x = (e - warmup) as f64 / (total - warmup) as f64;
            0.5 * (1.0 + (std::f64::consts::PI * x).cos()) * b
        } else {
            0.0
        }
    });
    assert!((seq[warmup - 1][0] - 0.1).abs() < 1e-15);
}

#[test]
fn clip_grad_norm_scales_only_when_above() {
    let a = Tensor::zeros([2]).requires_grad_(true);
    let b = Tensor::zeros([1]).requires_grad_(true);
    a.set_grad(Some(Tensor::from([3.0f32, 0.0])));
    b.set_grad(Some(Tensor::from([4.0f32])));
    let total = clip_grad_norm_(&[a.shallow_clone(), b.shallow_clone()], 10.0, 2.0);
    assert!((total - 5.0).abs() < 1e-9);
    assert_eq!(b.grad().unwrap().to_vec::<f32>(), [4.0]);
    let total = clip_grad_norm_(&[a.shallow_clone(), b.shallow_clone()], 1.0, 2.0);
    assert!((total - 5.0).abs() < 1e-9);
    let coef = 1.0 / (5.0 + 1e-6);
    assert!((b.grad().unwrap().to_vec::<f32>()[0] as f64 - 4.0 * coef).abs() < 1e-6);
    let inf = clip_grad_norm_(&[a, b.shallow_clone()], 100.0, f64::INFINITY);
    assert!((inf - 4.0 * coef).abs() < 1e-6);
}

/// Half-precision parameters train like PyTorch's: the state buffers keep
/// the parameter's dtype and three steps land where PyTorch 2.15's do.
/// Expected values: PyTorch 2.15 on the CPU,
/// `p = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=dt, requires_grad=True)`,
/// three steps of `loss = (p.float() ** 2 * torch.tensor([1., 2., 3., 4.])).sum()`
/// with `SGD(lr=0.1, momentum=0.9)`, `Adam(lr=0.1)`, `AdamW(lr=0.1)` and
/// `RMSprop(lr=0.01, momentum=0.9)`; its state (`momentum_buffer`,
/// `exp_avg`, `exp_avg_sq`, `square_avg`) is in `dt`. PyTorch rounds to
/// half after each of its ops, kiln once per buffer, hence the tolerance
/// of four units in the last place (of values from 0.5 up).
#[test]
fn half_precision_parameters_match_pytorch() {
    use kiln::DType;
    type Make = fn(Vec<Tensor>) -> Box<dyn Optimizer>;
    let makers: [(&str, Make); 4] = [
        ("SGD", |p| Box::new(SGD::new(p, 0.1).momentum(0.9))),
        ("Adam", |p| Box::new(Adam::new(p, 0.1))),
        ("AdamW", |p| Box::new(AdamW::new(p, 0.1))),
        ("RMSprop", |p| Box::new(RMSprop::new(p, 0.01).momentum(0.9))),
    ];
    let expected: [(DType, [[f64; 4]; 4], f64); 2] = [
        (
            DType::F16,
            [
                [0.062255859375, 1.078125, -2.5625, -0.4638671875],
                [0.70166015625, -1.701171875, 2.701171875, 0.205078125],
                [0.69873046875, -1.6953125, 2.693359375, 0.2034912109375],
                [0.552734375, -1.544921875, 2.541015625, 0.0733642578125],
            ],
            1.0 / 1024.0,
        ),
        (
            DType::BF16,
            [
                [0.060546875, 1.0859375, -2.578125, -0.4609375],
                [0.69921875, -1.6953125, 2.71875, 0.2041015625],
                [0.69921875, -1.6953125, 2.71875, 0.2041015625],
                [0.55078125, -1.546875, 2.546875, 0.07421875],
            ],
            1.0 / 128.0,
        ),
    ];
    let c = Tensor::from([1.0f32, 2.0, 3.0, 4.0]);
    let mut bad = Vec::new();
    for (dtype, want, ulp1) in expected {
        for ((name, make), want) in makers.iter().zip(want) {
            let p = Tensor::from([1.0f32, -2.0, 3.0, 0.5])
                .to_dtype(dtype)
                .requires_grad_(true);
            let mut opt = make(vec![p.shallow_clone()]);
            for _ in 0..3 {
                opt.zero_grad();
                (p.to_dtype(DType::F32).pow_scalar(2.0) * &c)
                    .sum()
                    .backward();
                opt.step();
            }
            assert_eq!(p.dtype(), dtype);
            let got = p.to_vec::<f64>();
            for (g, w) in got.iter().zip(want) {
                // Units in the last place at |w|, counted from 0.5 up.
                let ulp = ulp1 * 2f64.powi(w.abs().max(0.5).log2().floor() as i32);
                if (g - w).abs() > 4.0 * ulp {
                    bad.push(format!("{name} {dtype}: got {got:?}, PyTorch {want:?}"));
                    break;
                }
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    // The state stays in the parameter's dtype, as PyTorch's does.
    let p = Tensor::from([1.0f32, 2.0])
        .to_dtype(DType::F16)
        .requires_grad_(true);
    let mut sgd = SGD::new(vec![p.shallow_clone()], 0.1).momentum(0.9);
    let mut adam = Adam::new(vec![p.shallow_clone()], 0.1);
    p.to_dtype(DType::F32).sum().backward();
    sgd.step();
    adam.step();
    assert_eq!(sgd.momentum_buffer(&p).unwrap().dtype(), DType::F16);
    assert_eq!(adam.exp_avg(&p).unwrap().dtype(), DType::F16);
}

/// A parameter long enough for the update to be split across the CPU pool
/// ends exactly where the same numbers do as short parameters updated one
/// by one on the calling thread.
#[test]
fn a_large_parameter_updates_exactly_as_its_pieces_do() {
    const PIECES: usize = 40;
    const LEN: usize = 10_000;
    type Make = fn(Vec<Tensor>) -> Box<dyn Optimizer>;
    let cases: [(&str, Make); 4] = [
        ("sgd", |p| {
            Box::new(SGD::new(p, 0.05).momentum(0.9).weight_decay(1e-3))
        }),
        ("adam", |p| Box::new(Adam::new(p, 1e-2).amsgrad(true))),
        ("adamw", |p| Box::new(AdamW::new(p, 1e-2))),
        ("rmsprop", |p| {
            Box::new(RMSprop::new(p, 1e-2).momentum(0.5).centered(true))
        }),
    ];
    for (name, make) in cases {
        kiln::manual_seed(3);
        let start = Tensor::randn([PIECES * LEN]);
        let grads: Vec<Tensor> = (0..3).map(|_| Tensor::randn([PIECES * LEN])).collect();
        let whole = start.clone().requires_grad_(true);
        let pieces: Vec<Tensor> = (0..PIECES)
            .map(|i| start.narrow(0, i * LEN, LEN).clone().requires_grad_(true))
            .collect();
        let mut big = make(vec![whole.shallow_clone()]);
        let mut small = make(pieces.iter().map(Tensor::shallow_clone).collect());
        for g in &grads {
            whole.set_grad(Some(g.clone()));
            for (i, p) in pieces.iter().enumerate() {
                p.set_grad(Some(g.narrow(0, i * LEN, LEN).clone()));
            }
            big.step();
            small.step();
        }
        let joined = Tensor::cat(&pieces.iter().collect::<Vec<_>>(), 0);
        assert_eq!(
            whole.detach().to_vec::<f32>(),
            joined.detach().to_vec::<f32>(),
            "{name}"
        );
    }
}
