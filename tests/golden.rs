//! PyTorch golden tests: runs every case of every `<set>.json` +
//! `<set>.safetensors` pair in `$KILN_GOLDEN_DIR` (default
//! `../shared/golden` from the project root) and compares kiln's outputs
//! and gradients with PyTorch's.
//!
//! Cases are generic: an `op` name with `attrs`, named inputs, outputs and
//! the inputs whose gradient of `sum(out_i * grad_out_i)` is checked.
//! Nothing here knows case names or shapes. An op the harness does not know
//! is a failure, never a skip.
//!
//! `$KILN_GOLDEN_SETS` (a comma-separated list) restricts the run to some
//! sets; by default every set found runs, `optim` and `models` included.
//!
//! Every case runs a second time on the test device `test:0` (a backend
//! that is not the CPU's: the device-generic dispatch, transfers and
//! autograd glue a GPU takes, see `Device::Test`), and a third time on
//! `cuda:0` when a CUDA device is available (inputs moved there, the same
//! tolerances, results brought back to the CPU to compare); their
//! failures are labelled with the device, `[test:0]` or `[cuda:0]`.

mod golden {
    pub mod models;
    pub mod ops;
    pub mod optim;
}

use golden::ops;
use kiln::{Device, Tensor};
use safetensors::SafeTensors;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Sets not run unless `$KILN_GOLDEN_SETS` names them.
const OPT_IN_SETS: &[&str] = &[];

/// One case of a manifest, with its tensors loaded.
pub struct Case {
    /// The case's name (for messages only).
    pub name: String,
    /// The op, e.g. `conv2d`.
    pub op: String,
    /// Op attributes, as in the manifest.
    pub attrs: Value,
    /// Input names in order, with their tensors.
    pub inputs: Vec<(String, Tensor)>,
    /// Output names in order.
    pub outputs: Vec<String>,
    /// Inputs whose gradient is checked.
    pub grads: Vec<String>,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Every tensor of the set whose name starts with `<case>/`, keyed by
    /// the rest of the name (`out/values`, `grad/x`, `state/fc1.weight`).
    pub tensors: HashMap<String, Tensor>,
}

impl Case {
    /// The case tensor `key` (e.g. `out/out`), or an error naming it.
    pub fn tensor(&self, key: &str) -> Result<&Tensor, String> {
        self.tensors
            .get(key)
            .ok_or_else(|| format!("missing tensor {}/{key}", self.name))
    }

    /// The input called `name`.
    pub fn input(&self, name: &str) -> Option<&Tensor> {
        self.inputs.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

fn golden_dir() -> PathBuf {
    match std::env::var_os("KILN_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/golden"),
    }
}

/// Converts one safetensors view to a kiln tensor.
fn to_tensor(name: &str, v: &safetensors::tensor::TensorView<'_>) -> Result<Tensor, String> {
    use safetensors::Dtype;
    let shape = v.shape().to_vec();
    let b = v.data();
    Ok(match v.dtype() {
        Dtype::F32 => Tensor::from_vec(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<f32>>(),
            shape,
        ),
        Dtype::F64 => Tensor::from_vec(
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<f64>>(),
            shape,
        ),
        Dtype::I64 => Tensor::from_vec(
            b.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<i64>>(),
            shape,
        ),
        Dtype::BOOL => Tensor::from_vec(b.iter().map(|&x| x != 0).collect::<Vec<bool>>(), shape),
        d => return Err(format!("tensor {name}: unsupported dtype {d:?}")),
    })
}

/// Loads a set's tensors, grouped by case name (the part before the first
/// `/`).
fn load_tensors(path: &Path) -> Result<HashMap<String, HashMap<String, Tensor>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut by_case: HashMap<String, HashMap<String, Tensor>> = HashMap::new();
    for (name, view) in st.tensors() {
        let Some((case, rest)) = name.split_once('/') else {
            continue;
        };
        let t = to_tensor(&name, &view)?;
        by_case
            .entry(case.to_string())
            .or_default()
            .insert(rest.to_string(), t);
    }
    Ok(by_case)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// How far `got` is from `want`: `Err` on a shape or dtype mismatch, else
/// the largest `|got - want| - (atol + rtol·|want|)` excess (≤ 0 passes)
/// and the largest absolute error.
pub fn compare(got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<(f64, f64), String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {}, expected {}", got.dtype(), want.dtype()));
    }
    let (g, w) = (got.to_vec::<f64>(), want.to_vec::<f64>());
    let (mut excess, mut max_err) = (f64::NEG_INFINITY, 0.0f64);
    for (a, b) in g.iter().zip(&w) {
        let (err, tol) = if a == b || (a.is_nan() && b.is_nan()) {
            (0.0, atol + rtol * b.abs())
        } else {
            ((a - b).abs(), atol + rtol * b.abs())
        };
        let err = if err.is_nan() { f64::INFINITY } else { err };
        excess = excess.max(err - tol);
        max_err = max_err.max(err);
    }
    Ok((excess, max_err))
}

/// Collects the result of checking one case.
#[derive(Default)]
pub struct Report {
    failures: Vec<String>,
    max_err: Option<f64>,
}

impl Report {
    /// Records a failure for `what`.
    pub fn fail(&mut self, what: impl Into<String>) {
        self.failures.push(what.into());
    }

    /// Compares `got` (brought back to the CPU when it lives on a device)
    /// with `want` under the case's tolerances.
    pub fn check(&mut self, what: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) {
        let host;
        let got = if got.device() == Device::Cpu {
            got
        } else {
            host = got.detach().to(&Device::Cpu);
            &host
        };
        match compare(got, want, rtol, atol) {
            Err(e) => self.fail(format!("{what}: {e}")),
            Ok((excess, err)) => {
                self.max_err = Some(self.max_err.map_or(err, |m| m.max(err)));
                if excess > 0.0 {
                    self.fail(format!("{what}: max abs error {err:.3e}"));
                }
            }
        }
    }
}

/// The generic forward + backward check of an op case.
fn run_op_case(case: &Case, rep: &mut Report) -> Result<(), String> {
    // Fresh leaves, so gradients never leak between cases.
    let inputs: Vec<(String, Tensor)> = case
        .inputs
        .iter()
        .map(|(n, t)| {
            let t = t.detach();
            let t = if case.grads.contains(n) && t.dtype().is_float() {
                t.requires_grad_(true)
            } else {
                t
            };
            (n.clone(), t)
        })
        .collect();
    let outs = ops::run(&case.op, &case.attrs, &inputs)?;
    if outs.len() != case.outputs.len() {
        return Err(format!(
            "op returned {} outputs, the case has {}",
            outs.len(),
            case.outputs.len()
        ));
    }
    for (name, got) in case.outputs.iter().zip(&outs) {
        let want = case.tensor(&format!("out/{name}"))?;
        rep.check(&format!("out/{name}"), got, want, case.rtol, case.atol);
    }
    if case.grads.is_empty() {
        return Ok(());
    }
    let mut total: Option<Tensor> = None;
    for (name, got) in case.outputs.iter().zip(&outs) {
        if !got.dtype().is_float() || !got.requires_grad() {
            continue;
        }
        let Ok(go) = case.tensor(&format!("grad_out/{name}")) else {
            continue;
        };
        let term = got.mul(&go.to_dtype(got.dtype()).to(&got.device())).sum();
        total = Some(match total {
            None => term,
            Some(t) => t.add(&term),
        });
    }
    match total {
        Some(t) => t.backward(),
        None => return Err("no output requires grad; cannot check gradients".into()),
    }
    for g in &case.grads {
        let want = case.tensor(&format!("grad/{g}"))?;
        let x = &inputs
            .iter()
            .find(|(n, _)| n == g)
            .ok_or_else(|| format!("grads lists {g}, which is not an input"))?
            .1;
        let got = x.grad().unwrap_or_else(|| x.zeros_like());
        rep.check(&format!("grad/{g}"), &got, want, case.rtol, case.atol);
    }
    Ok(())
}

/// Runs one case with the runner its op needs; panics become failures.
fn run_case(case: &Case) -> Report {
    let mut rep = Report::default();
    let result = catch_unwind(AssertUnwindSafe(|| match case.op.as_str() {
        "optimizer" => golden::optim::run_case(case, &mut rep),
        "model" => golden::models::run_case(case, &mut rep),
        _ => run_op_case(case, &mut rep),
    }));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => rep.fail(e),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            rep.fail(format!("panicked: {msg}"));
        }
    }
    rep
}

fn selected_sets(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("golden: cannot read {}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "json").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .filter(|s| dir.join(format!("{s}.safetensors")).exists())
        .collect();
    found.sort();
    match std::env::var("KILN_GOLDEN_SETS") {
        Ok(list) => {
            let want: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            found.retain(|s| want.contains(&s.as_str()));
        }
        Err(_) => {
            let skipped: Vec<&String> = found
                .iter()
                .filter(|s| OPT_IN_SETS.contains(&s.as_str()))
                .collect();
            if !skipped.is_empty() {
                println!("golden: not running sets {skipped:?} (list them in KILN_GOLDEN_SETS)");
            }
            found.retain(|s| !OPT_IN_SETS.contains(&s.as_str()));
        }
    }
    found
}

/// A copy of `inputs` on `device`, taken before the CPU run can change
/// them in place (batch-norm running statistics).
fn inputs_on(inputs: &[(String, Tensor)], device: Device) -> Vec<(String, Tensor)> {
    inputs
        .iter()
        .map(|(n, t)| (n.clone(), t.to(&device)))
        .collect()
}

#[test]
fn golden() {
    // Failing cases panic inside catch_unwind; keep their output short.
    // Every case runs on the CPU and on the test device; the CUDA pass
    // runs when a GPU is present and otherwise reports its skip.
    let mut devices = vec![Device::Test(0)];
    if let Some(gpu) = kiln::testing::cuda_or_skip() {
        devices.push(gpu);
    } else {
        println!("golden: the CUDA pass is skipped, the cases run on the CPU and test:0");
    }
    let dir = golden_dir();
    let sets = selected_sets(&dir);
    assert!(
        !sets.is_empty(),
        "golden: no <set>.json + <set>.safetensors selected in {}",
        dir.display()
    );
    let prev_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let (mut passed, mut failed) = (0usize, Vec::new());
    let mut dev_passed = vec![0usize; devices.len()];
    let mut dev_failed = vec![0usize; devices.len()];
    for set in &sets {
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{set}.json")))
                .unwrap_or_else(|e| panic!("golden: {set}.json: {e}")),
        )
        .unwrap_or_else(|e| panic!("golden: {set}.json: {e}"));
        let mut tensors = load_tensors(&dir.join(format!("{set}.safetensors")))
            .unwrap_or_else(|e| panic!("golden: {e}"));
        let cases = manifest["cases"].as_array().cloned().unwrap_or_default();
        let (mut set_pass, mut set_fail) = (0, 0);
        for c in &cases {
            let name = c["name"].as_str().unwrap_or("?").to_string();
            let case_tensors = tensors.remove(&name).unwrap_or_default();
            let input_names = strings(c, "inputs");
            let inputs: Result<Vec<(String, Tensor)>, String> = input_names
                .iter()
                .map(|n| {
                    case_tensors
                        .get(n)
                        .map(|t| (n.clone(), t.shallow_clone()))
                        .ok_or_else(|| format!("missing input tensor {name}/{n}"))
                })
                .collect();
            let case_on = |inputs: Vec<(String, Tensor)>, tensors| Case {
                name: name.clone(),
                op: c["op"].as_str().unwrap_or("").to_string(),
                attrs: c["attrs"].clone(),
                inputs,
                outputs: strings(c, "outputs"),
                grads: strings(c, "grads"),
                rtol: c["rtol"].as_f64().unwrap_or(1e-4),
                atol: c["atol"].as_f64().unwrap_or(1e-5),
                tensors,
            };
            let dev_cases: Vec<Case> = match &inputs {
                Ok(inputs) => devices
                    .iter()
                    .map(|&d| case_on(inputs_on(inputs, d), share_all(&case_tensors)))
                    .collect(),
                Err(_) => Vec::new(),
            };
            let rep = match inputs {
                Err(e) => {
                    let mut r = Report::default();
                    r.fail(e);
                    r
                }
                Ok(inputs) => run_case(&case_on(inputs, case_tensors)),
            };
            for (k, gc) in dev_cases.iter().enumerate() {
                let d = devices[k];
                let grep = run_case(gc);
                if grep.failures.is_empty() {
                    dev_passed[k] += 1;
                } else {
                    dev_failed[k] += 1;
                    let line = format!(
                        "FAIL {set}/{name} [{d}] (op {}): {}",
                        c["op"].as_str().unwrap_or("?"),
                        grep.failures.join("; ")
                    );
                    println!("{line}");
                    failed.push(line);
                }
            }
            if rep.failures.is_empty() {
                set_pass += 1;
            } else {
                set_fail += 1;
                let err = rep
                    .max_err
                    .map_or("none compared".to_string(), |e| format!("{e:.3e}"));
                let line = format!(
                    "FAIL {set}/{name} (op {}, largest error {err}): {}",
                    c["op"].as_str().unwrap_or("?"),
                    rep.failures.join("; ")
                );
                println!("{line}");
                failed.push(line);
            }
        }
        println!("golden: set {set}: {set_pass} passed, {set_fail} failed");
        passed += set_pass;
    }
    std::panic::set_hook(prev_hook);
    let cpu_failed = failed.len() - dev_failed.iter().sum::<usize>();
    println!(
        "golden: {passed} passed, {cpu_failed} failed, {} cases in sets {sets:?} from {}",
        passed + cpu_failed,
        dir.display()
    );
    for (k, d) in devices.iter().enumerate() {
        println!(
            "golden on {d}: {} passed, {} failed",
            dev_passed[k], dev_failed[k]
        );
    }
    assert!(
        failed.is_empty(),
        "golden: {} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Another map over the same tensors (shared handles, not copies).
fn share_all(m: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    m.iter()
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect()
}
