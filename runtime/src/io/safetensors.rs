//! State dicts as safetensors files, byte-compatible with
//! `safetensors.torch.save_file` / `load_file`.
//!
//! Serialization and header parsing go through the `safetensors` crate (the
//! same Rust code PyTorch's writer runs, so the header layout, tensor order
//! and 8-byte padding match), which checks that the data offsets are
//! contiguous, non-overlapping, match each shape's byte size and cover the
//! file exactly. kiln adds what it does not check: the header length against
//! the file size before anything large is allocated, a clear error for
//! unknown and unsupported dtypes, reserved tensor names on save, and a
//! second bounds check on every slice before copying.
//!
//! Files are read into memory rather than memory-mapped: checkpoints of the
//! models kiln trains are small, every tensor is copied into owned storage
//! anyway (kiln tensors own their `Vec`s), and reading avoids the `unsafe`
//! and the undefined behaviour a mapping has when another process truncates
//! the file underneath it.

use super::error::IoError;
use crate::dtype::DType;
use crate::storage::{CpuStorage, Storage};
use crate::{Device, StateDict, Tensor};
use half::{bf16, f16};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The key the format reserves for the string → string metadata map.
const METADATA_KEY: &str = "__metadata__";

/// The header-size ceiling of the `safetensors` crate (100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// Saves `state` to `path` as safetensors, like
/// `safetensors.torch.save_file(state_dict, path, metadata)`.
///
/// Every tensor keeps its name, dtype and shape (non-contiguous views and
/// device tensors are copied to contiguous host memory first). `metadata`
/// goes into the header's `__metadata__` map; `"format": "pt"` is added
/// unless `metadata` sets `format`, so PyTorch tooling recognises the file.
/// The write is atomic: the bytes go to a temporary file in the same
/// directory, which is synced and then renamed over `path` (see
/// [`write_file_atomic`](super::write_file_atomic)), so a failure never
/// leaves a partial file at `path`.
///
/// ```
/// use kiln_runtime::{StateDict, Tensor};
/// use kiln_runtime::io::{load_safetensors, save_safetensors};
/// let mut sd = StateDict::new();
/// sd.insert("fc.weight", Tensor::ones([2, 3]));
/// let path = std::env::temp_dir().join(format!("kiln_doc_{}.safetensors", std::process::id()));
/// save_safetensors(&sd, &path, &[]).unwrap();
/// let back = load_safetensors(&path).unwrap();
/// assert_eq!(back.get("fc.weight").unwrap().shape(), &[2, 3]);
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_safetensors(
    state: &StateDict,
    path: impl AsRef<Path>,
    metadata: &[(&str, &str)],
) -> Result<(), IoError> {
    let path = path.as_ref();
    let bytes = serialize_at(state, metadata, path)?;
    super::write_file_atomic(path, &bytes)
}

/// Serializes `state` to the bytes [`save_safetensors`] would write.
pub fn serialize_safetensors(
    state: &StateDict,
    metadata: &[(&str, &str)],
) -> Result<Vec<u8>, IoError> {
    serialize_at(state, metadata, Path::new("<memory>"))
}

/// Loads every tensor of a safetensors file (written by PyTorch or kiln)
/// into a [`StateDict`] of CPU tensors, in the file's order, like
/// `safetensors.torch.load_file(path)`.
///
/// Untrusted input is safe: a truncated file, a header length beyond the
/// file, overlapping, gapped or out-of-range offsets, an unknown dtype or a
/// shape whose byte size disagrees with its offsets is an [`IoError`],
/// never a panic, and nothing larger than the file is allocated.
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<StateDict, IoError> {
    load_safetensors_with_metadata(path).map(|(sd, _)| sd)
}

/// [`load_safetensors`] that also returns the header's `__metadata__` map
/// (empty when the file has none).
pub fn load_safetensors_with_metadata(
    path: impl AsRef<Path>,
) -> Result<(StateDict, HashMap<String, String>), IoError> {
    let path = path.as_ref();
    let bytes = read_checked(path)?;
    deserialize_at(&bytes, path)
}

/// Parses safetensors `bytes` (a whole file) into a state dict and its
/// metadata map, with the checks of [`load_safetensors`].
pub fn deserialize_safetensors(
    bytes: &[u8],
) -> Result<(StateDict, HashMap<String, String>), IoError> {
    deserialize_at(bytes, Path::new("<memory>"))
}

/// Reads the file after checking its header length against its size, so a
/// lying length field never makes us allocate or read more than is there.
pub(super) fn read_checked(path: &Path) -> Result<Vec<u8>, IoError> {
    let io = |action, source| IoError::Io {
        path: path.to_path_buf(),
        action,
        source,
    };
    let mut file = std::fs::File::open(path).map_err(|e| io("opening", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| io("reading metadata of", e))?
        .len();
    let mut len_bytes = [0u8; 8];
    if file_len < 8 {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            needed: 8,
            file_len,
        });
    }
    file.read_exact(&mut len_bytes)
        .map_err(|e| io("reading", e))?;
    check_header_len(u64::from_le_bytes(len_bytes), file_len, path)?;
    let mut bytes = Vec::with_capacity(file_len as usize);
    bytes.extend_from_slice(&len_bytes);
    // `take` bounds the read even if the file grows while we read it.
    file.take(file_len - 8)
        .read_to_end(&mut bytes)
        .map_err(|e| io("reading", e))?;
    Ok(bytes)
}

fn check_header_len(n: u64, file_len: u64, path: &Path) -> Result<(), IoError> {
    if n > MAX_HEADER {
        return Err(IoError::InvalidHeader {
            path: path.to_path_buf(),
            reason: format!("header length {n} exceeds the 100 MB limit"),
        });
    }
    if n + 8 > file_len {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            needed: n + 8,
            file_len,
        });
    }
    Ok(())
}

pub(super) fn deserialize_at(
    bytes: &[u8],
    path: &Path,
) -> Result<(StateDict, HashMap<String, String>), IoError> {
    let file_len = bytes.len() as u64;
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            needed: 8,
            file_len,
        });
    };
    let n = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    check_header_len(n, file_len, path)?;
    precheck_dtypes(&bytes[8..8 + n as usize], path)?;

    let (n, meta) = SafeTensors::read_metadata(bytes).map_err(|e| map_crate_error(e, path))?;
    let data = &bytes[8 + n..];
    let mut state = StateDict::new();
    for name in meta.offset_keys() {
        let info = meta.info(&name).ok_or_else(|| IoError::InvalidHeader {
            path: path.to_path_buf(),
            reason: format!("tensor `{name}` listed but not described"),
        })?;
        let (start, end) = info.data_offsets;
        let slice = data
            .get(start..end)
            .filter(|_| start <= end)
            .ok_or_else(|| IoError::InvalidLayout {
                path: path.to_path_buf(),
                reason: format!(
                    "tensor `{name}`: offsets [{start}, {end}] outside the {}-byte data section",
                    data.len()
                ),
            })?;
        let dtype = kiln_dtype(info.dtype).ok_or_else(|| IoError::UnsupportedDtype {
            path: path.to_path_buf(),
            tensor: name.clone(),
            dtype: format!("{:?}", info.dtype),
        })?;
        let numel = info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|n| n.checked_mul(dtype.size_in_bytes()) == Some(slice.len()))
            .ok_or_else(|| IoError::InvalidLayout {
                path: path.to_path_buf(),
                reason: format!(
                    "tensor `{name}`: shape {:?} of {dtype} does not fit its {} bytes",
                    info.shape,
                    slice.len()
                ),
            })?;
        let storage = decode(dtype, slice);
        debug_assert_eq!(storage.len(), numel);
        state.insert(name, Tensor::from_cpu(storage, &info.shape));
    }
    let metadata = meta.metadata().clone().unwrap_or_default();
    Ok((state, metadata.into_iter().collect()))
}

/// Every dtype name safetensors defines (so that an unknown one gets its own
/// error rather than a generic JSON one).
const SAFETENSORS_DTYPES: &[&str] = &[
    "BOOL",
    "F4",
    "F6_E2M3",
    "F6_E3M2",
    "U8",
    "I8",
    "F8_E5M2",
    "F8_E4M3",
    "F8_E8M0",
    "F8_E4M3FNUZ",
    "F8_E5M2FNUZ",
    "I16",
    "U16",
    "F16",
    "BF16",
    "I32",
    "U32",
    "F32",
    "C64",
    "F64",
    "I64",
    "U64",
];

const KILN_DTYPES: &[&str] = &[
    "BOOL", "U8", "I16", "I32", "F16", "BF16", "F32", "F64", "I64",
];

/// Looks at each entry's `dtype` before the crate parses the header, to
/// report unknown and unsupported dtypes by tensor name.
fn precheck_dtypes(header: &[u8], path: &Path) -> Result<(), IoError> {
    let invalid = |reason: String| IoError::InvalidHeader {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(header).map_err(|e| invalid(format!("not UTF-8: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".into()))?;
    for (name, entry) in obj {
        if name == METADATA_KEY {
            continue;
        }
        let Some(dtype) = entry.get("dtype").and_then(|d| d.as_str()) else {
            return Err(invalid(format!("tensor `{name}` has no string `dtype`")));
        };
        if !SAFETENSORS_DTYPES.contains(&dtype) {
            return Err(IoError::UnknownDtype {
                path: path.to_path_buf(),
                tensor: name.clone(),
                dtype: dtype.to_string(),
            });
        }
        if !KILN_DTYPES.contains(&dtype) {
            return Err(IoError::UnsupportedDtype {
                path: path.to_path_buf(),
                tensor: name.clone(),
                dtype: dtype.to_string(),
            });
        }
    }
    Ok(())
}

fn map_crate_error(e: SafeTensorError, path: &Path) -> IoError {
    let path = path.to_path_buf();
    match e {
        SafeTensorError::InvalidHeader(_)
        | SafeTensorError::InvalidHeaderDeserialization(_)
        | SafeTensorError::JsonError(_)
        | SafeTensorError::HeaderTooLarge
        | SafeTensorError::HeaderTooSmall
        | SafeTensorError::InvalidHeaderLength => IoError::InvalidHeader {
            path,
            reason: e.to_string(),
        },
        other => IoError::InvalidLayout {
            path,
            reason: other.to_string(),
        },
    }
}

fn kiln_dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

fn safetensors_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::U8 => Dtype::U8,
        DType::Bool => Dtype::BOOL,
    }
}

/// Little-endian bytes → typed storage. `bytes.len()` is a multiple of the
/// element size (checked by the caller); no alignment is assumed.
pub(super) fn decode(dtype: DType, bytes: &[u8]) -> CpuStorage {
    fn le<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunk of N bytes")))
            .collect()
    }
    match dtype {
        DType::F32 => CpuStorage::F32(le(bytes, f32::from_le_bytes)),
        DType::F64 => CpuStorage::F64(le(bytes, f64::from_le_bytes)),
        DType::F16 => CpuStorage::F16(le(bytes, |b| f16::from_bits(u16::from_le_bytes(b)))),
        DType::BF16 => CpuStorage::BF16(le(bytes, |b| bf16::from_bits(u16::from_le_bytes(b)))),
        DType::I64 => CpuStorage::I64(le(bytes, i64::from_le_bytes)),
        DType::I32 => CpuStorage::I32(le(bytes, i32::from_le_bytes)),
        DType::I16 => CpuStorage::I16(le(bytes, i16::from_le_bytes)),
        DType::U8 => CpuStorage::U8(bytes.to_vec()),
        DType::Bool => CpuStorage::Bool(bytes.iter().map(|&b| b != 0).collect()),
    }
}

/// Typed storage (contiguous, as laid out by `layout`) → little-endian bytes.
fn encode(s: &CpuStorage) -> Vec<u8> {
    fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        let mut out = Vec::with_capacity(v.len() * N);
        for &x in v {
            out.extend_from_slice(&f(x));
        }
        out
    }
    match s {
        CpuStorage::F32(v) => le(v, f32::to_le_bytes),
        CpuStorage::F64(v) => le(v, f64::to_le_bytes),
        CpuStorage::F16(v) => le(v, |x| x.to_bits().to_le_bytes()),
        CpuStorage::BF16(v) => le(v, |x| x.to_bits().to_le_bytes()),
        CpuStorage::I64(v) => le(v, i64::to_le_bytes),
        CpuStorage::I32(v) => le(v, i32::to_le_bytes),
        CpuStorage::I16(v) => le(v, i16::to_le_bytes),
        CpuStorage::U8(v) => v.clone(),
        CpuStorage::Bool(v) => v.iter().map(|&b| b as u8).collect(),
    }
}

/// One tensor's header entry and bytes, as the crate's writer wants them.
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Entry {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

pub(super) fn serialize_at(
    state: &StateDict,
    metadata: &[(&str, &str)],
    path: &Path,
) -> Result<Vec<u8>, IoError> {
    let err = |reason: String| IoError::Serialize {
        path: PathBuf::from(path),
        reason,
    };
    let mut entries = Vec::with_capacity(state.len());
    for (name, t) in state.iter() {
        if name == METADATA_KEY {
            return Err(err(format!(
                "`{METADATA_KEY}` is reserved by the safetensors format and cannot name a tensor"
            )));
        }
        let host = t.to_device(Device::Cpu);
        let guard = host.read_storage();
        let data = match &*guard {
            Storage::Cpu(s) => encode(&s.gather(host.layout())),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(err(format!(
                    "tensor `{name}` could not be copied to the host"
                )));
            }
        };
        entries.push((
            name.to_string(),
            Entry {
                dtype: safetensors_dtype(t.dtype()),
                shape: t.shape().to_vec(),
                data,
            },
        ));
    }
    let mut meta: BTreeMap<&str, &str> = metadata.iter().copied().collect();
    meta.entry("format").or_insert("pt");
    let bare = safetensors::serialize(entries.iter().map(|(n, e)| (n.as_str(), e)), None)
        .map_err(|e| err(e.to_string()))?;
    Ok(with_metadata(&bare, &meta))
}

/// Inserts `"__metadata__": {...}` at the front of the header of `bare` (a
/// file serialized without metadata), re-padding the header to 8 bytes.
///
/// The crate takes metadata as a `HashMap`, whose random iteration order
/// would make files with several metadata keys differ from run to run; the
/// sorted map here keeps saves reproducible. The result is byte-identical to
/// the crate's own output (and PyTorch's) for a single key such as
/// `{"format": "pt"}`: metadata first, then tensors in offset order.
fn with_metadata(bare: &[u8], meta: &BTreeMap<&str, &str>) -> Vec<u8> {
    let n = u64::from_le_bytes(bare[..8].try_into().expect("8 bytes")) as usize;
    let header = std::str::from_utf8(&bare[8..8 + n])
        .expect("the crate writes UTF-8")
        .trim_end_matches(' ');
    let rest = header
        .strip_prefix('{')
        .expect("the header is a JSON object");
    let meta_json = serde_json::to_string(meta).expect("a string map serializes");
    let sep = if rest == "}" { "" } else { "," };
    let mut new_header = format!("{{\"{METADATA_KEY}\":{meta_json}{sep}{rest}");
    let padded = new_header.len().next_multiple_of(8);
    new_header.extend(std::iter::repeat_n(' ', padded - new_header.len()));
    let mut out = Vec::with_capacity(bare.len() - n + padded);
    out.extend_from_slice(&(padded as u64).to_le_bytes());
    out.extend_from_slice(new_header.as_bytes());
    out.extend_from_slice(&bare[8 + n..]);
    out
}
