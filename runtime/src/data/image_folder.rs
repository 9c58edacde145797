//! [`ImageFolder`]: images sorted into one folder per class.

use super::transforms::{ToTensor, Transform};
use super::{DataError, Dataset};
use crate::Tensor;
use std::path::{Path, PathBuf};

/// File extensions read as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// A classification data set laid out as `root/<class>/<image>`, like
/// `torchvision.datasets.ImageFolder`.
///
/// Classes are the sub-folders of `root`, sorted by name and numbered from
/// 0; the PNG and JPEG files anywhere below each (nested folders too) are
/// its samples, in torchvision's order (folders sorted by path, then files
/// by name). `get` reads the file with the loader (default
/// [`read_image_rgb`]: decode as RGB to a `uint8` `[H, W, 3]` image), applies
/// the transform (default [`ToTensor`], giving `float32` `[3, H, W]`) and
/// returns it with the class index, mapped by the `target_transform` if
/// one is set. A file that cannot be decoded is a [`DataError::Image`]
/// naming it.
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, usize)>,
    transform: Box<dyn Transform>,
    target_transform: Option<Box<dyn Fn(i64) -> i64 + Send + Sync>>,
    loader: Box<Loader>,
}

/// Reads one sample file into a tensor.
type Loader = dyn Fn(&Path) -> Result<Tensor, DataError> + Send + Sync;

impl std::fmt::Debug for ImageFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFolder")
            .field("root", &self.root)
            .field("classes", &self.classes)
            .field("len", &self.samples.len())
            .finish_non_exhaustive()
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        v.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    v.sort();
    Ok(v)
}

/// The images under `dir`, in torchvision's order: `sorted(os.walk(dir))`
/// (folders by their path as a string), then each folder's files by name.
fn images_below(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut folders = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < folders.len() {
        let sub: Vec<PathBuf> = sorted_entries(&folders[i])?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        folders.extend(sub);
        i += 1;
    }
    folders.sort_by_key(|p| p.to_string_lossy().into_owned());
    let mut out = Vec::new();
    for f in &folders {
        out.extend(sorted_entries(f)?.into_iter().filter(|p| is_image(p)));
    }
    Ok(out)
}

fn is_image(path: &Path) -> bool {
    path.is_file()
        && path.extension().is_some_and(|e| {
            let e = e.to_string_lossy().to_ascii_lowercase();
            IMAGE_EXTENSIONS.contains(&e.as_str())
        })
}

impl ImageFolder {
    /// Scans `root`. Errors when it cannot be read, has no class folder,
    /// or its class folders hold no image.
    pub fn new(root: impl AsRef<Path>) -> Result<ImageFolder, DataError> {
        let root = root.as_ref().to_path_buf();
        let class_dirs: Vec<PathBuf> = sorted_entries(&root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if class_dirs.is_empty() {
            return Err(DataError::EmptyFolder {
                path: root,
                reason: "no class folders found (expected root/<class>/<image>)".into(),
            });
        }
        let mut classes = Vec::new();
        let mut samples = Vec::new();
        for (c, dir) in class_dirs.iter().enumerate() {
            classes.push(
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            for f in images_below(dir)? {
                samples.push((f, c));
            }
        }
        if samples.is_empty() {
            return Err(DataError::EmptyFolder {
                path: root,
                reason: format!(
                    "no images ({}) found in the class folders {classes:?}",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            });
        }
        Ok(ImageFolder {
            root,
            classes,
            samples,
            transform: Box::new(ToTensor),
            target_transform: None,
            loader: Box::new(|p: &Path| read_image_rgb(p)),
        })
    }

    /// Maps each class index, like `target_transform`.
    pub fn target_transform(
        mut self,
        f: impl Fn(i64) -> i64 + Send + Sync + 'static,
    ) -> ImageFolder {
        self.target_transform = Some(Box::new(f));
        self
    }

    /// Replaces the loader that reads a sample file (default
    /// [`read_image_rgb`]), like `loader=`; the transform gets what it
    /// returns.
    pub fn loader(
        mut self,
        f: impl Fn(&Path) -> Result<Tensor, DataError> + Send + Sync + 'static,
    ) -> ImageFolder {
        self.loader = Box::new(f);
        self
    }

    /// Replaces the transform (it receives a `uint8` `[H, W, 3]` image).
    pub fn transform(mut self, t: impl Transform + 'static) -> ImageFolder {
        self.transform = Box::new(t);
        self
    }

    /// Class names, sorted; a sample's label indexes this list.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// `(path, class index)` of every sample, in order.
    pub fn samples(&self) -> &[(PathBuf, usize)] {
        &self.samples
    }

    /// The folder scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Decodes `path` (PNG or JPEG, detected from its content) as RGB into a
/// `uint8` `[H, W, 3]` tensor.
pub fn read_image_rgb(path: impl AsRef<Path>) -> Result<Tensor, DataError> {
    let path = path.as_ref();
    let err = |reason: String| DataError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let img = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .decode()
        .map_err(|e| err(e.to_string()))?
        .into_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok(Tensor::from_vec(img.into_raw(), [h, w, 3]))
}

impl Dataset for ImageFolder {
    type Item = (Tensor, i64);

    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, index: usize) -> Result<(Tensor, i64), DataError> {
        let (path, class) = self.samples.get(index).ok_or(DataError::IndexOutOfRange {
            index,
            len: self.samples.len(),
        })?;
        let img = (self.loader)(path)?;
        let class = *class as i64;
        let class = self.target_transform.as_ref().map_or(class, |f| f(class));
        Ok((self.transform.apply(img), class))
    }
}
