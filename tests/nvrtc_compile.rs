//! Compiles every CUDA kernel family with NVRTC, so a kernel that does not
//! compile fails here, on machines without a GPU, and checks the compiled
//! kernels against the launch layer's declarations
//! ([`kiln::backend::cuda::kernel_signatures`]): every declared kernel
//! exists with exactly the declared parameter types, and every compiled
//! kernel is declared.
//!
//! NVRTC is looked for in `$KILN_NVRTC_LIB` (file or directory),
//! `LD_LIBRARY_PATH`, and Python's `nvidia/cuda_nvrtc/lib` (the
//! `nvidia-cuda-nvrtc-cu12` wheel). Without it the test prints a notice and
//! passes, unless `KILN_REQUIRE_NVRTC=1`.
#![cfg(feature = "cuda")]

use kiln::backend::cuda::kernel_signatures;
use kiln::backend::cuda::sources::nvrtc::PtxEntry;
use kiln::backend::cuda::sources::{FAMILIES, nvrtc};
use std::collections::HashMap;
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

/// Every kernel of every family, with the family it came from.
type Compiled = Vec<(&'static str, PtxEntry)>;

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
    let results: Vec<(&str, Result<Compiled, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = archs
            .iter()
            .map(|&arch| {
                s.spawn(move || {
                    let mut all = Vec::new();
                    for f in FAMILIES {
                        let ptx = nvrtc::compile_ptx(f, arch)?;
                        let entries = nvrtc::ptx_entries(&ptx.to_src());
                        if entries.is_empty() {
                            return Err(format!("{}.cu compiled to no kernels", f.name));
                        }
                        println!("  {arch}: {}.cu -> {} kernels", f.name, entries.len());
                        all.extend(entries.into_iter().map(|e| (f.name, e)));
                    }
                    Ok(all)
                })
            })
            .collect();
        archs
            .iter()
            .copied()
            .zip(handles.into_iter().map(|h| h.join().unwrap()))
            .collect()
    });
    let declared = kernel_signatures();
    for (arch, r) in results {
        let compiled = r.unwrap_or_else(|e| panic!("{e}"));
        let by_name: HashMap<&str, (&str, &PtxEntry)> = compiled
            .iter()
            .map(|(fam, e)| (e.name.as_str(), (*fam, e)))
            .collect();
        let mut problems = Vec::new();
        for sig in &declared {
            let want: Vec<String> = sig.params.iter().map(|p| p.to_string()).collect();
            match by_name.get(sig.name.as_str()) {
                None => problems.push(format!(
                    "{} (declared by {} for {}.cu) is not in the PTX",
                    sig.name, sig.args, sig.family
                )),
                Some((fam, _)) if *fam != sig.family => problems.push(format!(
                    "{} is declared for {}.cu but compiled from {fam}.cu",
                    sig.name, sig.family
                )),
                Some((_, e)) if e.params != want => problems.push(format!(
                    "{}: {} passes {want:?} but the kernel takes {:?}",
                    sig.name, sig.args, e.params
                )),
                Some(_) => {}
            }
        }
        for (fam, e) in &compiled {
            if !declared.iter().any(|d| d.name == e.name) {
                problems.push(format!(
                    "{} in {fam}.cu has no launcher declaration",
                    e.name
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "{arch}: the kernel sources and the launch layer disagree:\n{}",
            problems.join("\n")
        );
        println!(
            "compiled {} kernel sources ({} kernels) for {arch}; all {} declared kernels match",
            FAMILIES.len(),
            compiled.len(),
            declared.len()
        );
    }
}
