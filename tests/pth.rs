//! `torch.save` files: PyTorch's own LeNet-5 state dicts (zip, legacy and
//! float16) give PyTorch's logits; its general checkpoints (SGD with
//! Nesterov or Adam, plus StepLR) load into a model, optimizer and
//! scheduler that then continue exactly as PyTorch did; hostile files are
//! typed errors naming the refused global; a seeded mutation test finds no
//! panic.

use kiln::StateDict;
use kiln::io::{
    Dict, IoError, ModuleCheckpoint, Value, load_checkpoint, load_pth, load_pth_state_dict,
    load_safetensors,
};
use kiln::loss::{Reduction, cross_entropy};
use kiln::models::LeNet5;
use kiln::optim::lr_scheduler::{LrScheduler, StepLR};
use kiln::optim::{Adam, Optimizer, SGD};
use kiln::prelude::*;
use kiln::rng::Generator;
use std::path::{Path, PathBuf};

#[path = "common/assert_close.rs"]
mod assert_close;
use assert_close::assert_close;
#[path = "common/nets.rs"]
mod nets;
use nets::SmallBn;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// The fixture at `name`; when the shared fixtures are absent, prints
/// `skipped: ...` and returns `None`, or fails under
/// `KILN_REQUIRE_FIXTURES=1`.
fn fixture(name: &str) -> Option<PathBuf> {
    let p = fixtures().join(name);
    kiln::testing::fixture_or_skip(&p, "the .pth fixture").then_some(p)
}

fn temp_path(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "kiln_pth_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn same_bits(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()), "{what}");
    assert_eq!(a.to_vec::<f64>(), b.to_vec::<f64>(), "{what}");
}

/// Loads each `.pth` and checks every tensor against the reference state
/// dict bit for bit, then PyTorch's logits through `load_state_dict_from`.
fn check_lenet(files: &[(&str, &str, f64)]) {
    let Some(io) = fixture("lenet5_torch_io.safetensors") else {
        return;
    };
    let io = load_safetensors(io).unwrap();
    let (x, want) = (io.get("x").unwrap(), io.get("logits").unwrap());
    for &(pth, reference, tol) in files {
        let (Some(path), Some(reference)) = (fixture(pth), fixture(reference)) else {
            return;
        };
        let reference = load_safetensors(reference).unwrap();
        let sd = load_pth_state_dict(&path).unwrap();
        assert_eq!(sd.len(), reference.len(), "{pth}");
        for (k, t) in reference.iter() {
            same_bits(&format!("{pth} {k}"), sd.get(k).unwrap(), t);
        }
        // `load_state_dict_from` takes the .pth path directly.
        let mut net = LeNet5::new(&Device::Cpu);
        let report = net.load_state_dict_from(&path, true).unwrap();
        assert!(report.missing.is_empty() && report.unexpected.is_empty());
        net.eval();
        let logits = no_grad(|| net.forward(x));
        assert_close(pth, &logits, want, tol, tol);
    }
}

#[test]
fn lenet_state_dicts_in_zip_legacy_and_f16_give_pytorchs_logits() {
    check_lenet(&[
        (
            "pth/lenet5_state_dict.pth",
            "lenet5_torch_f32.safetensors",
            1e-4,
        ),
        (
            "pth/lenet5_state_dict_legacy.pth",
            "lenet5_torch_f32.safetensors",
            1e-4,
        ),
        // f16 weights carry rounding error: looser bounds.
        (
            "pth/lenet5_state_dict_f16.pth",
            "lenet5_torch_f16.safetensors",
            2e-2,
        ),
    ]);
}

/// The `step{i}/...` and `after/...` record of how PyTorch continued.
struct Resume {
    steps: Vec<(Tensor, Tensor, f64, f64)>,
    after: StateDict,
}

fn resume_record(name: &str) -> Option<Resume> {
    let rec = load_safetensors(fixture(name)?).unwrap();
    let steps = (0..2)
        .map(|i| {
            let get = |k: &str| rec.get(&format!("step{i}/{k}")).unwrap().shallow_clone();
            (
                get("x"),
                get("target"),
                get("loss").item(),
                get("lr").item(),
            )
        })
        .collect();
    let mut after = StateDict::new();
    for (k, t) in rec.iter() {
        if let Some(name) = k.strip_prefix("after/") {
            after.insert(name, t.shallow_clone());
        }
    }
    Some(Resume { steps, after })
}

/// Loads PyTorch's general checkpoint into kiln, takes the recorded two
/// steps, and compares losses, learning rates and the final state dict.
fn continue_pytorch_run(
    ckpt: &str,
    record: &str,
    make_opt: impl Fn(Vec<Tensor>) -> Box<dyn Optimizer>,
) {
    let (Some(path), Some(rec)) = (fixture(ckpt), resume_record(record)) else {
        return;
    };
    let ckpt = load_checkpoint(&path).unwrap();
    assert_eq!(ckpt.get("epoch").and_then(Value::as_int), Some(3));
    // The tutorial saves the loss as a float or a 0-d tensor.
    let loss = ckpt.get("loss").unwrap();
    assert!(
        loss.as_float()
            .or_else(|| loss.as_tensor().map(Tensor::item))
            .is_some()
    );
    let mut net = SmallBn::new(&Device::Cpu);
    net.load_state_dict(&ckpt.state_dict("model_state_dict").unwrap(), true)
        .unwrap();
    // The optimizer starts from other hyper-parameters: loading sets them.
    let mut opt = make_opt(net.parameters());
    opt.load_state_dict(ckpt.dict("optimizer_state_dict").unwrap())
        .unwrap();
    let mut sched = StepLR::new(opt.as_ref(), 7, 0.9);
    sched
        .load_state_dict(ckpt.dict("scheduler_state_dict").unwrap())
        .unwrap();
    assert_eq!(sched.last_epoch(), 3);
    net.train();
    for (i, (x, target, loss_want, lr_want)) in rec.steps.iter().enumerate() {
        let loss = cross_entropy(&net.forward(x), target, Reduction::Mean, 0.0);
        opt.zero_grad();
        loss.backward();
        opt.step();
        sched.step();
        let (l, lr) = (loss.item(), opt.lr());
        assert!(
            (l - loss_want).abs() <= 1e-6 + 1e-5 * loss_want.abs(),
            "step {i}: loss {l}, PyTorch {loss_want}"
        );
        assert!(
            (lr - lr_want).abs() <= 1e-6 + 1e-5 * lr_want.abs(),
            "step {i}: lr {lr}, PyTorch {lr_want}"
        );
    }
    let sd = net.state_dict();
    assert_eq!(sd.len(), rec.after.len());
    for (k, want) in rec.after.iter() {
        assert_close(k, sd.get(k).unwrap(), want, 1e-5, 1e-6);
    }
}

#[test]
fn pytorch_sgd_nesterov_checkpoint_continues_like_pytorch() {
    continue_pytorch_run(
        "pth/small_bn_checkpoint_sgd.pth",
        "pth/small_bn_resume_sgd.safetensors",
        |p| Box::new(SGD::new(p, 0.5).momentum(0.1)),
    );
}

#[test]
fn pytorch_adam_checkpoint_continues_like_pytorch() {
    continue_pytorch_run(
        "pth/small_bn_checkpoint_adam.pth",
        "pth/small_bn_resume_adam.safetensors",
        |p| Box::new(Adam::new(p, 0.5)),
    );
}

#[test]
fn general_checkpoint_holds_pytorchs_structure() {
    let Some(path) = fixture("pth/small_bn_checkpoint_adam.pth") else {
        return;
    };
    let ckpt = load_pth(&path).unwrap();
    let ckpt = ckpt.as_dict().unwrap();
    let opt = ckpt.dict("optimizer_state_dict").unwrap();
    let groups = opt.get("param_groups").and_then(Value::as_list).unwrap();
    assert_eq!(groups.len(), 1);
    let g = groups[0].as_dict().unwrap();
    assert_eq!(g.get("lr").and_then(Value::as_float), Some(0.001 * 0.5));
    let betas = g.get("betas").and_then(Value::as_list).unwrap();
    assert_eq!(betas[1].as_float(), Some(0.99));
    let state = opt.dict("state").unwrap();
    assert_eq!(state.len(), 6, "every parameter has Adam state");
    let s0 = state.dict("0").unwrap();
    let step = s0.get("step").and_then(Value::as_tensor).unwrap();
    assert_eq!(step.item(), 3.0);
    let sched = ckpt.dict("scheduler_state_dict").unwrap();
    assert_eq!(sched.get("step_size").and_then(Value::as_int), Some(2));
}

/// A protocol-2 pickle of `{"a": <callable>(("echo pwned",))}` with the
/// callable `module.name`: what a malicious `.pth` looks like.
fn hostile_pickle(module: &str, name: &str) -> Vec<u8> {
    let mut b = vec![0x80, 0x02, b'}', b'X'];
    b.extend(1u32.to_le_bytes());
    b.push(b'a');
    b.push(b'c');
    b.extend(format!("{module}\n{name}\n").bytes());
    b.push(b'X');
    let arg = b"echo pwned";
    b.extend((arg.len() as u32).to_le_bytes());
    b.extend(arg);
    b.extend([0x85, b'R', b's', b'.']);
    b
}

/// The `data.pkl` entry of a zip `.pth`.
fn zip_pickle(base: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(base)).unwrap();
    let name = src
        .file_names()
        .find_map(|n| n.ok().filter(|n| n.ends_with("data.pkl")))
        .unwrap()
        .into_owned();
    let mut data = Vec::new();
    src.by_name(&name).unwrap().read_to_end(&mut data).unwrap();
    data
}

/// `base` (a zip `.pth`) with its `data.pkl` replaced by `pickle` (and
/// the checksums made to fit).
fn zip_with_pickle(base: &[u8], pickle: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(base)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut f = src.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        out.start_file(&name, opts).unwrap();
        if name.ends_with("data.pkl") {
            out.write_all(pickle).unwrap();
        } else {
            out.write_all(&data).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn hostile_files_name_the_refused_global_and_run_nothing() {
    let marker = temp_path("pwned");
    let cases = [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("subprocess", "Popen"),
        ("__main__", "Net"),
    ];
    for (module, name) in cases {
        let path = temp_path("hostile");
        std::fs::write(&path, hostile_pickle(module, name)).unwrap();
        let e = load_pth(&path).unwrap_err();
        match &e {
            IoError::ForbiddenGlobal { global, .. } => {
                assert_eq!(global, &format!("{module}.{name}"))
            }
            other => panic!("{module}.{name}: expected ForbiddenGlobal, got {other}"),
        }
        assert!(e.to_string().contains(&format!("{module}.{name}")), "{e}");
        assert!(load_checkpoint(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }
    // The same inside a real zip archive.
    if let Some(base) = fixture("pth/lenet5_state_dict.pth") {
        let path = temp_path("hostile_zip");
        let base = std::fs::read(base).unwrap();
        std::fs::write(
            &path,
            zip_with_pickle(&base, &hostile_pickle("os", "system")),
        )
        .unwrap();
        let e = load_pth(&path).unwrap_err();
        assert!(
            matches!(&e, IoError::ForbiddenGlobal { global, .. } if global == "os.system"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
    }
    assert!(!marker.exists());
}

#[test]
fn truncated_pth_files_are_typed_errors() {
    for name in [
        "pth/lenet5_state_dict.pth",
        "pth/lenet5_state_dict_legacy.pth",
    ] {
        let Some(p) = fixture(name) else { return };
        let bytes = std::fs::read(&p).unwrap();
        let path = temp_path("trunc");
        for cut in [
            0,
            1,
            2,
            10,
            100,
            bytes.len() / 2,
            bytes.len() - 100,
            bytes.len() - 1,
        ] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(load_pth(&path).is_err(), "{name} cut at {cut} loaded");
            assert!(
                load_checkpoint(&path).is_err(),
                "{name} cut at {cut} loaded"
            );
        }
        std::fs::remove_file(&path).unwrap();
    }
    let e = load_pth(temp_path("absent")).unwrap_err();
    assert!(matches!(e, IoError::Io { .. }), "{e}");
}

/// One random mutation of `base`: bit flips, overwritten bytes, cuts,
/// appended junk, or a duplicated or dropped span, anywhere.
fn mutate(base: &[u8], g: &mut Generator) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + g.below(3) {
        if b.is_empty() {
            break;
        }
        let i = g.below(b.len() as u64) as usize;
        match g.below(6) {
            0 => b[i] ^= 1 << g.below(8),
            1 => b[i] = g.next_u64() as u8,
            2 => b.truncate(i),
            3 => b.extend((0..g.below(64)).map(|_| g.next_u64() as u8)),
            4 => {
                let e = (i + 1 + g.below(40) as usize).min(b.len());
                b.drain(i..e);
            }
            _ => {
                let e = (i + 1 + g.below(40) as usize).min(b.len());
                let span = b[i..e].to_vec();
                b.splice(e..e, span);
            }
        }
    }
    b
}

/// Mutations of the bytes in `lo..hi` only (the legacy stream's pickles).
fn mutate_near(base: &[u8], lo: usize, hi: usize, g: &mut Generator) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + g.below(4) {
        let i = lo + g.below((hi - lo) as u64) as usize;
        match g.below(3) {
            0 => b[i] ^= 1 << g.below(8),
            1 => b[i] = g.next_u64() as u8,
            _ => b[i] = b[i].wrapping_add(1 + g.below(3) as u8),
        }
    }
    b
}

#[test]
fn seeded_pth_mutations_never_panic() {
    let Some(small) = fixture("pth/small_bn_checkpoint_sgd.pth") else {
        return;
    };
    let Some(legacy) = fixture("pth/lenet5_state_dict_legacy.pth") else {
        return;
    };
    let zip_base = std::fs::read(&small).unwrap();
    let legacy_base = std::fs::read(&legacy).unwrap();
    // Mutated pickles go back into the zip with fitting checksums, so
    // that they reach the unpickler rather than the checksum test.
    let pkl = zip_pickle(&zip_base);
    let legacy_pickles = 4096.min(legacy_base.len());
    let mut g = Generator::new(0x7047_4e55);
    // Twenty thousand files: in memory where the system has a tmpfs.
    let scratch = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = scratch.join(format!("kiln_pth_mutant_{}", std::process::id()));
    let per = 5_000;
    let (mut ran, mut ok, mut rejected) = (0usize, 0usize, 0usize);
    for kind in 0..4 {
        for _ in 0..per {
            let input = match kind {
                0 => mutate(&zip_base, &mut g),
                1 => zip_with_pickle(&zip_base, &mutate(&pkl, &mut g)),
                2 => mutate(&legacy_base, &mut g),
                _ => mutate_near(&legacy_base, 0, legacy_pickles, &mut g),
            };
            std::fs::write(&path, &input).unwrap();
            let result = std::panic::catch_unwind(|| load_checkpoint(&path).map(|d| d.len()));
            match result {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => {
                    assert!(!e.to_string().is_empty());
                    rejected += 1;
                }
                Err(_) => panic!("mutant {ran} (kind {kind}) panicked"),
            }
            ran += 1;
        }
    }
    let _ = std::fs::remove_file(&path);
    println!(
        "pth mutation test: {ran} inputs, {rejected} rejected with a typed error, {ok} parsed"
    );
    assert_eq!(ran, 4 * per);
    assert!(rejected > 0 && ok > 0);
}

#[test]
fn pth_checkpoint_resaves_as_a_kiln_checkpoint() {
    let Some(path) = fixture("pth/small_bn_checkpoint_sgd.pth") else {
        return;
    };
    let ckpt = load_checkpoint(&path).unwrap();
    let out = temp_path("resaved");
    kiln::io::save_checkpoint(&ckpt, &out).unwrap();
    let back: Dict = load_checkpoint(&out).unwrap();
    let (a, b) = (
        ckpt.state_dict("model_state_dict").unwrap(),
        back.state_dict("model_state_dict").unwrap(),
    );
    for (k, t) in a.iter() {
        same_bits(k, b.get(k).unwrap(), t);
    }
    assert_eq!(
        format!("{:?}", ckpt.dict("scheduler_state_dict").unwrap()),
        format!("{:?}", back.dict("scheduler_state_dict").unwrap())
    );
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn seeded_kiln_checkpoint_mutations_never_panic() {
    let mut opt_state = Dict::new();
    let mut s0 = Dict::new();
    s0.insert("momentum_buffer", Tensor::ones([3, 2]));
    let mut state = Dict::new();
    state.insert(0usize, s0);
    opt_state.insert("state", state);
    let mut ckpt = Dict::new();
    ckpt.insert("epoch", 7);
    ckpt.insert("loss", f64::NAN);
    ckpt.insert("name", "run");
    ckpt.insert("flags", Value::List(vec![Value::Bool(true), Value::None]));
    ckpt.insert("optimizer_state_dict", opt_state);
    ckpt.insert("rng_state", kiln::get_rng_state());
    let base = kiln::io::serialize_checkpoint(&ckpt).unwrap();
    let back = kiln::io::deserialize_checkpoint(&base).unwrap();
    assert_eq!(format!("{back:?}"), format!("{ckpt:?}"));
    let mut g = Generator::new(0xc4e_c4b0);
    let n = 10_000;
    let header_end = 8 + u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
    let (mut ok, mut rejected) = (0usize, 0usize);
    for i in 0..n {
        let input = if i % 2 == 0 {
            mutate(&base, &mut g)
        } else {
            mutate_near(&base, 8, header_end, &mut g)
        };
        match std::panic::catch_unwind(|| kiln::io::deserialize_checkpoint(&input).map(|d| d.len()))
        {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty());
                rejected += 1;
            }
            Err(_) => panic!("checkpoint mutant {i} panicked"),
        }
    }
    println!(
        "kiln checkpoint mutation test: {n} inputs, {rejected} rejected with a typed error, {ok} parsed"
    );
    assert!(rejected > n / 2);
}
