//! CUDA kernels as CUDA C sources, compiled with NVRTC at run time (feature
//! `cuda`).
//!
//! Each kernel family is one `.cu` file; [`PRELUDE`] (element types,
//! conversions, strided indexing, block reductions) is prepended to every
//! one. Kernels are `extern "C"` and named `<op>_<dtype>` with dtype one of
//! `f32 f64 f16 bf16 i64 u8 bool`. The runtime compiles a family the first
//! time one of its kernels is launched on a device and caches the module.

pub mod nvrtc;

/// Shared definitions prepended to every kernel family.
pub const PRELUDE: &str = include_str!("prelude.cuh");

/// One kernel family: a name and its CUDA C source (without the prelude).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelFamily {
    /// Short name, also the NVRTC program name (`<name>.cu`).
    pub name: &'static str,
    /// CUDA C source of the family's kernels.
    pub body: &'static str,
}

impl KernelFamily {
    /// The full source NVRTC compiles: [`PRELUDE`] followed by the body.
    pub fn source(&self) -> String {
        let mut s = String::with_capacity(PRELUDE.len() + self.body.len() + 1);
        s.push_str(PRELUDE);
        s.push('\n');
        s.push_str(self.body);
        s
    }
}

macro_rules! families {
    ($($(#[$doc:meta])* $konst:ident = $name:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $konst: KernelFamily = KernelFamily {
                name: $name,
                body: include_str!(concat!($name, ".cu")),
            };
        )*
        /// Every kernel family, in a fixed order.
        pub const FAMILIES: &[KernelFamily] = &[$($konst),*];
    };
}

families! {
    /// Strided copy/assign, casts, fill, where, conv bias add.
    COPY = "copy";
    /// Broadcast binary ops, in-place binary ops, comparisons, logical ops.
    BINARY = "binary";
    /// Elementwise unary math and activations.
    UNARY = "unary";
    /// Sum / max / min (with indices) over any set of dimensions.
    REDUCE = "reduce";
    /// Softmax and log-softmax forward and backward.
    SOFTMAX = "softmax";
    /// Fused cross-entropy and NLL loss forward and backward.
    LOSS = "loss";
    /// im2col / col2im for convolution through cuBLAS.
    CONV = "conv";
    /// Max / average / adaptive-average 2-D pooling forward and backward.
    POOL = "pool";
    /// Batch-norm statistics, normalisation and backward.
    BATCHNORM = "batchnorm";
    /// index_select / index_add, gather / scatter_add.
    INDEX = "index";
    /// SGD (momentum, nesterov), Adam/AdamW, RMSprop updates.
    OPTIM = "optim";
}
