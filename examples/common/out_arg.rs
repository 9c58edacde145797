//! The command line of the tutorials that write one file: `--out PATH` or
//! `--help`. Include with `#[path = "common/out_arg.rs"] mod out_arg;`.

use std::path::PathBuf;

/// The `--out` path from the command line (`default` without one);
/// `--help` prints `usage` and exits.
pub fn parse_out_arg(default: PathBuf, usage: &str) -> Result<PathBuf, String> {
    let mut out = default;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().ok_or("--out needs a path")?.into(),
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(out)
}
