//! Data loading, like `torch.utils.data` and `torchvision.datasets`:
//! the [`Dataset`] trait, [`TensorDataset`], [`DataLoader`] (shuffling,
//! custom collate, parallel workers with prefetch), the [`Mnist`] and
//! [`ImageFolder`] data sets, [`Cifar10`], [`FashionMnist`],
//! [`random_split`], image [`transforms`], and the downloads.

mod cifar;
mod dataset;
mod distributed_sampler;
mod download;
mod error;
mod fashion_mnist;
mod image_folder;
mod loader;
mod mnist;
mod split;
pub mod transforms;

pub use cifar::{
    CIFAR10_ARCHIVE, CIFAR10_CLASSES, CIFAR10_FOLDER, CIFAR10_MD5, CIFAR10_TEST_FILE,
    CIFAR10_TRAIN_FILES, CIFAR10_URL, Cifar10, download_cifar10,
};
pub use dataset::{Dataset, TensorDataset};
pub use distributed_sampler::{DistributedSampler, DistributedShard};
pub use download::{
    MNIST_MD5, MNIST_MIRRORS, download_and_extract_archive, download_files, download_mnist,
    extract_tar_gz, md5, md5_hex,
};
pub use error::DataError;
pub use fashion_mnist::{
    FASHION_MNIST_CLASSES, FASHION_MNIST_MD5, FASHION_MNIST_MIRRORS, FashionMnist,
    download_fashion_mnist,
};
pub use image_folder::{IMAGE_EXTENSIONS, ImageFolder, read_image_rgb};
pub use loader::{Collate, CollateFn, DataLoader, DataLoaderIter, stack_items};
pub use mnist::{MNIST_FILES, Mnist};
pub use split::{Subset, random_split, random_split_fractions, split_lengths};
