//! Modules: `#[derive(Module)]`, names and order of parameters and
//! buffers, train/eval, freezing, `apply`, printing, state-dict loading.

use kiln::nn::{
    AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Conv2dOptions, Dropout, Flatten, Forward,
    Linear, MaxPool2d, Module, ReLU, Sequential, TensorKind, init,
};
use kiln::{DType, Device, StateDict, Tensor};

const CPU: Device = Device::Cpu;

fn conv(i: usize, o: usize, k: usize, p: usize) -> Conv2d {
    Conv2d::new(i, o, Conv2dOptions::new([k, k]).padding([p, p]), &CPU)
}

#[derive(kiln::Module)]
struct LeNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl LeNet {
    fn new() -> LeNet {
        LeNet {
            conv1: conv(1, 6, 5, 2),
            conv2: conv(6, 16, 5, 0),
            fc1: Linear::new(400, 120, &CPU),
            fc2: Linear::new(120, 84, &CPU),
            fc3: Linear::new(84, 10, &CPU),
        }
    }
}

impl Forward for LeNet {
    fn forward(&self, x: &Tensor) -> Tensor {
        let pool = MaxPool2d::new([2, 2], [2, 2], [0, 0]);
        let relu = ReLU::new();
        let x = pool.forward(&relu.forward(&self.conv1.forward(x)));
        let x = pool.forward(&relu.forward(&self.conv2.forward(&x)));
        let x = x.flatten(1, -1);
        let x = relu.forward(&self.fc1.forward(&x));
        let x = relu.forward(&self.fc2.forward(&x));
        self.fc3.forward(&x)
    }
}

#[derive(kiln::Module)]
struct VggSmall {
    features: Sequential,
    avgpool: AdaptiveAvgPool2d,
    classifier: Sequential,
}

impl VggSmall {
    fn new() -> VggSmall {
        let features = Sequential::new()
            .push(conv(3, 8, 3, 1))
            .push(BatchNorm2d::new(8, &CPU))
            .push(ReLU::new())
            .push(MaxPool2d::new([2, 2], [2, 2], [0, 0]))
            .push(conv(8, 16, 3, 1))
            .push(BatchNorm2d::new(16, &CPU))
            .push(ReLU::new())
            .push(MaxPool2d::new([2, 2], [2, 2], [0, 0]));
        let classifier = Sequential::new()
            .push(Linear::new(16, 32, &CPU))
            .push(ReLU::new())
            .push(Dropout::new(0.5))
            .push(Linear::new(32, 10, &CPU));
        VggSmall {
            features,
            avgpool: AdaptiveAvgPool2d::new([1, 1]),
            classifier,
        }
    }
}

impl Forward for VggSmall {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.avgpool.forward(&self.features.forward(x));
        self.classifier.forward(&x.flatten(1, -1))
    }
}

fn keys(m: &dyn Module) -> Vec<String> {
    m.state_dict().keys().map(String::from).collect()
}

#[test]
fn lenet_state_dict_keys_match_pytorch() {
    let net = LeNet::new();
    assert_eq!(
        keys(&net),
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias"
        ]
    );
    assert_eq!(net.parameters().len(), 10);
    assert_eq!(net.num_parameters(), 61706);
    assert_eq!(
        net.forward(&Tensor::randn([2, 1, 28, 28])).shape(),
        &[2, 10]
    );
}

#[test]
fn vgg_state_dict_keys_match_pytorch() {
    let net = VggSmall::new();
    let bn = |i: usize| {
        [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked",
        ]
        .map(|s| format!("features.{i}.{s}"))
    };
    let mut want = vec!["features.0.weight".to_string(), "features.0.bias".into()];
    want.extend(bn(1));
    want.extend(["features.4.weight".into(), "features.4.bias".into()]);
    want.extend(bn(5));
    want.extend(
        [
            "classifier.0.weight",
            "classifier.0.bias",
            "classifier.3.weight",
            "classifier.3.bias",
        ]
        .map(String::from),
    );
    assert_eq!(keys(&net), want);
    let params: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(params.len(), 12);
    let bufs = net.named_buffers();
    assert_eq!(bufs.len(), 6);
    let nbt = &bufs[2].1;
    assert_eq!(bufs[2].0, "features.1.num_batches_tracked");
    assert_eq!((nbt.dtype(), nbt.shape()), (DType::I64, &[][..]));
}

#[test]
fn default_initialisation_follows_pytorch() {
    kiln::manual_seed(0);
    let fc = Linear::new(100, 50, &CPU);
    let bound = 1.0 / 10.0;
    for t in [&fc.weight, fc.bias.as_ref().unwrap()] {
        let v = t.to_vec::<f32>();
        assert!(v.iter().all(|x| x.abs() <= bound as f32));
        assert!(v.iter().any(|x| x.abs() > 0.8 * bound as f32));
        assert!(t.requires_grad() && t.is_leaf());
    }
    let c = conv(4, 8, 3, 1);
    let b = 1.0 / (36f32).sqrt();
    assert!(c.weight.to_vec::<f32>().iter().all(|x| x.abs() <= b));
    let bn = BatchNorm2d::new(3, &CPU);
    assert_eq!(bn.weight.as_ref().unwrap().to_vec::<f32>(), [1.0; 3]);
    assert_eq!(bn.bias.as_ref().unwrap().to_vec::<f32>(), [0.0; 3]);
    assert_eq!(bn.running_mean.as_ref().unwrap().to_vec::<f32>(), [0.0; 3]);
    assert_eq!(bn.running_var.as_ref().unwrap().to_vec::<f32>(), [1.0; 3]);
    assert_eq!(
        bn.num_batches_tracked.as_ref().unwrap().to_vec::<i64>(),
        [0]
    );
    assert!(!bn.running_mean.as_ref().unwrap().requires_grad());
}

#[test]
fn print_matches_pytorch() {
    let net = LeNet::new();
    assert_eq!(
        net.to_string(),
        "LeNet(
  (conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
  (fc1): Linear(in_features=400, out_features=120, bias=True)
  (fc2): Linear(in_features=120, out_features=84, bias=True)
  (fc3): Linear(in_features=84, out_features=10, bias=True)
)"
    );
    assert_eq!(format!("{net:?}"), net.to_string());
    let vgg = VggSmall::new();
    assert_eq!(
        vgg.to_string(),
        "VggSmall(
  (features): Sequential(
    (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (1): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    (2): ReLU()
    (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    (4): Conv2d(8, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (5): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    (6): ReLU()
    (7): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  )
  (avgpool): AdaptiveAvgPool2d(output_size=(1, 1))
  (classifier): Sequential(
    (0): Linear(in_features=16, out_features=32, bias=True)
    (1): ReLU()
    (2): Dropout(p=0.5, inplace=False)
    (3): Linear(in_features=32, out_features=10, bias=True)
  )
)"
    );
    assert_eq!(
        Flatten::new().to_string(),
        "Flatten(start_dim=1, end_dim=-1)"
    );
    assert_eq!(
        BatchNorm1d::new(4, &CPU).to_string(),
        "BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    );
}

#[derive(kiln::Module)]
struct Block {
    conv: Conv2d,
    bn: BatchNorm2d,
}

#[derive(kiln::Module)]
struct Deep {
    stem: Conv2d,
    blocks: Vec<Block>,
    head: Option<Linear>,
    aux: Option<Linear>,
    #[module(rename = "classifier")]
    fc: Linear,
    scale: Tensor,
    #[module(buffer)]
    counter: Tensor,
    #[module(skip)]
    name: String,
    #[module(training)]
    training: bool,
}

fn deep() -> Deep {
    Deep {
        stem: conv(3, 4, 3, 1),
        blocks: (0..3)
            .map(|_| Block {
                conv: conv(4, 4, 3, 1),
                bn: BatchNorm2d::new(4, &CPU),
            })
            .collect(),
        head: Some(Linear::new(4, 2, &CPU)),
        aux: None,
        fc: Linear::new(4, 3, &CPU),
        scale: Tensor::ones([1]).requires_grad_(true),
        counter: Tensor::zeros([1]),
        name: "deep".into(),
        training: true,
    }
}

#[test]
fn derive_nested_vec_option_skip_rename() {
    let mut net = deep();
    let k = keys(&net);
    // Own tensors first (PyTorch's _parameters/_buffers before _modules).
    assert_eq!(&k[..2], ["scale", "counter"]);
    assert!(k.contains(&"blocks.2.bn.running_mean".to_string()));
    assert!(k.contains(&"blocks.0.conv.weight".to_string()));
    assert!(k.contains(&"head.weight".to_string()));
    assert!(
        !k.iter()
            .any(|k| k.starts_with("aux") || k.starts_with("fc."))
    );
    assert!(k.contains(&"classifier.bias".to_string()));
    let params: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(params.contains(&"scale".to_string()));
    assert!(!params.contains(&"counter".to_string()));
    assert_eq!(net.name, "deep");
    net.eval();
    assert!(!net.training);
    assert!(!net.blocks[1].bn.is_training());
    net.train();
    assert!(net.training && net.blocks[2].bn.is_training());
    let printed = net.to_string();
    assert!(
        printed.contains("  (blocks): ModuleList(\n    (0): Block(\n      (conv): Conv2d(4, 4,")
    );
    assert!(printed.contains("  (classifier): Linear(in_features=4, out_features=3, bias=True)"));
}

#[derive(kiln::Module)]
struct Pair(Linear, #[module(rename = "second")] Linear);

#[test]
fn derive_tuple_struct_uses_numeric_names() {
    let p = Pair(Linear::new(2, 2, &CPU), Linear::new(2, 2, &CPU));
    assert_eq!(
        keys(&p),
        ["0.weight", "0.bias", "second.weight", "second.bias"]
    );
}

/// A multi-output module: returns several activations from one forward.
#[derive(kiln::Module)]
struct Slices {
    slice1: Sequential,
    slice2: Sequential,
}

struct SliceOutputs {
    relu1: Tensor,
    relu2: Tensor,
}

impl Slices {
    fn forward(&self, x: &Tensor) -> SliceOutputs {
        let relu1 = self.slice1.forward(x);
        let relu2 = self.slice2.forward(&relu1);
        SliceOutputs { relu1, relu2 }
    }
}

#[test]
fn multi_output_module() {
    let s = Slices {
        slice1: Sequential::new().push(conv(3, 4, 3, 1)).push(ReLU::new()),
        slice2: Sequential::new()
            .push(MaxPool2d::new([2, 2], [2, 2], [0, 0]))
            .push(conv(4, 8, 3, 1))
            .push(ReLU::new()),
    };
    let out = s.forward(&Tensor::randn([1, 3, 8, 8]));
    assert_eq!(out.relu1.shape(), &[1, 4, 8, 8]);
    assert_eq!(out.relu2.shape(), &[1, 8, 4, 4]);
    assert_eq!(keys(&s)[2], "slice2.1.weight");
}

#[test]
fn eval_makes_dropout_identity_and_batch_norm_use_running_stats() {
    kiln::manual_seed(3);
    let mut net = VggSmall::new();
    let x = Tensor::randn([4, 3, 8, 8]);
    // Training forwards update the running statistics and count batches.
    net.train();
    let _ = net.forward(&x);
    let _ = net.forward(&x);
    let nbt = net
        .state_dict()
        .get("features.1.num_batches_tracked")
        .unwrap()
        .to_vec::<i64>();
    assert_eq!(nbt, [2]);
    let rm = net
        .state_dict()
        .get("features.1.running_mean")
        .unwrap()
        .to_vec::<f32>();
    assert!(rm.iter().any(|v| *v != 0.0));
    net.eval();
    let a = net.forward(&x).to_vec::<f32>();
    let b = net.forward(&x).to_vec::<f32>();
    assert_eq!(a, b);
    // Eval does not touch running statistics.
    let rm2 = net
        .state_dict()
        .get("features.1.running_mean")
        .unwrap()
        .to_vec::<f32>();
    assert_eq!(rm, rm2);
    let d = Dropout::new(0.5);
    let mut d2 = Dropout::new(0.5);
    d2.eval();
    let y = Tensor::ones([100]);
    assert_eq!(d2.forward(&y).to_vec::<f32>(), vec![1.0; 100]);
    assert!(d.forward(&y).to_vec::<f32>().contains(&0.0));
}

#[test]
fn frozen_parameters_get_no_gradient() {
    let net = LeNet::new();
    net.conv1.requires_grad_(false);
    net.conv2.requires_grad_(false);
    let loss = net.forward(&Tensor::randn([2, 1, 28, 28])).sum();
    loss.backward();
    assert!(net.conv1.weight.grad().is_none() && net.conv2.bias.as_ref().unwrap().grad().is_none());
    assert!(net.fc1.weight.grad().is_some());
    net.zero_grad();
    assert!(net.fc1.weight.grad().is_none());
}

#[test]
fn apply_reaches_every_submodule_children_first() {
    let mut net = VggSmall::new();
    let mut seen = Vec::new();
    net.apply(&mut |m| {
        seen.push(m.type_name().to_string());
        if let Some(l) = m.as_any_mut().downcast_mut::<Linear>() {
            init::constant_(&l.weight, 0.5);
            init::zeros_(l.bias.as_ref().unwrap());
        }
    });
    assert_eq!(seen.first().map(String::as_str), Some("Conv2d"));
    assert_eq!(seen.last().map(String::as_str), Some("VggSmall"));
    assert_eq!(seen.iter().filter(|s| *s == "Sequential").count(), 2);
    assert!(
        net.classifier.get(0).unwrap().parameters()[0]
            .to_vec::<f32>()
            .iter()
            .all(|&v| v == 0.5)
    );
    assert!(
        net.classifier[3].parameters()[1]
            .to_vec::<f32>()
            .iter()
            .all(|&v| v == 0.0)
    );
}

#[test]
fn to_device_keeps_parameters_as_leaves() {
    let mut net = LeNet::new();
    net.to(&Device::Cpu);
    assert!(
        net.parameters()
            .iter()
            .all(|p| p.is_leaf() && p.requires_grad())
    );
}

#[test]
fn load_state_dict_roundtrip_keeps_identity_and_converts_dtype() {
    let src = LeNet::new();
    let mut dst = LeNet::new();
    let handle = dst.fc1.weight.shallow_clone();
    let mut sd = StateDict::new();
    for (k, t) in src.state_dict().iter() {
        // A half-precision checkpoint loads into the float32 model.
        sd.insert(k, t.to_dtype(DType::F16));
    }
    let report = dst.load_state_dict(&sd, true).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    assert_eq!(dst.fc1.weight.dtype(), DType::F32);
    let (a, b) = (src.fc1.weight.to_vec::<f32>(), handle.to_vec::<f32>());
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-3));
    assert!(handle.requires_grad() && handle.is_leaf());
}

#[test]
fn strict_load_reports_everything_and_changes_nothing() {
    let mut net = LeNet::new();
    let before = net.state_dict();
    let before: Vec<Vec<f32>> = before.iter().map(|(_, t)| t.to_vec::<f32>()).collect();
    let mut sd = LeNet::new().state_dict();
    sd.remove("fc3.bias");
    sd.remove("conv1.weight");
    sd.insert("fc1.weight", Tensor::zeros([120, 256]));
    sd.insert("fc4.weight", Tensor::zeros([1]));
    sd.insert("extra", Tensor::zeros([1]));
    let err = net.load_state_dict(&sd, true).unwrap_err();
    assert_eq!(err.missing, ["conv1.weight", "fc3.bias"]);
    assert_eq!(err.unexpected, ["fc4.weight", "extra"]);
    assert_eq!(
        err.mismatched,
        [("fc1.weight".to_string(), vec![120, 400], vec![120, 256])]
    );
    let msg = err.to_string();
    assert!(msg.starts_with("Error(s) in loading state_dict for LeNet:"));
    for k in [
        "conv1.weight",
        "fc3.bias",
        "fc4.weight",
        "extra",
        "size mismatch for fc1.weight",
    ] {
        assert!(msg.contains(k), "{msg}");
    }
    let after: Vec<Vec<f32>> = net
        .state_dict()
        .iter()
        .map(|(_, t)| t.to_vec::<f32>())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn non_strict_load_returns_the_lists() {
    let mut net = LeNet::new();
    let src = LeNet::new();
    let mut sd = src.state_dict();
    sd.remove("fc3.bias");
    sd.insert("extra", Tensor::zeros([1]));
    let report = net.load_state_dict(&sd, false).unwrap();
    assert_eq!(report.missing, ["fc3.bias"]);
    assert_eq!(report.unexpected, ["extra"]);
    assert_eq!(
        net.fc1.weight.to_vec::<f32>(),
        src.fc1.weight.to_vec::<f32>()
    );
    // A shape mismatch is an error even when not strict (as in PyTorch).
    sd.insert("fc2.weight", Tensor::zeros([2, 2]));
    assert_eq!(
        net.load_state_dict(&sd, false)
            .unwrap_err()
            .mismatched
            .len(),
        1
    );
}

#[test]
fn sequential_add_module_and_indexing() {
    let mut s = Sequential::new().push(Linear::new(2, 3, &CPU));
    s.add_module("act", ReLU::new())
        .add_module("out", Linear::new(3, 1, &CPU));
    assert_eq!(s.len(), 3);
    assert_eq!(keys(&s), ["0.weight", "0.bias", "out.weight", "out.bias"]);
    assert_eq!(s[1].type_name(), "ReLU");
    let mut kinds = Vec::new();
    s.visit("", &mut |n, _, k| kinds.push((n.to_string(), k)));
    assert_eq!(kinds[0], ("0.weight".to_string(), TensorKind::Parameter));
    assert_eq!(s.forward(&Tensor::ones([5, 2])).shape(), &[5, 1]);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn to_cuda_and_train_matches_cpu_when_a_gpu_is_present() {
    let Some(device) = kiln::testing::cuda_or_skip() else {
        return;
    };
    use kiln::optim::{Adam, Optimizer};
    let cpu = LeNet::new();
    let mut gpu = LeNet::new();
    gpu.load_state_dict(&cpu.state_dict(), true).unwrap();
    let x = Tensor::randn([2, 1, 28, 28]);
    let mut oc = Adam::new(cpu.parameters(), 1e-2);
    // Built before the move, as PyTorch allows: `to` moves in place.
    let mut og = Adam::new(gpu.parameters(), 1e-2);
    gpu.to(&device);
    assert!(
        gpu.parameters()
            .iter()
            .all(|p| p.device() == device && p.is_leaf() && p.requires_grad())
    );
    cpu.forward(&x).sum().backward();
    gpu.forward(&x.to(&device)).sum().backward();
    oc.step();
    og.step();
    let (a, b) = (
        cpu.fc1.weight.to_vec::<f32>(),
        gpu.fc1.weight.to_vec::<f32>(),
    );
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4));
}

/// `Module::to_dtype` converts in place, like `module.double()`: an
/// optimizer built before the conversion holds the same tensors and keeps
/// training them (PyTorch's `param.data = ...`), integer buffers keep
/// their dtype, and existing gradients are converted too.
#[test]
fn optimizer_built_before_a_dtype_move_trains_the_moved_parameters() {
    use kiln::optim::{Optimizer, SGD};
    kiln::manual_seed(3);
    let mut net = Sequential::new()
        .push(Linear::new(3, 4, &CPU))
        .push(BatchNorm1d::new(4, &CPU))
        .push(ReLU::new())
        .push(Linear::new(4, 1, &CPU));
    let mut opt = SGD::new(net.parameters(), 0.1);
    let held = net.parameters();
    let x = Tensor::randn([8, 3]);
    net.forward(&x).sum().backward();
    net.to_dtype(DType::F64);
    for (name, t) in net.state_dict().iter() {
        let want = if name.ends_with("num_batches_tracked") {
            DType::I64
        } else {
            DType::F64
        };
        assert_eq!(t.dtype(), want, "{name}");
    }
    for p in &held {
        assert_eq!(p.dtype(), DType::F64, "the optimizer's handles moved too");
        assert!(p.is_leaf() && p.requires_grad());
        assert_eq!(p.grad().expect("gradient kept").dtype(), DType::F64);
    }
    let before: Vec<Vec<f64>> = net.parameters().iter().map(|p| p.to_vec()).collect();
    let grads: Vec<Vec<f64>> = held.iter().map(|p| p.grad().unwrap().to_vec()).collect();
    opt.step();
    for ((p, b), g) in net.parameters().iter().zip(&before).zip(&grads) {
        let after = p.to_vec::<f64>();
        for ((a, b), g) in after.iter().zip(b).zip(g) {
            assert!(
                (a - (b - 0.1 * g)).abs() < 1e-12,
                "SGD step on the moved parameter"
            );
        }
    }
    assert_ne!(
        before,
        net.parameters()
            .iter()
            .map(|p| p.to_vec())
            .collect::<Vec<Vec<f64>>>()
    );
    // The moved model trains in f64.
    opt.zero_grad();
    net.forward(&x.to_dtype(DType::F64)).sum().backward();
    assert!(held.iter().all(|p| p.grad().is_some()));
}

/// A view made before the move sees the moved data: the whole storage
/// moves, keeping each handle's layout.
#[test]
fn dtype_move_keeps_views_of_the_storage_valid() {
    let mut fc = Linear::new(3, 2, &CPU);
    let weight_t = fc.weight.t();
    let want = weight_t.to_vec::<f64>();
    fc.to_dtype(DType::F64);
    assert_eq!(weight_t.dtype(), DType::F64);
    assert_eq!(weight_t.to_vec::<f64>(), want);
    assert_eq!(fc.weight.to_vec::<f64>(), fc.weight.t().t().to_vec::<f64>());
}

// ----- tree access, Sequential slicing, loss modules (tests/data/modules.json,
// written by tests/data/gen_modules.py with PyTorch) ---------------------------

fn modules_golden() -> serde_json::Value {
    serde_json::from_str(include_str!("data/modules.json")).expect("tests/data/modules.json parses")
}

fn pairs(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[derive(kiln::Module)]
#[module(name = "Block")]
struct TreeBlock {
    conv: Conv2d,
    bn: BatchNorm2d,
}

#[derive(kiln::Module)]
#[module(name = "Net")]
struct TreeNet {
    features: Sequential,
    blocks: Vec<TreeBlock>,
    fc: Linear,
}

fn tree_features() -> Sequential {
    Sequential::new()
        .push(conv(3, 8, 3, 1))
        .push(ReLU::new().inplace(true))
        .push(MaxPool2d::new([2, 2], [2, 2], [0, 0]))
        .push(conv(8, 8, 3, 1))
        .push(ReLU::new().inplace(true))
}

fn tree_net() -> TreeNet {
    let block = || TreeBlock {
        conv: conv(3, 4, 3, 0),
        bn: BatchNorm2d::new(4, &CPU),
    };
    TreeNet {
        features: tree_features(),
        blocks: vec![block(), block()],
        fc: Linear::new(8, 2, &CPU),
    }
}

/// `(name, class)` of `seq`'s children.
fn children_of(seq: &Sequential) -> Vec<(String, String)> {
    let mut out = vec![];
    seq.named_children(&mut |n, m| out.push((n.to_string(), m.type_name().to_string())));
    out
}

#[test]
fn named_modules_and_children_match_pytorch() {
    let g = modules_golden();
    let net = tree_net();
    let mut got = vec![];
    net.named_modules(&mut |n, m| got.push((n.to_string(), m.type_name().to_string())));
    assert_eq!(got, pairs(&g["named_modules"]));
    let mut children = vec![];
    net.named_children(&mut |n, m| children.push((n.to_string(), m.type_name().to_string())));
    assert_eq!(children, pairs(&g["named_children"]));
    assert_eq!(
        net.child_names(),
        ["features", "blocks", "fc"].map(String::from)
    );
    assert_eq!(
        net.module_names(),
        pairs(&g["named_modules"])
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    );
    // `modules()` and `children()` see the same modules, without names.
    let (mut n_modules, mut params) = (0, 0);
    net.modules(&mut |_| n_modules += 1);
    net.children(&mut |c| params += c.num_parameters());
    assert_eq!(n_modules, got.len());
    assert_eq!(params, net.num_parameters());
}

#[test]
fn named_modules_mut_reaches_every_module() {
    let mut net = tree_net();
    // Freeze every batch norm, found by name, as fine-tuning code does.
    net.named_modules_mut(&mut |name, m| {
        if name.ends_with(".bn") {
            m.eval();
            m.requires_grad_(false);
        }
    });
    assert!(
        net.blocks[0]
            .bn
            .parameters()
            .iter()
            .all(|p| !p.requires_grad())
    );
    assert!(!net.blocks[1].bn.is_training());
    assert!(net.blocks[1].conv.is_training());
    assert!(net.fc.parameters().iter().all(|p| p.requires_grad()));
}

#[test]
fn relu_inplace_prints_like_pytorch() {
    let g = modules_golden();
    assert_eq!(
        tree_features().to_string(),
        g["features_print"].as_str().unwrap()
    );
    assert_eq!(ReLU::new().to_string(), "ReLU()");
    let x = Tensor::from([-1.0f32, 2.0]);
    assert_eq!(
        ReLU::new().inplace(true).forward(&x).to_vec::<f32>(),
        [0.0, 2.0]
    );
}

#[test]
fn sequential_slices_and_removals_match_pytorch() {
    let g = modules_golden();
    let names =
        |s: &Sequential| -> Vec<String> { children_of(s).into_iter().map(|(n, _)| n).collect() };
    // features[1:4] keeps the names 1, 2, 3.
    assert_eq!(
        names(&tree_features().into_slice(1..4)),
        strings(&g["slice_1_4_children"])
    );
    // features[:2].state_dict() keys.
    let head = tree_features().into_slice(..2);
    let keys: Vec<String> = head.state_dict().keys().map(String::from).collect();
    assert_eq!(keys, strings(&g["slice_to_2_keys"]));
    // An inclusive range and a single index work too.
    assert_eq!(names(&tree_features().into_slice(3..=3)), ["3"]);
    // del features[1]; features.pop(0): the rest is renumbered.
    let mut f = tree_features();
    let relu = f.remove(1);
    assert_eq!(relu.type_name(), "ReLU");
    assert_eq!(children_of(&f), pairs(&g["after_del_1"]));
    let _ = f.remove(0);
    assert_eq!(children_of(&f), pairs(&g["after_pop_0"]));
    // del features[1:3], keeping what was taken out.
    let mut f = tree_features();
    let taken = f.drain(1..3);
    assert_eq!(children_of(&f), pairs(&g["after_del_1_3"]));
    assert_eq!(names(&taken), ["1", "2"]);
    // The slice still runs: [N, 3, 8, 8] -> conv+relu+pool -> [N, 8, 4, 4].
    let y = tree_features()
        .into_slice(..3)
        .forward(&Tensor::ones([1, 3, 8, 8]));
    assert_eq!(y.shape(), &[1, 8, 4, 4]);
}

#[test]
#[should_panic(expected = "Sequential::into_slice: range 2..9 is out of bounds for 5 layers")]
fn sequential_slice_out_of_bounds_panics() {
    let _ = tree_features().into_slice(2..9);
}

#[test]
fn loss_modules_match_pytorch() {
    use kiln::loss::Reduction;
    use kiln::nn::{
        BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss,
    };
    let g = &modules_golden()["losses"];
    let f64s = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let logits_rows: Vec<Vec<f64>> = g["logits"].as_array().unwrap().iter().map(f64s).collect();
    let logits = Tensor::from_vec(logits_rows.concat(), [4, 3]);
    let classes: Vec<i64> = g["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    let classes = Tensor::from_vec(classes, [4]);
    let w = Tensor::from_vec(f64s(&g["weight"]), [3]);
    let t1 = |k: &str| Tensor::from_vec(f64s(&g[k]), [4]);
    let (x, y, p, t) = (t1("x"), t1("y"), t1("p"), t1("t"));
    let want = |k: &str| {
        g["values"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("no value {k}"))
    };
    let close = |k: &str, got: Tensor| {
        let (a, b) = (got.item(), want(k));
        assert!((a - b).abs() < 1e-12, "{k}: kiln {a}, PyTorch {b}");
    };
    close(
        "CrossEntropyLoss()",
        CrossEntropyLoss::new().forward(&logits, &classes),
    );
    close(
        "CrossEntropyLoss(weight, ignore_index=1, label_smoothing=0.1)",
        CrossEntropyLoss::new()
            .weight(w.shallow_clone())
            .ignore_index(1)
            .label_smoothing(0.1)
            .forward(&logits, &classes),
    );
    close(
        "CrossEntropyLoss(reduction=sum)",
        CrossEntropyLoss::new()
            .reduction(Reduction::Sum)
            .forward(&logits, &classes),
    );
    close(
        "NLLLoss(weight)",
        NLLLoss::new()
            .weight(w.shallow_clone())
            .forward(&logits.log_softmax(1), &classes),
    );
    close("MSELoss()", MSELoss::new().forward(&x, &y));
    close(
        "L1Loss(reduction=sum)",
        L1Loss::new().reduction(Reduction::Sum).forward(&x, &y),
    );
    close(
        "SmoothL1Loss(beta=0.5)",
        SmoothL1Loss::new().beta(0.5).forward(&x, &y),
    );
    close("BCELoss()", BCELoss::new().forward(&p, &t));
    close(
        "BCEWithLogitsLoss()",
        BCEWithLogitsLoss::new().forward(&x, &t),
    );
    // Printing and the weight buffer, as PyTorch's.
    let ce = CrossEntropyLoss::new().weight(w);
    let prints = strings(&g["prints"]);
    assert_eq!(ce.to_string(), prints[0]);
    assert_eq!(MSELoss::new().to_string(), prints[1]);
    assert_eq!(BCEWithLogitsLoss::new().to_string(), prints[2]);
    let keys: Vec<String> = ce.state_dict().keys().map(String::from).collect();
    assert_eq!(keys, strings(&g["ce_weight_state_keys"]));
    assert!(ce.parameters().is_empty());
}
