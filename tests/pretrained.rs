//! Models declared with `network!` load state dicts written by PyTorch, by
//! PyTorch's key names, and reproduce PyTorch's logits (and, for the golden
//! model cases, the loss and every parameter gradient).

use kiln::StateDict;
use kiln::io::{ModuleCheckpoint, load_safetensors};
use kiln::loss::{Reduction, cross_entropy};
use kiln::models::LeNet5;
use kiln::network;
use kiln::prelude::*;
use std::path::PathBuf;

#[path = "common/assert_close.rs"]
mod assert_close;
use assert_close::assert_close;
#[path = "common/nets.rs"]
mod nets;
use nets::{SmallBn, VggTiny};

network! {
    /// The golden set's VGG-style net (eval case).
    pub struct VggSmall(input: [3, 32, 32]) {
        features: [
            Conv2d(3 -> 8, kernel: 3, padding: 1), BatchNorm2d(8), ReLU, MaxPool2d(2),
            Conv2d(8 -> 16, kernel: 3, padding: 1), BatchNorm2d(16), ReLU, MaxPool2d(2),
            Conv2d(16 -> 16, kernel: 3, padding: 1), BatchNorm2d(16), ReLU,
            Conv2d(16 -> 16, kernel: 3, padding: 1), BatchNorm2d(16), ReLU, MaxPool2d(2),
        ],
        avgpool: AdaptiveAvgPool2d(1),
        flatten,
        classifier: [Linear(16 -> 32), ReLU, Dropout(0.5), Linear(32 -> 10)],
    }
}

fn shared(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join(dir)
}

fn golden_dir() -> PathBuf {
    std::env::var_os("KILN_GOLDEN_DIR").map_or_else(|| shared("golden"), PathBuf::from)
}

#[test]
fn lenet_fixtures_in_three_dtypes_reproduce_pytorch_logits() {
    let io = load_safetensors(shared("fixtures").join("lenet5_torch_io.safetensors")).unwrap();
    let (x, want) = (io.get("x").unwrap(), io.get("logits").unwrap());
    // f16/bf16 weights carry rounding error, so looser bounds there.
    for (file, tol) in [("f32", 1e-4), ("f16", 2e-2), ("bf16", 1e-1)] {
        let mut net = LeNet5::new(&Device::Cpu);
        let path = shared("fixtures").join(format!("lenet5_torch_{file}.safetensors"));
        let report = net.load_safetensors(&path, true).unwrap();
        assert!(report.missing.is_empty() && report.unexpected.is_empty());
        net.eval();
        let logits = no_grad(|| net.forward(x));
        assert_close(&format!("lenet {file}"), &logits, want, tol, tol);
    }
}

#[test]
fn batch_norm_fixture_reproduces_eval_logits_and_round_trips() {
    let dir = shared("fixtures");
    let io = load_safetensors(dir.join("small_bn_torch_io.safetensors")).unwrap();
    let mut net = SmallBn::new(&Device::Cpu);
    net.load_safetensors(dir.join("small_bn_torch.safetensors"), true)
        .unwrap();
    net.eval();
    let logits = no_grad(|| net.forward(io.get("x").unwrap()));
    assert_close("small_bn", &logits, io.get("logits").unwrap(), 1e-4, 1e-4);

    // Save, reload into a fresh model: bit-identical outputs after eval().
    let path = std::env::temp_dir().join(format!(
        "kiln-pretrained-{}.safetensors",
        std::process::id()
    ));
    net.save_safetensors(&path).unwrap();
    let mut again = SmallBn::new(&Device::Cpu);
    again.load_safetensors(&path, true).unwrap();
    again.eval();
    let relogits = no_grad(|| again.forward(io.get("x").unwrap()));
    assert_eq!(logits.to_vec::<f32>(), relogits.to_vec::<f32>());
    let nbt = again
        .state_dict()
        .get("features.1.num_batches_tracked")
        .unwrap()
        .shallow_clone();
    assert_eq!((nbt.dtype(), nbt.item()), (DType::I64, 3.0));
    std::fs::remove_file(path).unwrap();
}

/// Runs every `model` case of the golden set whose state-dict keys are
/// exactly those of `M`, comparing logits, loss, parameter gradients and
/// (train mode) the updated running statistics. Returns how many ran.
fn run_golden_models<M: Module + Forward>(new: impl Fn() -> M) -> usize {
    let dir = golden_dir();
    if !kiln::testing::fixture_or_skip(&dir.join("models.json"), "the models golden set") {
        return 0;
    }
    let manifest = std::fs::read_to_string(dir.join("models.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let tensors = load_safetensors(dir.join("models.safetensors")).unwrap();
    let keys: Vec<String> = new().state_dict().keys().map(String::from).collect();
    let mut ran = 0;
    for case in manifest["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let get = |k: &str| {
            tensors
                .get(&format!("{name}/{k}"))
                .map(Tensor::shallow_clone)
        };
        let mut state = StateDict::new();
        for k in &keys {
            match get(&format!("state/{k}")) {
                Some(t) => state.insert(k.clone(), t),
                None => break,
            }
        }
        let case_keys = case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k.as_str().unwrap().starts_with("state/"))
            .count();
        if state.len() != keys.len() || case_keys != keys.len() {
            continue;
        }
        let (rtol, atol) = (
            case["rtol"].as_f64().unwrap(),
            case["atol"].as_f64().unwrap(),
        );
        let mut net = new();
        net.load_state_dict(&state, true).unwrap();
        if case["attrs"]["train"].as_bool().unwrap() {
            net.train();
        } else {
            net.eval();
        }
        let logits = net.forward(&get("x").unwrap());
        let loss = cross_entropy(&logits, &get("target").unwrap(), Reduction::Mean, 0.0);
        loss.backward();
        assert_close(
            &format!("{name} logits"),
            &logits,
            &get("out/logits").unwrap(),
            rtol,
            atol,
        );
        assert_close(
            &format!("{name} loss"),
            &loss,
            &get("out/loss").unwrap(),
            rtol,
            atol,
        );
        for (k, p) in net.named_parameters() {
            let want = get(&format!("out/param_grad/{k}")).unwrap();
            assert_close(
                &format!("{name} grad {k}"),
                &p.grad().unwrap(),
                &want,
                rtol,
                atol,
            );
        }
        let after = net.state_dict();
        for k in &keys {
            if let Some(want) = get(&format!("out/state_after/{k}")) {
                assert_close(
                    &format!("{name} {k}"),
                    after.get(k).unwrap(),
                    &want,
                    rtol,
                    atol,
                );
            }
        }
        ran += 1;
    }
    ran
}

#[test]
fn network_lenet_reproduces_golden_logits_and_gradients() {
    let ran = run_golden_models(|| LeNet5::new(&Device::Cpu));
    assert!(ran >= 1 || !golden_dir().join("models.json").exists());
}

#[test]
fn network_vgg_reproduces_golden_logits_gradients_and_running_stats() {
    let small = run_golden_models(|| VggSmall::new(&Device::Cpu));
    let tiny = run_golden_models(|| VggTiny::new(&Device::Cpu));
    assert!(small + tiny >= 2 || !golden_dir().join("models.json").exists());
}
