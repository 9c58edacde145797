//! [`IoError`]: what can go wrong reading or writing a checkpoint.

use std::fmt;
use std::path::PathBuf;

/// An error from saving or loading a safetensors checkpoint. Every variant
/// that concerns a file names it; loading an untrusted file reports one of
/// these instead of panicking.
#[derive(Debug)]
#[non_exhaustive]
pub enum IoError {
    /// The operating system refused a read, write, rename or sync.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What was being done (`"reading"`, `"renaming into place"`, ...).
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is shorter than the 8-byte header length, or its header
    /// claims more bytes than the file holds.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header length field says are needed (header + 8).
        needed: u64,
        /// Bytes the file holds.
        file_len: u64,
    },
    /// The JSON header is not valid (bad UTF-8, bad JSON, wrong structure).
    InvalidHeader {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// A tensor's dtype is not one safetensors defines.
    UnknownDtype {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The dtype string found in the header.
        dtype: String,
    },
    /// A tensor's dtype is a valid safetensors dtype that kiln has no
    /// storage for (e.g. `I32`, `F8_E4M3`).
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The dtype string.
        dtype: String,
    },
    /// Offsets overlap, leave gaps, run past the end of the file, or
    /// disagree with the shape's byte size (as checked by the `safetensors`
    /// crate and by kiln).
    InvalidLayout {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// A `torch.save` file (`.pth`/`.pt`) that cannot be read: not a zip or
    /// legacy torch file, a corrupt pickle, a storage missing or shorter
    /// than its tensors, a dtype kiln has no storage for.
    Pth {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// A `torch.save` file refers to a Python global outside the allow-list
    /// (tensor rebuild functions, storage types, `OrderedDict`, ...): a
    /// malicious file's `os.system`, or a pickled class kiln cannot
    /// represent. Nothing from the file is ever executed.
    ForbiddenGlobal {
        /// The file.
        path: PathBuf,
        /// The global as `module.name`.
        global: String,
    },
    /// A kiln checkpoint's `kiln.checkpoint` metadata is missing or does not
    /// describe the file's tensors.
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// A state dict cannot be written as safetensors (e.g. a tensor named
    /// `__metadata__`, which the format reserves).
    Serialize {
        /// The target file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::Io {
                path,
                action,
                source,
            } => write!(f, "{}: error {action}: {source}", path.display()),
            IoError::Truncated {
                path,
                needed,
                file_len,
            } => write!(
                f,
                "{}: truncated safetensors file: the header needs {needed} bytes but the file has {file_len}",
                path.display()
            ),
            IoError::InvalidHeader { path, reason } => {
                write!(
                    f,
                    "{}: invalid safetensors header: {reason}",
                    path.display()
                )
            }
            IoError::UnknownDtype {
                path,
                tensor,
                dtype,
            } => write!(
                f,
                "{}: tensor `{tensor}` has unknown dtype `{dtype}`",
                path.display()
            ),
            IoError::UnsupportedDtype {
                path,
                tensor,
                dtype,
            } => write!(
                f,
                "{}: tensor `{tensor}` has dtype `{dtype}`, which kiln does not support (F32, F64, F16, BF16, I64, U8, BOOL)",
                path.display()
            ),
            IoError::InvalidLayout { path, reason } => {
                write!(
                    f,
                    "{}: invalid safetensors data layout: {reason}",
                    path.display()
                )
            }
            IoError::Pth { path, reason } => {
                write!(
                    f,
                    "{}: cannot read torch.save file: {reason}",
                    path.display()
                )
            }
            IoError::ForbiddenGlobal { path, global } => write!(
                f,
                "{}: refused the Python global `{global}`: only tensors, storages, \
                 OrderedDict and plain values are loaded, and nothing is executed",
                path.display()
            ),
            IoError::Checkpoint { path, reason } => {
                write!(f, "{}: invalid kiln checkpoint: {reason}", path.display())
            }
            IoError::Serialize { path, reason } => {
                write!(f, "{}: cannot save: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IoError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
