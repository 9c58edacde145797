//! Reading `torch.save` files (`.pth`, `.pt`): the zip format of PyTorch
//! 1.6 and later, and the legacy format before it (magic number, protocol,
//! system info, the pickle, the storage keys, then the raw storages).
//!
//! The pickles are parsed by the `pytorch-reader` crate (Burn's reader,
//! which depends on neither PyTorch nor Burn): it interprets the opcode
//! stream, resolves persistent ids to storages, rebuilds tensors (including
//! strided views and views that share one storage) and never calls
//! anything a file names: an unknown `GLOBAL` + `REDUCE` is kept as an
//! opaque object carrying the global's name. It is hardened against
//! hostile input (lengths checked against the file before allocating, memo
//! bombs and nesting depth bounded). kiln adds:
//!
//! - an allow-list: the crate accepts only PyTorch's tensor rebuild
//!   functions, storage types, `OrderedDict` and `set`; every other global
//!   left in the loaded object (`os.system`, a pickled class, a
//!   `torch.device`) makes the load fail with
//!   [`IoError::ForbiddenGlobal`] naming it, rather than being dropped;
//! - each tensor's size is checked against the file's before its bytes
//!   are materialised;
//! - the conversion to kiln's [`Value`] tree and tensors.
//!
//! A state dict's `_metadata` attribute (module versions), which the
//! reader merges into the dict's items, is dropped. Dict keys come back as strings (the crate stores `int` keys as their
//! decimal text; [`Key::as_index`] reads them back), and in sorted order:
//! numerically when every key is an integer, else by string.

use super::IoError;
use super::value::{Dict, Key, Value};
use crate::dtype::DType;
use crate::{StateDict, Tensor};
use pytorch_reader::{PickleError, PickleValue, PytorchError, PytorchReader};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The type name the crate gives a rebuilt tensor.
const TENSOR: &str = "torch.Tensor";

/// True when `path` starts like a `torch.save` file: a zip archive, or a
/// pickle (protocol 2 to 5) that is not a safetensors header.
pub(crate) fn is_pth_file(path: &Path) -> Result<bool, IoError> {
    let mut head = [0u8; 9];
    let mut f = std::fs::File::open(path).map_err(|e| IoError::Io {
        path: path.to_path_buf(),
        action: "opening",
        source: e,
    })?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => {
                return Err(IoError::Io {
                    path: path.to_path_buf(),
                    action: "reading",
                    source: e,
                });
            }
        }
    }
    Ok(looks_like_pth(&head[..n]))
}

fn looks_like_pth(head: &[u8]) -> bool {
    let zip = head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06");
    let safetensors = head.len() == 9 && head[8] == b'{';
    let pickle = head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]);
    zip || (pickle && !safetensors)
}

/// Loads a `torch.save` file into a [`Value`], like `torch.load(path,
/// weights_only=True)`: dicts, lists (tuples become lists), ints, floats,
/// strings, bools, `None`, bytes and tensors of the dtypes kiln has
/// (float32/64, float16, bfloat16, int64, uint8, bool). Tensors are CPU
/// tensors owning their data.
///
/// Any other object is an error ([`IoError::ForbiddenGlobal`] names the
/// global); a truncated, corrupt or hostile file is an [`IoError`], never a
/// panic, and no tensor larger than the file is allocated.
///
/// ```no_run
/// use kiln_runtime::io::load_pth;
/// let ckpt = load_pth("checkpoint.pth").unwrap();
/// let epoch = ckpt.as_dict().and_then(|d| d.get("epoch")).and_then(|v| v.as_int());
/// ```
pub fn load_pth(path: impl AsRef<Path>) -> Result<Value, IoError> {
    let path = path.as_ref();
    let file_len = std::fs::metadata(path)
        .map_err(|e| IoError::Io {
            path: path.to_path_buf(),
            action: "reading metadata of",
            source: e,
        })?
        .len();
    let root = PytorchReader::read_pickle_data(path, None).map_err(|e| map_err(e, path))?;
    let tensors = if holds_tensor(&root) {
        PytorchReader::new(path)
            .map_err(|e| map_err(e, path))?
            .into_tensors()
    } else {
        HashMap::new()
    };
    let mut c = Converter {
        path,
        file_len,
        tensors,
        at: Vec::new(),
    };
    c.value(root)
}

/// Loads a `torch.save(model.state_dict(), path)` file as a [`StateDict`]
/// (sorted by name), ready for `model.load_state_dict`.
pub fn load_pth_state_dict(path: impl AsRef<Path>) -> Result<StateDict, IoError> {
    let path = path.as_ref();
    let v = load_pth(path)?;
    v.to_state_dict().ok_or_else(|| IoError::Pth {
        path: path.to_path_buf(),
        reason: format!(
            "the saved object is a {}, not a state dict of tensors",
            v.type_name()
        ),
    })
}

/// Loads a state dict from `path`, whatever its format: a `torch.save`
/// file (zip or legacy) or a safetensors file. This is what
/// [`ModuleCheckpoint::load_state_dict_from`](super::ModuleCheckpoint::load_state_dict_from)
/// reads.
pub fn load_state_dict_file(path: impl AsRef<Path>) -> Result<StateDict, IoError> {
    let path = path.as_ref();
    if is_pth_file(path)? {
        load_pth_state_dict(path)
    } else {
        super::load_safetensors(path)
    }
}

fn holds_tensor(v: &PickleValue) -> bool {
    match v {
        PickleValue::Unsupported(name) => name == TENSOR,
        PickleValue::List(items) => items.iter().any(holds_tensor),
        PickleValue::Dict(d) => d.values().any(holds_tensor),
        _ => false,
    }
}

fn map_err(e: PytorchError, path: &Path) -> IoError {
    if let PytorchError::Pickle(PickleError::UnsupportedType(name)) = &e
        && is_global_name(name)
    {
        return IoError::ForbiddenGlobal {
            path: path.to_path_buf(),
            global: name.clone(),
        };
    }
    IoError::Pth {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// `module.name` as the crate reports a global (no spaces, a dot inside).
fn is_global_name(s: &str) -> bool {
    s.contains('.') && !s.contains(' ') && !s.starts_with('.') && !s.ends_with('.')
}

struct Converter<'a> {
    path: &'a Path,
    file_len: u64,
    tensors: HashMap<String, pytorch_reader::Tensor>,
    at: Vec<String>,
}

impl Converter<'_> {
    fn err(&self, reason: String) -> IoError {
        IoError::Pth {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn value(&mut self, v: PickleValue) -> Result<Value, IoError> {
        Ok(match v {
            PickleValue::None => Value::None,
            PickleValue::Bool(b) => Value::Bool(b),
            PickleValue::Int(i) => Value::Int(i),
            PickleValue::Float(x) => Value::Float(x),
            PickleValue::String(s) => Value::Str(s),
            PickleValue::Bytes(b) => Value::Bytes(b),
            PickleValue::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, x) in items.into_iter().enumerate() {
                    self.at.push(i.to_string());
                    out.push(self.value(x)?);
                    self.at.pop();
                }
                Value::List(out)
            }
            PickleValue::Dict(d) => {
                let mut pairs: Vec<(String, PickleValue)> = d.into_iter().collect();
                // `state_dict()` returns an OrderedDict whose `_metadata`
                // attribute (module versions) the reader merges into the
                // items; it is not an entry.
                pairs.retain(|(k, v)| !(k == "_metadata" && matches!(v, PickleValue::Dict(_))));
                if pairs.iter().all(|(k, _)| k.parse::<i64>().is_ok()) {
                    pairs.sort_by_key(|(k, _)| k.parse::<i64>().unwrap_or(0));
                } else {
                    pairs.sort_by(|a, b| a.0.cmp(&b.0));
                }
                let mut out = Dict::new();
                for (k, x) in pairs {
                    self.at.push(k.clone());
                    let v = self.value(x)?;
                    self.at.pop();
                    out.insert(Key::Str(k), v);
                }
                Value::Dict(out)
            }
            PickleValue::Unsupported(name) if name == TENSOR => Value::Tensor(self.tensor()?),
            PickleValue::Unsupported(name) if is_global_name(&name) => {
                return Err(IoError::ForbiddenGlobal {
                    path: self.path.to_path_buf(),
                    global: name,
                });
            }
            PickleValue::Unsupported(name) => {
                return Err(self.err(format!(
                    "`{}` holds a `{name}` object kiln cannot represent",
                    self.at.join(".")
                )));
            }
        })
    }

    fn tensor(&mut self) -> Result<Tensor, IoError> {
        let name = self.at.join(".");
        let t = self
            .tensors
            .remove(&name)
            .ok_or_else(|| self.err(format!("tensor `{name}` has no data in the file")))?;
        let dtype = match t.dtype() {
            pytorch_reader::DType::F32 => DType::F32,
            pytorch_reader::DType::F64 => DType::F64,
            pytorch_reader::DType::F16 => DType::F16,
            pytorch_reader::DType::BF16 => DType::BF16,
            pytorch_reader::DType::I64 => DType::I64,
            pytorch_reader::DType::I32 => DType::I32,
            pytorch_reader::DType::I16 => DType::I16,
            pytorch_reader::DType::U8 => DType::U8,
            pytorch_reader::DType::Bool => DType::Bool,
            other => {
                return Err(IoError::UnsupportedDtype {
                    path: self.path.to_path_buf(),
                    tensor: name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        if t.byte_len() as u64 > self.file_len {
            return Err(self.err(format!(
                "tensor `{name}` of shape {:?} needs {} bytes, more than the {}-byte file",
                t.shape(),
                t.byte_len(),
                self.file_len
            )));
        }
        let bytes = t
            .read()
            .map_err(|e| self.err(format!("reading tensor `{name}`: {e}")))?;
        if bytes.len() != t.byte_len() {
            return Err(self.err(format!(
                "tensor `{name}`: read {} bytes, expected {}",
                bytes.len(),
                t.byte_len()
            )));
        }
        let storage = super::safetensors::decode(dtype, &bytes);
        Ok(Tensor::from_cpu(storage, t.shape()))
    }
}
