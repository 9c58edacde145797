//! How long `cargo check` takes on a crate that declares VGG-16, or
//! ResNet-50 (16 instantiations of a generic Bottleneck with residual
//! shortcuts), with `network!`: cold (the crate checked from scratch, kiln
//! itself already built, as in an editor session) and incremental (after
//! touching the file, as on every save), each 3 times. Prints one JSON line
//! per model with the minimum and every run.
//!
//! The crates are generated under `target/bench-check/` from the library's
//! own declarations (`kiln::models::Vgg16` from `src/models/vgg.rs`;
//! `Bottleneck` and `ResNet50` from `src/models/resnet.rs`), copied as a
//! user crate writes them, and use this checkout of kiln by path.
//!
//! Run: `cargo run --release --example bench_check [-- vgg16|resnet50]`

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

/// The `network!` declarations of the structs `names` in the library file
/// `src/models/{file}`, as a user crate writes them, and a `main` naming
/// the last one's constructor.
fn model_source(root: &Path, file: &str, names: &[&str]) -> String {
    let text = std::fs::read_to_string(root.join("src/models").join(file)).unwrap();
    let mut source = String::from("use kiln::network;\n");
    for block in text.split("\nnetwork! {").skip(1) {
        let block = &block[..block.find("\n}\n").expect("a network! block ends") + 3];
        if names
            .iter()
            .any(|name| block.contains(&format!("pub struct {name}<")))
        {
            source.push_str("\nnetwork! {");
            source.push_str(block);
        }
    }
    let last = names.last().unwrap();
    source + &format!("\nfn main() {{\n    let _ = {last}::<1000>::new;\n}}\n")
}

/// Runs `cargo check` on the model's crate: once to build kiln's check
/// artifacts, then 3 cold and 3 incremental runs.
fn bench(root: &Path, model: &str) {
    let dir = root.join("target").join("bench-check").join(model);
    let target = root.join("target").join("bench-check").join("target");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let package = format!("{model}-check");
    let manifest = format!(
        "[package]\nname = \"{package}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nkiln = {{ path = {:?} }}\n\n[workspace]\n",
        root.display().to_string()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let source = match model {
        "vgg16" => model_source(root, "vgg.rs", &["Vgg16"]),
        _ => model_source(root, "resnet.rs", &["Bottleneck", "ResNet50"]),
    };
    let main_rs = dir.join("src").join("main.rs");
    std::fs::write(&main_rs, &source).unwrap();

    // Build kiln's own check artifacts once so "cold" measures the crate.
    let deps = cargo_check(&dir, &target);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cold = Vec::new();
    for _ in 0..3 {
        // Cold: forget this crate's artifacts only.
        let clean = Command::new(&cargo)
            .args(["clean", "--quiet", "-p", &package])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("failed to run cargo clean");
        assert!(clean.success());
        cold.push(cargo_check(&dir, &target));
    }
    // Incremental: the file changes (a comment), as when a user saves.
    let mut incremental = Vec::new();
    for i in 0..3 {
        std::fs::write(&main_rs, format!("{source}\n// edit {i}\n")).unwrap();
        incremental.push(cargo_check(&dir, &target));
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let list = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{{\"workload\": \"cargo_check_{model}\", \"first_with_deps_s\": {deps:.2}, \
         \"cold_min_s\": {:.2}, \"cold_s\": [{}], \"incremental_min_s\": {:.2}, \
         \"incremental_s\": [{}]}}",
        min(&cold),
        list(&cold),
        min(&incremental),
        list(&incremental)
    );
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let models: Vec<String> = match std::env::args().nth(1) {
        Some(model) => vec![model],
        None => vec!["vgg16".to_owned(), "resnet50".to_owned()],
    };
    for model in &models {
        assert!(
            ["vgg16", "resnet50"].contains(&model.as_str()),
            "unknown model {model:?}: vgg16 or resnet50"
        );
        bench(&root, model);
    }
}
