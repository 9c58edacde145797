//! Compile-fail cases for `#[derive(Module)]` misuse: each
//! `ui-tests/derive/*.rs` must fail with the error in its `.stderr`.

#[test]
fn derive_module_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui-tests/derive/*.rs");
}
