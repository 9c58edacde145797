//! `randn` benchmark: median time to fill a 10⁷-element float32 tensor
//! with `Tensor::randn` (PyTorch's bits, see `kiln::rng`), and, in the same
//! run, the same in PyTorch through `bench/torch_rng.py` when a Python with
//! torch is found (`KILN_TORCH_PYTHON`, default `python3`). Prints one JSON
//! line: kiln's time, PyTorch's, their ratio, and whether the first 4096
//! numbers after `manual_seed(0)` have the same bits on both sides.
//!
//! Run: `cargo run --release --example bench_rng [-- --n 10000000 --iters 7]`

use kiln::prelude::*;
use std::process::Command;
use std::time::Instant;

/// 64-bit FNV-1a over the little-endian bytes of the first 4096 values.
fn head_fnv(v: &[f32]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.iter().take(4096).flat_map(|x| x.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| {
            w[1].parse()
                .unwrap_or_else(|_| panic!("{name}: expected a number, got {}", w[1]))
        })
        .unwrap_or(default)
}

/// PyTorch's line from `bench/torch_rng.py`, if a torch is there.
fn torch_side(n: usize, iters: usize) -> Option<serde_json::Value> {
    let python = std::env::var("KILN_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_rng.py");
    let out = Command::new(&python)
        .args([script, "--n", &n.to_string(), "--iters", &iters.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "bench_rng: no PyTorch side ({python}: {})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("failed")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--n", 10_000_000);
    let iters = arg(&args, "--iters", 7).max(1);

    manual_seed(0);
    let first = Tensor::randn([n]).to_vec::<f32>();
    for _ in 0..2 {
        Tensor::randn([n]);
    }
    let mut samples: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            let x = Tensor::randn([n]);
            let s = t.elapsed().as_secs_f64();
            drop(x);
            s
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    let kiln_ms = samples[iters / 2] * 1e3;
    let fnv = head_fnv(&first);

    let mut line = serde_json::json!({
        "workload": "randn_f32",
        "n": n,
        "kiln_ms": (kiln_ms * 100.0).round() / 100.0,
        "threads": rayon::current_num_threads(),
        "head_fnv": fnv,
    });
    if let Some(t) = torch_side(n, iters) {
        let torch_ms = t["torch_ms"].as_f64().unwrap_or(f64::NAN);
        line["torch_ms"] = t["torch_ms"].clone();
        line["torch_threads"] = t["threads"].clone();
        line["ratio_kiln_over_torch"] =
            serde_json::json!((kiln_ms / torch_ms * 1000.0).round() / 1000.0);
        line["bit_identical_head"] =
            serde_json::json!(t["head_fnv"].as_str() == Some(fnv.as_str()));
    }
    println!("{line}");
}
