//! safetensors checkpoints: PyTorch-written fixtures load with the right
//! names, dtypes and values; kiln-written files match PyTorch's layout and
//! round-trip bit for bit; writes are atomic; malformed files are typed
//! errors, never panics.

use half::{bf16, f16};
use kiln::io::{
    IoError, deserialize_safetensors, load_safetensors, load_safetensors_with_metadata,
    save_safetensors, serialize_safetensors,
};
use kiln::rng::Generator;
use kiln::{DType, StateDict, Tensor};
use std::path::{Path, PathBuf};

#[path = "common/temp_dir.rs"]
mod temp_dir;
use temp_dir::temp_dir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// The fixture at `name`, or `None` (printing `skipped: ...`, a failure
/// under `KILN_REQUIRE_FIXTURES=1`) when the shared fixtures are not
/// checked out next to the repository.
fn fixture(name: &str) -> Option<PathBuf> {
    let p = fixtures().join(name);
    kiln::testing::fixture_or_skip(&p, "a shared fixture").then_some(p)
}

/// The JSON header of a safetensors file.
fn header(bytes: &[u8]) -> (usize, serde_json::Value) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (n, serde_json::from_slice(&bytes[8..8 + n]).unwrap())
}

/// A file from a header JSON and a data section.
fn build(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

const LENET_KEYS: [(&str, &[usize]); 10] = [
    ("conv1.bias", &[6]),
    ("conv1.weight", &[6, 1, 5, 5]),
    ("conv2.bias", &[16]),
    ("conv2.weight", &[16, 6, 5, 5]),
    ("fc1.bias", &[120]),
    ("fc1.weight", &[120, 400]),
    ("fc2.bias", &[84]),
    ("fc2.weight", &[84, 120]),
    ("fc3.bias", &[10]),
    ("fc3.weight", &[10, 84]),
];

#[test]
fn pytorch_lenet_loads_in_three_dtypes() {
    let (Some(p32), Some(p16), Some(pb16)) = (
        fixture("lenet5_torch_f32.safetensors"),
        fixture("lenet5_torch_f16.safetensors"),
        fixture("lenet5_torch_bf16.safetensors"),
    ) else {
        return;
    };
    let (sd32, meta) = load_safetensors_with_metadata(&p32).unwrap();
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    let sd16 = load_safetensors(&p16).unwrap();
    let sdb16 = load_safetensors(&pb16).unwrap();
    for sd in [&sd32, &sd16, &sdb16] {
        assert_eq!(sd.len(), LENET_KEYS.len());
    }
    for (name, shape) in LENET_KEYS {
        let t32 = sd32.get(name).unwrap();
        let t16 = sd16.get(name).unwrap();
        let tb16 = sdb16.get(name).unwrap();
        assert_eq!((t32.dtype(), t32.shape()), (DType::F32, shape), "{name}");
        assert_eq!((t16.dtype(), t16.shape()), (DType::F16, shape), "{name}");
        assert_eq!((tb16.dtype(), tb16.shape()), (DType::BF16, shape), "{name}");
        let v32 = t32.to_vec::<f32>();
        // PyTorch's .half()/.bfloat16() round to nearest even, as `half` does.
        let want16: Vec<f16> = v32.iter().map(|&x| f16::from_f32(x)).collect();
        let wantb16: Vec<bf16> = v32.iter().map(|&x| bf16::from_f32(x)).collect();
        assert_eq!(t16.to_vec::<f16>(), want16, "{name}");
        assert_eq!(tb16.to_vec::<bf16>(), wantb16, "{name}");
    }
}

#[test]
fn pytorch_batchnorm_state_has_int64_counter() {
    let Some(p) = fixture("small_bn_torch.safetensors") else {
        return;
    };
    let sd = load_safetensors(&p).unwrap();
    let nbt = sd.get("features.1.num_batches_tracked").unwrap();
    assert_eq!(nbt.dtype(), DType::I64);
    assert_eq!(nbt.shape(), &[] as &[usize]);
    assert_eq!(nbt.to_vec::<i64>(), vec![3]);
    for k in [
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "features.1.running_mean",
        "features.1.running_var",
        "classifier.0.weight",
        "classifier.0.bias",
    ] {
        assert_eq!(sd.get(k).unwrap().dtype(), DType::F32, "{k}");
    }
    assert_eq!(sd.get("classifier.0.weight").unwrap().shape(), &[10, 512]);
    // Running variances of real batches are positive.
    assert!(
        sd.get("features.1.running_var")
            .unwrap()
            .to_vec::<f32>()
            .iter()
            .all(|&v| v > 0.0)
    );
}

#[test]
fn resaving_pytorch_files_reproduces_them_byte_for_byte() {
    for name in [
        "lenet5_torch_f32.safetensors",
        "lenet5_torch_f16.safetensors",
        "lenet5_torch_bf16.safetensors",
        "small_bn_torch.safetensors",
    ] {
        let Some(p) = fixture(name) else { return };
        let original = std::fs::read(&p).unwrap();
        let sd = load_safetensors(&p).unwrap();
        let ours = serialize_safetensors(&sd, &[]).unwrap();
        assert!(
            ours == original,
            "{name}: kiln's bytes differ from PyTorch's"
        );
    }
}

fn all_dtypes() -> StateDict {
    let mut sd = StateDict::new();
    sd.insert(
        "f32",
        Tensor::from_vec(vec![1.5f32, -0.0, f32::MAX, f32::NAN, 1e-40, 7.0], [2, 3]),
    );
    sd.insert(
        "f64",
        Tensor::from_vec(vec![std::f64::consts::PI, -1e300], [2]),
    );
    sd.insert(
        "f16",
        Tensor::from_vec(
            vec![
                f16::from_f32(0.1),
                f16::INFINITY,
                f16::MIN_POSITIVE_SUBNORMAL,
            ],
            [3, 1],
        ),
    );
    sd.insert(
        "bf16",
        Tensor::from_vec(vec![bf16::from_f32(-3.25), bf16::NEG_INFINITY], [1, 2]),
    );
    sd.insert(
        "i64",
        Tensor::from_vec(vec![i64::MIN, -1, 3, i64::MAX], [4]),
    );
    sd.insert("i32", Tensor::from_vec(vec![i32::MIN, -1, i32::MAX], [3]));
    sd.insert("i16", Tensor::from_vec(vec![i16::MIN, 7, i16::MAX], [3]));
    sd.insert("u8", Tensor::from_vec(vec![0u8, 127, 255], [3]));
    sd.insert(
        "bool",
        Tensor::from_vec(vec![true, false, true, true], [2, 2]),
    );
    sd.insert("scalar", Tensor::scalar(42i64));
    sd.insert("empty", Tensor::from_vec(Vec::<f32>::new(), [0, 4]));
    // A non-contiguous view is written in its logical (row-major) order.
    sd.insert(
        "view",
        Tensor::from_vec((0..6).map(|x| x as f32).collect(), [2, 3]).t(),
    );
    sd
}

fn bits(t: &Tensor) -> Vec<u64> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .iter()
            .map(|x| x.to_bits() as u64)
            .collect(),
        DType::F64 => t.to_vec::<f64>().iter().map(|x| x.to_bits()).collect(),
        DType::F16 => t
            .to_vec::<f16>()
            .iter()
            .map(|x| x.to_bits() as u64)
            .collect(),
        DType::BF16 => t
            .to_vec::<bf16>()
            .iter()
            .map(|x| x.to_bits() as u64)
            .collect(),
        DType::I64 => t.to_vec::<i64>().iter().map(|&x| x as u64).collect(),
        DType::I32 => t.to_vec::<i32>().iter().map(|&x| x as u64).collect(),
        DType::I16 => t.to_vec::<i16>().iter().map(|&x| x as u64).collect(),
        DType::U8 => t.to_vec::<u8>().iter().map(|&x| x as u64).collect(),
        DType::Bool => t.to_vec::<bool>().iter().map(|&x| x as u64).collect(),
    }
}

#[test]
fn every_dtype_round_trips_bit_identically() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("all.safetensors");
    let sd = all_dtypes();
    save_safetensors(&sd, &path, &[("epoch", "7")]).unwrap();
    let (back, meta) = load_safetensors_with_metadata(&path).unwrap();
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    assert_eq!(meta.get("epoch").map(String::as_str), Some("7"));
    assert_eq!(back.len(), sd.len());
    for (name, t) in sd.iter() {
        let b = back.get(name).unwrap();
        assert_eq!(b.dtype(), t.dtype(), "{name}");
        assert_eq!(b.shape(), t.shape(), "{name}");
        assert_eq!(bits(b), bits(t), "{name}");
    }
    assert_eq!(
        back.get("view").unwrap().to_vec::<f32>(),
        vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    );
    // Saving what was loaded gives the same file again.
    let again = serialize_safetensors(&back, &[("epoch", "7")]).unwrap();
    assert!(again == std::fs::read(&path).unwrap());
    // An empty state dict is a valid file too.
    let empty = serialize_safetensors(&StateDict::new(), &[]).unwrap();
    let (sd, meta) = deserialize_safetensors(&empty).unwrap();
    assert!(sd.is_empty());
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn header_is_what_pytorch_expects() {
    let bytes = serialize_safetensors(&all_dtypes(), &[]).unwrap();
    let (n, h) = header(&bytes);
    assert_eq!(n % 8, 0, "header padded to 8 bytes like PyTorch's writer");
    assert_eq!(h["__metadata__"], serde_json::json!({"format": "pt"}));
    let expect = [
        ("f32", "F32"),
        ("f64", "F64"),
        ("f16", "F16"),
        ("bf16", "BF16"),
        ("i64", "I64"),
        ("u8", "U8"),
        ("bool", "BOOL"),
    ];
    for (name, dtype) in expect {
        assert_eq!(h[name]["dtype"], dtype, "{name}");
    }
    assert_eq!(h["f32"]["shape"], serde_json::json!([2, 3]));
    assert_eq!(h["scalar"]["shape"], serde_json::json!([]));
    // Offsets tile the data section exactly, largest alignment first.
    let mut spans: Vec<(u64, u64)> = h
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| {
            (
                v["data_offsets"][0].as_u64().unwrap(),
                v["data_offsets"][1].as_u64().unwrap(),
            )
        })
        .collect();
    spans.sort();
    let mut at = 0;
    for (s, e) in spans {
        assert_eq!(s, at);
        at = e;
    }
    assert_eq!(at as usize, bytes.len() - 8 - n);
    // The PyTorch fixtures have the same shape of header.
    if let Some(p) = fixture("small_bn_torch.safetensors") {
        let (_, h) = header(&std::fs::read(p).unwrap());
        assert_eq!(h["__metadata__"], serde_json::json!({"format": "pt"}));
        assert_eq!(h["features.1.num_batches_tracked"]["dtype"], "I64");
    }
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn failed_writes_leave_no_temp_files_and_keep_the_target() {
    let dir = temp_dir("atomic");
    let sd = all_dtypes();

    // Target directory missing: an I/O error naming the file, nothing written.
    let missing = dir.join("no/such/dir/model.safetensors");
    let err = save_safetensors(&sd, &missing, &[]).unwrap_err();
    assert!(matches!(err, IoError::Io { .. }), "{err}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    assert!(dir_entries(&dir).is_empty());

    // The rename fails (the target is a non-empty directory): the temp file
    // is removed again.
    let blocked = dir.join("blocked.safetensors");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"x").unwrap();
    let err = save_safetensors(&sd, &blocked, &[]).unwrap_err();
    assert!(matches!(err, IoError::Io { .. }), "{err}");
    assert_eq!(dir_entries(&dir), vec!["blocked.safetensors"]);

    // Serialization fails: an existing file is untouched.
    let target = dir.join("model.safetensors");
    save_safetensors(&sd, &target, &[]).unwrap();
    let before = std::fs::read(&target).unwrap();
    let mut bad = StateDict::new();
    bad.insert("__metadata__", Tensor::ones([1]));
    let err = save_safetensors(&bad, &target, &[]).unwrap_err();
    assert!(matches!(err, IoError::Serialize { .. }), "{err}");
    assert!(std::fs::read(&target).unwrap() == before);
    assert_eq!(
        dir_entries(&dir),
        vec!["blocked.safetensors", "model.safetensors"]
    );

    // Overwriting replaces the whole file.
    let mut small = StateDict::new();
    small.insert("w", Tensor::zeros([1]));
    save_safetensors(&small, &target, &[]).unwrap();
    assert_eq!(load_safetensors(&target).unwrap().len(), 1);
    assert_eq!(
        dir_entries(&dir),
        vec!["blocked.safetensors", "model.safetensors"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_files_are_typed_errors() {
    let dir = temp_dir("malformed");
    let good = serialize_safetensors(&all_dtypes(), &[]).unwrap();
    let load = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = load_safetensors(&p).unwrap_err();
        assert!(
            e.to_string().contains(name),
            "error should name the file: {e}"
        );
        e
    };

    let e = load("short.safetensors", &good[..5]);
    assert!(
        matches!(
            e,
            IoError::Truncated {
                needed: 8,
                file_len: 5,
                ..
            }
        ),
        "{e}"
    );
    let e = load("trimmed.safetensors", &good[..good.len() - 3]);
    assert!(matches!(e, IoError::InvalidLayout { .. }), "{e}");
    let e = load("header_cut.safetensors", &good[..40]);
    assert!(matches!(e, IoError::Truncated { .. }), "{e}");

    // A header length far beyond the file: rejected before allocating.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(50_000_000u64).to_le_bytes());
    let e = load("huge_len.safetensors", &huge);
    assert!(
        matches!(
            e,
            IoError::Truncated {
                needed: 50_000_008,
                ..
            }
        ),
        "{e}"
    );
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = load("max_len.safetensors", &huge);
    assert!(matches!(e, IoError::InvalidHeader { .. }), "{e}");

    // Offsets and shapes that do not tile the data: layout errors.
    for (name, data_len, header) in [
        (
            "overlap",
            12,
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
        ),
        (
            "out_of_range",
            4,
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        ),
        (
            "gap",
            8,
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
        ),
        (
            "shape_mismatch",
            8,
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        ),
        (
            "overflow",
            8,
            r#"{"a":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
        ),
    ] {
        let e = load(
            &format!("{name}.safetensors"),
            &build(header, &vec![0; data_len]),
        );
        assert!(matches!(e, IoError::InvalidLayout { .. }), "{name}: {e}");
    }
    let e = load(
        "unknown_dtype.safetensors",
        &build(
            r#"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#,
            &[0; 8],
        ),
    );
    assert!(
        matches!(&e, IoError::UnknownDtype { tensor, dtype, .. } if tensor == "a" && dtype == "F33"),
        "{e}"
    );
    let e = load(
        "uint16.safetensors",
        &build(
            r#"{"a":{"dtype":"U16","shape":[2],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
    );
    assert!(matches!(e, IoError::UnsupportedDtype { .. }), "{e}");
    let e = load("not_json.safetensors", &build("{\"a\": nope", &[]));
    assert!(matches!(e, IoError::InvalidHeader { .. }), "{e}");
    let e = load(
        "not_utf8.safetensors",
        &build("\u{0}", &[])
            .iter()
            .map(|&b| if b == 0 { 0xff } else { b })
            .collect::<Vec<_>>()[..],
    );
    assert!(
        matches!(e, IoError::InvalidHeader { .. } | IoError::Truncated { .. }),
        "{e}"
    );
    let e = load_safetensors(dir.join("absent.safetensors")).unwrap_err();
    assert!(matches!(e, IoError::Io { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One random mutation of `base`: flipped, overwritten, trimmed, extended
/// bytes anywhere or inside the header, a new length field, or edits to
/// the header's numbers and dtype names.
fn mutate(base: &[u8], g: &mut Generator) -> Vec<u8> {
    // A position in `lo..hi`, or `None` when that range is empty.
    fn pick(g: &mut Generator, lo: usize, hi: usize) -> Option<usize> {
        (hi > lo).then(|| lo + g.below((hi - lo) as u64) as usize)
    }
    let mut b = base.to_vec();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let rounds = 1 + g.below(3);
    for _ in 0..rounds {
        let hdr_end = (8 + n).min(b.len());
        match g.below(9) {
            0 => {
                if let Some(i) = pick(g, 0, b.len()) {
                    b[i] ^= 1 << g.below(8);
                }
            }
            1 => {
                if let Some(i) = pick(g, 8, hdr_end) {
                    b[i] = g.next_u64() as u8;
                }
            }
            2 => {
                if let Some(len) = pick(g, 0, b.len()) {
                    b.truncate(len);
                }
            }
            3 => {
                let extra = g.below(64) as usize;
                b.extend((0..extra).map(|_| g.next_u64() as u8));
            }
            4 => {
                let v = match g.below(4) {
                    0 => g.next_u64(),
                    1 => g.below(b.len() as u64 + 16),
                    2 => (n as u64 + g.below(16)).saturating_sub(8),
                    _ => g.next_u64() >> g.below(64),
                };
                let len = b.len().min(8);
                b[..len].copy_from_slice(&v.to_le_bytes()[..len]);
            }
            5 | 6 => {
                // Rewrite a number inside the header (offsets and shapes).
                let digits: Vec<usize> = (8..hdr_end).filter(|&i| b[i].is_ascii_digit()).collect();
                if let Some(k) = pick(g, 0, digits.len()) {
                    let i = digits[k];
                    b[i] = b'0' + g.below(10) as u8;
                    if g.below(4) == 0 {
                        b.insert(i, b'0' + g.below(10) as u8);
                    }
                }
            }
            7 => {
                // Swap a dtype name for another one (valid or not).
                let names: [&[u8]; 8] = [
                    b"F32", b"F64", b"F16", b"I64", b"BOOL", b"U8", b"I32", b"X9",
                ];
                let hdr = b.get(8..hdr_end).unwrap_or_default().to_vec();
                let hits: Vec<usize> = hdr
                    .windows(9)
                    .enumerate()
                    .filter(|(_, w)| *w == b"\"dtype\":\"")
                    .map(|(i, _)| i)
                    .collect();
                if let Some(k) = pick(g, 0, hits.len()) {
                    let start = 8 + hits[k] + 9;
                    if let Some(end) = b[start..].iter().position(|&c| c == b'"') {
                        let new = names[g.below(names.len() as u64) as usize];
                        b.splice(start..start + end, new.iter().copied());
                    }
                }
            }
            _ => {
                // Drop or duplicate a span of the header.
                if let Some(s) = pick(g, 8, hdr_end) {
                    let e = pick(g, s, hdr_end.min(s + 40)).unwrap_or(s);
                    if g.below(2) == 0 {
                        b.drain(s..e);
                    } else {
                        let span = b[s..e].to_vec();
                        b.splice(e..e, span);
                    }
                }
            }
        }
    }
    b
}

#[test]
fn seeded_mutations_never_panic() {
    let mut bases = vec![serialize_safetensors(&all_dtypes(), &[("note", "x")]).unwrap()];
    if let Some(p) = fixture("small_bn_torch_io.safetensors") {
        bases.push(std::fs::read(p).unwrap());
    }
    let mut g = Generator::new(0x5afe_7e45);
    let (mut ran, mut ok, mut rejected) = (0usize, 0usize, 0usize);
    let per_base = 12_000;
    for base in &bases {
        for _ in 0..per_base {
            let input = mutate(base, &mut g);
            let result = std::panic::catch_unwind(|| {
                deserialize_safetensors(&input).map(|(sd, _)| sd.len())
            });
            match result {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => {
                    assert!(!e.to_string().is_empty());
                    rejected += 1
                }
                Err(_) => panic!("input {ran} panicked: {:?}", &input[..input.len().min(200)]),
            }
            ran += 1;
        }
    }
    println!(
        "safetensors mutation test: {ran} inputs, {rejected} rejected with a typed error, {ok} accepted"
    );
    assert_eq!(ran, bases.len() * per_base);
    assert!(rejected > ran / 2, "most mutations should be rejected");
}
