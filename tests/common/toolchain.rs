//! The ui-tests' `.stderr` files are rustc's wording as of the toolchain
//! they were written for; other releases word diagnostics differently.

/// The rustc release the `.stderr` snapshots were written with.
pub const PINNED_RUSTC: &str = "1.95.";

/// True when the compiler that trybuild will use is the pinned release;
/// otherwise prints why the snapshot comparison is skipped.
pub fn on_pinned_toolchain() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(&rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let pinned = version
        .strip_prefix("rustc ")
        .is_some_and(|v| v.starts_with(PINNED_RUSTC));
    if !pinned {
        eprintln!(
            "skipped: ui-test snapshots are pinned to rustc {PINNED_RUSTC}x, found {:?}",
            version.trim()
        );
    }
    pinned
}
