//! [`Cifar10`]: the CIFAR-10 binary batches.

use super::download::download_and_extract_archive;
use super::transforms::{ToTensor, Transform};
use super::{DataError, Dataset};
use crate::Tensor;
use std::path::{Path, PathBuf};

/// Where the CIFAR-10 binary archive is published.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/";
/// The archive's file name.
pub const CIFAR10_ARCHIVE: &str = "cifar-10-binary.tar.gz";
/// The archive's published MD5.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// The folder the archive unpacks to, under the data set's root.
pub const CIFAR10_FOLDER: &str = "cifar-10-batches-bin";
/// The training batches, in order.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";
/// The class names in label order (torchvision's `classes`).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const SIDE: usize = 32;
const PIXELS: usize = SIDE * SIDE * 3;
const RECORD: usize = 1 + PIXELS;

/// CIFAR-10, like `torchvision.datasets.CIFAR10(root, train, transform,
/// target_transform)`, read from the binary version of the data set
/// (`root/cifar-10-batches-bin/*.bin`: one label byte then 3072 pixel bytes,
/// red, green, blue planes of 32×32, per record). It yields the same samples
/// in the same order as torchvision's (which reads the Python version): the
/// transform gets a `uint8` `[32, 32, 3]` image (as torchvision's PIL image;
/// default [`ToTensor`], giving `float32` `[3, 32, 32]` in `[0, 1]`), and the
/// label is the class index.
///
/// ```no_run
/// use kiln_runtime::data::{Cifar10, download_cifar10};
/// download_cifar10("data")?;
/// let train = Cifar10::train("data")?; // 50000 samples
/// # Ok::<(), kiln_runtime::data::DataError>(())
/// ```
pub struct Cifar10 {
    /// Images, HWC `uint8`, one after another.
    images: Vec<u8>,
    labels: Vec<u8>,
    transform: Box<dyn Transform>,
    target_transform: Option<Box<dyn Fn(i64) -> i64 + Send + Sync>>,
}

impl std::fmt::Debug for Cifar10 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cifar10")
            .field("len", &self.labels.len())
            .finish_non_exhaustive()
    }
}

impl Cifar10 {
    /// The training (`train = true`, 50000 samples) or test (10000) split
    /// from `root/cifar-10-batches-bin`.
    pub fn new(root: impl AsRef<Path>, train: bool) -> Result<Cifar10, DataError> {
        let dir = root.as_ref().join(CIFAR10_FOLDER);
        let files: Vec<PathBuf> = if train {
            CIFAR10_TRAIN_FILES.iter().map(|f| dir.join(f)).collect()
        } else {
            vec![dir.join(CIFAR10_TEST_FILE)]
        };
        Self::from_files(&files)
    }

    /// The training split.
    pub fn train(root: impl AsRef<Path>) -> Result<Cifar10, DataError> {
        Self::new(root, true)
    }

    /// The test split.
    pub fn test(root: impl AsRef<Path>) -> Result<Cifar10, DataError> {
        Self::new(root, false)
    }

    /// The records of the given binary batch files, in order.
    pub fn from_files(files: &[PathBuf]) -> Result<Cifar10, DataError> {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for path in files {
            let bytes = std::fs::read(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    DataError::io(
                        path,
                        std::io::Error::new(
                            e.kind(),
                            "not found; call kiln::data::download_cifar10(root) or unpack cifar-10-binary.tar.gz under root",
                        ),
                    )
                } else {
                    DataError::io(path, e)
                }
            })?;
            if bytes.len() % RECORD != 0 {
                return Err(DataError::InvalidCifar {
                    path: path.clone(),
                    reason: format!(
                        "{} bytes is not a whole number of {RECORD}-byte records",
                        bytes.len()
                    ),
                });
            }
            for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
                if rec[0] > 9 {
                    return Err(DataError::InvalidCifar {
                        path: path.clone(),
                        reason: format!("record {i} has label {} (expected 0..=9)", rec[0]),
                    });
                }
                labels.push(rec[0]);
                let planes = &rec[1..];
                // CHW planes to HWC pixels.
                images.extend(
                    (0..SIDE * SIDE).flat_map(|p| (0..3).map(move |c| planes[c * SIDE * SIDE + p])),
                );
            }
        }
        Ok(Cifar10 {
            images,
            labels,
            transform: Box::new(ToTensor),
            target_transform: None,
        })
    }

    /// Replaces the transform (it receives a `uint8` `[32, 32, 3]` image).
    pub fn transform(mut self, t: impl Transform + 'static) -> Cifar10 {
        self.transform = Box::new(t);
        self
    }

    /// Maps each label, like `target_transform`.
    pub fn target_transform(mut self, f: impl Fn(i64) -> i64 + Send + Sync + 'static) -> Cifar10 {
        self.target_transform = Some(Box::new(f));
        self
    }

    /// The `index`-th image as HWC bytes.
    pub fn raw_image(&self, index: usize) -> &[u8] {
        &self.images[index * PIXELS..(index + 1) * PIXELS]
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The class names, in label order.
    pub fn classes(&self) -> [&'static str; 10] {
        CIFAR10_CLASSES
    }
}

impl Dataset for Cifar10 {
    type Item = (Tensor, i64);

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<(Tensor, i64), DataError> {
        DataError::check_index(index, self.len())?;
        let img = Tensor::from_slice(self.raw_image(index), [SIDE, SIDE, 3]);
        let label = self.labels[index] as i64;
        let label = self.target_transform.as_ref().map_or(label, |f| f(label));
        Ok((self.transform.apply(img), label))
    }
}

/// Downloads `cifar-10-binary.tar.gz` into `root` (MD5-checked) and unpacks
/// it to `root/cifar-10-batches-bin`, unless the batches are already there.
pub fn download_cifar10(root: impl AsRef<Path>) -> Result<(), DataError> {
    let root = root.as_ref();
    let dir = root.join(CIFAR10_FOLDER);
    let present = CIFAR10_TRAIN_FILES
        .iter()
        .chain([&CIFAR10_TEST_FILE])
        .all(|f| dir.join(f).is_file());
    if present {
        return Ok(());
    }
    download_and_extract_archive(root, (CIFAR10_ARCHIVE, CIFAR10_MD5), &[CIFAR10_URL])
}
