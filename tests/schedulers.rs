//! Learning-rate schedulers against PyTorch's sequences: tests/data/
//! schedulers.json, written by tests/data/gen_schedulers.py with PyTorch.
//! Each case: two parameter groups (rates `init_lrs`), `get_last_lr()`
//! after construction and after every `step()`; momentum-cycling cases
//! also each group's momentum (SGD) or `beta1` (Adam) (`momentums`).

use kiln::Tensor;
use kiln::optim::lr_scheduler::*;
use kiln::optim::{Adam, Optimizer, ParamGroup, SGD};
use serde_json::Value;

fn goldens() -> Value {
    let text = include_str!("data/schedulers.json");
    serde_json::from_str(text).expect("tests/data/schedulers.json parses")
}

fn case(name: &str) -> Value {
    goldens()["schedulers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no golden case {name}"))
        .clone()
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn optimizer(c: &Value) -> SGD {
    let lrs: Vec<f64> = c["init_lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let groups = lrs
        .iter()
        .map(|&lr| ParamGroup::new(vec![Tensor::zeros([1]).requires_grad_(true)]).lr(lr))
        .collect();
    SGD::with_groups(groups, lrs[0])
}

fn assert_close(name: &str, got: &[Vec<f64>], want: &[Vec<f64>]) {
    assert_eq!(got.len(), want.len(), "{name}: sequence length");
    for (e, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{name}: groups at epoch {e}");
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-15 + 1e-12 * b.abs(),
                "{name}: epoch {e}: kiln {g:?}, PyTorch {w:?}"
            );
        }
    }
}

/// Builds the scheduler for golden case `name` and compares its whole
/// sequence (also checking that the optimizer's groups hold what
/// `get_last_lr` reports).
fn check<S: LrScheduler>(name: &str, make: impl FnOnce(&SGD) -> S) {
    let c = case(name);
    let want = rows(&c["lrs"]);
    let opt = optimizer(&c);
    let mut s = make(&opt);
    let mut got = vec![s.get_last_lr()];
    for _ in 1..want.len() {
        s.step();
        let lrs = s.get_last_lr();
        let in_opt: Vec<f64> = opt.param_groups().iter().map(|g| g.get_lr()).collect();
        assert_eq!(
            lrs, in_opt,
            "{name}: get_last_lr and the optimizer disagree"
        );
        got.push(lrs);
    }
    assert_close(name, &got, &want);
}

#[test]
fn linear_lr() {
    check("linear_warmup", |o| LinearLR::new(o, 0.25, 1.0, 4));
    check("linear_decay", |o| LinearLR::new(o, 1.0, 0.1, 5));
    check("linear_default", |o| LinearLR::new(o, 1.0 / 3.0, 1.0, 5));
}

#[test]
fn cosine_annealing_warm_restarts() {
    check("warm_restarts_t0_3_mult_2", |o| {
        CosineAnnealingWarmRestarts::new(o, 3, 2, 0.001)
    });
    check("warm_restarts_t0_4", |o| {
        CosineAnnealingWarmRestarts::new(o, 4, 1, 0.0)
    });
}

#[test]
fn one_cycle_lr() {
    check("one_cycle_cos", |o| {
        OneCycleLR::with_max_lrs(o, &[0.5, 0.1], 20)
    });
    check("one_cycle_linear_pct", |o| {
        OneCycleLR::new(o, 0.3, 3 * 5)
            .pct_start(0.25)
            .anneal_strategy(AnnealStrategy::Linear)
    });
    check("one_cycle_three_phase", |o| {
        OneCycleLR::new(o, 0.2, 17)
            .three_phase(true)
            .div_factor(10.0)
            .final_div_factor(100.0)
    });
}

/// The optimizer's groups' momentum (or beta1) as its `state_dict` reports
/// it, which is what its `step` uses.
fn momentums(opt: &dyn Optimizer) -> Vec<f64> {
    let sd = opt.state_dict();
    sd.get("param_groups")
        .unwrap()
        .as_list()
        .unwrap()
        .iter()
        .map(|g| {
            let g = g.as_dict().unwrap();
            match g.get("betas") {
                Some(b) => b.as_list().unwrap()[0].as_float().unwrap(),
                None => g.get("momentum").unwrap().as_float().unwrap(),
            }
        })
        .collect()
}

/// Like [`check`] for a momentum-cycling case: the case's optimizer (SGD
/// with momentum 0.9, or Adam), and the momentum sequence compared too.
fn check_momentum<S: LrScheduler>(name: &str, make: impl FnOnce(&dyn Optimizer) -> S) {
    let c = case(name);
    let want = rows(&c["lrs"]);
    let want_m = rows(&c["momentums"]);
    let lrs: Vec<f64> = rows(&serde_json::json!([c["init_lrs"]]))[0].clone();
    let groups: Vec<ParamGroup> = lrs
        .iter()
        .map(|&lr| ParamGroup::new(vec![Tensor::zeros([1]).requires_grad_(true)]).lr(lr))
        .collect();
    let opt: Box<dyn Optimizer> = match c["opt"].as_str().unwrap() {
        "sgd_momentum" => Box::new(SGD::with_groups(groups, lrs[0]).momentum(0.9)),
        "adam" => Box::new(Adam::with_groups(groups, lrs[0])),
        other => panic!("unknown optimizer {other}"),
    };
    let mut s = make(&*opt);
    let mut got = vec![s.get_last_lr()];
    let mut got_m = vec![momentums(&*opt)];
    for _ in 1..want.len() {
        s.step();
        got.push(s.get_last_lr());
        got_m.push(momentums(&*opt));
    }
    assert_close(name, &got, &want);
    assert_close(&format!("{name} (momentum)"), &got_m, &want_m);
}

#[test]
fn one_cycle_lr_cycles_momentum() {
    check_momentum("one_cycle_momentum", |o| {
        OneCycleLR::with_max_lrs(o, &[0.5, 0.1], 20)
    });
    check_momentum("one_cycle_three_phase_momentum", |o| {
        OneCycleLR::new(o, 0.2, 17)
            .three_phase(true)
            .anneal_strategy(AnnealStrategy::Linear)
            .base_momentums(&[0.8, 0.7])
            .max_momentum(0.9)
    });
    check_momentum("one_cycle_adam_beta1", |o| {
        OneCycleLR::new(o, 0.01, 12).pct_start(0.25)
    });
    check_momentum("one_cycle_no_momentum_cycle", |o| {
        OneCycleLR::new(o, 0.3, 8).cycle_momentum(false)
    });
}

#[test]
fn cyclic_lr_cycles_momentum() {
    check_momentum("cyclic_momentum", |o| {
        CyclicLR::new(o, 0.01, 0.1)
            .step_size_up(3)
            .step_size_down(5)
    });
    check_momentum("cyclic_exp_range_momentum", |o| {
        CyclicLR::new(o, 0.01, 0.1)
            .step_size_up(3)
            .mode(CyclicMode::ExpRange { gamma: 0.9 })
            .base_momentums(&[0.7, 0.75])
            .max_momentums(&[0.9, 0.95])
    });
    check_momentum("cyclic_adam_triangular2", |o| {
        CyclicLR::new(o, 0.001, 0.01)
            .step_size_up(2)
            .mode(CyclicMode::Triangular2)
            .base_momentum(0.85)
            .max_momentum(0.95)
    });
}

/// The cycled momentum is what SGD steps with: two runs of the same
/// gradients, one with the scheduler's momentum written by hand, agree.
#[test]
fn sgd_steps_with_the_cycled_momentum() {
    let run = |cycled: bool| {
        let mut opt =
            SGD::new(vec![Tensor::from([1.0f64, -2.0]).requires_grad_(true)], 0.1).momentum(0.9);
        let mut sched = cycled.then(|| OneCycleLR::new(&opt, 0.1, 6).max_momentum(0.9));
        for k in 0..5 {
            if !cycled {
                // OneCycleLR's rate and momentum, from a twin schedule.
                let twin_opt =
                    SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 0.1).momentum(0.9);
                let mut twin = OneCycleLR::new(&twin_opt, 0.1, 6).max_momentum(0.9);
                for _ in 0..k {
                    twin.step();
                }
                opt.set_lr(twin.get_last_lr()[0]);
                opt.param_groups_mut()[0].momentum = Some(momentums(&twin_opt)[0]);
            }
            opt.zero_grad();
            let p = &opt.param_groups()[0].params[0];
            (p * p).sum().backward();
            opt.step();
            if let Some(s) = &mut sched {
                s.step();
            }
        }
        opt.param_groups()[0].params[0].to_vec::<f64>()
    };
    assert_eq!(run(true), run(false));
}

#[test]
#[should_panic(expected = "OneCycleLR: tried to step 3 times")]
fn one_cycle_lr_past_the_end_panics() {
    let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 0.1);
    let mut s = OneCycleLR::new(&opt, 0.1, 2);
    for _ in 0..3 {
        s.step();
    }
}

#[test]
fn cyclic_lr() {
    check("cyclic_triangular", |o| {
        CyclicLR::with_lrs(o, &[0.01, 0.001], &[0.1, 0.005])
            .step_size_up(3)
            .step_size_down(5)
    });
    check("cyclic_triangular2", |o| {
        CyclicLR::new(o, 0.01, 0.1)
            .step_size_up(2)
            .mode(CyclicMode::Triangular2)
    });
    check("cyclic_exp_range", |o| {
        CyclicLR::new(o, 0.01, 0.1)
            .step_size_up(3)
            .mode(CyclicMode::ExpRange { gamma: 0.9 })
    });
    // A custom scale function equal to exp_range's gives the same sequence.
    check("cyclic_exp_range", |o| {
        CyclicLR::new(o, 0.01, 0.1)
            .step_size_up(3)
            .scale_fn(|x| 0.9f64.powf(x), ScaleMode::Iterations)
    });
}

fn check_plateau(name: &str, make: impl FnOnce(&SGD) -> ReduceLROnPlateau) {
    let c = case(name);
    let want = rows(&c["lrs"]);
    let metrics: Vec<f64> = c["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let opt = optimizer(&c);
    let mut s = make(&opt);
    let mut got = vec![s.get_last_lr()];
    for &m in &metrics {
        s.step(m);
        got.push(s.get_last_lr());
    }
    assert_eq!(s.last_epoch(), metrics.len() as i64);
    assert_close(name, &got, &want);
}

#[test]
fn reduce_lr_on_plateau() {
    check_plateau("plateau_min_rel", |o| {
        ReduceLROnPlateau::new(o).factor(0.5).patience(2)
    });
    check_plateau("plateau_min_abs_cooldown", |o| {
        ReduceLROnPlateau::new(o)
            .factor(0.1)
            .patience(1)
            .threshold(0.05, ThresholdMode::Abs)
            .cooldown(2)
            .min_lrs(&[1e-3, 1e-4])
    });
    check_plateau("plateau_max_min_lr", |o| {
        ReduceLROnPlateau::new(o)
            .mode(PlateauMode::Max)
            .factor(0.3)
            .patience(0)
            .min_lr(0.005)
    });
}

#[test]
fn sequential_lr() {
    check("sequential_linear_cosine", |o| {
        let parts: Vec<Box<dyn Restartable>> = vec![
            Box::new(LinearLR::new(o, 0.1, 1.0, 3)),
            Box::new(CosineAnnealingLR::new(o, 7, 0.0)),
        ];
        SequentialLR::new(o, parts, &[3])
    });
    // The restarts scheduler is built after the warm-up lowered the rates:
    // its base rates are still the groups' initial ones, as in PyTorch.
    check("sequential_linear_restarts", |o| {
        let parts: Vec<Box<dyn Restartable>> = vec![
            Box::new(LinearLR::new(o, 0.5, 1.0, 2)),
            Box::new(CosineAnnealingWarmRestarts::new(o, 3, 1, 0.0)),
        ];
        SequentialLR::new(o, parts, &[2])
    });
    check("sequential_three", |o| {
        let parts: Vec<Box<dyn Restartable>> = vec![
            Box::new(ExponentialLR::new(o, 0.5)),
            Box::new(StepLR::new(o, 2, 0.1)),
            Box::new(LinearLR::new(o, 0.2, 1.0, 2)),
        ];
        SequentialLR::new(o, parts, &[2, 5])
    });
}

#[test]
fn chained_scheduler() {
    check("chained_linear_exponential", |o| {
        ChainedScheduler::new(
            o,
            vec![
                Box::new(LinearLR::new(o, 0.5, 1.0, 3)),
                Box::new(ExponentialLR::new(o, 0.9)),
            ],
        )
    });
    check("chained_step_multistep", |o| {
        ChainedScheduler::new(
            o,
            vec![
                Box::new(StepLR::new(o, 3, 0.5)),
                Box::new(MultiStepLR::new(o, &[2, 5], 0.1)),
            ],
        )
    });
}

/// The tutorials' hand-written warm-up + cosine through `LambdaLR`, past
/// `total` too, and where the built-in `CosineDecayWarmup` agrees with it.
#[test]
fn tutorial_warmup_cosine_rule() {
    check("tutorial_warmup_cosine", |o| {
        LambdaLR::new(o, |i| tutorial_warmup_cosine(i, 3, 8))
    });
    let want = rows(&case("tutorial_warmup_cosine")["lrs"]);
    let opt = SGD::new(vec![Tensor::zeros([1]).requires_grad_(true)], 0.1);
    let mut s = CosineDecayWarmup::new(&opt, 0.1, 3, 8);
    for (i, w) in want.iter().enumerate() {
        let lr = s.get_last_lr()[0];
        if i < 8 {
            assert!((lr - w[0]).abs() < 1e-12, "iteration {i}: {lr} vs {}", w[0]);
        } else {
            // The built-in holds 0 where the hand-written rule rises again.
            assert_eq!(lr, 0.0);
            assert!(i == 8 || w[0] > 0.0, "iteration {i}: {}", w[0]);
        }
        s.step();
    }
}

// ----- LBFGS against PyTorch's trajectory on the Rosenbrock function --------

/// `(1 − x)² + 100 (y − x²)²` of `p = [x, y]`, with its gradient.
fn rosenbrock(p: &Tensor) -> Tensor {
    let x = p.narrow(0, 0, 1);
    let y = p.narrow(0, 1, 1);
    let a = 1.0 - &x;
    let b = &y - &(&x * &x);
    (&a * &a + &(&b * &b) * 100.0).sum()
}

#[test]
fn lbfgs_follows_pytorch_on_rosenbrock() {
    use kiln::optim::LBFGS;
    let g = goldens();
    for case in g["lbfgs"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let o = &case["options"];
        let p = Tensor::from([-1.5f64, 2.0]).requires_grad_(true);
        let mut opt = LBFGS::new(vec![p.shallow_clone()]).lr(o["lr"].as_f64().unwrap());
        if let Some(n) = o["max_iter"].as_u64() {
            opt = opt.max_iter(n as usize);
        }
        if let Some(n) = o["history_size"].as_u64() {
            opt = opt.history_size(n as usize);
        }
        if o["line_search_fn"] == "strong_wolfe" {
            opt = opt.line_search_strong_wolfe();
        }
        let losses: Vec<f64> = case["losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let params = rows(&case["params"]);
        for (k, (want_loss, want_p)) in losses.iter().zip(&params).enumerate() {
            let loss = opt.step(&mut || {
                p.set_grad(None);
                let l = rosenbrock(&p);
                l.backward();
                l
            });
            let got = p.to_vec::<f64>();
            assert!(
                (loss - want_loss).abs() <= 1e-9 * (1.0 + want_loss.abs()),
                "{name}, step {k}: loss {loss}, PyTorch {want_loss}"
            );
            for (a, b) in got.iter().zip(want_p) {
                assert!(
                    (a - b).abs() <= 1e-9,
                    "{name}, step {k}: params {got:?}, PyTorch {want_p:?}"
                );
            }
        }
        assert_eq!(
            opt.n_iter() as u64,
            case["n_iter"].as_u64().unwrap(),
            "{name}: n_iter"
        );
        assert_eq!(
            opt.func_evals() as u64,
            case["func_evals"].as_u64().unwrap(),
            "{name}: func_evals"
        );
    }
}
