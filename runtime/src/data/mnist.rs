//! [`Mnist`]: the MNIST (and FashionMNIST) IDX files.

use super::transforms::{ToTensor, Transform, with_sample_seed};
use super::{DataError, Dataset};
use crate::{DType, Tensor};
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The four files, as published (each may also be stored gzipped).
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// MNIST or FashionMNIST (same file format and names), like
/// `torchvision.datasets.MNIST(root, train, transform)`.
///
/// The raw `uint8` images stay in memory (60000 × 784 bytes for the
/// training set); `get` builds a `uint8` `[28, 28, 1]` image and applies
/// the transform, by default [`ToTensor`] (giving `float32` `[1, 28, 28]`
/// in `[0, 1]`). Items are `(image, label)`.
///
/// ```no_run
/// use kiln_runtime::data::{transforms::{Compose, Normalize, ToTensor}, DataLoader, Mnist};
/// let train = Mnist::train("data/mnist")?
///     .transform(Compose::new().then(ToTensor).then(Normalize::new(&[0.1307], &[0.3081])));
/// let loader = DataLoader::new(train).batch_size(64).shuffle(true).seed(0);
/// for batch in &loader {
///     let (images, labels) = batch?; // [64, 1, 28, 28] f32, [64] i64
/// #   let _ = (images, labels);
/// }
/// # Ok::<(), kiln_runtime::data::DataError>(())
/// ```
pub struct Mnist {
    images: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
    transform: Box<dyn Transform>,
}

impl std::fmt::Debug for Mnist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mnist")
            .field("len", &self.labels.len())
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl Mnist {
    /// The training (`train = true`, 60000 samples) or test (10000) split
    /// from `root`, which holds the files of [`MNIST_FILES`], each raw or
    /// `.gz`.
    pub fn new(root: impl AsRef<Path>, train: bool) -> Result<Mnist, DataError> {
        let root = root.as_ref();
        let (img, lbl) = if train {
            (MNIST_FILES[0], MNIST_FILES[1])
        } else {
            (MNIST_FILES[2], MNIST_FILES[3])
        };
        Mnist::from_files(find_file(root, img)?, find_file(root, lbl)?)
    }

    /// The training split, `Mnist::new(root, true)`.
    pub fn train(root: impl AsRef<Path>) -> Result<Mnist, DataError> {
        Mnist::new(root, true)
    }

    /// The test split, `Mnist::new(root, false)`.
    pub fn test(root: impl AsRef<Path>) -> Result<Mnist, DataError> {
        Mnist::new(root, false)
    }

    /// Reads an images file (IDX, magic 2051) and a labels file (magic
    /// 2049), gzipped when their names end in `.gz`.
    pub fn from_files(
        images: impl AsRef<Path>,
        labels: impl AsRef<Path>,
    ) -> Result<Mnist, DataError> {
        let (images, labels) = (images.as_ref(), labels.as_ref());
        let (idims, idata) = read_idx(images, 3)?;
        let (ldims, ldata) = read_idx(labels, 1)?;
        if idims[0] != ldims[0] {
            return Err(DataError::CountMismatch {
                images: images.to_path_buf(),
                num_images: idims[0],
                labels: labels.to_path_buf(),
                num_labels: ldims[0],
            });
        }
        Ok(Mnist {
            images: idata,
            labels: ldata,
            rows: idims[1],
            cols: idims[2],
            transform: Box::new(ToTensor),
        })
    }

    /// Replaces the transform applied in [`get`](Dataset::get) (which
    /// receives a `uint8` `[H, W, 1]` image; start the pipeline with
    /// [`ToTensor`]).
    pub fn transform(mut self, t: impl Transform + 'static) -> Mnist {
        self.transform = Box::new(t);
        self
    }

    /// Image height and width (28 × 28 for MNIST).
    pub fn image_size(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The raw bytes of image `index` (row-major, `rows * cols` bytes).
    pub fn raw_image(&self, index: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.images[index * n..(index + 1) * n]
    }

    /// All labels, in file order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The whole split as two tensors: every image through the transform,
    /// stacked (`float32` `[N, 1, 28, 28]` with the default transform), and
    /// the labels as `int64` `[N]`, for fast whole-set evaluation. Random
    /// transforms are seeded per sample, so the result is reproducible.
    pub fn to_tensors(&self) -> Result<(Tensor, Tensor), DataError> {
        let labels = Tensor::from_vec(
            self.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
            [self.labels.len()],
        );
        let n = self.len();
        if n == 0 {
            return Ok((Tensor::zeros([0, 1, self.rows, self.cols]), labels));
        }
        let first = self.transformed(0);
        let (shape, numel) = (first.shape().to_vec(), first.numel());
        if first.dtype() != DType::F32 {
            return Err(DataError::other(format!(
                "Mnist::to_tensors: the transform must give float32 images, got {}",
                first.dtype()
            )));
        }
        let mut out = vec![0.0f32; n * numel];
        let bad = out
            .par_chunks_mut(numel)
            .enumerate()
            .map(|(i, chunk)| {
                let t = self.transformed(i);
                if t.shape() != shape.as_slice() || t.dtype() != DType::F32 {
                    return Some((i, t.shape().to_vec()));
                }
                t.with_slice::<f32, _>("Mnist::to_tensors", |s| chunk.copy_from_slice(s));
                None
            })
            .find_any(|r| r.is_some())
            .flatten();
        if let Some((i, got)) = bad {
            return Err(DataError::other(format!(
                "Mnist::to_tensors: sample {i} transformed to {got:?}, sample 0 to {shape:?}"
            )));
        }
        let mut full = vec![n];
        full.extend(shape);
        Ok((Tensor::from_vec(out, full), labels))
    }

    fn transformed(&self, index: usize) -> Tensor {
        let img = Tensor::from_slice(self.raw_image(index), [self.rows, self.cols, 1]);
        with_sample_seed(
            super::transforms::mix_seed(0x006d_6e69_7374, index as u64),
            || self.transform.apply(img),
        )
    }
}

impl Dataset for Mnist {
    type Item = (Tensor, i64);

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<(Tensor, i64), DataError> {
        DataError::check_index(index, self.len())?;
        let img = Tensor::from_slice(self.raw_image(index), [self.rows, self.cols, 1]);
        Ok((self.transform.apply(img), self.labels[index] as i64))
    }
}

/// `root/name`, else `root/name.gz`, else a not-found error naming both.
fn find_file(root: &Path, name: &str) -> Result<PathBuf, DataError> {
    let raw = root.join(name);
    let gz = root.join(format!("{name}.gz"));
    if raw.is_file() {
        Ok(raw)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(DataError::io(
            raw,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "neither {name} nor {name}.gz found in {}; put the MNIST files there or call kiln::data::download_mnist",
                    root.display()
                ),
            ),
        ))
    }
}

/// Reads an unsigned-byte IDX file with `ndim` dimensions: returns the
/// dimensions and the data, after checking the magic number and that the
/// data holds exactly what the dimensions promise (never allocating more
/// than is actually there).
pub(crate) fn read_idx(path: &Path, ndim: u8) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let invalid = |reason: String| DataError::InvalidIdx {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    let mut r: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let read_err = |what: &str, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            invalid(format!("truncated: the file ends inside the {what}"))
        } else {
            invalid(format!("cannot read the {what}: {e}"))
        }
    };
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|e| read_err("magic number", e))?;
    let expected = [0, 0, 0x08, ndim];
    if magic != expected {
        return Err(invalid(format!(
            "wrong magic number {} (expected {} for unsigned bytes in {ndim} dimension{})",
            u32::from_be_bytes(magic),
            u32::from_be_bytes(expected),
            if ndim == 1 { "" } else { "s" }
        )));
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for _ in 0..ndim {
        let mut d = [0u8; 4];
        r.read_exact(&mut d).map_err(|e| read_err("header", e))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let total = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| invalid(format!("dimensions {dims:?} overflow")))?;
    let mut data = Vec::new();
    r.take(total as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| read_err("data", e))?;
    if data.len() < total {
        return Err(invalid(format!(
            "truncated: dimensions {dims:?} need {total} bytes of data but the file holds {}",
            data.len()
        )));
    }
    if data.len() > total {
        return Err(invalid(format!(
            "trailing bytes after the {total} bytes that dimensions {dims:?} describe"
        )));
    }
    Ok((dims, data))
}
