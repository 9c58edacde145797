//! General checkpoints, as PyTorch's save/load tutorial writes them
//! (`{"epoch", "model_state_dict", "optimizer_state_dict", ...}`), in one
//! safetensors file: every tensor of the nested [`Dict`] is a safetensors
//! tensor, named by its path (`model_state_dict/fc.weight`,
//! `optimizer_state_dict/state/0/momentum_buffer`), and the structure with
//! every other value is JSON in the header's `__metadata__` under
//! `kiln.checkpoint`.
//!
//! The JSON is plain JSON for `null`, bools, ints, floats (written with
//! enough digits to read back bit for bit), strings and lists; three tagged
//! objects stand for what JSON lacks: `{"$dict": [[key, value], ...]}` (an
//! ordered dict whose keys are strings or ints), `{"$tensor": "name"}` and
//! `{"$float": "nan" | "inf" | "-inf"}`, plus `{"$bytes": [..]}`.
//!
//! [`load_checkpoint`] also opens `torch.save` files (see
//! [`load_pth`](super::load_pth)), so a checkpoint written by PyTorch loads
//! the same way.

use super::safetensors::{deserialize_at, read_checked, serialize_at};
use super::value::{Dict, Key, Value};
use super::{IoError, write_file_atomic};
use crate::{StateDict, Tensor};
use serde_json::{Value as Json, json};
use std::collections::HashSet;
use std::path::Path;

/// The `__metadata__` key holding a checkpoint's structure.
pub const CHECKPOINT_KEY: &str = "kiln.checkpoint";

/// Saves `checkpoint` to `path` as one safetensors file, atomically (a
/// temporary file in the same directory, synced, renamed over `path`), like
/// `torch.save(checkpoint, path)` in PyTorch's tutorial. An interrupted save
/// leaves the previous file at `path` intact.
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::io::{Dict, load_checkpoint, save_checkpoint};
/// let mut ckpt = Dict::new();
/// ckpt.insert("epoch", 3);
/// ckpt.insert("weights", Tensor::ones([2]));
/// let path = std::env::temp_dir().join(format!("kiln_doc_ckpt_{}.safetensors", std::process::id()));
/// save_checkpoint(&ckpt, &path).unwrap();
/// let back = load_checkpoint(&path).unwrap();
/// assert_eq!(back.get("epoch").unwrap().as_int(), Some(3));
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_checkpoint(checkpoint: &Dict, path: impl AsRef<Path>) -> Result<(), IoError> {
    let path = path.as_ref();
    let bytes = serialize_checkpoint_at(checkpoint, path)?;
    write_file_atomic(path, &bytes)
}

/// The bytes [`save_checkpoint`] writes.
pub fn serialize_checkpoint(checkpoint: &Dict) -> Result<Vec<u8>, IoError> {
    serialize_checkpoint_at(checkpoint, Path::new("<memory>"))
}

/// Loads a checkpoint: a file written by [`save_checkpoint`], a
/// `torch.save` file (zip or legacy format), or a plain safetensors state
/// dict (which comes back as a dict of tensors). Untrusted files give an
/// [`IoError`], never a panic.
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Dict, IoError> {
    let path = path.as_ref();
    if super::pth::is_pth_file(path)? {
        return match super::pth::load_pth(path)? {
            Value::Dict(d) => Ok(d),
            other => Err(IoError::Pth {
                path: path.to_path_buf(),
                reason: format!("the saved object is a {}, not a dict", other.type_name()),
            }),
        };
    }
    let bytes = read_checked(path)?;
    deserialize_checkpoint_at(&bytes, path)
}

/// Parses the bytes of a file written by [`save_checkpoint`] (or of a plain
/// safetensors state dict).
pub fn deserialize_checkpoint(bytes: &[u8]) -> Result<Dict, IoError> {
    deserialize_checkpoint_at(bytes, Path::new("<memory>"))
}

fn serialize_checkpoint_at(checkpoint: &Dict, path: &Path) -> Result<Vec<u8>, IoError> {
    let mut w = Writer {
        tensors: StateDict::new(),
        names: HashSet::new(),
    };
    let tree = w.dict(checkpoint, "");
    let text = serde_json::to_string(&tree).map_err(|e| IoError::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serialize_at(&w.tensors, &[(CHECKPOINT_KEY, &text)], path)
}

struct Writer {
    tensors: StateDict,
    names: HashSet<String>,
}

impl Writer {
    fn dict(&mut self, d: &Dict, at: &str) -> Json {
        let items: Vec<Json> = d
            .iter()
            .map(|(k, v)| {
                let key = match k {
                    Key::Int(i) => json!(i),
                    Key::Str(s) => json!(s),
                };
                let sub = if at.is_empty() {
                    k.to_string()
                } else {
                    format!("{at}/{k}")
                };
                json!([key, self.value(v, &sub)])
            })
            .collect();
        json!({ "$dict": items })
    }

    fn value(&mut self, v: &Value, at: &str) -> Json {
        match v {
            Value::None => Json::Null,
            Value::Bool(b) => json!(b),
            Value::Int(i) => json!(i),
            Value::Float(x) if x.is_finite() => json!(x),
            Value::Float(x) => {
                let s = if x.is_nan() {
                    "nan"
                } else if *x > 0.0 {
                    "inf"
                } else {
                    "-inf"
                };
                json!({ "$float": s })
            }
            Value::Str(s) => json!(s),
            Value::Bytes(b) => json!({ "$bytes": b }),
            Value::List(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.value(x, &format!("{at}/{i}")))
                    .collect(),
            ),
            Value::Dict(d) => self.dict(d, at),
            Value::Tensor(t) => {
                let mut name = at.to_string();
                let mut n = 1;
                while name == "__metadata__" || !self.names.insert(name.clone()) {
                    name = format!("{at}#{n}");
                    n += 1;
                }
                self.tensors.insert(name.clone(), t.detach());
                json!({ "$tensor": name })
            }
        }
    }
}

fn deserialize_checkpoint_at(bytes: &[u8], path: &Path) -> Result<Dict, IoError> {
    let (tensors, meta) = deserialize_at(bytes, path)?;
    let Some(text) = meta.get(CHECKPOINT_KEY) else {
        // A plain state dict: its tensors, by name.
        return Ok(tensors
            .into_iter()
            .map(|(k, t)| (Key::Str(k), Value::Tensor(t)))
            .collect());
    };
    let bad = |reason: String| IoError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let tree: Json = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let mut r = Reader {
        tensors: &tensors,
        used: HashSet::new(),
    };
    let root = r.value(&tree).map_err(bad)?;
    if r.used.len() != tensors.len() {
        let stray: Vec<&str> = tensors.keys().filter(|k| !r.used.contains(*k)).collect();
        return Err(bad(format!(
            "tensors {stray:?} are not referenced by the structure"
        )));
    }
    match root {
        Value::Dict(d) => Ok(d),
        other => Err(bad(format!(
            "the root is a {}, not a dict",
            other.type_name()
        ))),
    }
}

struct Reader<'a> {
    tensors: &'a StateDict,
    used: HashSet<String>,
}

impl Reader<'_> {
    fn value(&mut self, j: &Json) -> Result<Value, String> {
        Ok(match j {
            Json::Null => Value::None,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) if !n.is_f64() => Value::Int(i),
                (_, Some(x)) if n.is_f64() => Value::Float(x),
                _ => return Err(format!("number {n} is out of range")),
            },
            Json::String(s) => Value::Str(s.clone()),
            Json::Array(items) => Value::List(
                items
                    .iter()
                    .map(|x| self.value(x))
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(obj) => {
                let (tag, body) = match obj.iter().next() {
                    Some(pair) if obj.len() == 1 => pair,
                    _ => return Err("an object must have exactly one `$` tag".into()),
                };
                match tag.as_str() {
                    "$dict" => self.dict(body)?,
                    "$tensor" => self.tensor(body)?,
                    "$float" => Value::Float(match body.as_str() {
                        Some("nan") => f64::NAN,
                        Some("inf") => f64::INFINITY,
                        Some("-inf") => f64::NEG_INFINITY,
                        _ => return Err(format!("bad $float {body}")),
                    }),
                    "$bytes" => Value::Bytes(
                        body.as_array()
                            .ok_or("$bytes must be a list")?
                            .iter()
                            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                            .collect::<Option<_>>()
                            .ok_or("$bytes holds a non-byte")?,
                    ),
                    other => return Err(format!("unknown tag `{other}`")),
                }
            }
        })
    }

    fn dict(&mut self, body: &Json) -> Result<Value, String> {
        let items = body.as_array().ok_or("$dict must be a list of pairs")?;
        let mut d = Dict::new();
        for item in items {
            let pair = item
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or("$dict entries must be [key, value] pairs")?;
            let key = match &pair[0] {
                Json::String(s) => Key::Str(s.clone()),
                Json::Number(n) if n.is_i64() => Key::Int(n.as_i64().expect("checked")),
                other => return Err(format!("dict key {other} is not a string or an int")),
            };
            if d.get(key.clone()).is_some() {
                return Err(format!("dict key `{key}` appears twice"));
            }
            let v = self.value(&pair[1])?;
            d.insert(key, v);
        }
        Ok(Value::Dict(d))
    }

    fn tensor(&mut self, body: &Json) -> Result<Value, String> {
        let name = body.as_str().ok_or("$tensor must name a tensor")?;
        let t: &Tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| format!("tensor `{name}` is not in the file"))?;
        if !self.used.insert(name.to_string()) {
            return Err(format!("tensor `{name}` is referenced twice"));
        }
        Ok(Value::Tensor(t.shallow_clone()))
    }
}
