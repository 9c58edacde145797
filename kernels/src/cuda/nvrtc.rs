//! Finding, loading and calling NVRTC.
//!
//! cudarc loads `libnvrtc` by its standard names through the dynamic
//! loader, which only searches `LD_LIBRARY_PATH` as it was when the process
//! started. [`ensure_loaded`] first loads the library from an explicit
//! path when one is known (`$KILN_NVRTC_LIB`, a file or a directory, or a
//! directory of `LD_LIBRARY_PATH`): once a library with the soname
//! `libnvrtc.so.12` is in the process, cudarc's load by name finds it.

use super::KernelFamily;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Environment variable naming the NVRTC library file or its directory.
pub const NVRTC_LIB_ENV: &str = "KILN_NVRTC_LIB";

/// Library file names tried inside a directory, most specific first.
const FILE_NAMES: &[&str] = &[
    "libnvrtc.so.12",
    "libnvrtc.so",
    "libnvrtc.so.13",
    "libnvrtc.so.11.2",
    "nvrtc64_120_0.dll",
];

/// Looks for an NVRTC library file in `dir`.
pub fn find_in_dir(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// An NVRTC library file named by `$KILN_NVRTC_LIB` (a file, or a
/// directory holding one) or found in a directory of `LD_LIBRARY_PATH`.
pub fn find_library() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os(NVRTC_LIB_ENV) {
        let p = PathBuf::from(v);
        if p.is_file() {
            return Some(p);
        }
        if let Some(f) = find_in_dir(&p) {
            return Some(f);
        }
    }
    let dirs = std::env::var_os("LD_LIBRARY_PATH")?;
    std::env::split_paths(&dirs).find_map(|d| find_in_dir(&d))
}

/// Loads the NVRTC library at `path` into the process for good, so that
/// cudarc's later load by name finds it.
pub fn preload(path: &Path) -> Result<(), String> {
    // SAFETY: loading NVRTC runs no initialisers with preconditions; the
    // handle is leaked so the library stays loaded for the process.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
    std::mem::forget(lib);
    Ok(())
}

/// Makes NVRTC loadable (once per process): preloads the library found by
/// [`find_library`], then checks that cudarc can load it. Returns the
/// reason when NVRTC is not available.
pub fn ensure_loaded() -> Result<(), String> {
    static STATE: OnceLock<Result<(), String>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let mut note = String::new();
            if let Some(p) = find_library()
                && let Err(e) = preload(&p)
            {
                note = format!(" ({e})");
            }
            // SAFETY: only probes whether the library can be opened.
            if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                Ok(())
            } else {
                Err(format!(
                    "the NVRTC library (libnvrtc) was not found{note}; install the CUDA toolkit or \
                     `pip install nvidia-cuda-nvrtc-cu12` and set {NVRTC_LIB_ENV} to its lib directory"
                ))
            }
        })
        .clone()
}

/// NVRTC's version as (major, minor).
pub fn version() -> Result<(i32, i32), String> {
    ensure_loaded()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded; both pointers are valid for writes.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| format!("nvrtcVersion failed: {e:?}"))?;
    Ok((major, minor))
}

/// Compiles a kernel family to PTX for a virtual architecture such as
/// `"compute_80"`. The error carries NVRTC's log.
pub fn compile_ptx(
    family: &KernelFamily,
    arch: &'static str,
) -> Result<cudarc::nvrtc::Ptx, String> {
    ensure_loaded()?;
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some(arch),
        name: Some(format!("{}.cu", family.name)),
        options: vec!["--std=c++17".into()],
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(family.source(), opts).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => format!(
            "NVRTC failed to compile {}.cu for {arch}:\n{}",
            family.name,
            log.to_string_lossy()
        ),
        other => format!("NVRTC failed on {}.cu for {arch}: {other:?}", family.name),
    })
}

/// Names of the kernels (`.entry` points) in a PTX text.
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix(".visible .entry ")
                .or_else(|| l.strip_prefix(".entry "))?;
            Some(rest.split(['(', ' ']).next().unwrap_or("").to_string())
        })
        .collect()
}
