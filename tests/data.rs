//! Data loading: TensorDataset and user datasets through the DataLoader
//! (batching, seeded shuffling, workers, errors, early drop), MNIST from
//! the shared IDX files, ImageFolder, transforms in a loader, downloads.

use kiln::data::transforms::{Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToTensor};
use kiln::data::{
    DataError, DataLoader, Dataset, ImageFolder, Mnist, TensorDataset, download_files, md5_hex,
};
use kiln::{DType, Tensor};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "common/temp_dir.rs"]
mod temp_dir;
use temp_dir::temp_dir;

/// `$KILN_DATA`, else `../shared/data/mnist` next to the repository; `None`
/// (printing `skipped: ...`, a failure under `KILN_REQUIRE_FIXTURES=1`)
/// when the files are not there.
fn mnist_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KILN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist"));
    if dir.join("train-labels-idx1-ubyte.gz").exists()
        || dir.join("train-labels-idx1-ubyte").exists()
    {
        Some(dir)
    } else {
        kiln::testing::skip(
            kiln::testing::REQUIRE_FIXTURES,
            &format!("MNIST not found in {}", dir.display()),
        );
        None
    }
}

fn xy(n: usize) -> TensorDataset {
    let x = Tensor::from_vec((0..n * 3).map(|v| v as f32).collect::<Vec<_>>(), [n, 3]);
    let y = Tensor::from_vec((0..n as i64).collect::<Vec<_>>(), [n]);
    TensorDataset::new(vec![x, y])
}

/// The sample indices of an epoch, read back from the `y` column.
fn order(loader: &DataLoader<TensorDataset, Vec<Tensor>>) -> Vec<i64> {
    loader
        .iter()
        .flat_map(|b| b.unwrap()[1].to_vec::<i64>())
        .collect()
}

#[test]
fn tensor_dataset_batches_in_order() {
    let loader = DataLoader::new(xy(10)).batch_size(4);
    assert_eq!(loader.len(), 3);
    let batches: Vec<Vec<Tensor>> = loader.iter().map(Result::unwrap).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0][0].shape(), &[4, 3]);
    assert_eq!(batches[0][1].shape(), &[4]);
    assert_eq!(batches[0][1].dtype(), DType::I64);
    assert_eq!(batches[2][0].shape(), &[2, 3]);
    assert_eq!(
        batches[1][0].to_vec::<f32>(),
        (12..24).map(|v| v as f32).collect::<Vec<_>>()
    );
    assert_eq!(order(&loader), (0..10).collect::<Vec<_>>());

    let dropping = DataLoader::new(xy(10)).batch_size(4).drop_last(true);
    assert_eq!(dropping.len(), 2);
    assert_eq!(dropping.iter().count(), 2);
    let exact = DataLoader::new(xy(8)).batch_size(4).drop_last(true);
    assert_eq!(exact.len(), 2);
    assert!(
        DataLoader::new(xy(3))
            .batch_size(4)
            .drop_last(true)
            .is_empty()
    );
}

#[test]
fn seeded_shuffle_is_reproducible_and_changes_every_epoch() {
    let a = DataLoader::new(xy(50)).batch_size(7).shuffle(true).seed(42);
    let b = DataLoader::new(xy(50)).batch_size(7).shuffle(true).seed(42);
    let (a0, a1) = (order(&a), order(&a));
    let (b0, b1) = (order(&b), order(&b));
    assert_eq!(a0, b0);
    assert_eq!(a1, b1);
    assert_ne!(a0, a1, "each epoch gets a new order");
    for o in [&a0, &a1] {
        let mut s = o.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>(), "an epoch is a permutation");
    }
    assert_ne!(a0, (0..50).collect::<Vec<_>>());
    let c = DataLoader::new(xy(50)).batch_size(7).shuffle(true).seed(43);
    assert_ne!(order(&c), a0);
    // Resuming at an epoch reproduces it.
    b.set_epoch(1);
    assert_eq!(order(&b), a1);
}

/// Samples that sleep a little and use random transforms, to check that
/// workers really run in parallel and give the same batches as the caller's
/// thread.
struct Augmented {
    n: usize,
    delay: Duration,
    pipeline: Compose,
}

impl Dataset for Augmented {
    type Item = (Tensor, i64);
    fn len(&self) -> usize {
        self.n
    }
    fn get(&self, index: usize) -> Result<(Tensor, i64), DataError> {
        std::thread::sleep(self.delay);
        let img = Tensor::from_vec(
            (0..16)
                .map(|v| ((v * 7 + index) % 256) as u8)
                .collect::<Vec<_>>(),
            [4, 4, 1],
        );
        Ok((
            kiln::data::transforms::Transform::apply(&self.pipeline, img),
            index as i64,
        ))
    }
}

fn augmented(n: usize, delay_ms: u64) -> Augmented {
    Augmented {
        n,
        delay: Duration::from_millis(delay_ms),
        pipeline: Compose::new()
            .then(ToTensor)
            .then(RandomCrop::new((4, 4), 2))
            .then(RandomHorizontalFlip::new(0.5))
            .then(Normalize::new(&[0.5], &[0.25])),
    }
}

#[test]
fn workers_match_single_threaded_loading_and_run_in_parallel() {
    let epoch = |workers: usize, prefetch: usize| {
        let loader = DataLoader::new(augmented(40, 0))
            .batch_size(6)
            .shuffle(true)
            .seed(9)
            .num_workers(workers)
            .prefetch(prefetch);
        loader
            .iter()
            .map(|b| {
                let (x, y) = b.unwrap();
                assert_eq!(x.shape()[1..], [1, 4, 4]);
                (x.to_vec::<f32>(), y.to_vec::<i64>())
            })
            .collect::<Vec<_>>()
    };
    let reference = epoch(0, 2);
    assert_eq!(reference.len(), 7);
    for (workers, prefetch) in [(1, 1), (2, 2), (3, 4)] {
        assert!(epoch(workers, prefetch) == reference, "{workers} workers");
    }
    // Augmentations differ between samples and between epochs.
    let loader = DataLoader::new(augmented(8, 0)).batch_size(8).seed(1);
    let e0 = loader.iter().next().unwrap().unwrap().0.to_vec::<f32>();
    let e1 = loader.iter().next().unwrap().unwrap().0.to_vec::<f32>();
    assert_ne!(e0, e1);

    // 24 samples of 20 ms: ~480 ms in one thread, about half with two.
    let timed = |workers| {
        let loader = DataLoader::new(augmented(24, 20))
            .batch_size(4)
            .num_workers(workers);
        let t = Instant::now();
        assert_eq!(loader.iter().filter(|b| b.is_ok()).count(), 6);
        t.elapsed()
    };
    let (one, two) = (timed(1), timed(2));
    assert!(
        two.as_secs_f64() < one.as_secs_f64() * 0.8,
        "1 worker {one:?}, 2 workers {two:?}"
    );
}

#[test]
fn custom_collate() {
    let loader = DataLoader::new(xy(5))
        .batch_size(2)
        .collate(|items: Vec<Vec<Tensor>>| {
            Ok(items.iter().map(|r| r[1].to_vec::<i64>()[0]).sum::<i64>())
        });
    let sums: Vec<i64> = loader.iter().map(Result::unwrap).collect();
    assert_eq!(sums, vec![1, 5, 4]);

    struct Words;
    impl Dataset for Words {
        type Item = String;
        fn len(&self) -> usize {
            3
        }
        fn get(&self, i: usize) -> Result<String, DataError> {
            Ok(["a", "bb", "ccc"][i].to_string())
        }
    }
    let joined: Vec<String> = DataLoader::with_collate(Words, |w: Vec<String>| Ok(w.join("+")))
        .batch_size(2)
        .num_workers(2)
        .iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(joined, vec!["a+bb", "ccc"]);
}

/// Fails on index 5 and panics on index 11.
struct Faulty;
impl Dataset for Faulty {
    type Item = Tensor;
    fn len(&self) -> usize {
        16
    }
    fn get(&self, i: usize) -> Result<Tensor, DataError> {
        match i {
            5 => Err(DataError::other("row 5 is corrupt")),
            11 => panic!("sample 11 exploded"),
            _ => Ok(Tensor::full([2], i as f64)),
        }
    }
}

#[test]
fn errors_and_panics_name_the_sample() {
    for workers in [0, 1, 2] {
        let loader = DataLoader::new(Faulty).batch_size(4).num_workers(workers);
        let results: Vec<_> = loader.iter().collect();
        assert_eq!(results.len(), 4);
        assert!(results[0].is_ok() && results[3].is_ok());
        match &results[1] {
            Err(e @ DataError::Sample { index: 5, .. }) => {
                assert!(
                    e.to_string().contains("sample 5") && e.to_string().contains("corrupt"),
                    "{e}"
                )
            }
            other => panic!(
                "{workers} workers: expected a sample error, got {:?}",
                other.as_ref().err()
            ),
        }
        match &results[2] {
            Err(e @ DataError::Panic { index: 11, message }) => {
                assert!(message.contains("exploded"), "{e}");
                assert!(e.to_string().contains("sample 11"), "{e}");
            }
            other => panic!(
                "{workers} workers: expected a panic error, got {:?}",
                other.as_ref().err()
            ),
        }
        assert_eq!(results[3].as_ref().unwrap().to_vec::<f32>()[0], 12.0);
    }
    // Items that cannot be stacked are a collate error naming the batch.
    struct Ragged;
    impl Dataset for Ragged {
        type Item = Tensor;
        fn len(&self) -> usize {
            4
        }
        fn get(&self, i: usize) -> Result<Tensor, DataError> {
            Ok(Tensor::zeros([1 + i / 3]))
        }
    }
    let r: Vec<_> = DataLoader::new(Ragged).batch_size(2).iter().collect();
    assert!(r[0].is_ok());
    assert!(
        matches!(&r[1], Err(DataError::Collate { batch: 1, .. })),
        "{:?}",
        r[1].as_ref().err()
    );
    assert!(matches!(
        xy(3).get(3),
        Err(DataError::IndexOutOfRange { index: 3, len: 3 })
    ));
}

#[test]
fn dropping_a_loader_mid_epoch_stops_its_workers() {
    let loader = DataLoader::new(augmented(10_000, 5))
        .batch_size(8)
        .num_workers(2)
        .prefetch(2);
    let t = Instant::now();
    {
        let mut it = loader.iter();
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
    }
    // A full epoch would take ~25 s; stopping waits for at most the sample
    // each worker is loading.
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The loader still works afterwards.
    assert!(loader.iter().next().unwrap().is_ok());
}

/// The tutorial's custom dataset: a CSV of `file,label` rows next to
/// text files, each holding whitespace-separated features.
struct CsvTextDataset {
    dir: PathBuf,
    rows: Vec<(String, i64)>,
}

impl CsvTextDataset {
    fn new(dir: &Path, csv: &str) -> Result<Self, DataError> {
        let path = dir.join(csv);
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::Io {
            path: path.clone(),
            source: e,
        })?;
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate().skip(1) {
            let (file, label) = line.split_once(',').ok_or_else(|| {
                DataError::other(format!(
                    "{}:{}: expected `file,label`",
                    path.display(),
                    n + 1
                ))
            })?;
            let label = label.trim().parse().map_err(|e| {
                DataError::other(format!("{}:{}: bad label: {e}", path.display(), n + 1))
            })?;
            rows.push((file.to_string(), label));
        }
        Ok(CsvTextDataset {
            dir: dir.to_path_buf(),
            rows,
        })
    }
}

impl Dataset for CsvTextDataset {
    type Item = (Tensor, i64);
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn get(&self, index: usize) -> Result<(Tensor, i64), DataError> {
        let (file, label) = self.rows.get(index).ok_or(DataError::IndexOutOfRange {
            index,
            len: self.rows.len(),
        })?;
        let path = self.dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::Io {
            path: path.clone(),
            source: e,
        })?;
        let values = text
            .split_whitespace()
            .map(|w| w.parse::<f32>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DataError::other(format!("{}: {e}", path.display())))?;
        let n = values.len();
        Ok((Tensor::from_vec(values, [n]), *label))
    }
}

#[test]
fn user_dataset_from_csv_and_text_files() {
    let dir = temp_dir("csv");
    let mut csv = String::from("file,label\n");
    for i in 0..7 {
        std::fs::write(
            dir.join(format!("s{i}.txt")),
            format!("{} {} {}\n", i, i * 2, i * 3),
        )
        .unwrap();
        csv += &format!("s{i}.txt,{}\n", i % 3);
    }
    csv += "missing.txt,1\n";
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
    let ds = CsvTextDataset::new(&dir, "labels.csv").unwrap();
    assert_eq!(ds.len(), 8);
    let loader = DataLoader::new(ds).batch_size(4).num_workers(2);
    let batches: Vec<_> = loader.iter().collect();
    let (x, y) = batches[0].as_ref().unwrap();
    assert_eq!(x.shape(), &[4, 3]);
    assert_eq!(x.to_vec::<f32>()[3..6], [1.0, 2.0, 3.0]);
    assert_eq!(y.to_vec::<i64>(), vec![0, 1, 2, 0]);
    match &batches[1] {
        Err(DataError::Sample { index: 7, source }) => {
            assert!(source.to_string().contains("missing.txt"), "{source}")
        }
        other => panic!(
            "expected the missing file's error, got {:?}",
            other.as_ref().err()
        ),
    }
    std::fs::write(dir.join("bad.csv"), "file,label\ns0.txt,zero\n").unwrap();
    let e = CsvTextDataset::new(&dir, "bad.csv").err().unwrap();
    assert!(e.to_string().contains("bad.csv:2"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mnist_from_shared_files() {
    let Some(dir) = mnist_dir() else { return };
    let train = Mnist::train(&dir).unwrap();
    let test = Mnist::test(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.image_size(), (28, 28));
    assert_eq!(train.labels()[..5], [5, 0, 4, 1, 9]);
    assert_eq!(test.labels()[..3], [7, 2, 1]);
    let (img, label) = train.get(0).unwrap();
    assert_eq!(
        (img.shape(), img.dtype(), label),
        (&[1usize, 28, 28][..], DType::F32, 5)
    );
    let v = img.to_vec::<f32>();
    assert!(v.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert_eq!(
        v[28 * 14 + 14],
        train.raw_image(0)[28 * 14 + 14] as f32 / 255.0
    );

    // Whole-set tensors with the usual normalisation: mean ~0, std ~1.
    let test = test.transform(
        Compose::new()
            .then(ToTensor)
            .then(Normalize::new(&[0.1307], &[0.3081])),
    );
    let (x, y) = test.to_tensors().unwrap();
    assert_eq!(
        (x.shape(), y.shape(), y.dtype()),
        (
            &[10_000usize, 1, 28, 28][..],
            &[10_000usize][..],
            DType::I64
        )
    );
    let xs = x.to_vec::<f32>();
    let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / xs.len() as f64;
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert_eq!(y.to_vec::<i64>()[..3], [7, 2, 1]);
    // The loader gives the same first batch.
    let loader = DataLoader::new(test).batch_size(64).num_workers(2);
    assert_eq!(loader.len(), 157);
    let (bx, by) = loader.iter().next().unwrap().unwrap();
    assert_eq!(bx.shape(), &[64, 1, 28, 28]);
    assert_eq!(bx.to_vec::<f32>()[..], xs[..64 * 784]);
    assert_eq!(by.to_vec::<i64>()[..3], [7, 2, 1]);
}

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn mnist_bad_files_are_typed_errors_naming_the_file() {
    let dir = temp_dir("idx");
    let pixels: Vec<u8> = (0..3 * 2 * 2).map(|v| v as u8 * 20).collect();
    let images = idx(2051, &[3, 2, 2], &pixels);
    let labels = idx(2049, &[3], &[1, 2, 3]);
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    // Valid raw and gzipped files (FashionMNIST has the same layout).
    let ds = Mnist::from_files(
        write("ok-images", &images),
        write("ok-labels.gz", &gz(&labels)),
    )
    .unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.image_size(), (2, 2));
    let (x, y) = ds.get(2).unwrap();
    assert_eq!((x.shape(), y), (&[1usize, 2, 2][..], 3));
    assert_eq!(x.to_vec::<f32>()[0], 160.0 / 255.0);
    assert!(matches!(
        ds.get(3),
        Err(DataError::IndexOutOfRange { index: 3, len: 3 })
    ));
    let lbl = dir.join("ok-labels.gz");

    let check = |e: DataError, file: &str, what: &str| {
        let msg = e.to_string();
        assert!(msg.contains(file), "error should name {file}: {msg}");
        assert!(msg.contains(what), "error should say {what}: {msg}");
        e
    };
    let e =
        Mnist::from_files(write("trunc-images", &images[..images.len() - 1]), &lbl).unwrap_err();
    assert!(matches!(
        check(e, "trunc-images", "truncated"),
        DataError::InvalidIdx { .. }
    ));
    let e = Mnist::from_files(write("short-images", &images[..10]), &lbl).unwrap_err();
    assert!(matches!(
        check(e, "short-images", "truncated"),
        DataError::InvalidIdx { .. }
    ));
    let e = Mnist::from_files(
        write("trunc-images.gz", &gz(&images[..images.len() - 5])),
        &lbl,
    )
    .unwrap_err();
    check(e, "trunc-images.gz", "truncated");
    let e = Mnist::from_files(write("magic-images", &idx(2049, &[3, 2, 2], &pixels)), &lbl)
        .unwrap_err();
    assert!(matches!(
        check(e, "magic-images", "magic"),
        DataError::InvalidIdx { .. }
    ));
    let e = Mnist::from_files(
        write("ok-images", &images),
        write("magic-labels", &idx(2051, &[3], &[1, 2, 3])),
    )
    .unwrap_err();
    check(e, "magic-labels", "magic");
    let e = Mnist::from_files(
        write("long-images", &[images.clone(), vec![0]].concat()),
        &lbl,
    )
    .unwrap_err();
    check(e, "long-images", "trailing");
    let e = Mnist::from_files(write("not-gzip.gz", &images), &lbl).unwrap_err();
    assert!(matches!(
        check(e, "not-gzip.gz", "invalid IDX"),
        DataError::InvalidIdx { .. }
    ));
    // A header promising 4 billion images is rejected without allocating them.
    let e = Mnist::from_files(
        write("huge-images", &idx(2051, &[u32::MAX, 28, 28], &pixels)),
        &lbl,
    )
    .unwrap_err();
    check(e, "huge-images", "truncated");
    let e = Mnist::from_files(
        dir.join("ok-images"),
        write("two-labels", &idx(2049, &[2], &[1, 2])),
    )
    .unwrap_err();
    match check(e, "two-labels", "3 images") {
        DataError::CountMismatch {
            num_images: 3,
            num_labels: 2,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    let e = Mnist::train(dir.join("nowhere")).unwrap_err();
    check(e, "train-images-idx3-ubyte", "download_mnist");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_folder_reads_png_and_jpeg_by_class() {
    let dir = temp_dir("folder");
    for class in ["dog", "cat"] {
        std::fs::create_dir(dir.join(class)).unwrap();
    }
    let img = image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 50, y as u8 * 60, 7]));
    img.save(dir.join("cat/b.png")).unwrap();
    img.save(dir.join("cat/a.PNG")).unwrap();
    img.save(dir.join("dog/x.jpg")).unwrap();
    std::fs::write(dir.join("dog/notes.txt"), "not an image").unwrap();
    let ds = ImageFolder::new(&dir).unwrap();
    assert_eq!(ds.classes(), ["cat", "dog"]);
    assert_eq!(ds.len(), 3);
    assert!(ds.samples()[0].0.ends_with("cat/a.PNG"));
    let (x, y) = ds.get(1).unwrap();
    assert_eq!(
        (x.shape(), x.dtype(), y),
        (&[3usize, 4, 5][..], DType::F32, 0)
    );
    // PNG is lossless: channel 0 at (y=2, x=3) is 150.
    assert_eq!(x.to_vec::<f32>()[2 * 5 + 3], 150.0 / 255.0);
    let (jx, jy) = ds.get(2).unwrap();
    assert_eq!((jx.shape(), jy), (&[3usize, 4, 5][..], 1));
    let (bx, by) = DataLoader::new(ds)
        .batch_size(3)
        .iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(bx.shape(), &[3, 3, 4, 5]);
    assert_eq!(by.to_vec::<i64>(), vec![0, 0, 1]);

    // An unreadable image: a typed error naming the file.
    std::fs::write(dir.join("dog/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let ds = ImageFolder::new(&dir).unwrap();
    let broken = ds
        .samples()
        .iter()
        .position(|(p, _)| p.ends_with("broken.png"))
        .unwrap();
    let e = ds.get(broken).err().unwrap();
    assert!(matches!(e, DataError::Image { .. }), "{e}");
    assert!(e.to_string().contains("broken.png"), "{e}");

    // Empty folders.
    let empty = temp_dir("empty");
    let e = ImageFolder::new(&empty).unwrap_err();
    assert!(matches!(e, DataError::EmptyFolder { .. }), "{e}");
    assert!(e.to_string().contains(&empty.display().to_string()), "{e}");
    std::fs::create_dir(empty.join("cls")).unwrap();
    std::fs::write(empty.join("cls/readme.txt"), "x").unwrap();
    let e = ImageFolder::new(&empty).unwrap_err();
    assert!(matches!(e, DataError::EmptyFolder { .. }), "{e}");
    let e = ImageFolder::new(empty.join("absent")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&empty).unwrap();
}

fn have_curl() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok()
}

#[test]
fn downloads_verify_checksums_and_fail_clearly_offline() {
    let dir = temp_dir("download");
    let root = dir.join("mnist");
    // Offline (nothing listens on port 9): the error names every URL, the
    // directory and the files.
    let mirrors = ["http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/"];
    let files = [(
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
    )];
    let e = download_files(&root, &files, &mirrors).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::Download { .. }), "{msg}");
    for needle in [
        "http://127.0.0.1:9/a/t10k-labels-idx1-ubyte.gz",
        "http://127.0.0.1:9/b/t10k-labels-idx1-ubyte.gz",
        &root.display().to_string(),
        "t10k-labels-idx1-ubyte.gz",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
    assert!(
        std::fs::read_dir(&root).unwrap().next().is_none(),
        "no partial files"
    );

    if have_curl() {
        // A local mirror: a good checksum lands the file, a bad one is refused.
        let mirror = dir.join("mirror");
        std::fs::create_dir(&mirror).unwrap();
        std::fs::write(mirror.join("f.gz"), b"hello").unwrap();
        let url = format!("file://{}/", mirror.display());
        let e = download_files(
            &root,
            &[("f.gz", "00000000000000000000000000000000")],
            &[&url],
        )
        .unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        assert!(!root.join("f.gz").exists());
        download_files(&root, &[("f.gz", &md5_hex(b"hello"))], &[&url]).unwrap();
        assert_eq!(std::fs::read(root.join("f.gz")).unwrap(), b"hello");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ----- CIFAR-10, FashionMNIST, archives, recursive ImageFolder, random_split --

/// One CIFAR-10 binary record: `label`, then the R, G, B planes, with pixel
/// `(y, x)` of channel `c` equal to `seed + c·50 + y + x` (mod 256).
fn cifar_record(label: u8, seed: u8) -> Vec<u8> {
    let mut r = vec![label];
    for c in 0..3u32 {
        for y in 0..32u32 {
            for x in 0..32u32 {
                r.push((seed as u32 + c * 50 + y + x) as u8);
            }
        }
    }
    r
}

/// Writes the six batch files under `root/cifar-10-batches-bin`: batch
/// `k` holds one record with label `k` (seed `10·k`), the test batch two.
fn write_cifar(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for k in 1..=5u8 {
        files.push((format!("data_batch_{k}.bin"), cifar_record(k, 10 * k)));
    }
    let mut test = cifar_record(9, 1);
    test.extend(cifar_record(0, 2));
    files.push(("test_batch.bin".into(), test));
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    files
}

#[test]
fn cifar10_reads_binary_batches_like_torchvision() {
    use kiln::data::Cifar10;
    let dir = temp_dir("cifar");
    write_cifar(&dir);
    let train = Cifar10::train(&dir).unwrap();
    assert_eq!(train.len(), 5);
    assert_eq!(train.labels(), [1, 2, 3, 4, 5]);
    // The transform sees HWC uint8, as torchvision's PIL image.
    let raw = train.raw_image(2); // seed 30
    assert_eq!(raw.len(), 32 * 32 * 3);
    let (y, x, c) = (3usize, 7usize, 2usize);
    assert_eq!(raw[(y * 32 + x) * 3 + c], (30 + 50 * c + y + x) as u8);
    // Default ToTensor: float32 [3, 32, 32] in [0, 1].
    let (img, label) = train.get(2).unwrap();
    assert_eq!(
        (img.shape(), img.dtype(), label),
        (&[3usize, 32, 32][..], DType::F32, 3)
    );
    let v = img.to_vec::<f32>();
    assert_eq!(
        v[c * 1024 + y * 32 + x],
        (30 + 50 * c + y + x) as f32 / 255.0
    );
    let test = Cifar10::test(&dir).unwrap().target_transform(|l| 9 - l);
    assert_eq!(test.len(), 2);
    assert_eq!(test.get(0).unwrap().1, 0);
    assert_eq!(test.get(1).unwrap().1, 9);
    assert!(matches!(
        test.get(2),
        Err(DataError::IndexOutOfRange { index: 2, len: 2 })
    ));
    assert_eq!(test.classes()[9], "truck");

    // Malformed batches: typed errors naming the file.
    let bad = dir.join("cifar-10-batches-bin/test_batch.bin");
    std::fs::write(&bad, &cifar_record(3, 0)[..100]).unwrap();
    let e = Cifar10::test(&dir).unwrap_err();
    assert!(matches!(e, DataError::InvalidCifar { .. }), "{e}");
    assert!(e.to_string().contains("test_batch.bin"), "{e}");
    std::fs::write(&bad, cifar_record(10, 0)).unwrap();
    let e = Cifar10::test(&dir).unwrap_err();
    assert!(e.to_string().contains("label 10"), "{e}");
    let e = Cifar10::train(dir.join("nowhere")).unwrap_err();
    assert!(e.to_string().contains("download_cifar10"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A ustar archive of `(path, bytes)` entries, gzipped.
fn tar_gz(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut tar = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn archives_download_and_unpack() {
    use kiln::data::{Cifar10, download_and_extract_archive, extract_tar_gz};
    let dir = temp_dir("archive");
    let src = temp_dir("archive_src");
    let files = write_cifar(&src);
    let entries: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|(n, b)| (format!("cifar-10-batches-bin/{n}"), b))
        .collect();
    let archive = tar_gz(&entries);
    std::fs::write(src.join("c.tar.gz"), &archive).unwrap();
    extract_tar_gz(&src.join("c.tar.gz"), &dir).unwrap();
    assert_eq!(Cifar10::train(&dir).unwrap().len(), 5);

    // An entry escaping the target folder is refused.
    let evil = tar_gz(&[("../evil.txt".to_string(), b"x".to_vec())]);
    std::fs::write(src.join("evil.tar.gz"), evil).unwrap();
    let e = extract_tar_gz(&src.join("evil.tar.gz"), &dir).unwrap_err();
    assert!(matches!(e, DataError::InvalidArchive { .. }), "{e}");
    assert!(!dir.join("../evil.txt").exists());
    // Not gzip at all.
    std::fs::write(src.join("plain.tar.gz"), b"plain").unwrap();
    assert!(extract_tar_gz(&src.join("plain.tar.gz"), &dir).is_err());

    if have_curl() {
        // Through a local mirror, checksum verified, then unpacked.
        let root = dir.join("downloaded");
        let url = format!("file://{}/", src.display());
        download_and_extract_archive(&root, ("c.tar.gz", &md5_hex(&archive)), &[&url]).unwrap();
        assert_eq!(Cifar10::test(&root).unwrap().len(), 2);
    } else {
        println!("skipped: curl not installed, the local-mirror download was not tried");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&src).unwrap();
}

#[test]
fn fashion_mnist_reads_idx_files() {
    use kiln::data::{FASHION_MNIST_CLASSES, FASHION_MNIST_MD5, FashionMnist};
    let dir = temp_dir("fashion");
    let idx = |dims: &[u32], data: &[u8]| {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    };
    let pixels: Vec<u8> = (0..2 * 28 * 28).map(|i| (i % 251) as u8).collect();
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx(&[2, 28, 28], &pixels),
    )
    .unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&[2], &[9, 0])).unwrap();
    let test = FashionMnist::test(&dir).unwrap();
    assert_eq!(test.len(), 2);
    let (x, y) = test.get(0).unwrap();
    assert_eq!((x.shape(), y), (&[1usize, 28, 28][..], 9));
    assert_eq!(FASHION_MNIST_CLASSES[y as usize], "Ankle boot");
    assert_eq!(x.to_vec::<f32>()[5], 5.0 / 255.0);
    assert!(FASHION_MNIST_MD5.iter().all(|(_, m)| m.len() == 32));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_folder_walks_nested_folders_like_torchvision() {
    let dir = temp_dir("nested");
    for sub in ["cat/a/x", "cat/a-b", "cat/B", "dog"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let img = image::RgbImage::from_fn(2, 3, |x, y| image::Rgb([x as u8, y as u8, 9]));
    for f in [
        "cat/z.png",
        "cat/a/x/1.png",
        "cat/a-b/2.png",
        "cat/a/3.png",
        "cat/B/4.png",
        "cat/0.png",
        "dog/d.png",
    ] {
        img.save(dir.join(f)).unwrap();
    }
    let ds = ImageFolder::new(&dir)
        .unwrap()
        .target_transform(|c| c + 10)
        .loader(|p| {
            // A custom loader: grey images, one channel.
            let rgb = kiln::data::read_image_rgb(p)?;
            Ok(rgb.narrow(2, 0, 1).contiguous())
        });
    // `sorted(os.walk(...))` order, as torchvision's make_dataset.
    let want = [
        "cat/0.png",
        "cat/z.png",
        "cat/B/4.png",
        "cat/a/3.png",
        "cat/a-b/2.png",
        "cat/a/x/1.png",
        "dog/d.png",
    ];
    let got: Vec<String> = ds
        .samples()
        .iter()
        .map(|(p, _)| p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(got, want);
    let (x, y) = ds.get(6).unwrap();
    assert_eq!((x.shape(), y), (&[1usize, 3, 2][..], 11));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn random_split_partitions_like_pytorch() {
    use kiln::data::{random_split, random_split_fractions, split_lengths};
    use kiln::rng::Generator;
    // Part sizes for fractions, as printed by PyTorch's random_split.
    assert_eq!(split_lengths(10, &[0.33, 0.33, 0.34]), [4, 3, 3]);
    assert_eq!(split_lengths(7, &[0.5, 0.5]), [4, 3]);
    assert_eq!(split_lengths(101, &[0.8, 0.1, 0.1]), [81, 10, 10]);
    assert_eq!(split_lengths(5, &[0.1, 0.9]), [1, 4]);
    let data = || TensorDataset::new(vec![Tensor::arange(0.0, 10.0, 1.0)]);
    let parts = random_split(data(), &[6, 4], Some(&mut Generator::new(7)));
    let mut seen: Vec<usize> = parts.iter().flat_map(|p| p.indices().to_vec()).collect();
    assert_eq!((parts[0].len(), parts[1].len()), (6, 4));
    // The items are the underlying samples at those indices.
    let first = parts[1].get(0).unwrap();
    assert_eq!(first[0].item(), parts[1].indices()[0] as f64);
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    // Same generator seed, same split; another seed, another one.
    let again = random_split(data(), &[6, 4], Some(&mut Generator::new(7)));
    assert_eq!(again[0].indices(), parts[0].indices());
    let other = random_split(data(), &[6, 4], Some(&mut Generator::new(8)));
    assert_ne!(other[0].indices(), parts[0].indices());
    let f = random_split_fractions(data(), &[0.7, 0.3], None);
    assert_eq!((f[0].len(), f[1].len()), (7, 3));
    assert!(parts[0].get(6).is_err());
}

#[test]
#[should_panic(
    expected = "random_split: sum of input lengths (9) does not equal the length of the input dataset (10)"
)]
fn random_split_checks_lengths() {
    let data = TensorDataset::new(vec![Tensor::arange(0.0, 10.0, 1.0)]);
    let _ = kiln::data::random_split(data, &[5, 4], None);
}
