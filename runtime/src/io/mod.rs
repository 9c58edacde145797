//! Checkpoints: state dicts saved and loaded as safetensors files that
//! PyTorch reads and writes (`safetensors.torch.save_file` / `load_file`),
//! general checkpoints (model, optimizer, scheduler, RNG state and user
//! values in one safetensors file, see [`save_checkpoint`]), and
//! `torch.save` files read through an allow-list (see [`load_pth`]).

mod checkpoint;
mod error;
mod module_io;
mod pth;
mod safetensors;
mod value;

pub use self::safetensors::{
    deserialize_safetensors, load_safetensors, load_safetensors_with_metadata, save_safetensors,
    serialize_safetensors,
};
pub use checkpoint::{
    CHECKPOINT_KEY, deserialize_checkpoint, load_checkpoint, save_checkpoint, serialize_checkpoint,
};
pub use error::IoError;
pub use module_io::{CheckpointError, ModuleCheckpoint};
pub use pth::{load_pth, load_pth_state_dict, load_state_dict_file};
pub use value::{Dict, Key, Value};

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` atomically: into a new temporary file in the
/// same directory, `fsync`ed, renamed over `path`, then the directory is
/// `fsync`ed so the rename itself survives a crash. Readers see either the
/// old file or the complete new one, never a partial write; on any error
/// the temporary file is removed and an existing `path` is left untouched.
pub fn write_file_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), IoError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let path = path.as_ref();
    let io = |p: &Path, action, source| IoError::Io {
        path: p.to_path_buf(),
        action,
        source,
    };
    let Some(name) = path.file_name() else {
        return Err(IoError::Serialize {
            path: path.to_path_buf(),
            reason: "the path does not name a file".into(),
        });
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io(&tmp, "creating", e))?;
        f.write_all(bytes).map_err(|e| io(&tmp, "writing", e))?;
        f.sync_all().map_err(|e| io(&tmp, "syncing", e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| io(path, "renaming into place", e))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Persist the directory entry. Opening a directory for sync is a Unix
    // idiom; elsewhere the rename is as durable as the platform makes it.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, "syncing directory", e))?;
    Ok(())
}
