//! Compile-fail cases for `#[derive(Module)]` misuse: each
//! `ui-tests/derive/*.rs` must fail with the error in its `.stderr`.

#[path = "common/toolchain.rs"]
mod toolchain;

#[test]
fn derive_module_ui() {
    if !toolchain::on_pinned_toolchain() {
        return;
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("ui-tests/derive/*.rs");
}
