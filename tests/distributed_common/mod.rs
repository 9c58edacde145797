//! Shared driver of the multi-rank tests. Each `tests/distributed_*.rs` is
//! its own test binary (`harness = false`): started by `cargo test` it
//! launches itself under `mpirun -n 2` (two single-threaded ranks, a
//! timeout) and checks how the job ended; started by `mpirun` it is one
//! rank and runs the case.

#![allow(dead_code)]

use kiln::distributed::{self, Backend};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How the launched job must end.
pub enum Expect {
    /// Every rank returns normally.
    Success,
    /// The job fails (non-zero) within the timeout, and its output
    /// contains this text.
    FailureWith(&'static str),
}

/// What the launcher side learns.
pub struct JobOutcome {
    pub success: bool,
    pub output: String,
    pub elapsed: Duration,
}

/// `mpirun`, or `None` (the test then reports itself skipped).
pub fn mpirun() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("mpirun"))
            .find(|p| p.is_file())
    })
}

/// Runs this test binary as a `ranks`-rank job and returns how it ended.
/// `envs` are passed to every rank.
pub fn launch(ranks: usize, timeout: Duration, envs: &[(&str, String)]) -> JobOutcome {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(mpirun().expect("checked by the caller"));
    cmd.args([
        "-n",
        &ranks.to_string(),
        "--oversubscribe",
        "--bind-to",
        "none",
    ])
    .args(["-x", "RAYON_NUM_THREADS=1", "-x", "KILN_DIST_TIMEOUT=60"]);
    for (k, v) in envs {
        cmd.args(["-x", &format!("{k}={v}")]);
    }
    cmd.arg(exe)
        // CI runs as root; OpenMPI refuses that without these.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("starting mpirun");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for mpirun") {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = start.elapsed();
    let output = format!("{}{}", t_out.join().unwrap(), t_err.join().unwrap());
    if status.is_none() {
        panic!("the job did not end within {timeout:?} (a hang); output:\n{output}");
    }
    JobOutcome {
        success: status.unwrap().success(),
        output,
        elapsed,
    }
}

/// The test binary's `main`: one rank of the case under `mpirun`, else
/// the launcher of a `ranks`-rank job that must end as `expect` says.
pub fn main(name: &str, ranks: usize, expect: Expect, case: fn()) {
    if distributed::launched_by_mpi() {
        let group = distributed::init_process_group(Backend::Mpi).expect("init_process_group");
        assert_eq!(distributed::world_size(), ranks, "world size");
        case();
        drop(group);
        return;
    }
    if mpirun().is_none() {
        println!(
            "test {name} ... skipped: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
        );
        if std::env::var_os("KILN_REQUIRE_MPI").is_some() {
            eprintln!("KILN_REQUIRE_MPI is set: failing instead of skipping");
            std::process::exit(1);
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("kiln-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let envs = [("KILN_TEST_DIR", dir.display().to_string())];
    let job = launch(ranks, Duration::from_secs(120), &envs);
    let ok = match expect {
        Expect::Success => job.success,
        Expect::FailureWith(text) => !job.success && job.output.contains(text),
    };
    if !ok {
        eprintln!("{}", job.output);
        panic!(
            "test {name}: the {ranks}-rank job ended wrongly (success: {})",
            job.success
        );
    }
    if let Expect::Success = expect {
        check_dir(&dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "test {name} ({ranks} ranks, {:.1} s) ... ok",
        job.elapsed.as_secs_f64()
    );
}

/// Cases that write into `KILN_TEST_DIR` leave an `expect.txt` listing
/// the file names that must be there and nothing else.
fn check_dir(dir: &std::path::Path) {
    let Ok(expect) = std::fs::read_to_string(dir.join("expect.txt")) else {
        return;
    };
    let mut want: Vec<String> = expect.lines().map(String::from).collect();
    want.push("expect.txt".into());
    want.sort();
    let mut got: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, want, "files in the output directory");
}

/// The output directory the launcher made for this job.
pub fn test_dir() -> PathBuf {
    PathBuf::from(std::env::var("KILN_TEST_DIR").expect("set by the launcher"))
}
