//! FashionMNIST: MNIST's file format and names, Zalando's images.

use super::download::download_idx_files;
use super::{DataError, Mnist};
use std::path::Path;

/// Where torchvision downloads FashionMNIST from.
pub const FASHION_MNIST_MIRRORS: [&str; 1] =
    ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

/// `(file, MD5)` of the gzipped FashionMNIST files, as torchvision checks
/// them.
pub const FASHION_MNIST_MD5: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
];

/// FashionMNIST's class names, in label order (torchvision's `classes`).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// FashionMNIST, like `torchvision.datasets.FashionMNIST(root, train)`:
/// the same IDX files as MNIST, so the same data set type ([`Mnist`], with
/// its transforms and `(image, label)` items), read from FashionMNIST's
/// folder: `FashionMnist::train(root)`, `FashionMnist::test(root)`.
///
/// ```no_run
/// use kiln_runtime::data::{FashionMnist, download_fashion_mnist};
/// download_fashion_mnist("data/FashionMNIST")?;
/// let train = FashionMnist::train("data/FashionMNIST")?;
/// # Ok::<(), kiln_runtime::data::DataError>(())
/// ```
pub type FashionMnist = Mnist;

/// Downloads the four FashionMNIST files into `root` unless they are there
/// (raw or `.gz`), verifying each MD5, like [`download_mnist`](super::download_mnist).
pub fn download_fashion_mnist(root: impl AsRef<Path>) -> Result<(), DataError> {
    download_idx_files(root.as_ref(), &FASHION_MNIST_MD5, &FASHION_MNIST_MIRRORS)
}
