//! Dispatch from a golden case's `op` name and `attrs` to kiln calls, for
//! the tensor ops, `nn.functional` and loss cases. Attributes missing from
//! a manifest take PyTorch's defaults.

use kiln::Tensor;
use kiln::loss::{self, Reduction};
use kiln::nn::functional as F;
use serde_json::Value;

type Res<T> = Result<T, String>;

/// Typed access to a case's attributes.
struct Attrs<'a>(&'a Value);

impl Attrs<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn f64(&self, key: &str) -> Res<f64> {
        self.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("attr {key}: expected a number"))
    }

    fn f64_or(&self, key: &str, default: f64) -> Res<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(_) => self.f64(key),
        }
    }

    fn int(&self, key: &str) -> Res<i64> {
        self.get(key)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("attr {key}: expected an integer"))
    }

    fn int_or(&self, key: &str, default: i64) -> Res<i64> {
        match self.get(key) {
            None => Ok(default),
            Some(_) => self.int(key),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Res<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("attr {key}: expected a boolean")),
        }
    }

    /// A list of integers, or `None` when absent or null; a single integer
    /// is a one-element list.
    fn ints(&self, key: &str) -> Res<Option<Vec<i64>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_i64()
                        .ok_or_else(|| format!("attr {key}: expected integers"))
                })
                .collect::<Res<Vec<i64>>>()
                .map(Some),
            Some(v) => v
                .as_i64()
                .map(|i| Some(vec![i]))
                .ok_or_else(|| format!("attr {key}: expected an integer list")),
        }
    }

    fn dims(&self, key: &str) -> Res<Option<Vec<isize>>> {
        Ok(self
            .ints(key)?
            .map(|v| v.into_iter().map(|i| i as isize).collect()))
    }

    fn usizes(&self, key: &str) -> Res<Vec<usize>> {
        self.ints(key)?
            .ok_or_else(|| format!("attr {key}: missing"))?
            .into_iter()
            .map(|i| usize::try_from(i).map_err(|_| format!("attr {key}: negative value {i}")))
            .collect()
    }

    /// A pair like PyTorch's `_pair`: an integer repeats, a list has 2 items.
    fn pair_or(&self, key: &str, default: [usize; 2]) -> Res<[usize; 2]> {
        if self.get(key).is_none() {
            return Ok(default);
        }
        match self.usizes(key)?.as_slice() {
            [a] => Ok([*a, *a]),
            [a, b] => Ok([*a, *b]),
            v => Err(format!("attr {key}: expected 1 or 2 values, got {v:?}")),
        }
    }

    /// A pooling kernel size, from `kernel` or `kernel_size`.
    fn kernel(&self) -> Res<[usize; 2]> {
        let key = if self.get("kernel").is_some() {
            "kernel"
        } else {
            "kernel_size"
        };
        if self.get(key).is_none() {
            return Err("attr kernel: missing".into());
        }
        self.pair_or(key, [0, 0])
    }

    fn reduction(&self) -> Res<Reduction> {
        match self.get("reduction") {
            None => Ok(Reduction::Mean),
            Some(v) => v
                .as_str()
                .and_then(Reduction::parse)
                .ok_or_else(|| format!("attr reduction: unknown value {v}")),
        }
    }

    /// Fails when an attribute kiln's call does not model is set.
    fn unsupported(&self, keys: &[&str]) -> Res<()> {
        for k in keys {
            if self.get(k).is_some() {
                return Err(format!("attr {k} is not supported by the harness"));
            }
        }
        Ok(())
    }
}

/// The case's inputs, by position or by name.
struct Inputs<'a>(&'a [(String, Tensor)]);

impl Inputs<'_> {
    fn at(&self, i: usize) -> Res<&Tensor> {
        self.0
            .get(i)
            .map(|(_, t)| t)
            .ok_or_else(|| format!("expected at least {} inputs", i + 1))
    }

    fn named(&self, name: &str) -> Option<&Tensor> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The input called one of `names`, else the one at position `i`.
    fn named_or_at(&self, names: &[&str], i: usize) -> Res<&Tensor> {
        names
            .iter()
            .find_map(|n| self.named(n))
            .map_or_else(|| self.at(i), Ok)
    }

    fn all(&self) -> Vec<Tensor> {
        self.0.iter().map(|(_, t)| t.shallow_clone()).collect()
    }
}

/// Runs `op` on `inputs` and returns its outputs in manifest order.
pub fn run(op: &str, attrs: &Value, inputs: &[(String, Tensor)]) -> Res<Vec<Tensor>> {
    let a = Attrs(attrs);
    let x = Inputs(inputs);
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        // ----- elementwise ------------------------------------------------
        "add" => one(x.at(0)?.add(x.at(1)?)),
        "sub" => one(x.at(0)?.sub(x.at(1)?)),
        "mul" => one(x.at(0)?.mul(x.at(1)?)),
        "div" => one(x.at(0)?.div(x.at(1)?)),
        "add_scalar" => one(x.at(0)?.add_scalar(a.f64("scalar")?)),
        "mul_scalar" => one(x.at(0)?.mul_scalar(a.f64("scalar")?)),
        "neg" => one(x.at(0)?.neg()),
        "exp" => one(x.at(0)?.exp()),
        "log" => one(x.at(0)?.log()),
        "pow_scalar" => one(x.at(0)?.pow_scalar(a.f64("exponent")?)),
        "sqrt" => one(x.at(0)?.sqrt()),
        "abs" => one(x.at(0)?.abs()),
        "relu" => one(F::relu(x.at(0)?)),
        "sigmoid" => one(F::sigmoid(x.at(0)?)),
        "tanh" => one(F::tanh(x.at(0)?)),
        "gelu" => match a.get("approximate").and_then(Value::as_str) {
            None | Some("none") => one(F::gelu(x.at(0)?)),
            Some("tanh") => one(x.at(0)?.gelu_tanh()),
            Some(s) => Err(format!("attr approximate: unknown value {s}")),
        },
        "leaky_relu" => one(F::leaky_relu(x.at(0)?, a.f64_or("negative_slope", 0.01)?)),
        "threshold" => one(x.at(0)?.threshold(a.f64("threshold")?, a.f64("value")?)),
        "clamp" => {
            let opt = |k: &str| a.get(k).map(|_| a.f64(k)).transpose();
            one(x.at(0)?.clamp(opt("min")?, opt("max")?))
        }
        "softmax" => one(F::softmax(x.at(0)?, a.int("dim")? as isize)),
        "log_softmax" => one(F::log_softmax(x.at(0)?, a.int("dim")? as isize)),
        "max_dim" => {
            let (v, i) = x
                .at(0)?
                .max_dim(a.int("dim")? as isize, a.bool_or("keepdim", false)?);
            Ok(vec![v, i])
        }
        "argmax" => one(x
            .at(0)?
            .argmax(a.int("dim")? as isize, a.bool_or("keepdim", false)?)),
        "cat" => {
            let all = x.all();
            let refs: Vec<&Tensor> = all.iter().collect();
            one(Tensor::cat(&refs, a.int_or("dim", 0)? as isize))
        }
        "stack" => {
            let all = x.all();
            let refs: Vec<&Tensor> = all.iter().collect();
            one(Tensor::stack(&refs, a.int_or("dim", 0)? as isize))
        }
        "split" => {
            let t = x.at(0)?;
            let dim = a.int_or("dim", 0)? as isize;
            match a.get("sizes").or_else(|| a.get("split_size_or_sections")) {
                Some(Value::Array(_)) => {
                    let key = if a.get("sizes").is_some() {
                        "sizes"
                    } else {
                        "split_size_or_sections"
                    };
                    Ok(t.split(&a.usizes(key)?, dim))
                }
                Some(v) => Ok(t.split_size(
                    v.as_u64().ok_or("attr split size: expected an integer")? as usize,
                    dim,
                )),
                None => Err("attr sizes: missing".into()),
            }
        }
        "where" => one(Tensor::where_cond(
            x.named_or_at(&["cond", "condition"], 0)?,
            x.at(1)?,
            x.at(2)?,
        )),
        "index_select" => one(x.at(0)?.index_select(a.int("dim")? as isize, x.at(1)?)),
        "gather" => one(x.at(0)?.gather(a.int("dim")? as isize, x.at(1)?)),
        // ----- reductions -------------------------------------------------
        "sum" => {
            let dims = a.dims("dims")?;
            one(x
                .at(0)?
                .sum_dims(dims.as_deref(), a.bool_or("keepdim", false)?))
        }
        "mean" => {
            let dims = a.dims("dims")?;
            one(x
                .at(0)?
                .mean_dims(dims.as_deref(), a.bool_or("keepdim", false)?))
        }
        // ----- products and shapes ---------------------------------------
        "matmul" => one(x.at(0)?.matmul(x.at(1)?)),
        "transpose" => one(x
            .at(0)?
            .transpose(a.int("dim0")? as isize, a.int("dim1")? as isize)),
        "permute" => one(x
            .at(0)?
            .permute(&a.dims("dims")?.ok_or("attr dims: missing")?)),
        "reshape" => one(x
            .at(0)?
            .reshape(&a.dims("shape")?.ok_or("attr shape: missing")?)),
        "expand" => {
            let t = x.at(0)?;
            let shape = a.dims("shape")?.ok_or("attr shape: missing")?;
            // -1 keeps the existing size, as in PyTorch.
            let lead = shape.len().saturating_sub(t.dim());
            let shape: Vec<usize> = shape
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d < 0 && i >= lead {
                        t.shape()[i - lead]
                    } else {
                        d as usize
                    }
                })
                .collect();
            one(t.expand(&shape))
        }
        "unsqueeze" => one(x.at(0)?.unsqueeze(a.int("dim")? as isize)),
        "squeeze" => {
            let t = x.at(0)?;
            match a.dims("dims").or_else(|_| a.dims("dim"))? {
                None if a.get("dim").is_none() => one(t.squeeze()),
                None => one(t.squeeze_dim(a.int("dim")? as isize)),
                Some(ds) => {
                    let mut ds: Vec<usize> = ds
                        .iter()
                        .map(|&d| if d < 0 { d + t.dim() as isize } else { d } as usize)
                        .collect();
                    ds.sort_unstable();
                    let mut out = t.shallow_clone();
                    for d in ds.into_iter().rev() {
                        out = out.squeeze_dim(d as isize);
                    }
                    one(out)
                }
            }
        }
        "narrow" => one(x.at(0)?.narrow(
            a.int("dim")? as isize,
            a.int("start")? as usize,
            a.int("length")? as usize,
        )),
        "flatten" => one(x.at(0)?.flatten(
            a.int_or("start_dim", 0)? as isize,
            a.int_or("end_dim", -1)? as isize,
        )),
        // ----- nn.functional ----------------------------------------------
        "linear" => {
            let bias = x.named("bias").or_else(|| x.0.get(2).map(|(_, t)| t));
            one(F::linear(
                x.named_or_at(&["x", "input"], 0)?,
                x.named_or_at(&["weight"], 1)?,
                bias,
            ))
        }
        "conv2d" => {
            let w = x.named_or_at(&["weight"], 1)?;
            let bias = x.named("bias").or_else(|| x.0.get(2).map(|(_, t)| t));
            let dilation = a.pair_or("dilation", [1, 1])?;
            let padding = match a.get("padding").and_then(Value::as_str) {
                Some("valid") => [0, 0],
                Some("same") => {
                    let k = [w.shape()[2], w.shape()[3]];
                    let mut p = [0; 2];
                    for d in 0..2 {
                        let total = dilation[d] * (k[d] - 1);
                        if total % 2 != 0 {
                            return Err("padding='same' with an even effective kernel".into());
                        }
                        p[d] = total / 2;
                    }
                    p
                }
                Some(s) => return Err(format!("attr padding: unknown value {s}")),
                None => a.pair_or("padding", [0, 0])?,
            };
            one(F::conv2d(
                x.named_or_at(&["x", "input"], 0)?,
                w,
                bias,
                a.pair_or("stride", [1, 1])?,
                padding,
                dilation,
                a.int_or("groups", 1)? as usize,
            ))
        }
        "max_pool2d" => {
            if a.bool_or("return_indices", false)? {
                return Err("attr return_indices is not supported by the harness".into());
            }
            let kernel = a.kernel()?;
            one(F::max_pool2d_with(
                x.at(0)?,
                kernel,
                a.pair_or("stride", kernel)?,
                a.pair_or("padding", [0, 0])?,
                a.pair_or("dilation", [1, 1])?,
                a.bool_or("ceil_mode", false)?,
            ))
        }
        "avg_pool2d" => {
            a.unsupported(&["divisor_override"])?;
            let kernel = a.kernel()?;
            one(F::avg_pool2d_with(
                x.at(0)?,
                kernel,
                a.pair_or("stride", kernel)?,
                a.pair_or("padding", [0, 0])?,
                a.bool_or("ceil_mode", false)?,
                a.bool_or("count_include_pad", true)?,
            ))
        }
        "adaptive_avg_pool2d" => {
            let t = x.at(0)?;
            let raw = match a.get("output_size") {
                Some(Value::Array(v)) => v.iter().map(Value::as_i64).collect::<Vec<_>>(),
                Some(v) => vec![v.as_i64(); 2],
                None => return Err("attr output_size: missing".into()),
            };
            if raw.len() != 2 {
                return Err(format!("attr output_size: expected 2 values, got {raw:?}"));
            }
            let r = t.dim();
            // A null entry keeps the input's size.
            let out = [0, 1].map(|i| raw[i].map_or(t.shape()[r - 2 + i], |v| v as usize));
            one(F::adaptive_avg_pool2d(t, out))
        }
        "batch_norm" => one(F::batch_norm(
            x.named_or_at(&["x", "input"], 0)?,
            x.named("running_mean"),
            x.named("running_var"),
            x.named("weight"),
            x.named("bias"),
            a.bool_or("training", false)?,
            a.f64_or("momentum", 0.1)?,
            a.f64_or("eps", 1e-5)?,
        )),
        "layer_norm" => one(F::layer_norm(
            x.named_or_at(&["x", "input"], 0)?,
            &a.usizes("normalized_shape")?,
            x.named("weight"),
            x.named("bias"),
            a.f64_or("eps", 1e-5)?,
        )),
        "embedding" => {
            a.unsupported(&["padding_idx", "max_norm"])?;
            let all = x.all();
            let idx = all
                .iter()
                .find(|t| !t.dtype().is_float())
                .ok_or("embedding: no integer index input")?;
            let w = all
                .iter()
                .find(|t| t.dtype().is_float())
                .ok_or("embedding: no float weight input")?;
            one(F::embedding(idx, w))
        }
        // ----- losses -------------------------------------------------------
        "mse_loss" => one(loss::mse_loss(x.at(0)?, x.at(1)?, a.reduction()?)),
        "l1_loss" => one(loss::l1_loss(x.at(0)?, x.at(1)?, a.reduction()?)),
        "smooth_l1_loss" => one(loss::smooth_l1_loss(
            x.at(0)?,
            x.at(1)?,
            a.reduction()?,
            a.f64_or("beta", 1.0)?,
        )),
        "binary_cross_entropy_with_logits" => {
            a.unsupported(&["pos_weight"])?;
            if x.named("weight").is_some() || x.named("pos_weight").is_some() {
                return Err("binary_cross_entropy_with_logits: weights are not supported".into());
            }
            one(loss::binary_cross_entropy_with_logits(
                x.at(0)?,
                x.at(1)?,
                a.reduction()?,
            ))
        }
        "binary_cross_entropy" => {
            if x.named("weight").is_some() {
                return Err("binary_cross_entropy: weights are not supported".into());
            }
            one(loss::binary_cross_entropy(
                x.at(0)?,
                x.at(1)?,
                a.reduction()?,
            ))
        }
        "cross_entropy" => one(loss::cross_entropy_with(
            x.named_or_at(&["input", "logits", "x"], 0)?,
            x.named_or_at(&["target"], 1)?,
            a.reduction()?,
            a.f64_or("label_smoothing", 0.0)?,
            x.named("weight"),
            Some(a.int_or("ignore_index", -100)?),
        )),
        "nll_loss" => one(loss::nll_loss_with(
            x.named_or_at(&["input", "x"], 0)?,
            x.named_or_at(&["target"], 1)?,
            a.reduction()?,
            x.named("weight"),
            Some(a.int_or("ignore_index", -100)?),
        )),
        _ => Err(format!("unknown op {op:?}")),
    }
}
