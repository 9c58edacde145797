//! [`DataError`]: what can go wrong reading a data set or loading a batch.

use std::fmt;
use std::path::PathBuf;

/// An error from a dataset, a transform pipeline, the data loader or a
/// download. Variants about files name the file; variants about samples
/// name the sample index, so a bad item deep inside an epoch can be found.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// The operating system refused to open or read a file or directory.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An IDX file (MNIST's format) is malformed: wrong magic number,
    /// wrong number of dimensions, or fewer bytes than its header promises.
    InvalidIdx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An images file and its labels file disagree on the sample count.
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Number of images it holds.
        num_images: usize,
        /// The labels file.
        labels: PathBuf,
        /// Number of labels it holds.
        num_labels: usize,
    },
    /// An image file could not be decoded.
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A folder that should hold data holds none (no class folders, or no
    /// images in them).
    EmptyFolder {
        /// The folder.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// `get` was called with an index past the end.
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// Loading sample `index` failed; `source` says why.
    Sample {
        /// The sample's index in the dataset.
        index: usize,
        /// The dataset's error.
        source: Box<DataError>,
    },
    /// A dataset's `get` or a transform panicked while loading sample
    /// `index` (in a worker thread or in the caller's thread).
    Panic {
        /// The sample's index in the dataset.
        index: usize,
        /// The panic message.
        message: String,
    },
    /// Collating batch `batch` failed (items of different shapes or
    /// dtypes, or the collate function failed or panicked).
    Collate {
        /// The batch's position in the epoch.
        batch: usize,
        /// Why.
        reason: String,
    },
    /// A worker thread stopped without delivering batch `batch`.
    WorkerDied {
        /// The batch's position in the epoch.
        batch: usize,
    },
    /// A download failed from every mirror. The message names the URLs
    /// tried, the directory to put the files in by hand, and the files.
    Download {
        /// The directory the files belong in.
        dir: PathBuf,
        /// The files still missing.
        files: Vec<String>,
        /// `(url, why it failed)` for every attempt.
        attempts: Vec<(String, String)>,
    },
    /// A downloaded file's MD5 checksum is not the published one.
    Checksum {
        /// The file.
        path: PathBuf,
        /// The published checksum.
        expected: String,
        /// The checksum of what was downloaded.
        actual: String,
    },
    /// A downloaded archive (`.tar.gz`) is malformed or unsafe to unpack.
    InvalidArchive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A CIFAR-10 binary batch file is malformed.
    InvalidCifar {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Any other failure, e.g. from a user-defined dataset.
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl DataError {
    /// Wraps any error (or message) as [`DataError::Other`], for
    /// user-defined datasets: `DataError::other(format!("bad row {i}"))`.
    pub fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> DataError {
        DataError::Other(e.into())
    }

    /// `Ok` when `index` is below `len`, else [`DataError::IndexOutOfRange`].
    pub(crate) fn check_index(index: usize, len: usize) -> Result<(), DataError> {
        if index < len {
            Ok(())
        } else {
            Err(DataError::IndexOutOfRange { index, len })
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::InvalidIdx { path, reason } => {
                write!(f, "{}: invalid IDX file: {reason}", path.display())
            }
            DataError::CountMismatch {
                images,
                num_images,
                labels,
                num_labels,
            } => write!(
                f,
                "{} holds {num_images} images but {} holds {num_labels} labels",
                images.display(),
                labels.display()
            ),
            DataError::Image { path, reason } => {
                write!(f, "{}: cannot decode image: {reason}", path.display())
            }
            DataError::EmptyFolder { path, reason } => {
                write!(f, "{}: {reason}", path.display())
            }
            DataError::IndexOutOfRange { index, len } => {
                write!(
                    f,
                    "index {index} is out of range for a dataset of length {len}"
                )
            }
            DataError::Sample { index, source } => {
                write!(f, "loading sample {index}: {source}")
            }
            DataError::Panic { index, message } => {
                write!(f, "loading sample {index} panicked: {message}")
            }
            DataError::Collate { batch, reason } => {
                write!(f, "collating batch {batch}: {reason}")
            }
            DataError::WorkerDied { batch } => {
                write!(
                    f,
                    "a data loader worker stopped before delivering batch {batch}"
                )
            }
            DataError::Download {
                dir,
                files,
                attempts,
            } => {
                writeln!(f, "could not download {}:", files.join(", "))?;
                for (url, why) in attempts {
                    writeln!(f, "  {url}: {why}")?;
                }
                write!(
                    f,
                    "download the files by hand and put them (.gz or uncompressed) in {}",
                    dir.display()
                )
            }
            DataError::Checksum {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{}: MD5 checksum {actual} does not match the published {expected}",
                path.display()
            ),
            DataError::InvalidArchive { path, reason } => {
                write!(f, "{}: invalid archive: {reason}", path.display())
            }
            DataError::InvalidCifar { path, reason } => {
                write!(f, "{}: invalid CIFAR-10 batch: {reason}", path.display())
            }
            DataError::Other(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            DataError::Sample { source, .. } => Some(source.as_ref()),
            DataError::Other(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}
