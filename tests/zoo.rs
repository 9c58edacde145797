//! The model zoo (`kiln::models`) against torchvision: state-dict keys,
//! order, shapes and dtypes equal torchvision's
//! (`../shared/fixtures/zoo/torchvision_keys.json`); a torchvision ResNet
//! with one BasicBlock per stage, declared with `network!`, loads strictly
//! and reproduces PyTorch's eval logits; its train-mode gradients match
//! finite differences. Also the run-time half of `network!`'s checks for
//! sizes declared `dyn`, and `branches { .. } -> cat`.

use kiln::io::{ModuleCheckpoint, load_safetensors};
use kiln::loss::{Reduction, cross_entropy};
use kiln::models::{BasicBlock, ResNet18, ResNet34, ResNet50, Vgg11Bn, Vgg16, Vgg16Bn};
use kiln::nn::TensorKind;
use kiln::prelude::*;
use std::path::PathBuf;

#[path = "common/assert_close.rs"]
mod assert_close;
use assert_close::assert_close;

network! {
    /// `torchvision.models.resnet.ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)`.
    pub struct ResNet10(input: [3, dyn H, dyn W]) {
        conv1: Conv2d(3 -> 64, kernel: 7, stride: 2, padding: 3, bias: false),
        bn1: BatchNorm2d(64),
        relu,
        max_pool2d(3, stride: 2, padding: 1),
        layer1: [BasicBlock<64, 64, 1>],
        layer2: [BasicBlock<64, 128, 2>],
        layer3: [BasicBlock<128, 256, 2>],
        layer4: [BasicBlock<256, 512, 2>],
        avgpool: AdaptiveAvgPool2d(1),
        flatten,
        fc: Linear(512 -> 10),
    }
}

fn zoo(file: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/zoo")
        .join(file);
    kiln::testing::fixture_or_skip(&path, "the zoo fixture").then_some(path)
}

/// `[key, shape, dtype]` of every state-dict entry, as the JSON lists them.
fn entries(state: &kiln::StateDict) -> Vec<(String, Vec<usize>, String)> {
    state
        .iter()
        .map(|(k, t)| {
            (
                k.to_owned(),
                t.shape().to_vec(),
                t.dtype().torch_name().to_owned(),
            )
        })
        .collect()
}

fn torchvision(name: &str) -> Option<Vec<(String, Vec<usize>, String)>> {
    let text = std::fs::read_to_string(zoo("torchvision_keys.json")?).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = json["models"][name].as_array().expect("model in the JSON");
    Some(
        list.iter()
            .map(|e| {
                let shape = e[1].as_array().unwrap();
                (
                    e[0].as_str().unwrap().to_owned(),
                    shape.iter().map(|d| d.as_u64().unwrap() as usize).collect(),
                    e[2].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    )
}

fn assert_same_keys(name: &str, net: &dyn Module) {
    let Some(want) = torchvision(name) else {
        return;
    };
    let got = entries(&net.state_dict());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{name}: entry {i}");
    }
    assert_eq!(got.len(), want.len(), "{name}: number of entries");
}

#[test]
fn resnets_have_torchvisions_state_dict() {
    assert_same_keys("resnet18", &ResNet18::<1000>::new(&Device::Cpu));
    assert_same_keys("resnet34", &ResNet34::<1000>::new(&Device::Cpu));
    assert_same_keys("resnet50", &ResNet50::<1000>::new(&Device::Cpu));
}

#[test]
fn vggs_have_torchvisions_state_dict() {
    assert_same_keys("vgg11_bn", &Vgg11Bn::<1000>::new(&Device::Cpu));
    assert_same_keys("vgg16", &Vgg16::<1000>::new(&Device::Cpu));
    assert_same_keys("vgg16_bn", &Vgg16Bn::<1000>::new(&Device::Cpu));
}

#[test]
fn resnets_run_on_any_image_size() {
    manual_seed(0);
    let mut net = ResNet18::<7>::new(&Device::Cpu);
    net.eval();
    for (h, w) in [(32, 32), (40, 24)] {
        let y = no_grad(|| net.forward(&Tensor::randn([1, 3, h, w])));
        assert_eq!(y.shape(), &[1, 7]);
    }
    assert_eq!(
        ResNet18::<7>::INPUT_SHAPE,
        [3, kiln::nn::static_shape::DYN, kiln::nn::static_shape::DYN]
    );
    assert_eq!(ResNet18::<7>::OUTPUT_SHAPE, [7]);
}

#[test]
fn resnet10_loads_torchvision_weights_strictly_and_reproduces_its_logits() {
    let (Some(weights), Some(io)) = (
        zoo("resnet10_f16.safetensors"),
        zoo("resnet10_io.safetensors"),
    ) else {
        return;
    };
    let mut net = ResNet10::new(&Device::Cpu);
    let report = net.load_safetensors(&weights, true).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    net.eval();
    let io = load_safetensors(io).unwrap();
    let logits = no_grad(|| net.forward(io.get("x").unwrap()));
    assert_close(
        "resnet10 logits",
        &logits,
        io.get("logits").unwrap(),
        1e-4,
        1e-4,
    );
}

/// torchvision's own `torch.save` file of a ResNet-18 loads strictly into
/// `kiln::models::ResNet18`, straight from the `.pth`, and gives
/// torchvision's eval-mode logits. The files (45 MB, not checked in) come
/// from `tests/data/gen/torchvision_pth.py`; the test runs when
/// `KILN_TORCHVISION_DIR` names their folder and says it skipped otherwise.
#[test]
fn torchvision_resnet18_pth_loads_into_the_zoo_model() {
    let Some(dir) = std::env::var_os("KILN_TORCHVISION_DIR").map(PathBuf::from) else {
        println!(
            "skipped: KILN_TORCHVISION_DIR is not set (tests/data/gen/torchvision_pth.py writes the files)"
        );
        return;
    };
    let mut net = ResNet18::<1000>::new(&Device::Cpu);
    let report = net
        .load_state_dict_from(dir.join("resnet18.pth"), true)
        .unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    net.eval();
    let io = load_safetensors(dir.join("resnet18_io.safetensors")).unwrap();
    let logits = no_grad(|| net.forward(io.get("x").unwrap()));
    assert_close(
        "resnet18 logits from torchvision's .pth",
        &logits,
        io.get("logits").unwrap(),
        1e-4,
        1e-4,
    );
}

/// Every parameter and buffer of `net` as float64 (so that finite
/// differences are accurate).
fn to_f64(net: &mut dyn Module) {
    net.apply(&mut |m| {
        m.visit_tensors_mut(&mut |_, t, kind| {
            if t.dtype() == DType::F32 {
                let t64 = t.to_dtype(DType::F64).detach();
                *t = match kind {
                    TensorKind::Parameter => t64.requires_grad_(true),
                    TensorKind::Buffer => t64,
                };
            }
        })
    });
}

#[test]
fn resnet10_train_step_gradients_match_finite_differences() {
    let Some(weights) = zoo("resnet10_f16.safetensors") else {
        return;
    };
    let mut net = ResNet10::new(&Device::Cpu);
    to_f64(&mut net);
    net.load_safetensors(&weights, true).unwrap();
    net.train();
    let base = net.state_dict();
    // Deterministic without the global generator (tests run in parallel);
    // 4 samples of 32×32 leave 4 values per channel for batch norm at the
    // 1×1 end of layer4.
    let x: Vec<f64> = (0..4 * 3 * 32 * 32)
        .map(|i| (i * 7919 % 1000) as f64 / 500.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(x, [4, 3, 32, 32]);
    let target = Tensor::from_vec(vec![3i64, 7, 0, 9], [4]);
    let loss_of = |net: &ResNet10| cross_entropy(&net.forward(&x), &target, Reduction::Mean, 0.0);

    let loss = loss_of(&net);
    loss.backward();
    let grads: Vec<(String, Tensor)> = net
        .named_parameters()
        .into_iter()
        .map(|(k, p)| (k, p.grad().expect("every parameter gets a gradient")))
        .collect();
    assert!(
        grads
            .iter()
            .all(|(_, g)| g.to_vec::<f64>().iter().all(|v| v.is_finite())),
        "non-finite gradient"
    );

    // Central differences on entries across the network: the stem, both
    // paths of a projecting block, batch norm's affine weights, the head.
    let eps = 1e-5;
    let probes = [
        ("conv1.weight", 5),
        ("bn1.weight", 3),
        ("layer1.0.conv2.weight", 100),
        ("layer2.0.conv1.weight", 7),
        ("layer2.0.downsample.0.weight", 11),
        ("layer2.0.downsample.1.bias", 2),
        ("layer3.0.bn2.weight", 17),
        ("layer4.0.conv2.weight", 1234),
        ("fc.weight", 42),
        ("fc.bias", 3),
    ];
    for (key, index) in probes {
        let grad = grads
            .iter()
            .find(|(k, _)| k == key)
            .unwrap()
            .1
            .to_vec::<f64>()[index];
        // `state_dict()` shares storage with the parameters, which loading
        // overwrites in place: keep a copy of the original values.
        let original = base.get(key).unwrap();
        let (values, shape) = (original.to_vec::<f64>(), original.shape().to_vec());
        let mut at = |delta: f64| {
            let mut v = values.clone();
            v[index] += delta;
            let mut state = base.clone();
            state.insert(key, Tensor::from_vec(v, shape.as_slice()));
            net.load_state_dict(&state, true).unwrap();
            no_grad(|| loss_of(&net).item())
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        at(0.0);
        assert!(
            (numeric - grad).abs() <= 1e-6 + 1e-4 * numeric.abs(),
            "{key}[{index}]: backward gives {grad}, finite differences {numeric}"
        );
    }
}

network! {
    /// A residual block without padding: its output is 2 smaller than its
    /// input, which only the run-time check can see for `dyn` sizes.
    struct Shrinking(input: [4, dyn H, dyn W]) {
        residual {
            conv: Conv2d(4 -> 4, kernel: 3),
        },
    }
}

#[test]
#[should_panic(
    expected = "Shrinking::forward: residual block: the identity shortcut ends in [1, 4, 8, 8] but the residual path ends in [1, 4, 6, 6]; the sum needs every path to end in the same shape"
)]
fn dyn_sizes_are_checked_at_the_first_forward() {
    let net = Shrinking::new(&Device::Cpu);
    net.forward(&Tensor::randn([1, 4, 8, 8]));
}

network! {
    /// A VGG-style stack for images of any size: each pooling halves the
    /// map, so an image smaller than 4×4 leaves the second pooling nothing.
    struct AnySize(input: [1, dyn H, dyn W]) {
        features: [
            Conv2d(1 -> 2, kernel: 3, padding: 1),
            relu,
            max_pool2d(2),
            Conv2d(2 -> 2, kernel: 3, padding: 1),
            max_pool2d(2),
        ],
        flatten,
        fc: Linear(8 -> 3),
    }
}

#[test]
fn a_dyn_sized_network_runs_on_the_sizes_that_fit() {
    let net = AnySize::new(&Device::Cpu);
    // 8×8 → 4×4 → 2×2: 2 channels × 2 × 2 = 8 features, as `fc` expects.
    assert_eq!(net.forward(&Tensor::randn([3, 1, 8, 8])).shape(), [3, 3]);
}

#[test]
#[should_panic(
    expected = "AnySize::forward: features.4 (max_pool2d): its 2×2 window does not fit the (H-2)/2+1×(W-2)/2+1 input that features.3 (Conv2d) produces, so the output would be empty (input [1,H,W] → features.0 (Conv2d) [2,H,W] → features.2 (max_pool2d) [2,(H-2)/2+1,(W-2)/2+1] → features.3 (Conv2d) [2,(H-2)/2+1,(W-2)/2+1]); in this forward the input is 1×1 (batch of shape [1, 2, 1, 1]), which would give a 0×0 output"
)]
fn a_window_larger_than_a_dyn_sized_map_names_the_layer() {
    let net = AnySize::new(&Device::Cpu);
    net.forward(&Tensor::randn([1, 1, 3, 3]));
}

#[test]
#[should_panic(
    expected = "AnySize::forward: fc: expects 8 input features but flatten produces 2*(((H-2)/2+1-2)/2+1)*(((W-2)/2+1-2)/2+1) (input [1,H,W] → features.0 (Conv2d) [2,H,W] → features.2 (max_pool2d) [2,(H-2)/2+1,(W-2)/2+1] → features.3 (Conv2d) [2,(H-2)/2+1,(W-2)/2+1] → features.4 (max_pool2d) [2,((H-2)/2+1-2)/2+1,((W-2)/2+1-2)/2+1] → flatten [2*(((H-2)/2+1-2)/2+1)*(((W-2)/2+1-2)/2+1)]); in this forward that is 18 (batch of shape [1, 18])"
)]
fn a_linear_after_a_dyn_sized_flatten_names_the_layer() {
    let net = AnySize::new(&Device::Cpu);
    // 12×12 → 3×3 after both poolings: 18 features, not 8.
    net.forward(&Tensor::randn([1, 1, 12, 12]));
}

network! {
    /// Inception-style: two branches concatenated along channels.
    struct TwoBranches(input: [3, 8, 8]) {
        branches {
            a: { conv_a: Conv2d(3 -> 4, kernel: 1) },
            b: { conv_b: Conv2d(3 -> 2, kernel: 3, padding: 1), relu },
        } -> cat,
        relu,
    }
}

#[test]
fn branches_concatenate_along_channels() {
    manual_seed(5);
    assert_eq!(TwoBranches::OUTPUT_SHAPE, [6, 8, 8]);
    let net = TwoBranches::new(&Device::Cpu);
    let keys: Vec<String> = net.state_dict().keys().map(String::from).collect();
    assert_eq!(
        keys,
        [
            "conv_a.weight",
            "conv_a.bias",
            "conv_b.weight",
            "conv_b.bias"
        ]
    );
    let x = Tensor::randn([2, 3, 8, 8]);
    let y = net.forward(&x);
    let a = net.conv_a.forward(&x);
    let b = net.conv_b.forward(&x).relu();
    let want = Tensor::cat(&[&a, &b], 1).relu();
    assert_eq!(y.to_vec::<f32>(), want.to_vec::<f32>());
}
