//! Test helpers shared by kiln's test suites: finite-difference gradient
//! checks like `torch.autograd.gradcheck` / `gradgradcheck`, and the one
//! rule for tests that cannot run here (no GPU, a missing fixture): they
//! print `skipped: <why>` instead of silently passing, and an environment
//! variable ([`REQUIRE_GPU`], [`REQUIRE_FIXTURES`]) turns the skip into a
//! failure on machines that must run them.
//!
//! ```
//! use kiln_runtime::{DType, Tensor, testing::gradcheck};
//! let x = Tensor::randn_opts([3, 4], DType::F64).requires_grad_(true);
//! gradcheck(|xs| xs[0].sigmoid(), &[x], 1e-6, 1e-6, 1e-4).unwrap();
//! ```

use crate::{Device, Tensor, autograd};
use std::path::Path;

/// `KILN_REQUIRE_GPU=1`: a test that needs a CUDA GPU fails instead of
/// skipping when none is available.
pub const REQUIRE_GPU: &str = "KILN_REQUIRE_GPU";

/// `KILN_REQUIRE_FIXTURES=1`: a test whose data files (goldens, MNIST,
/// checkpoints) are missing fails instead of skipping.
pub const REQUIRE_FIXTURES: &str = "KILN_REQUIRE_FIXTURES";

/// True when the environment variable `var` is `1`.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Reports that the calling test cannot run here: prints `skipped: {why}`,
/// or panics when `{require}=1` (see [`REQUIRE_GPU`], [`REQUIRE_FIXTURES`]).
/// The caller then returns without checking anything.
pub fn skip(require: &str, why: &str) {
    if required(require) {
        panic!("{why}, and {require}=1 requires it");
    }
    println!("skipped: {why}");
}

/// `cuda:0` when a CUDA GPU is available; otherwise [`skip`]s
/// ("needs a CUDA GPU", failing under `KILN_REQUIRE_GPU=1`) and gives
/// `None`. GPU tests are also `#[ignore = "needs a CUDA GPU"]`, so that a
/// plain `cargo test` counts them as ignored rather than passed; run them
/// with `cargo test --features cuda -- --include-ignored`.
pub fn cuda_or_skip() -> Option<Device> {
    if Device::cuda_is_available() {
        Some(Device::Cuda(0))
    } else {
        skip(REQUIRE_GPU, "needs a CUDA GPU (none is available)");
        None
    }
}

/// True when `path` exists; otherwise [`skip`]s ("`what` not found at
/// `path`", failing under `KILN_REQUIRE_FIXTURES=1`) and gives `false`.
pub fn fixture_or_skip(path: &Path, what: &str) -> bool {
    if path.exists() {
        return true;
    }
    skip(
        REQUIRE_FIXTURES,
        &format!("{what} not found at {}", path.display()),
    );
    false
}

/// Deterministic pseudo-random values in `[-1, 1)` (splitmix64), so that a
/// check sees the same projection every time it runs.
struct Projections(u64);

impl Projections {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    fn tensor_like(&mut self, t: &Tensor) -> Tensor {
        let v: Vec<f64> = (0..t.numel()).map(|_| self.next()).collect();
        Tensor::from_vec(v, t.shape())
            .to_dtype(t.dtype())
            .to_device(t.device())
    }
}

/// Inputs with more elements than this are checked along random
/// directions instead of element by element.
const FULL_CHECK_MAX: usize = 1024;

/// `sum(f(xs) * v)` as a plain number, computed without recording a graph.
fn projected(f: &dyn Fn(&[Tensor]) -> Tensor, xs: &[Tensor], v: &Tensor) -> f64 {
    autograd::no_grad(|| f(xs).to_dtype(crate::DType::F64).mul(v).sum().item())
}

/// Checks `f`'s gradients with respect to every input that requires grad:
/// autograd's vector-Jacobian product `vᵀJ` for a fixed random `v` against
/// central differences `(L(x + eps·e) - L(x - eps·e)) / 2eps` of
/// `L = sum(f(x) * v)`, element by element (along random directions for
/// inputs above 1024 elements). Passes when `|analytic - numeric| <= atol +
/// rtol * |numeric|` everywhere. Use f64 inputs, and keep them away from
/// kinks (0 for relu/abs, ties for max/sort). Inputs that do not require
/// grad (indices, masks) are passed through unchanged.
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    eps: f64,
    atol: f64,
    rtol: f64,
) -> Result<(), String> {
    let mut rng = Projections(0x5eed);
    let y = f(inputs);
    if !y.dtype().is_float() {
        return Err(format!(
            "gradcheck: the function's output must be floating point, got {}",
            y.dtype()
        ));
    }
    let v = rng.tensor_like(&y.to_dtype(crate::DType::F64));
    let checked: Vec<usize> = (0..inputs.len())
        .filter(|&i| inputs[i].requires_grad())
        .collect();
    if checked.is_empty() {
        return Err("gradcheck: no input requires grad".into());
    }
    if !y.requires_grad() {
        return Err("gradcheck: the output does not require grad".into());
    }
    let targets: Vec<Tensor> = checked.iter().map(|&i| inputs[i].shallow_clone()).collect();
    let l = y.to_dtype(crate::DType::F64).mul(&v).sum();
    let grads = autograd::grad(&[l], &targets, false);
    let f: &dyn Fn(&[Tensor]) -> Tensor = &f;
    for (&i, g) in checked.iter().zip(grads) {
        let x = &inputs[i];
        let analytic: Vec<f64> = match g {
            Some(g) => {
                if g.shape() != x.shape() {
                    return Err(format!(
                        "gradcheck: the gradient of input {i} has shape {:?} but the input has shape {:?}",
                        g.shape(),
                        x.shape()
                    ));
                }
                g.to_vec::<f64>()
            }
            None => vec![0.0; x.numel()],
        };
        let base = x.to_vec::<f64>();
        let eval = |vals: Vec<f64>| -> f64 {
            let xi = Tensor::from_vec(vals, x.shape())
                .to_dtype(x.dtype())
                .to_device(x.device());
            let mut xs: Vec<Tensor> = inputs.iter().map(Tensor::shallow_clone).collect();
            xs[i] = xi;
            projected(f, &xs, &v)
        };
        let close = |a: f64, n: f64| (a - n).abs() <= atol + rtol * n.abs();
        if x.numel() <= FULL_CHECK_MAX {
            for j in 0..x.numel() {
                let mut p = base.clone();
                p[j] += eps;
                let lp = eval(p);
                let mut m = base.clone();
                m[j] -= eps;
                let lm = eval(m);
                let numeric = (lp - lm) / (2.0 * eps);
                if !close(analytic[j], numeric) {
                    return Err(format!(
                        "gradcheck: input {i} (shape {:?}), element {j}: analytic {} vs numeric {numeric} (difference {:e})",
                        x.shape(),
                        analytic[j],
                        (analytic[j] - numeric).abs()
                    ));
                }
            }
        } else {
            for k in 0..4 {
                let dir: Vec<f64> = (0..x.numel()).map(|_| rng.next()).collect();
                let shifted = |s: f64| -> Vec<f64> {
                    base.iter().zip(&dir).map(|(b, d)| b + s * d).collect()
                };
                let numeric = (eval(shifted(eps)) - eval(shifted(-eps))) / (2.0 * eps);
                let a: f64 = analytic.iter().zip(&dir).map(|(a, d)| a * d).sum();
                if !close(a, numeric) {
                    return Err(format!(
                        "gradcheck: input {i} (shape {:?}), random direction {k}: analytic {a} vs numeric {numeric}",
                        x.shape()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks second derivatives like `torch.autograd.gradgradcheck`: runs
/// [`gradcheck`] on `x ↦ Σᵢ <∂(sum(f(x)·v))/∂xᵢ, wᵢ>` with fixed random
/// `v` and `wᵢ`, so the backward rules' own graphs (built when
/// `create_graph` is on) are verified.
pub fn gradgradcheck(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    eps: f64,
    atol: f64,
    rtol: f64,
) -> Result<(), String> {
    let mut rng = Projections(0xfeed);
    let flagged: Vec<bool> = inputs.iter().map(|t| t.requires_grad()).collect();
    let y0 = autograd::no_grad(|| f(inputs));
    let v = rng.tensor_like(&y0.to_dtype(crate::DType::F64));
    let ws: Vec<Tensor> = inputs
        .iter()
        .map(|t| rng.tensor_like(&t.to_dtype(crate::DType::F64)))
        .collect();
    let h = |xs: &[Tensor]| -> Tensor {
        let _mode = autograd::set_grad_enabled(true);
        let leaves: Vec<Tensor> = xs
            .iter()
            .zip(&flagged)
            .map(|(x, &fl)| {
                if fl && !x.requires_grad() {
                    x.detach().requires_grad_(true)
                } else {
                    x.shallow_clone()
                }
            })
            .collect();
        let targets: Vec<Tensor> = leaves
            .iter()
            .zip(&flagged)
            .filter(|(_, fl)| **fl)
            .map(|(t, _)| t.shallow_clone())
            .collect();
        let l = f(&leaves).to_dtype(crate::DType::F64).mul(&v).sum();
        let grads = autograd::grad(&[l], &targets, true);
        // `0 * x` terms keep the result attached to every checked input even
        // where the second derivative is identically zero (relu, max, ...).
        let dev = targets.first().map_or(crate::Device::Cpu, |t| t.device());
        let mut total = Tensor::scalar(0.0f64).to_device(dev);
        for t in &targets {
            total = total.add(&t.to_dtype(crate::DType::F64).sum().mul_scalar(0.0));
        }
        let mut gi = grads.into_iter();
        for (w, _) in ws.iter().zip(&flagged).filter(|(_, fl)| **fl) {
            if let Some(g) = gi.next().flatten() {
                total = total.add(&g.to_dtype(crate::DType::F64).mul(w).sum());
            }
        }
        total
    };
    gradcheck(h, inputs, eps, atol, rtol)
}
