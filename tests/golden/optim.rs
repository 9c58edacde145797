//! Runner for `optimizer` cases (set `optim`): set each gradient, `step()`,
//! compare the parameter after every step. Not wired up yet: the set runs
//! only when `KILN_GOLDEN_SETS` lists it.

use crate::{Case, Report};

/// Checks one optimizer case.
pub fn run_case(case: &Case, _rep: &mut Report) -> Result<(), String> {
    Err(format!(
        "optimizer cases are not supported by the golden harness yet ({} steps of {})",
        case.attrs["steps"], case.attrs["kind"]
    ))
}
