//! The CUDA launch layer: one file per kernel family of
//! [`kiln_kernels::cuda`] (`copy.rs` launches `copy.cu`, and so on).
//!
//! A kernel's parameter list is declared once, with [`kernels!`], as a
//! struct whose fields are the kernel's arguments in order, followed by the
//! kernels (name stems and dtypes) that take that list. The struct's
//! `launch` packs exactly those fields, and refuses a kernel that is not
//! declared; [`kernel_signatures`] lists every declared kernel with its
//! parameter types as PTX spells them, which `tests/nvrtc_compile.rs`
//! checks against what NVRTC compiles from the sources. A kernel renamed or
//! given another parameter in a `.cu` file without its declaration here
//! (or the other way round) fails that test, on machines without a GPU.

use super::device::CudaDevice;
use super::{CudaError, check, sfx};
use crate::DType;
use kiln_kernels::cuda::KernelFamily;

mod types;
use types::Args;
pub use types::MAX_DIMS;
pub(crate) use types::{Conv2dGeom, PoolGeom, Strided};

/// The type of one kernel parameter as PTX declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtxParam {
    /// `.u32`: a C `int` (flags).
    U32,
    /// `.u64`: an `i64` or a device pointer.
    U64,
    /// `.f64`: a `double`.
    F64,
    /// `.b8 [N]`: a struct of `N` bytes passed by value.
    Bytes(usize),
}

impl std::fmt::Display for PtxParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PtxParam::U32 => f.write_str(".u32"),
            PtxParam::U64 => f.write_str(".u64"),
            PtxParam::F64 => f.write_str(".f64"),
            PtxParam::Bytes(n) => write!(f, ".b8[{n}]"),
        }
    }
}

/// A Rust type a kernel parameter is passed as, and its PTX type.
pub(crate) trait KernelArg: Copy + 'static {
    /// The parameter's PTX type.
    const PTX: PtxParam;
}

impl KernelArg for i64 {
    const PTX: PtxParam = PtxParam::U64;
}
/// Device pointers (0 for an absent optional buffer).
impl KernelArg for u64 {
    const PTX: PtxParam = PtxParam::U64;
}
impl KernelArg for f64 {
    const PTX: PtxParam = PtxParam::F64;
}
impl KernelArg for i32 {
    const PTX: PtxParam = PtxParam::U32;
}
impl KernelArg for Strided {
    const PTX: PtxParam = PtxParam::Bytes(std::mem::size_of::<Strided>());
}
impl KernelArg for Conv2dGeom {
    const PTX: PtxParam = PtxParam::Bytes(std::mem::size_of::<Conv2dGeom>());
}
impl KernelArg for PoolGeom {
    const PTX: PtxParam = PtxParam::Bytes(std::mem::size_of::<PoolGeom>());
}

/// The floating point dtypes (`KILN_FLOAT_TYPES` in the prelude).
const FLOAT: &[DType] = &[DType::F32, DType::F64, DType::F16, DType::BF16];
/// The integer dtypes (`KILN_INT_TYPES`).
const INT: &[DType] = &[DType::I64, DType::I32, DType::I16, DType::U8];
/// Every dtype (`KILN_ALL_TYPES`).
const ALL: &[DType] = &DType::ALL;
/// No dtype suffix: the stem is the kernel's whole name.
const EXACT: &[DType] = &[];

/// Kernels that share one parameter list: every stem for every dtype,
/// named `{stem}_{dtype}` (or `{stem}` alone for [`EXACT`]).
pub(crate) struct Instances {
    stems: &'static [&'static str],
    dtypes: &'static [DType],
}

/// One parameter list of a family, with the kernels that take it.
pub(crate) struct Declared {
    family: &'static KernelFamily,
    args: &'static str,
    params: &'static [PtxParam],
    instances: &'static [Instances],
}

/// The kernel a launch names: a stem with a dtype suffix, or a whole name.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Name<'a> {
    /// `{stem}_{dtype}`.
    Typed(&'a str, DType),
    /// A kernel without a dtype suffix.
    Exact(&'a str),
}

impl<'a> From<(&'a str, DType)> for Name<'a> {
    fn from((stem, dtype): (&'a str, DType)) -> Self {
        Name::Typed(stem, dtype)
    }
}

impl<'a> From<&'a str> for Name<'a> {
    fn from(name: &'a str) -> Self {
        Name::Exact(name)
    }
}

impl Declared {
    /// The full kernel name of `name`, if this list declares it.
    fn resolve(&self, name: Name<'_>) -> Option<String> {
        let (stem, dtype) = match name {
            Name::Typed(s, d) => (s, Some(d)),
            Name::Exact(s) => (s, None),
        };
        self.instances.iter().find_map(|i| {
            if !i.stems.contains(&stem) {
                return None;
            }
            match dtype {
                Some(d) if i.dtypes.contains(&d) => Some(format!("{stem}_{}", sfx(d))),
                None if i.dtypes.is_empty() => Some(stem.to_string()),
                _ => None,
            }
        })
    }

    /// Every kernel name this list declares.
    fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.instances.iter().flat_map(|i| {
            i.stems.iter().flat_map(move |s| {
                let typed = i.dtypes.iter().map(move |&d| format!("{s}_{}", sfx(d)));
                let exact = i.dtypes.is_empty().then(|| s.to_string());
                typed.chain(exact)
            })
        })
    }
}

/// How many threads a launch runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Grid {
    /// A grid-stride loop over this many elements, [`BLOCK`] threads a
    /// block.
    Each(usize),
    /// A block per row (grid-stride over rows) of `len` elements each.
    Rows {
        /// Number of rows.
        rows: usize,
        /// Elements per row, which sets the block size.
        len: usize,
    },
}

/// Threads per block of elementwise kernels.
const BLOCK: u32 = 256;

impl Grid {
    /// (blocks, threads per block), or None when there is nothing to do.
    fn dims(self) -> Option<(u32, u32)> {
        match self {
            Grid::Each(0) | Grid::Rows { rows: 0, .. } => None,
            Grid::Each(n) => Some((n.div_ceil(BLOCK as usize).clamp(1, 1 << 20) as u32, BLOCK)),
            // A power of two from 32 to 256 threads, for the block reductions.
            Grid::Rows { rows, len } => Some((
                rows.min(65535) as u32,
                len.next_power_of_two().clamp(32, 256) as u32,
            )),
        }
    }
}

/// Launches kernel `name` of `decl` on the device's stream with `args`
/// (packed from `decl`'s struct). Panics naming `op` when `decl` does not
/// declare the kernel or the launch fails.
fn launch(op: &str, dev: &CudaDevice, decl: &Declared, name: Name<'_>, grid: Grid, mut args: Args) {
    let Some(full) = decl.resolve(name) else {
        panic!(
            "{op}: no CUDA kernel {name:?} with the parameters of {} in {}.cu",
            decl.args, decl.family.name
        );
    };
    let Some((blocks, threads)) = grid.dims() else {
        return;
    };
    let f = check(op, dev.function(decl.family, &full));
    let mut params = args.pointers();
    // SAFETY: `args` holds the fields of `decl`'s struct in order, the
    // parameter list `kernel_signatures` declares for this kernel and the
    // NVRTC test checks against the compiled source; pointers are live
    // device blocks ordered on this stream.
    let r = unsafe {
        cudarc::driver::result::launch_kernel(
            f.cu_function(),
            (blocks, 1, 1),
            (threads, 1, 1),
            0,
            dev.stream().cu_stream(),
            &mut params,
        )
    };
    check(
        op,
        r.map_err(|e| CudaError::new(format!("launching {full} failed: {e:?}"))),
    );
}

/// Declares the parameter lists of one kernel family: for each, a struct
/// (fields = the kernel's arguments in order) with a `launch` method, and
/// the kernels that take it (`in [stems] for DTYPES`). Also defines the
/// family's `DECLARED` table for [`kernel_signatures`].
macro_rules! kernels {
    (
        family $family:ident;
        $(
            $(#[$doc:meta])*
            struct $name:ident { $($field:ident: $ty:ty),* $(,)? }
            $(in [$($stem:literal),* $(,)?] for $dtypes:expr),+ ;
        )*
    ) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy)]
            pub(crate) struct $name {
                $(pub(crate) $field: $ty,)*
            }

            impl $name {
                pub(super) const DECLARED: $crate::backend::cuda::launch::Declared =
                    $crate::backend::cuda::launch::Declared {
                        family: &kiln_kernels::cuda::$family,
                        args: stringify!($name),
                        params: &[$(<$ty as $crate::backend::cuda::launch::KernelArg>::PTX),*],
                        instances: &[$($crate::backend::cuda::launch::Instances {
                            stems: &[$($stem),*],
                            dtypes: $dtypes,
                        }),+],
                    };

                /// Launches kernel `name` (a stem and dtype, or a whole
                /// name) with these arguments; panics naming `op` when the
                /// kernel is not declared for them or cannot run.
                pub(crate) fn launch<'a>(
                    self,
                    op: &str,
                    dev: &$crate::backend::cuda::CudaDevice,
                    name: impl Into<$crate::backend::cuda::launch::Name<'a>>,
                    grid: $crate::backend::cuda::launch::Grid,
                ) {
                    let mut args = $crate::backend::cuda::launch::Args::new();
                    $(args.push(self.$field);)*
                    $crate::backend::cuda::launch::launch(
                        op, dev, &Self::DECLARED, name.into(), grid, args,
                    );
                }
            }
        )*

        /// The family's parameter lists, for [`kernel_signatures`].
        pub(super) const DECLARED: &[$crate::backend::cuda::launch::Declared] =
            &[$($name::DECLARED),*];
    };
}

pub(crate) mod batchnorm;
pub(crate) mod binary;
pub(crate) mod conv;
pub(crate) mod copy;
pub(crate) mod index;
pub(crate) mod loss;
pub(crate) mod optim;
pub(crate) mod pool;
pub(crate) mod reduce;
pub(crate) mod softmax;
pub(crate) mod unary;

/// A kernel the runtime launches, with its parameter list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSignature {
    /// The family (`.cu` file stem) it is compiled from.
    pub family: &'static str,
    /// The kernel's full name, as in the PTX `.entry`.
    pub name: String,
    /// The launcher struct that declares its parameters.
    pub args: &'static str,
    /// Its parameters' PTX types, in order.
    pub params: &'static [PtxParam],
}

/// Every kernel the runtime can launch, with the parameter list its
/// launcher passes.
pub fn kernel_signatures() -> Vec<KernelSignature> {
    let families: [&[Declared]; 11] = [
        batchnorm::DECLARED,
        binary::DECLARED,
        conv::DECLARED,
        copy::DECLARED,
        index::DECLARED,
        loss::DECLARED,
        optim::DECLARED,
        pool::DECLARED,
        reduce::DECLARED,
        softmax::DECLARED,
        unary::DECLARED,
    ];
    families
        .iter()
        .flat_map(|f| f.iter())
        .flat_map(|d| {
            d.names().map(move |name| KernelSignature {
                family: d.family.name,
                name,
                args: d.args,
                params: d.params,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_declared_once() {
        let sigs = kernel_signatures();
        let mut fams: Vec<&str> = sigs.iter().map(|s| s.family).collect();
        fams.sort();
        fams.dedup();
        let mut all: Vec<&str> = kiln_kernels::cuda::FAMILIES
            .iter()
            .map(|f| f.name)
            .collect();
        all.sort();
        assert_eq!(fams, all);
        let mut names: Vec<&String> = sigs.iter().map(|s| &s.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a kernel is declared twice");
    }

    #[test]
    fn names_resolve_only_when_declared() {
        let d = &unary::UnaryArgs::DECLARED;
        assert_eq!(
            d.resolve(("unary_exp", DType::F32).into()).as_deref(),
            Some("unary_exp_f32")
        );
        assert_eq!(d.resolve(("unary_exp", DType::I64).into()), None);
        assert_eq!(d.resolve("unary_exp".into()), None);
        let c = &copy::CopyArgs::DECLARED;
        assert_eq!(
            c.resolve("cast_f32_f16_direct".into()).as_deref(),
            Some("cast_f32_f16_direct")
        );
        assert_eq!(
            c.resolve(("cast_bool", DType::F16).into()).as_deref(),
            Some("cast_bool_f16")
        );
    }

    #[test]
    fn grids() {
        assert_eq!(Grid::Each(0).dims(), None);
        assert_eq!(Grid::Each(257).dims(), Some((2, 256)));
        assert_eq!(Grid::Rows { rows: 3, len: 5 }.dims(), Some((3, 32)));
        assert_eq!(
            Grid::Rows {
                rows: 100_000,
                len: 1000
            }
            .dims(),
            Some((65535, 256))
        );
        assert_eq!(std::mem::size_of::<Strided>(), 144);
    }
}
