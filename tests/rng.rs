//! kiln's default generator against streams PyTorch wrote: every case of the
//! oracle directory (`KILN_RNG_DIR`, default `../shared/rng`; format in its
//! README) is replayed after `manual_seed(case.seed)` and must match bit for
//! bit. No case name, size or value is assumed: the calls are read from
//! `rng.json`. Without the directory the test reports itself skipped
//! (`KILN_REQUIRE_FIXTURES=1` turns that into a failure).

use kiln::data::{DataError, DataLoader, Dataset};
use kiln::nn::{BatchNorm2d, Conv2d, Conv2dOptions, Embedding, Linear, Module};
use kiln::rng::Generator;
use kiln::{DType, Device, StateDict, Tensor, manual_seed};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// The tests share the default generator: they take turns.
static DEFAULT_GENERATOR: Mutex<()> = Mutex::new(());

fn take_default_generator() -> MutexGuard<'static, ()> {
    DEFAULT_GENERATOR.lock().unwrap_or_else(|e| e.into_inner())
}

fn oracle_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(std::env::var("KILN_RNG_DIR").unwrap_or_else(|_| "../shared/rng".into()));
    let found = ["rng.json", "rng.safetensors"]
        .iter()
        .all(|f| kiln::testing::fixture_or_skip(&dir.join(f), "PyTorch's RNG oracle"));
    found.then_some(dir)
}

/// Compares two tensors element by element, by bits; `Err` names the
/// first differing index.
fn same_bits(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape() != want.shape() || got.dtype() != want.dtype() {
        return Err(format!(
            "got {} {:?}, want {} {:?}",
            got.dtype(),
            got.shape(),
            want.dtype(),
            want.shape()
        ));
    }
    let bits: fn(&Tensor) -> Vec<u64> = match want.dtype() {
        DType::F32 => |t| {
            t.to_vec::<f32>()
                .iter()
                .map(|v| v.to_bits() as u64)
                .collect()
        },
        DType::F64 => |t| t.to_vec::<f64>().iter().map(|v| v.to_bits()).collect(),
        DType::I64 => |t| t.to_vec::<i64>().iter().map(|&v| v as u64).collect(),
        other => return Err(format!("unexpected oracle dtype {other}")),
    };
    let (g, w) = (bits(got), bits(want));
    match g.iter().zip(&w).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => {
            let (gv, wv) = (got.flatten(0, -1), want.flatten(0, -1));
            Err(format!(
                "first difference at index {i}: got {}, want {}",
                gv.narrow(0, i, 1).to_vec::<f64>()[0],
                wv.narrow(0, i, 1).to_vec::<f64>()[0]
            ))
        }
    }
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|d| d.as_u64().expect("a size") as usize)
        .collect()
}

fn dtype_of(call: &Value) -> DType {
    match call.get("dtype").and_then(Value::as_str) {
        None | Some("float32") => DType::F32,
        Some("float64") => DType::F64,
        Some(other) => panic!("unsupported dtype {other}"),
    }
}

/// A dataset whose items are their indices.
struct Indices(usize);

impl Dataset for Indices {
    type Item = i64;
    fn len(&self) -> usize {
        self.0
    }
    fn get(&self, index: usize) -> Result<i64, DataError> {
        Ok(index as i64)
    }
}

/// Runs one call; returns `(key suffix, tensor)` pairs to compare (the
/// empty suffix for a plain tensor result).
fn run_call(call: &Value) -> Vec<(String, Tensor)> {
    let op = call["op"].as_str().expect("op");
    let f = |k: &str| {
        call[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{op}: missing {k}"))
    };
    let i = |k: &str| {
        call[k]
            .as_i64()
            .unwrap_or_else(|| panic!("{op}: missing {k}"))
    };
    let arg = |k: usize| {
        call["args"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{op}: missing args[{k}]")) as usize
    };
    let layer = |sd: StateDict| {
        sd.iter()
            .filter(|(_, t)| matches!(t.dtype(), DType::F32 | DType::F64))
            .map(|(k, t)| (format!("/{k}"), t.shallow_clone()))
            .collect()
    };
    let plain = |t: Tensor| vec![(String::new(), t)];
    match op {
        "rand" => plain(Tensor::rand_opts(usizes(&call["shape"]), dtype_of(call))),
        "randn" => plain(Tensor::randn_opts(usizes(&call["shape"]), dtype_of(call))),
        "randint" => plain(Tensor::randint(i("low"), i("high"), usizes(&call["shape"]))),
        "randperm" => plain(Tensor::randperm(i("n") as usize)),
        "normal_" => {
            let t = Tensor::zeros_opts(usizes(&call["shape"]), dtype_of(call));
            t.normal_(f("mean"), f("std"), None);
            plain(t)
        }
        "uniform_" => {
            let t = Tensor::zeros_opts(usizes(&call["shape"]), dtype_of(call));
            t.uniform_(f("from"), f("to"), None);
            plain(t)
        }
        "Linear" => layer(Linear::new(arg(0), arg(1), &Device::Cpu).state_dict()),
        "Conv2d" => {
            let k = arg(2);
            layer(
                Conv2d::new(arg(0), arg(1), Conv2dOptions::new([k, k]), &Device::Cpu).state_dict(),
            )
        }
        "Embedding" => layer(Embedding::new(arg(0), arg(1), &Device::Cpu).state_dict()),
        "BatchNorm2d" => layer(BatchNorm2d::new(arg(0), &Device::Cpu).state_dict()),
        "sampler" => {
            let n = i("n") as usize;
            let loader = DataLoader::new(Indices(n))
                .batch_size(n.max(1))
                .shuffle(true);
            (0..i("epochs"))
                .map(|e| {
                    let order: Vec<i64> = loader
                        .iter()
                        .flat_map(|b| b.expect("batch").to_vec::<i64>())
                        .collect();
                    (format!("/epoch{e}"), Tensor::from_vec(order, [n]))
                })
                .collect()
        }
        other => panic!("unknown oracle op {other:?}: teach tests/rng.rs about it"),
    }
}

#[test]
fn default_generator_reproduces_pytorch_cpu_streams() {
    let _turn = take_default_generator();
    let Some(dir) = oracle_dir() else { return };
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("rng.json")).expect("read rng.json"),
    )
    .expect("parse rng.json");
    let want =
        kiln::io::load_safetensors(dir.join("rng.safetensors")).expect("load rng.safetensors");
    let mut failures = Vec::new();
    let (mut compared, mut checked_keys) = (0usize, std::collections::BTreeSet::new());
    for case in manifest["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("case name");
        manual_seed(case["seed"].as_u64().expect("seed"));
        for (k, call) in case["calls"].as_array().expect("calls").iter().enumerate() {
            let results = run_call(call);
            assert!(
                !results.is_empty(),
                "{name}/{k}: the call produced nothing to compare"
            );
            for (suffix, got) in results {
                let key = format!("{name}/{k}{suffix}");
                let Some(w) = want.get(&key) else {
                    failures.push(format!(
                        "{key}: kiln produced it, the oracle has no such tensor"
                    ));
                    continue;
                };
                checked_keys.insert(key.clone());
                compared += 1;
                if let Err(e) = same_bits(&got, w) {
                    failures.push(format!("{key} ({}): {e}", call["op"]));
                }
            }
        }
    }
    let unchecked: Vec<&str> = want.keys().filter(|k| !checked_keys.contains(*k)).collect();
    for k in &unchecked {
        failures.push(format!("{k}: in the oracle but no call produced it"));
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} results differ from PyTorch:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "{compared} results bit-identical to PyTorch ({})",
        dir.display()
    );
}

#[test]
fn state_round_trips_and_restores_the_stream() {
    let _turn = take_default_generator();
    manual_seed(3);
    let _ = Tensor::randn([5]); // leaves a cached normal
    let state = kiln::rng::get_rng_state();
    assert_eq!(
        (state.dtype(), state.shape()),
        (DType::U8, &[kiln::rng::STATE_BYTES][..])
    );
    let a = (
        Tensor::randn([3]).to_vec::<f32>(),
        Tensor::rand([40]).to_vec::<f32>(),
    );
    kiln::rng::set_rng_state(&state);
    let b = (
        Tensor::randn([3]).to_vec::<f32>(),
        Tensor::rand([40]).to_vec::<f32>(),
    );
    assert_eq!(a, b);

    let mut g = Generator::new(11);
    g.random64();
    let mut h = Generator::new(0);
    h.set_state(&g.get_state());
    assert_eq!(g, h);
    assert_eq!(h.initial_seed(), 11);
    assert!(h.try_set_state(&Tensor::zeros([3])).is_err());
    assert!(
        h.try_set_state(&Tensor::zeros_opts([kiln::rng::STATE_BYTES], DType::U8))
            .is_err()
    );
}

#[test]
fn a_generator_is_independent_of_the_default_one() {
    let _turn = take_default_generator();
    manual_seed(5);
    let from_default = Tensor::randn([20]).to_vec::<f32>();
    manual_seed(99);
    let mut g = Generator::new(5);
    let from_own = Tensor::randn_with([20], DType::F32, &mut g).to_vec::<f32>();
    assert_eq!(from_default, from_own);
    // The default generator did not move: it still gives seed 99's stream.
    let next_default = Tensor::rand([4]).to_vec::<f32>();
    manual_seed(99);
    assert_eq!(Tensor::rand([4]).to_vec::<f32>(), next_default);
}

/// Reference values from `tests/data/rng_extra.py` (PyTorch on x86).
fn extra() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rng_extra.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read rng_extra.json"))
        .expect("parse")
}

fn indices(v: &Value) -> Vec<usize> {
    usizes(v)
}

/// 64-bit FNV-1a over little-endian bytes (as the Python script computes it).
fn fnv(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

#[test]
fn loader_with_a_generator_and_random_split_match_pytorch() {
    let x = extra();
    let lg = &x["loader_generator"];
    let n = lg["n"].as_u64().unwrap() as usize;
    let seed = lg["seed"].as_u64().unwrap();
    let by_generator = DataLoader::new(Indices(n))
        .batch_size(5)
        .shuffle(true)
        .generator(Generator::new(seed));
    let by_seed = DataLoader::new(Indices(n))
        .batch_size(3)
        .shuffle(true)
        .seed(seed);
    for (e, want) in lg["epochs"].as_array().unwrap().iter().enumerate() {
        let want: Vec<i64> = indices(want).into_iter().map(|i| i as i64).collect();
        for loader in [&by_generator, &by_seed] {
            let got: Vec<i64> = loader
                .iter()
                .flat_map(|b| b.unwrap().to_vec::<i64>())
                .collect();
            assert_eq!(got, want, "epoch {e}");
        }
    }
    // `seed` replays an epoch after set_epoch.
    by_seed.set_epoch(1);
    let again: Vec<i64> = by_seed
        .iter()
        .flat_map(|b| b.unwrap().to_vec::<i64>())
        .collect();
    let want1: Vec<i64> = indices(&lg["epochs"][1])
        .into_iter()
        .map(|i| i as i64)
        .collect();
    assert_eq!(again, want1);

    let _turn = take_default_generator();
    for key in ["random_split", "random_split_default"] {
        let r = &x[key];
        let lengths = usizes(&r["lengths"]);
        let total = lengths.iter().sum();
        let mut g = Generator::new(r["seed"].as_u64().unwrap());
        let parts = if key == "random_split" {
            kiln::data::random_split(Indices(total), &lengths, Some(&mut g))
        } else {
            manual_seed(r["seed"].as_u64().unwrap());
            kiln::data::random_split(Indices(total), &lengths, None)
        };
        for (p, want) in parts.iter().zip(r["parts"].as_array().unwrap()) {
            assert_eq!(p.indices(), &indices(want)[..], "{key}");
        }
    }
}

#[test]
fn state_bytes_dropout_and_randint_match_pytorch() {
    let x = extra();
    let _turn = take_default_generator();
    let s = &x["state_after_randn1"];
    manual_seed(s["seed"].as_u64().unwrap());
    let _ = Tensor::randn([1]);
    let got: String = kiln::rng::get_rng_state()
        .to_vec::<u8>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, s["hex"].as_str().unwrap(), "get_rng_state bytes");

    // Dropout: the same mask, scale and later draws as PyTorch.
    let d = &x["dropout"];
    manual_seed(d["seed"].as_u64().unwrap());
    let n = d["n"].as_u64().unwrap() as usize;
    let input = Tensor::arange(1.0, n as f64 + 1.0, 1.0).to_dtype(DType::F32);
    let got = kiln::nn::functional::dropout(&input, d["p"].as_f64().unwrap(), true).to_vec::<f32>();
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    assert_eq!(got, floats(&d["out"]), "dropout output");
    assert_eq!(
        Tensor::rand([5]).to_vec::<f32>(),
        floats(&d["rand5"]),
        "draws after dropout"
    );

    // randint's switch from 32- to 64-bit draws.
    let r = &x["randint_ranges"];
    manual_seed(r["seed"].as_u64().unwrap());
    for (range, want) in r["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r["values"].as_array().unwrap())
    {
        let (lo, hi) = (range[0].as_i64().unwrap(), range[1].as_i64().unwrap());
        let want: Vec<i64> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(
            Tensor::randint(lo, hi, [want.len()]).to_vec::<i64>(),
            want,
            "randint({lo}, {hi})"
        );
    }
}

#[test]
fn long_streams_match_pytorch() {
    let x = extra();
    let _turn = take_default_generator();
    for s in x["streams"].as_array().unwrap() {
        manual_seed(s["seed"].as_u64().unwrap());
        let n = s["n"].as_u64().unwrap() as usize;
        let dtype = dtype_of(s);
        let a = |k: usize| s["args"][k].as_f64().unwrap();
        let t = match s["op"].as_str().unwrap() {
            "randn" => Tensor::randn_opts([n], dtype),
            op => {
                let t = Tensor::zeros_opts([n], dtype);
                match op {
                    "normal_" => t.normal_(a(0), a(1), None),
                    "uniform_" => t.uniform_(a(0), a(1), None),
                    other => panic!("unknown stream op {other}"),
                }
                t
            }
        };
        let got = match dtype {
            DType::F32 => fnv(t.to_vec::<f32>().iter().flat_map(|v| v.to_le_bytes())),
            _ => fnv(t.to_vec::<f64>().iter().flat_map(|v| v.to_le_bytes())),
        };
        assert_eq!(got, s["fnv"].as_str().unwrap(), "stream {s}");
    }
}
