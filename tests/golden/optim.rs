//! Runner for `optimizer` cases (set `optim`): set each gradient, `step()`,
//! compare the parameter after every step.

use crate::{Case, Report};
use kiln::Tensor;
use kiln::optim::{Adam, AdamW, Optimizer, RMSprop, SGD};
use serde_json::Value;

fn f(attrs: &Value, key: &str) -> Option<f64> {
    attrs.get(key).and_then(Value::as_f64)
}

fn b(attrs: &Value, key: &str) -> bool {
    attrs.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Builds the optimizer `attrs` describes over `params`.
fn build(attrs: &Value, params: Vec<Tensor>) -> Result<Box<dyn Optimizer>, String> {
    let kind = attrs["kind"].as_str().ok_or("attrs.kind missing")?;
    let lr = f(attrs, "lr").ok_or("attrs.lr missing")?;
    let wd = f(attrs, "weight_decay");
    let betas = attrs["betas"]
        .as_array()
        .map(|a| (a[0].as_f64().unwrap_or(0.9), a[1].as_f64().unwrap_or(0.999)));
    Ok(match kind {
        "sgd" => {
            let mut o = SGD::new(params, lr)
                .momentum(f(attrs, "momentum").unwrap_or(0.0))
                .dampening(f(attrs, "dampening").unwrap_or(0.0))
                .nesterov(b(attrs, "nesterov"));
            if let Some(wd) = wd {
                o = o.weight_decay(wd);
            }
            Box::new(o)
        }
        "adam" | "adamw" => {
            macro_rules! adam {
                ($t:ty) => {{
                    let mut o = <$t>::new(params, lr).amsgrad(b(attrs, "amsgrad"));
                    if let Some((b1, b2)) = betas {
                        o = o.betas(b1, b2);
                    }
                    if let Some(e) = f(attrs, "eps") {
                        o = o.eps(e);
                    }
                    if let Some(wd) = wd {
                        o = o.weight_decay(wd);
                    }
                    Box::new(o)
                }};
            }
            if kind == "adam" {
                adam!(Adam)
            } else {
                adam!(AdamW)
            }
        }
        "rmsprop" => {
            let mut o = RMSprop::new(params, lr)
                .momentum(f(attrs, "momentum").unwrap_or(0.0))
                .centered(b(attrs, "centered"));
            if let Some(a) = f(attrs, "alpha") {
                o = o.alpha(a);
            }
            if let Some(e) = f(attrs, "eps") {
                o = o.eps(e);
            }
            if let Some(wd) = wd {
                o = o.weight_decay(wd);
            }
            Box::new(o)
        }
        k => return Err(format!("unknown optimizer kind {k:?}")),
    })
}

/// Checks one optimizer case.
pub fn run_case(case: &Case, rep: &mut Report) -> Result<(), String> {
    let param = case
        .input("param")
        .ok_or("optimizer case without a `param` input")?
        .detach()
        .to_dtype(kiln::DType::F32);
    // Own storage, so the case's tensor is never modified.
    let param = param.add_scalar(0.0).detach().requires_grad_(true);
    let mut opt = build(&case.attrs, vec![param.shallow_clone()])?;
    let steps = case.attrs["steps"]
        .as_u64()
        .map(|s| s as usize)
        .unwrap_or(case.outputs.len());
    for i in 1..=steps {
        let g = case
            .input(&format!("grad{i}"))
            .ok_or_else(|| format!("missing input grad{i}"))?;
        param.set_grad(Some(g.detach()));
        opt.step();
        let name = format!("step{i}");
        let want = case.tensor(&format!("out/{name}"))?;
        rep.check(
            &format!("out/{name}"),
            &param.detach(),
            want,
            case.rtol,
            case.atol,
        );
    }
    Ok(())
}
