//! Compiles every CUDA kernel family with NVRTC, so a kernel that does not
//! compile fails here, on machines without a GPU.
//!
//! NVRTC is looked for in `$KILN_NVRTC_LIB` (file or directory),
//! `LD_LIBRARY_PATH`, and Python's `nvidia/cuda_nvrtc/lib` (the
//! `nvidia-cuda-nvrtc-cu12` wheel). Without it the test prints a notice and
//! passes, unless `KILN_REQUIRE_NVRTC=1`.
#![cfg(feature = "cuda")]

use kiln::backend::cuda::sources::{FAMILIES, nvrtc};
use std::path::PathBuf;

/// The wheel's library directory, asked of Python.
fn python_nvrtc_dir() -> Option<PathBuf> {
    let script =
        "import nvidia.cuda_nvrtc as m, os; print(os.path.join(list(m.__path__)[0], 'lib'))";
    for py in ["python3", "python"] {
        if let Ok(out) = std::process::Command::new(py).args(["-c", script]).output()
            && out.status.success()
        {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.is_dir() {
                return Some(dir);
            }
        }
    }
    None
}

fn load_nvrtc() -> Result<String, String> {
    let found =
        nvrtc::find_library().or_else(|| python_nvrtc_dir().and_then(|d| nvrtc::find_in_dir(&d)));
    if let Some(p) = &found {
        nvrtc::preload(p)?;
    }
    nvrtc::ensure_loaded()?;
    let (major, minor) = nvrtc::version()?;
    Ok(format!(
        "NVRTC {major}.{minor} from {}",
        found.map_or("the default search path".into(), |p| p
            .display()
            .to_string())
    ))
}

/// Kernels the runtime launches by name, spot-checked across families.
fn expected_kernels() -> Vec<String> {
    let all = [
        "f32", "f64", "f16", "bf16", "i64", "i32", "i16", "u8", "bool",
    ];
    let floats = ["f32", "f64", "f16", "bf16"];
    let mut v = Vec::new();
    for a in all {
        v.push(format!("copy_{a}"));
        v.push(format!("assign_{a}"));
        v.push(format!("fill_{a}"));
        v.push(format!("where_{a}"));
        v.push(format!("cmp_eq_{a}"));
        v.push(format!("sum_block_{a}"));
        v.push(format!("sum_thread_{a}"));
        v.push(format!("index_select_{a}"));
        for b in all {
            v.push(format!("cast_{a}_{b}"));
        }
    }
    for f in floats {
        for k in [
            "binary_add",
            "binary_maximum",
            "inplace_add",
            "unary_exp",
            "unary_add_scalar",
            "unary_pow",
            "unary_relu",
            "max_block",
            "min_thread",
            "softmax_fwd",
            "softmax_bwd",
            "cross_entropy_fwd",
            "cross_entropy_bwd",
            "nll_fwd",
            "nll_bwd",
            "im2col",
            "col2im",
            "add_bias",
            "max_pool2d_fwd",
            "max_pool2d_bwd",
            "avg_pool2d_fwd",
            "avg_pool2d_bwd",
            "adaptive_avg_pool2d_fwd",
            "adaptive_avg_pool2d_bwd",
            "bn_stats",
            "bn_apply",
            "bn_running_stats",
            "bn_bwd_reduce",
            "bn_bwd_apply",
            "bn_acc_to",
            "index_add",
            "gather",
            "scatter_add",
            "sgd",
            "adam",
            "rmsprop",
        ] {
            v.push(format!("{k}_{f}"));
        }
    }
    v.extend(
        [
            "binary_add_i64",
            "binary_mul_i32",
            "binary_add_i16",
            "unary_neg_i64",
            "unary_neg_i32",
            "inplace_add_i16",
            "inplace_add_bool",
            "one_hot_i64",
            "cast_f32_f16_direct",
        ]
        .map(String::from),
    );
    v
}

#[test]
fn every_kernel_family_compiles() {
    let how = match load_nvrtc() {
        Ok(h) => h,
        Err(e) => {
            if std::env::var("KILN_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
                panic!("NVRTC is required (KILN_REQUIRE_NVRTC=1) but unavailable: {e}");
            }
            println!("skipped: NVRTC not available, kernel compilation not checked: {e}");
            return;
        }
    };
    println!("{how}");
    let archs = ["compute_80", "compute_90"];
    let results: Vec<(&str, Result<Vec<String>, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = archs
            .iter()
            .map(|&arch| {
                s.spawn(move || {
                    let mut names = Vec::new();
                    for f in FAMILIES {
                        let ptx = nvrtc::compile_ptx(f, arch)?;
                        let entries = nvrtc::ptx_entries(&ptx.to_src());
                        if entries.is_empty() {
                            return Err(format!("{}.cu compiled to no kernels", f.name));
                        }
                        println!("  {arch}: {}.cu -> {} kernels", f.name, entries.len());
                        names.extend(entries);
                    }
                    Ok(names)
                })
            })
            .collect();
        archs
            .iter()
            .copied()
            .zip(handles.into_iter().map(|h| h.join().unwrap()))
            .collect()
    });
    let expected = expected_kernels();
    for (arch, r) in results {
        let names = r.unwrap_or_else(|e| panic!("{e}"));
        let missing: Vec<&String> = expected.iter().filter(|k| !names.contains(k)).collect();
        assert!(
            missing.is_empty(),
            "{arch}: kernels missing from the PTX: {missing:?}"
        );
        println!(
            "compiled {} kernel sources ({} kernels) for {arch}",
            FAMILIES.len(),
            names.len()
        );
    }
}
