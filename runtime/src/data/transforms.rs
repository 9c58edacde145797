//! Image transforms, like `torchvision.transforms`: [`ToTensor`],
//! [`Normalize`], [`Compose`], [`RandomCrop`], [`RandomHorizontalFlip`],
//! [`Resize`].
//!
//! Images enter a pipeline as `uint8` tensors of shape `[H, W, C]` (the
//! role a PIL image plays in torchvision: that is what [`Mnist`](super::Mnist)
//! and [`ImageFolder`](super::ImageFolder) hand to their transform).
//! [`ToTensor`] turns them into `float32` `[C, H, W]` in `[0, 1]`; the other
//! transforms work on that. Misusing a transform (wrong dtype or rank)
//! panics with a message naming it, like a PyTorch op raising; inside a
//! [`DataLoader`](super::DataLoader) the panic becomes a
//! [`DataError::Panic`](super::DataError::Panic) naming the sample.
//!
//! Randomness is reproducible: random transforms draw from
//! [`with_transform_rng`], which inside a data loader is seeded from the
//! loader's seed, the epoch and the sample index, so every sample gets the
//! same augmentation whatever the number of workers. Outside a loader it
//! falls back to the global generator ([`manual_seed`](crate::manual_seed)).
//! A transform given its own generator (`with_generator`) uses that instead.

use crate::rng::Generator;
use crate::{DType, Tensor};
use std::cell::RefCell;
use std::sync::Mutex;

/// A step of a preprocessing pipeline, like a torchvision transform.
/// Closures `Fn(Tensor) -> Tensor` are transforms too (torchvision's
/// `Lambda`).
pub trait Transform: Send + Sync {
    /// Transforms one sample.
    fn apply(&self, x: Tensor) -> Tensor;
}

impl<F: Fn(Tensor) -> Tensor + Send + Sync> Transform for F {
    fn apply(&self, x: Tensor) -> Tensor {
        self(x)
    }
}

impl Transform for Box<dyn Transform> {
    fn apply(&self, x: Tensor) -> Tensor {
        (**self).apply(x)
    }
}

thread_local! {
    static SAMPLE_RNG: RefCell<Option<Generator>> = const { RefCell::new(None) };
}

/// Runs `f` with the generator random transforms should use: the current
/// sample's generator inside a data loader (seeded from loader seed, epoch
/// and sample index), else the global one.
pub fn with_transform_rng<R>(f: impl FnOnce(&mut Generator) -> R) -> R {
    let mut f = Some(f);
    let out = SAMPLE_RNG.with(|cell| {
        cell.borrow_mut()
            .as_mut()
            .map(|g| (f.take().expect("called once"))(g))
    });
    match out {
        Some(r) => r,
        None => crate::rng::with_rng(f.take().expect("not called yet")),
    }
}

/// Runs `f` with this thread's sample generator seeded from `seed`,
/// restoring the previous one afterwards (also on panic).
pub(crate) fn with_sample_seed<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Generator>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            SAMPLE_RNG.with(|cell| *cell.borrow_mut() = prev);
        }
    }
    let prev = SAMPLE_RNG.with(|cell| cell.borrow_mut().replace(Generator::new(seed)));
    let _restore = Restore(prev);
    f()
}

/// SplitMix64 finaliser: mixes two values into a well-spread seed.
pub(crate) fn mix_seed(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An optional generator owned by a random transform.
#[derive(Default)]
struct OwnRng(Option<Mutex<Generator>>);

impl OwnRng {
    fn with<R>(&self, f: impl FnOnce(&mut Generator) -> R) -> R {
        match &self.0 {
            Some(m) => f(&mut m.lock().unwrap_or_else(|e| e.into_inner())),
            None => with_transform_rng(f),
        }
    }
}

fn expect_chw(op: &str, x: &Tensor) -> (usize, usize, usize) {
    assert!(
        x.dim() == 3 && x.dtype() == DType::F32,
        "{op}: expected a float32 [C, H, W] image (apply ToTensor first), got {} {:?}",
        x.dtype(),
        x.shape()
    );
    (x.shape()[0], x.shape()[1], x.shape()[2])
}

/// `uint8` `[H, W, C]` (or `[H, W]`) → `float32` `[C, H, W]` scaled to
/// `[0, 1]`, like `transforms.ToTensor()`.
///
/// ```
/// use kiln_runtime::data::transforms::{ToTensor, Transform};
/// use kiln_runtime::Tensor;
/// let img = Tensor::from_vec(vec![0u8, 255, 51, 102], [1, 2, 2]); // H=1, W=2, C=2
/// let t = ToTensor.apply(img);
/// assert_eq!(t.shape(), &[2, 1, 2]);
/// assert_eq!(t.to_vec::<f32>(), vec![0.0, 0.2, 1.0, 0.4]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ToTensor;

impl Transform for ToTensor {
    fn apply(&self, x: Tensor) -> Tensor {
        assert!(
            x.dtype() == DType::U8 && (x.dim() == 2 || x.dim() == 3),
            "ToTensor: expected a uint8 [H, W, C] or [H, W] image, got {} {:?}",
            x.dtype(),
            x.shape()
        );
        let (h, w) = (x.shape()[0], x.shape()[1]);
        let c = if x.dim() == 3 { x.shape()[2] } else { 1 };
        let out = x.with_slice::<u8, _>("ToTensor", |src| hwc_to_chw_f32(src, h, w, c));
        Tensor::from_vec(out, [c, h, w])
    }
}

/// Converts interleaved bytes to planar floats in `[0, 1]`.
pub(crate) fn hwc_to_chw_f32(src: &[u8], h: usize, w: usize, c: usize) -> Vec<f32> {
    // torchvision divides by 255; multiplying by the reciprocal can differ
    // in the last bit, so divide.
    if c == 1 {
        return src.iter().map(|&b| b as f32 / 255.0).collect();
    }
    let mut out = vec![0.0f32; c * h * w];
    for (p, px) in src.chunks_exact(c).enumerate() {
        for (ch, &b) in px.iter().enumerate() {
            out[ch * h * w + p] = b as f32 / 255.0;
        }
    }
    out
}

/// `(x - mean[c]) / std[c]` per channel of a `float32` `[C, H, W]` image,
/// like `transforms.Normalize(mean, std)`. A single mean/std applies to
/// every channel.
///
/// ```
/// use kiln_runtime::data::transforms::{Normalize, Transform};
/// use kiln_runtime::Tensor;
/// let x = Tensor::from_vec(vec![0.5f32, 1.0], [2, 1, 1]);
/// let y = Normalize::new(&[0.5, 0.0], &[1.0, 2.0]).apply(x);
/// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.5]);
/// ```
#[derive(Clone, Debug)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// Per-channel `mean` and `std` (same length; zeros in `std` panic).
    pub fn new(mean: &[f32], std: &[f32]) -> Normalize {
        assert!(
            mean.len() == std.len() && !mean.is_empty(),
            "Normalize: mean has {} values but std has {}",
            mean.len(),
            std.len()
        );
        assert!(
            std.iter().all(|&s| s != 0.0),
            "Normalize: std evaluated to zero, leading to division by zero ({std:?})"
        );
        Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        }
    }
}

impl Transform for Normalize {
    fn apply(&self, x: Tensor) -> Tensor {
        let (c, h, w) = expect_chw("Normalize", &x);
        assert!(
            self.mean.len() == 1 || self.mean.len() == c,
            "Normalize: {} means for an image of {c} channels",
            self.mean.len()
        );
        let plane = h * w;
        let out: Vec<f32> = x.with_slice::<f32, _>("Normalize", |src| {
            let mut out = Vec::with_capacity(src.len());
            for ch in 0..c {
                let k = if self.mean.len() == 1 { 0 } else { ch };
                let (m, s) = (self.mean[k], self.std[k]);
                out.extend(
                    src[ch * plane..(ch + 1) * plane]
                        .iter()
                        .map(|&v| (v - m) / s),
                );
            }
            out
        });
        Tensor::from_vec(out, [c, h, w])
    }
}

/// Applies transforms in order, like `transforms.Compose([...])`.
///
/// ```
/// use kiln_runtime::data::transforms::{Compose, Normalize, ToTensor, Transform};
/// let t = Compose::new().then(ToTensor).then(Normalize::new(&[0.1307], &[0.3081]));
/// let img = kiln_runtime::Tensor::zeros_opts([28, 28, 1], kiln_runtime::DType::U8);
/// assert_eq!(t.apply(img).shape(), &[1, 28, 28]);
/// ```
#[derive(Default)]
pub struct Compose(Vec<Box<dyn Transform>>);

impl Compose {
    /// An empty pipeline (the identity).
    pub fn new() -> Compose {
        Compose(Vec::new())
    }

    /// Appends `t` and returns the pipeline.
    pub fn then(mut self, t: impl Transform + 'static) -> Compose {
        self.0.push(Box::new(t));
        self
    }

    /// A pipeline from boxed steps.
    pub fn from_boxed(steps: Vec<Box<dyn Transform>>) -> Compose {
        Compose(steps)
    }
}

impl Transform for Compose {
    fn apply(&self, x: Tensor) -> Tensor {
        self.0.iter().fold(x, |x, t| t.apply(x))
    }
}

/// Pads a `float32` `[C, H, W]` image with `padding` zeros on each side,
/// then crops a random `size` window, like
/// `transforms.RandomCrop(size, padding)`.
///
/// ```
/// use kiln_runtime::data::transforms::{RandomCrop, Transform};
/// use kiln_runtime::rng::Generator;
/// let crop = RandomCrop::new((28, 28), 4).with_generator(Generator::new(0));
/// assert_eq!(crop.apply(kiln_runtime::Tensor::ones([1, 28, 28])).shape(), &[1, 28, 28]);
/// ```
pub struct RandomCrop {
    size: (usize, usize),
    padding: usize,
    rng: OwnRng,
}

impl RandomCrop {
    /// Crops `(height, width)` after padding each side by `padding`.
    pub fn new(size: (usize, usize), padding: usize) -> RandomCrop {
        RandomCrop {
            size,
            padding,
            rng: OwnRng::default(),
        }
    }

    /// Draws crop positions from `g` instead of the loader's per-sample
    /// generator (reproducible in call order; with several workers the
    /// order, and so the crops, can vary).
    pub fn with_generator(mut self, g: Generator) -> RandomCrop {
        self.rng = OwnRng(Some(Mutex::new(g)));
        self
    }
}

impl Transform for RandomCrop {
    fn apply(&self, x: Tensor) -> Tensor {
        let (c, h, w) = expect_chw("RandomCrop", &x);
        let p = self.padding;
        let (ph, pw) = (h + 2 * p, w + 2 * p);
        let (th, tw) = self.size;
        assert!(
            th <= ph && tw <= pw,
            "RandomCrop: crop size {:?} is larger than the padded image [{ph}, {pw}]",
            self.size
        );
        // torchvision's `get_params`: `torch.randint(0, h - th + 1, (1,))`, then the same for w.
        // (No draw when the crop is the whole padded image.)
        let (top, left) = if (ph, pw) == (th, tw) {
            (0, 0)
        } else {
            self.rng.with(|g| {
                (
                    g.below((ph - th + 1) as u64) as usize,
                    g.below((pw - tw + 1) as u64) as usize,
                )
            })
        };
        let out = x.with_slice::<f32, _>("RandomCrop", |src| {
            let mut out = vec![0.0f32; c * th * tw];
            for ch in 0..c {
                for i in 0..th {
                    // Row in padded coordinates → source row, if inside.
                    let Some(sy) = (top + i).checked_sub(p).filter(|&y| y < h) else {
                        continue;
                    };
                    for j in 0..tw {
                        if let Some(sx) = (left + j).checked_sub(p).filter(|&x| x < w) {
                            out[(ch * th + i) * tw + j] = src[(ch * h + sy) * w + sx];
                        }
                    }
                }
            }
            out
        });
        Tensor::from_vec(out, [c, th, tw])
    }
}

/// Mirrors a `float32` `[C, H, W]` image left–right with probability `p`,
/// like `transforms.RandomHorizontalFlip(p)`.
pub struct RandomHorizontalFlip {
    p: f64,
    rng: OwnRng,
}

impl RandomHorizontalFlip {
    /// Flips with probability `p` (torchvision's default is 0.5).
    pub fn new(p: f64) -> RandomHorizontalFlip {
        RandomHorizontalFlip {
            p,
            rng: OwnRng::default(),
        }
    }

    /// Draws from `g` instead of the loader's per-sample generator.
    pub fn with_generator(mut self, g: Generator) -> RandomHorizontalFlip {
        self.rng = OwnRng(Some(Mutex::new(g)));
        self
    }
}

impl Default for RandomHorizontalFlip {
    fn default() -> Self {
        RandomHorizontalFlip::new(0.5)
    }
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, x: Tensor) -> Tensor {
        let (c, h, w) = expect_chw("RandomHorizontalFlip", &x);
        // torchvision: `if torch.rand(1) < self.p` (a float32 comparison).
        if self.rng.with(|g| g.next_f32()) >= self.p as f32 {
            return x;
        }
        let out = x.with_slice::<f32, _>("RandomHorizontalFlip", |src| {
            let mut out = src.to_vec();
            for row in out.chunks_exact_mut(w.max(1)) {
                row.reverse();
            }
            out
        });
        Tensor::from_vec(out, [c, h, w])
    }
}

/// Bilinear resize of a `float32` `[C, H, W]` image to `(height, width)`,
/// like `F.interpolate(x, size, mode="bilinear", align_corners=False)`
/// (torchvision's `Resize` without antialiasing).
///
/// ```
/// use kiln_runtime::data::transforms::{Resize, Transform};
/// let y = Resize::new((4, 4)).apply(kiln_runtime::Tensor::ones([3, 2, 2]));
/// assert_eq!(y.shape(), &[3, 4, 4]);
/// assert!(y.to_vec::<f32>().iter().all(|&v| (v - 1.0).abs() < 1e-6));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Resize {
    size: (usize, usize),
}

impl Resize {
    /// Resizes to `(height, width)`.
    pub fn new(size: (usize, usize)) -> Resize {
        Resize { size }
    }
}

/// Source index pair and weight of the second for each output coordinate
/// (half-pixel centres, clamped at the edges like PyTorch).
fn bilinear_taps(out: usize, inp: usize) -> Vec<(usize, usize, f32)> {
    let scale = inp as f32 / out as f32;
    (0..out)
        .map(|o| {
            let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(inp - 1);
            let i1 = (i0 + 1).min(inp - 1);
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

impl Transform for Resize {
    fn apply(&self, x: Tensor) -> Tensor {
        let (c, h, w) = expect_chw("Resize", &x);
        let (oh, ow) = self.size;
        assert!(
            h > 0 && w > 0 && oh > 0 && ow > 0,
            "Resize: cannot resize [{h}, {w}] to {:?}",
            self.size
        );
        let ys = bilinear_taps(oh, h);
        let xs = bilinear_taps(ow, w);
        let out = x.with_slice::<f32, _>("Resize", |src| {
            let mut out = Vec::with_capacity(c * oh * ow);
            for ch in 0..c {
                let plane = &src[ch * h * w..(ch + 1) * h * w];
                for &(y0, y1, wy) in &ys {
                    for &(x0, x1, wx) in &xs {
                        let top = plane[y0 * w + x0] * (1.0 - wx) + plane[y0 * w + x1] * wx;
                        let bot = plane[y1 * w + x0] * (1.0 - wx) + plane[y1 * w + x1] * wx;
                        out.push(top * (1.0 - wy) + bot * wy);
                    }
                }
            }
            out
        });
        Tensor::from_vec(out, [c, oh, ow])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_tensor_matches_torchvision_division() {
        let img = Tensor::from_vec((0..=255u8).collect::<Vec<_>>(), [16, 16]);
        let t = ToTensor.apply(img);
        assert_eq!(t.shape(), &[1, 16, 16]);
        let v = t.to_vec::<f32>();
        for (i, x) in v.iter().enumerate() {
            assert_eq!(*x, i as f32 / 255.0);
        }
        // Channels become planes.
        let rgb = Tensor::from_vec(vec![1u8, 2, 3, 4, 5, 6], [1, 2, 3]);
        let t = ToTensor.apply(rgb).to_vec::<f32>();
        let want: Vec<f32> = [1, 4, 2, 5, 3, 6]
            .iter()
            .map(|&b| b as f32 / 255.0)
            .collect();
        assert_eq!(t, want);
    }

    #[test]
    fn random_crop_with_padding_keeps_content_aligned() {
        let x = Tensor::from_vec((1..=16).map(|v| v as f32).collect::<Vec<_>>(), [1, 4, 4]);
        // No padding, full size: the identity.
        let same = RandomCrop::new((4, 4), 0).apply(x.shallow_clone());
        assert_eq!(same.to_vec::<f32>(), x.to_vec::<f32>());
        // Every crop of the padded image is a shifted copy with zeros.
        let crop = RandomCrop::new((4, 4), 1).with_generator(Generator::new(3));
        for _ in 0..20 {
            let v = crop.apply(x.shallow_clone()).to_vec::<f32>();
            let nz: Vec<f32> = v.iter().copied().filter(|&a| a != 0.0).collect();
            assert!(nz.len() >= 9, "{v:?}");
            assert!(nz.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        }
    }

    #[test]
    fn flip_and_seeded_reproducibility() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [1, 2, 2]);
        let always = RandomHorizontalFlip::new(1.0);
        assert_eq!(
            always.apply(x.shallow_clone()).to_vec::<f32>(),
            vec![2.0, 1.0, 4.0, 3.0]
        );
        let never = RandomHorizontalFlip::new(0.0);
        assert_eq!(
            never.apply(x.shallow_clone()).to_vec::<f32>(),
            x.to_vec::<f32>()
        );
        let draw = |seed| {
            with_sample_seed(seed, || {
                (0..16)
                    .map(|_| {
                        RandomHorizontalFlip::new(0.5)
                            .apply(x.shallow_clone())
                            .to_vec::<f32>()[0]
                    })
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn resize_bilinear_matches_pytorch_half_pixel() {
        // F.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4),
        //               mode="bilinear", align_corners=False)
        let x = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], [1, 2, 2]);
        let y = Resize::new((4, 4)).apply(x).to_vec::<f32>();
        let want = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        // Downscaling 4 -> 2 averages neighbours at half-pixel centres.
        let x = Tensor::from_vec((0..4).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 4]);
        assert_eq!(Resize::new((1, 2)).apply(x).to_vec::<f32>(), vec![0.5, 2.5]);
    }
}
