//! `network!`'s diagnostics (`ui-tests/fail`, one `.rs` + `.stderr` pair per
//! error), the forms it accepts (`ui-tests/pass`) and `#[derive(Module)]`'s
//! errors for its misuse (`ui-tests/derive`), in one trybuild run.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test
//! ui`, then read them as a user would.

#[path = "common/toolchain.rs"]
mod toolchain;

#[test]
fn ui() {
    if !toolchain::on_pinned_toolchain() {
        return;
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("ui-tests/fail/*.rs");
    t.compile_fail("ui-tests/derive/*.rs");
    t.pass("ui-tests/pass/*.rs");
}
