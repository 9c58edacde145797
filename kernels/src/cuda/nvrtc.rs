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

/// A kernel (`.entry` point) of a PTX text and its parameters' types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtxEntry {
    /// The kernel's name.
    pub name: String,
    /// Each parameter's type: `.u32`, `.u64`, `.f32`, `.f64`, ..., or
    /// `.b8[N]` for an `N`-byte struct passed by value.
    pub params: Vec<String>,
}

/// The kernels of a PTX text with their parameter lists.
pub fn ptx_entries(ptx: &str) -> Vec<PtxEntry> {
    let mut out: Vec<PtxEntry> = Vec::new();
    let mut open = false;
    for line in ptx.lines() {
        let l = line.trim();
        if let Some(rest) = l
            .strip_prefix(".visible .entry ")
            .or_else(|| l.strip_prefix(".entry "))
        {
            let name = rest.split(['(', ' ']).next().unwrap_or("").to_string();
            out.push(PtxEntry {
                name,
                params: Vec::new(),
            });
            open = !rest.contains(')');
        } else if open {
            if let Some(p) = l.strip_prefix(".param ")
                && let Some(e) = out.last_mut()
            {
                e.params.push(param_type(p));
            }
            if l.starts_with(')') {
                open = false;
            }
        }
    }
    out
}

/// The type of one `.param` declaration (without `.param`), e.g.
/// `.u64 k_param_0` -> `.u64`, `.align 8 .b8 k_param_2[144]` -> `.b8[144]`.
fn param_type(decl: &str) -> String {
    let mut ty = String::new();
    let mut toks = decl.split_whitespace().peekable();
    while let Some(t) = toks.next() {
        match t {
            ".align" => {
                toks.next();
            }
            ".ptr" | ".global" | ".const" | ".shared" | ".local" => {}
            t if t.starts_with('.') && ty.is_empty() => ty = t.to_string(),
            name => {
                if let Some(n) = name
                    .split_once('[')
                    .map(|(_, n)| n.trim_end_matches([']', ',']))
                {
                    ty = format!("{ty}[{n}]");
                }
                break;
            }
        }
    }
    ty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_parameters() {
        let ptx = "
.version 8.0
.visible .entry unary_neg_f32(
	.param .u64 unary_neg_f32_param_0,
	.param .u64 .ptr .global .align 4 unary_neg_f32_param_1,
	.param .align 8 .b8 unary_neg_f32_param_2[144],
	.param .f64 unary_neg_f32_param_3
)
{
	ret;
}
.visible .entry empty()
{
}
";
        let e = ptx_entries(ptx);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "unary_neg_f32");
        assert_eq!(e[0].params, [".u64", ".u64", ".b8[144]", ".f64"]);
        assert_eq!(e[1].name, "empty");
        assert!(e[1].params.is_empty());
    }
}
