//! [`DistError`]: what can go wrong setting up or using a process group.

use std::fmt;

/// An error from [`init_process_group`](super::init_process_group) or a
/// collective.
#[derive(Debug)]
#[non_exhaustive]
pub enum DistError {
    /// `init_process_group` was called while a group is already running
    /// (or after one was destroyed: MPI cannot be started twice).
    AlreadyInitialized,
    /// The backend was not compiled in (e.g. `Backend::Mpi` without the
    /// `distributed` feature, `Backend::Nccl` without `nccl`).
    BackendNotBuilt {
        /// The backend asked for.
        backend: &'static str,
        /// The Cargo feature that provides it.
        feature: &'static str,
    },
    /// A shared library the backend loads at run time is missing.
    LibraryMissing {
        /// The library, e.g. `libnccl.so`.
        library: &'static str,
        /// What failed and how to fix it.
        reason: String,
    },
    /// The backend failed to start or to run a collective.
    Backend {
        /// The backend, e.g. `"MPI"`.
        backend: &'static str,
        /// What failed.
        reason: String,
    },
    /// A collective did not finish within the process group's timeout.
    Timeout {
        /// The collective, e.g. `"all_reduce"`.
        op: &'static str,
        /// The timeout in seconds.
        seconds: f64,
    },
}

impl fmt::Display for DistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistError::AlreadyInitialized => write!(
                f,
                "init_process_group: trying to initialize the default process group twice"
            ),
            DistError::BackendNotBuilt { backend, feature } => write!(
                f,
                "init_process_group: the {backend} backend is not built; enable kiln's `{feature}` feature"
            ),
            DistError::LibraryMissing { library, reason } => {
                write!(f, "init_process_group: cannot load {library}: {reason}")
            }
            DistError::Backend { backend, reason } => write!(f, "{backend}: {reason}"),
            DistError::Timeout { op, seconds } => write!(
                f,
                "{op}: timed out after {seconds} s waiting for the other ranks (a rank died, hangs, or issued collectives in another order)"
            ),
        }
    }
}

impl std::error::Error for DistError {}
