//! Resuming from a general checkpoint is bit-identical to never stopping:
//! two epochs straight versus one epoch, a checkpoint (model, optimizer,
//! scheduler, epoch, RNG state, user values), then the second epoch in a
//! new process. The model has dropout and the loader shuffles from the
//! default generator, so the RNG state must be restored too. Also: loading
//! mismatched optimizer/scheduler/RNG state reports every problem and
//! changes nothing; an interrupted save keeps the previous file.

use kiln::data::{DataLoader, TensorDataset};
use kiln::io::{Dict, IoError, Value, load_checkpoint, save_checkpoint};
use kiln::loss::{Reduction, cross_entropy};
use kiln::network;
use kiln::optim::lr_scheduler::{LrScheduler, StepLR};
use kiln::optim::{Adam, Optimizer, RMSprop, SGD};
use kiln::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

network! {
    /// A small classifier with dropout (so training draws random numbers).
    pub struct Net(input: [6]) {
        fc1: Linear(6 -> 16),
        relu,
        dropout(0.25),
        fc2: Linear(16 -> 3),
    }
}

/// The optimizers the test resumes, all under a StepLR schedule.
const KINDS: [&str; 3] = ["sgd_nesterov", "adam", "rmsprop"];

fn optimizer(kind: &str, params: Vec<Tensor>) -> Box<dyn Optimizer> {
    match kind {
        "sgd_nesterov" => Box::new(
            SGD::new(params, 0.1)
                .momentum(0.9)
                .nesterov(true)
                .weight_decay(1e-4),
        ),
        "adam" => Box::new(Adam::new(params, 1e-2).betas(0.9, 0.99).weight_decay(1e-4)),
        "rmsprop" => Box::new(RMSprop::new(params, 1e-2).momentum(0.5).centered(true)),
        other => panic!("unknown optimizer kind {other}"),
    }
}

/// A fixed data set: 40 samples, 6 features, 3 classes.
fn data() -> DataLoader<TensorDataset, Vec<Tensor>> {
    let x: Vec<f32> = (0..240)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let y: Vec<i64> = (0..40).map(|i| (i * 7 % 3) as i64).collect();
    let ds = TensorDataset::new(vec![
        Tensor::from_vec(x, [40, 6]),
        Tensor::from_vec(y, [40]),
    ]);
    // No fixed seed: each epoch's order comes from the default generator.
    DataLoader::new(ds).batch_size(8).shuffle(true)
}

/// Everything a run ends with.
struct Outcome {
    params: Vec<(String, Vec<u32>)>,
    losses: Vec<f64>,
    lr: f64,
}

/// Trains epochs `start..end` (0-based). `resume` loads a checkpoint first;
/// `save` writes one at the end of each epoch.
fn run(
    kind: &str,
    start: usize,
    end: usize,
    resume: Option<&Path>,
    save: Option<&Path>,
) -> Outcome {
    kiln::manual_seed(1234);
    let mut net = Net::new(&Device::Cpu);
    let mut opt = optimizer(kind, net.parameters());
    let mut sched = StepLR::new(opt.as_ref(), 3, 0.5);
    let loader = data();
    let mut losses = Vec::new();
    if let Some(path) = resume {
        let ckpt = load_checkpoint(path).unwrap();
        assert_eq!(
            ckpt.get("epoch").and_then(Value::as_int),
            Some(start as i64)
        );
        net.load_state_dict(&ckpt.state_dict("model_state_dict").unwrap(), true)
            .unwrap();
        opt.load_state_dict(ckpt.dict("optimizer_state_dict").unwrap())
            .unwrap();
        sched
            .load_state_dict(ckpt.dict("scheduler_state_dict").unwrap())
            .unwrap();
        kiln::set_rng_state(ckpt.get("rng_state").and_then(Value::as_tensor).unwrap());
        losses = ckpt
            .get("losses")
            .and_then(Value::as_list)
            .unwrap()
            .iter()
            .map(|v| v.as_float().unwrap())
            .collect();
        loader.set_epoch(start as u64);
    }
    net.train();
    for epoch in start..end {
        for batch in &loader {
            let b = batch.unwrap();
            let loss = cross_entropy(&net.forward(&b[0]), &b[1], Reduction::Mean, 0.0);
            opt.zero_grad();
            loss.backward();
            opt.step();
            sched.step();
            losses.push(loss.item());
        }
        if let Some(path) = save {
            let mut ckpt = Dict::new();
            ckpt.insert("epoch", epoch + 1);
            ckpt.insert("model_state_dict", net.state_dict());
            ckpt.insert("optimizer_state_dict", opt.state_dict());
            ckpt.insert("scheduler_state_dict", sched.state_dict());
            ckpt.insert("rng_state", kiln::get_rng_state());
            ckpt.insert("losses", Value::from(losses.clone()));
            save_checkpoint(&ckpt, path).unwrap();
        }
    }
    let params = net
        .state_dict()
        .iter()
        .map(|(k, t)| {
            (
                k.to_string(),
                t.to_vec::<f32>().iter().map(|x| x.to_bits()).collect(),
            )
        })
        .collect();
    Outcome {
        params,
        losses,
        lr: opt.lr(),
    }
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "kiln_resume_{tag}_{}.safetensors",
        std::process::id()
    ))
}

/// Writes an outcome as a checkpoint (the child's answer to the parent).
fn save_outcome(o: &Outcome, path: &Path) {
    let mut d = Dict::new();
    for (k, bits) in &o.params {
        let v: Vec<Value> = bits.iter().map(|&b| Value::Int(i64::from(b))).collect();
        d.insert(k.as_str(), Value::List(v));
    }
    d.insert("__losses", Value::from(o.losses.clone()));
    d.insert("__lr", o.lr);
    save_checkpoint(&d, path).unwrap();
}

fn load_outcome(path: &Path) -> Outcome {
    let d = load_checkpoint(path).unwrap();
    let mut params = Vec::new();
    let mut losses = Vec::new();
    let mut lr = f64::NAN;
    for (k, v) in d.iter() {
        match k.to_string().as_str() {
            "__losses" => {
                losses = v
                    .as_list()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_float().unwrap())
                    .collect()
            }
            "__lr" => lr = v.as_float().unwrap(),
            name => params.push((
                name.to_string(),
                v.as_list()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_int().unwrap() as u32)
                    .collect(),
            )),
        }
    }
    Outcome { params, losses, lr }
}

/// Run by `resumed_run_in_a_new_process_is_bit_identical` in a child
/// process: resumes from `KILN_RESUME_FROM` and writes the outcome to
/// `KILN_RESUME_OUT`.
#[test]
#[ignore = "helper: run in a child process by resumed_run_in_a_new_process_is_bit_identical"]
fn child_resume() {
    let from = std::env::var_os("KILN_RESUME_FROM").expect("KILN_RESUME_FROM");
    let out = std::env::var_os("KILN_RESUME_OUT").expect("KILN_RESUME_OUT");
    let kind = std::env::var("KILN_RESUME_KIND").expect("KILN_RESUME_KIND");
    let o = run(&kind, 1, 2, Some(Path::new(&from)), None);
    save_outcome(&o, Path::new(&out));
}

#[test]
fn resumed_run_in_a_new_process_is_bit_identical() {
    for kind in KINDS {
        let straight = run(kind, 0, 2, None, None);
        let ckpt = temp_path(&format!("{kind}_ckpt"));
        let out = temp_path(&format!("{kind}_out"));
        let first = run(kind, 0, 1, None, Some(&ckpt));
        assert_eq!(first.losses[..], straight.losses[..first.losses.len()]);
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["child_resume", "--exact", "--ignored", "--test-threads=1"])
            .env("KILN_RESUME_FROM", &ckpt)
            .env("KILN_RESUME_OUT", &out)
            .env("KILN_RESUME_KIND", kind)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{kind}: the resumed child failed:\n{}{}",
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr)
        );
        let resumed = load_outcome(&out);
        assert_eq!(resumed.losses.len(), straight.losses.len(), "{kind}");
        for (i, (a, b)) in resumed.losses.iter().zip(&straight.losses).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{kind}: loss {i}: {a} vs {b}");
        }
        assert_eq!(resumed.lr.to_bits(), straight.lr.to_bits(), "{kind}: lr");
        assert_eq!(resumed.params.len(), straight.params.len());
        for ((ka, a), (kb, b)) in resumed.params.iter().zip(&straight.params) {
            assert_eq!(ka, kb);
            assert_eq!(a, b, "{kind}: {ka} differs");
        }
        std::fs::remove_file(&ckpt).unwrap();
        std::fs::remove_file(&out).unwrap();
    }
}

/// Everything in a value, tensors by their elements.
fn fingerprint(v: &Value) -> String {
    match v {
        Value::Tensor(t) => format!("{:?}{:?}", t.shape(), t.to_vec::<f64>()),
        Value::Dict(d) => d
            .iter()
            .map(|(k, v)| format!("{k}: {}", fingerprint(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::List(l) => l.iter().map(fingerprint).collect::<Vec<_>>().join(", "),
        other => format!("{other:?}"),
    }
}

fn fingerprint_dict(d: &Dict) -> String {
    fingerprint(&Value::Dict(d.clone()))
}

#[test]
fn mismatched_optimizer_state_is_rejected_whole_and_changes_nothing() {
    kiln::manual_seed(0);
    let net = Net::new(&Device::Cpu);
    let mut opt = optimizer("adam", net.parameters());
    let x = Tensor::ones([4, 6]);
    let y = Tensor::from_vec(vec![0i64, 1, 2, 0], [4]);
    let loss = cross_entropy(&net.forward(&x), &y, Reduction::Mean, 0.0);
    loss.backward();
    opt.step();
    let good = opt.state_dict();
    let before = fingerprint_dict(&good);

    // Every state tensor of parameter 0 gets the wrong shape, and the
    // group loses its learning rate: all of it is reported at once.
    let mut bad = good.clone();
    let mut state = bad.dict("state").unwrap().clone();
    let mut s0 = state.get(0usize).and_then(Value::as_dict).unwrap().clone();
    s0.insert("exp_avg", Tensor::zeros([2, 2]));
    s0.insert("exp_avg_sq", Tensor::zeros([3]));
    state.insert(0usize, s0);
    bad.insert("state", state);
    let mut groups = bad
        .get("param_groups")
        .and_then(Value::as_list)
        .unwrap()
        .to_vec();
    let mut g0 = groups[0].as_dict().unwrap().clone();
    g0.remove("lr");
    groups[0] = Value::Dict(g0);
    bad.insert("param_groups", Value::List(groups));
    let e = opt.load_state_dict(&bad).unwrap_err();
    assert_eq!(e.problems.len(), 3, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("exp_avg") && msg.contains("exp_avg_sq") && msg.contains("lr"),
        "{msg}"
    );
    assert_eq!(
        fingerprint_dict(&opt.state_dict()),
        before,
        "optimizer changed"
    );

    // A state dict for another optimizer's groups.
    let other = Net::new(&Device::Cpu);
    let mut two_groups = SGD::with_groups(
        vec![
            kiln::optim::ParamGroup::new(other.parameters().drain(..2).collect()),
            kiln::optim::ParamGroup::new(other.parameters().drain(2..).collect()),
        ],
        0.1,
    );
    let e = two_groups.load_state_dict(&good).unwrap_err();
    assert!(e.to_string().contains("parameter group"), "{e}");

    // The good dict loads back into a fresh optimizer and matches.
    let mut fresh = optimizer("adam", net.parameters());
    fresh.load_state_dict(&good).unwrap();
    assert_eq!(fingerprint_dict(&fresh.state_dict()), before);
}

#[test]
fn mismatched_scheduler_state_is_rejected_whole() {
    let p = Tensor::zeros([1]).requires_grad_(true);
    let opt = SGD::new(vec![p], 0.1);
    let mut s = StepLR::new(&opt, 2, 0.5);
    s.step();
    let good = s.state_dict();
    let mut bad = good.clone();
    bad.insert("base_lrs", Value::from(vec![0.1, 0.2]));
    bad.insert("gamma", "half");
    bad.remove("last_epoch");
    let e = s.load_state_dict(&bad).unwrap_err();
    assert_eq!(e.problems.len(), 3, "{e}");
    assert_eq!(s.last_epoch(), 1);
    let mut again = StepLR::new(&opt, 9, 0.9);
    again.load_state_dict(&good).unwrap();
    assert_eq!(
        fingerprint_dict(&again.state_dict()),
        fingerprint_dict(&good)
    );
}

/// A checkpoint of `n` floats all equal to `fill`.
fn big_checkpoint(n: usize, fill: f32) -> Dict {
    let mut ckpt = Dict::new();
    ckpt.insert("fill", f64::from(fill));
    ckpt.insert("w", Tensor::from_vec(vec![fill; n], [n]));
    ckpt
}

/// Run by `a_save_killed_mid_write_leaves_the_previous_file_intact`: saves
/// ever new checkpoints to `KILN_SAVE_LOOP` until it is killed.
#[test]
#[ignore = "helper: run in a child process and killed by a_save_killed_mid_write_leaves_the_previous_file_intact"]
fn child_save_loop() {
    let path = PathBuf::from(std::env::var_os("KILN_SAVE_LOOP").expect("KILN_SAVE_LOOP"));
    for i in 1.. {
        save_checkpoint(&big_checkpoint(4 << 20, i as f32), &path).unwrap();
    }
}

#[test]
fn a_save_killed_mid_write_leaves_the_previous_file_intact() {
    let dir = std::env::temp_dir().join(format!("kiln_resume_kill_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ckpt.safetensors");
    save_checkpoint(&big_checkpoint(4 << 20, 0.0), &path).unwrap();
    for delay_ms in [30, 120, 400] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_save_loop",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env("KILN_SAVE_LOOP", &path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever the kill interrupted, the file is one complete save.
        let ckpt = load_checkpoint(&path).unwrap();
        let fill = ckpt.get("fill").and_then(Value::as_float).unwrap() as f32;
        let w = ckpt
            .get("w")
            .and_then(Value::as_tensor)
            .unwrap()
            .to_vec::<f32>();
        assert_eq!(w.len(), 4 << 20);
        assert!(w.iter().all(|&x| x == fill), "a mixed file after a kill");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_save_keeps_the_previous_checkpoint() {
    let dir = std::env::temp_dir().join(format!("kiln_resume_atomic_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ckpt.safetensors");
    save_checkpoint(&big_checkpoint(8, 1.0), &path).unwrap();
    let before = std::fs::read(&path).unwrap();
    // The target is a directory: the rename fails after the data was
    // written to the temporary, which is removed again.
    let target_dir = dir.join("sub");
    std::fs::create_dir_all(target_dir.join("x")).unwrap();
    assert!(matches!(
        save_checkpoint(&big_checkpoint(8, 2.0), &target_dir),
        Err(IoError::Io { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ckpt.safetensors", "sub"]);
    // Non-finite floats and nested dicts survive a save.
    let mut nested = Dict::new();
    nested.insert("x", f64::NAN);
    nested.insert("y", f64::NEG_INFINITY);
    let mut ckpt = Dict::new();
    ckpt.insert("ok", nested);
    save_checkpoint(&ckpt, &path).unwrap();
    let back = load_checkpoint(&path).unwrap();
    let ok = back.dict("ok").unwrap();
    assert!(ok.get("x").unwrap().as_float().unwrap().is_nan());
    assert_eq!(ok.get("y").unwrap().as_float(), Some(f64::NEG_INFINITY));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn floats_and_ints_round_trip_bit_for_bit() {
    let mut g = kiln::rng::Generator::new(99);
    let mut floats: Vec<f64> = vec![
        0.1,
        1.0 / 3.0,
        -0.0,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        0.05 * 0.5f64.powi(7),
        f64::INFINITY,
    ];
    floats.extend(
        (0..2000)
            .map(|_| f64::from_bits(g.next_u64()))
            .filter(|x| !x.is_nan()),
    );
    let ints = vec![i64::MIN, -1, 0, 1, i64::MAX];
    let mut ckpt = Dict::new();
    ckpt.insert("floats", Value::from(floats.clone()));
    ckpt.insert(
        "ints",
        Value::List(ints.iter().map(|&i| Value::Int(i)).collect()),
    );
    let bytes = kiln::io::serialize_checkpoint(&ckpt).unwrap();
    let back = kiln::io::deserialize_checkpoint(&bytes).unwrap();
    let got: Vec<u64> = back
        .get("floats")
        .and_then(Value::as_list)
        .unwrap()
        .iter()
        .map(|v| match v {
            Value::Float(x) => x.to_bits(),
            other => panic!("{other:?} is not a float"),
        })
        .collect();
    assert_eq!(got, floats.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    let got: Vec<i64> = back
        .get("ints")
        .and_then(Value::as_list)
        .unwrap()
        .iter()
        .map(|v| v.as_int().unwrap())
        .collect();
    assert_eq!(got, ints);
}
