//! Runner for `model` cases (set `models`): infer the architecture from the
//! state dict's keys (and `attrs.arch` for what shapes cannot say: padding,
//! pooling, dropout), build it as a `#[derive(Module)]` struct, load the
//! PyTorch state dict by its key names, forward in train or eval mode,
//! cross-entropy, backward, and compare logits, loss, every parameter's
//! gradient and (train mode) the buffers after the step.
//!
//! Two families are known: LeNet-style (`conv1`, `conv2`, `fc1`..`fc3`:
//! conv-relu-maxpool twice, flatten, three linears with ReLU between) and
//! VGG-style (`features.*`, `classifier.*`, with the layer lists read
//! from the bracketed lists of `attrs.arch`).

use crate::{Case, Report};
use kiln::loss::{Reduction, cross_entropy};
use kiln::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Conv2dOptions, Dropout, Forward, Linear, MaxPool2d,
    Module, ReLU, Sequential,
};
use kiln::{Device, StateDict, Tensor};

const CPU: Device = Device::Cpu;

#[derive(kiln::Module)]
struct LeNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    #[module(skip)]
    pool: [usize; 2],
}

impl Forward for LeNet {
    fn forward(&self, x: &Tensor) -> Tensor {
        let pool = MaxPool2d::new(self.pool, self.pool, [0, 0]);
        let relu = ReLU::new();
        let x = pool.forward(&relu.forward(&self.conv1.forward(x)));
        let x = pool.forward(&relu.forward(&self.conv2.forward(&x)));
        let x = relu.forward(&self.fc1.forward(&x.flatten(1, -1)));
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

impl Forward for VggSmall {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.avgpool.forward(&self.features.forward(x));
        self.classifier.forward(&x.flatten(1, -1))
    }
}

fn shape<'a>(sd: &'a StateDict, key: &str) -> Result<&'a [usize], String> {
    sd.get(key)
        .map(Tensor::shape)
        .ok_or_else(|| format!("state dict lacks {key}"))
}

/// The first number after `tag` in `text` (e.g. `pad 2`, `pad1`).
fn number_after(text: &str, tag: &str) -> Option<f64> {
    let rest = &text[text.find(tag)? + tag.len()..];
    let rest = rest.trim_start_matches([' ', '=']);
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.parse().ok()
}

fn conv_from(sd: &StateDict, prefix: &str, spec: &str) -> Result<Conv2d, String> {
    let w = shape(sd, &format!("{prefix}weight"))?;
    if w.len() != 4 {
        return Err(format!(
            "{prefix}weight: expected a 4-D conv weight, got {w:?}"
        ));
    }
    let (kh, kw) = (w[2], w[3]);
    let pad = number_after(spec, "pad").map_or([kh / 2, kw / 2], |p| [p as usize; 2]);
    let bias = sd.contains_key(&format!("{prefix}bias"));
    Ok(Conv2d::new(
        w[1],
        w[0],
        Conv2dOptions::new([kh, kw]).padding(pad).bias(bias),
        &CPU,
    ))
}

fn linear_from(sd: &StateDict, prefix: &str) -> Result<Linear, String> {
    let w = shape(sd, &format!("{prefix}weight"))?;
    let bias = sd.contains_key(&format!("{prefix}bias"));
    Ok(Linear::with_bias(w[1], w[0], bias, &CPU))
}

/// Items of the bracketed list after `name = [` in `arch`, one per
/// Sequential index: `Conv2d(..)`, `BN`, `ReLU`, `MaxPool2`, `Linear(..)`,
/// `Dropout(..)`.
fn list_items(arch: &str, name: &str) -> Result<Vec<String>, String> {
    let start = arch
        .find(&format!("{name} = ["))
        .ok_or_else(|| format!("arch has no `{name} = [...]` list"))?;
    let body = &arch[start..];
    let body = &body[body.find('[').unwrap() + 1..];
    let end = body.find(']').ok_or("unterminated list")?;
    let body = &body[..end];
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in body.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' | ' ' if depth == 0 => {
                if !cur.trim().is_empty() {
                    items.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        items.push(cur.trim().to_string());
    }
    Ok(items)
}

fn sequential_from(sd: &StateDict, arch: &str, name: &str) -> Result<Sequential, String> {
    let mut seq = Sequential::new();
    for (i, item) in list_items(arch, name)?.iter().enumerate() {
        let prefix = format!("{name}.{i}.");
        let lower = item.to_lowercase();
        seq = if lower.starts_with("conv2d") {
            seq.push(conv_from(sd, &prefix, item)?)
        } else if lower.starts_with("bn") || lower.starts_with("batchnorm") {
            let w = shape(sd, &format!("{prefix}running_mean"))?;
            seq.push(BatchNorm2d::new(w[0], &CPU))
        } else if lower == "relu" {
            seq.push(ReLU::new())
        } else if lower.starts_with("maxpool") {
            let k = number_after(&lower, "maxpool").unwrap_or(2.0) as usize;
            seq.push(MaxPool2d::new([k, k], [k, k], [0, 0]))
        } else if lower.starts_with("linear") {
            seq.push(linear_from(sd, &prefix)?)
        } else if lower.starts_with("dropout") {
            let p = number_after(&lower, "(")
                .or_else(|| number_after(&lower, "p="))
                .unwrap_or(0.5);
            seq.push(Dropout::new(p))
        } else {
            return Err(format!("unknown layer {item:?} in {name}"));
        };
    }
    Ok(seq)
}

/// Builds the model the state dict's keys describe.
fn build(sd: &StateDict, arch: &str) -> Result<Box<dyn ModelLike>, String> {
    let keys: Vec<&str> = sd.keys().collect();
    if keys.iter().any(|k| k.starts_with("features.")) {
        let out = number_after(arch, "AdaptiveAvgPool2d(").unwrap_or(1.0) as usize;
        Ok(Box::new(VggSmall {
            features: sequential_from(sd, arch, "features")?,
            avgpool: AdaptiveAvgPool2d::new([out, out]),
            classifier: sequential_from(sd, arch, "classifier")?,
        }))
    } else if keys.iter().any(|k| k.starts_with("conv1.")) {
        // Each conv's spec in the arch text: after "convN Conv2d(".
        let spec = |n: &str| {
            arch.find(&format!("{n} Conv2d("))
                .map(|i| {
                    let s = &arch[i..];
                    s[..s.find(')').unwrap_or(s.len())].to_string()
                })
                .unwrap_or_default()
        };
        let conv = |n: &str| -> Result<Conv2d, String> {
            let s = spec(n);
            let w = shape(sd, &format!("{n}.weight"))?;
            let pad = number_after(&s, "pad").map_or(0, |p| p as usize);
            Ok(Conv2d::new(
                w[1],
                w[0],
                Conv2dOptions::new([w[2], w[3]]).padding([pad, pad]),
                &CPU,
            ))
        };
        let k = number_after(&arch.to_lowercase(), "maxpool").unwrap_or(2.0) as usize;
        Ok(Box::new(LeNet {
            conv1: conv("conv1")?,
            conv2: conv("conv2")?,
            fc1: linear_from(sd, "fc1.")?,
            fc2: linear_from(sd, "fc2.")?,
            fc3: linear_from(sd, "fc3.")?,
            pool: [k, k],
        }))
    } else {
        Err(format!("cannot infer an architecture from keys {keys:?}"))
    }
}

/// A module with a forward.
trait ModelLike: Module + Forward {}
impl<T: Module + Forward> ModelLike for T {}

/// Checks one model case.
pub fn run_case(case: &Case, rep: &mut Report) -> Result<(), String> {
    let arch = case.attrs["arch"].as_str().unwrap_or("");
    let train = case.attrs["train"].as_bool().unwrap_or(false);
    let mut sd = StateDict::new();
    for (name, t) in &case.inputs {
        if let Some(key) = name.strip_prefix("state/") {
            sd.insert(key, t.shallow_clone());
        }
    }
    let mut model = build(&sd, arch)?;
    model
        .load_state_dict(&sd, true)
        .map_err(|e| e.to_string())?;
    if train {
        model.train();
    } else {
        model.eval();
    }
    let x = case.input("x").ok_or("model case without input x")?;
    let target = case.input("target").ok_or("model case without target")?;
    if x.device() != CPU {
        // The GPU run: the inputs (state included) are on the device.
        model.to(&x.device());
    }
    let logits = model.forward(x);
    let loss = cross_entropy(&logits, target, Reduction::Mean, 0.0);
    loss.backward();
    let (rtol, atol) = (case.rtol, case.atol);
    rep.check(
        "logits",
        &logits.detach(),
        case.tensor("out/logits")?,
        rtol,
        atol,
    );
    rep.check("loss", &loss.detach(), case.tensor("out/loss")?, rtol, atol);
    let params = model.named_parameters();
    let state = model.state_dict();
    for out in &case.outputs {
        if let Some(key) = out.strip_prefix("param_grad/") {
            let p = params
                .iter()
                .find(|(n, _)| n == key)
                .ok_or_else(|| format!("model has no parameter {key}"))?;
            let g = p.1.grad().unwrap_or_else(|| p.1.zeros_like());
            rep.check(out, &g, case.tensor(&format!("out/{out}"))?, rtol, atol);
        } else if let Some(key) = out.strip_prefix("state_after/") {
            let t = state
                .get(key)
                .ok_or_else(|| format!("model has no state {key}"))?;
            rep.check(out, t, case.tensor(&format!("out/{out}"))?, rtol, atol);
        } else if out != "logits" && out != "loss" {
            return Err(format!("unknown model output {out}"));
        }
    }
    Ok(())
}
