//! Data loading, like `torch.utils.data` and `torchvision.datasets`:
//! the [`Dataset`] trait, [`TensorDataset`], [`DataLoader`] (shuffling,
//! custom collate, parallel workers with prefetch), the [`Mnist`] and
//! [`ImageFolder`] data sets, image [`transforms`], and [`download_mnist`].

mod dataset;
mod distributed_sampler;
mod download;
mod error;
mod image_folder;
mod loader;
mod mnist;
pub mod transforms;

pub use dataset::{Dataset, TensorDataset};
pub use distributed_sampler::{DistributedSampler, DistributedShard};
pub use download::{MNIST_MD5, MNIST_MIRRORS, download_files, download_mnist, md5, md5_hex};
pub use error::DataError;
pub use image_folder::{IMAGE_EXTENSIONS, ImageFolder, read_image_rgb};
pub use loader::{Collate, CollateFn, DataLoader, DataLoaderIter, stack_items};
pub use mnist::{MNIST_FILES, Mnist};
