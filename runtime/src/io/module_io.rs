//! Checkpoints of whole modules: `model.save_safetensors(path)` and
//! `model.load_safetensors(path, strict)` on anything that implements
//! [`Module`], over [`save_safetensors`] / [`load_safetensors`].

use super::{IoError, load_safetensors, load_state_dict_file, save_safetensors};
use crate::nn::{LoadReport, LoadStateDictError, Module};
use std::fmt;
use std::path::Path;

/// Why loading a module checkpoint failed: the file, or its fit to the model.
#[derive(Debug)]
pub enum CheckpointError {
    /// The file could not be read or is not a valid safetensors file.
    Io(IoError),
    /// The file's tensors do not fit the model (missing, unexpected or
    /// mis-shaped keys); the model is unchanged.
    StateDict(LoadStateDictError),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io(e) => write!(f, "{e}"),
            CheckpointError::StateDict(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io(e) => Some(e),
            CheckpointError::StateDict(e) => Some(e),
        }
    }
}

impl From<IoError> for CheckpointError {
    fn from(e: IoError) -> Self {
        CheckpointError::Io(e)
    }
}

impl From<LoadStateDictError> for CheckpointError {
    fn from(e: LoadStateDictError) -> Self {
        CheckpointError::StateDict(e)
    }
}

/// Saving and loading a module's `state_dict` as a safetensors file, with
/// PyTorch's key names, layouts and dtypes (implemented for every module).
pub trait ModuleCheckpoint {
    /// Writes parameters and buffers to `path` atomically, in the format
    /// `safetensors.torch.load_file` reads.
    fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<(), IoError>;

    /// Loads a file written by kiln or by PyTorch's
    /// `safetensors.torch.save_file(model.state_dict())` into this model by
    /// name. On any error the model is left unchanged.
    fn load_safetensors(
        &mut self,
        path: impl AsRef<Path>,
        strict: bool,
    ) -> Result<LoadReport, CheckpointError>;

    /// Loads a state dict file of any format kiln reads into this model by
    /// name: a `torch.save(model.state_dict(), path)` file (`.pth`/`.pt`,
    /// zip or legacy format) or a safetensors file, like
    /// `model.load_state_dict(torch.load(path))`. On any error the model is
    /// left unchanged.
    fn load_state_dict_from(
        &mut self,
        path: impl AsRef<Path>,
        strict: bool,
    ) -> Result<LoadReport, CheckpointError>;
}

impl<M: Module + ?Sized> ModuleCheckpoint for M {
    fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<(), IoError> {
        save_safetensors(&self.state_dict(), path, &[])
    }

    fn load_safetensors(
        &mut self,
        path: impl AsRef<Path>,
        strict: bool,
    ) -> Result<LoadReport, CheckpointError> {
        let state = load_safetensors(path)?;
        Ok(self.load_state_dict(&state, strict)?)
    }

    fn load_state_dict_from(
        &mut self,
        path: impl AsRef<Path>,
        strict: bool,
    ) -> Result<LoadReport, CheckpointError> {
        let state = load_state_dict_file(path)?;
        Ok(self.load_state_dict(&state, strict)?)
    }
}
