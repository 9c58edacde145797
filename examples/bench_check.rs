//! How long `cargo check` takes on a crate that declares VGG-16 with
//! `network!`: cold (the crate checked from scratch, kiln itself already
//! built, as in an editor session) and incremental (after touching the
//! file, as on every save). Prints one JSON line.
//!
//! The crate is generated under `target/bench-check/` from
//! `ui-tests/pass/vgg16.rs` and uses this checkout of kiln by path.
//!
//! Run: `cargo run --release --example bench_check`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn cargo_check(dir: &Path, target: &Path) -> f64 {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let start = Instant::now();
    let status = Command::new(cargo)
        .args(["check", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .status()
        .expect("failed to run cargo");
    assert!(status.success(), "cargo check failed in {}", dir.display());
    start.elapsed().as_secs_f64()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target").join("bench-check").join("vgg16");
    let target = root.join("target").join("bench-check").join("target");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"vgg16-check\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nkiln = {{ path = {:?} }}\n\n[workspace]\n",
        root.display().to_string()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let source = std::fs::read_to_string(root.join("ui-tests/pass/vgg16.rs")).unwrap();
    let main_rs = dir.join("src").join("main.rs");
    std::fs::write(&main_rs, &source).unwrap();

    // Build kiln's own check artifacts once so "cold" measures the crate.
    let deps = cargo_check(&dir, &target);
    // Cold: forget this crate's artifacts only.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let clean = Command::new(&cargo)
        .args(["clean", "--quiet", "-p", "vgg16-check"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("failed to run cargo clean");
    assert!(clean.success());
    let cold = cargo_check(&dir, &target);
    // Incremental: the file changes (a comment), as when a user saves.
    let mut incremental = Vec::new();
    for i in 0..3 {
        std::fs::write(&main_rs, format!("{source}\n// edit {i}\n")).unwrap();
        incremental.push(cargo_check(&dir, &target));
    }
    incremental.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{{\"workload\": \"cargo_check_vgg16\", \"first_with_deps_s\": {deps:.2}, \"cold_s\": {cold:.2}, \"incremental_s\": {:.2}}}",
        incremental[1]
    );
}
