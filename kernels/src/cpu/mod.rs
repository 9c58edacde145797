//! CPU kernels: rayon for parallelism, the `gemm` crate for matrix products.

pub mod alloc;
pub mod conv;
pub mod int_matmul;
pub mod isa;
pub mod matmul;
pub mod parallel;
pub mod pool;
pub mod softmax;
pub mod stats;

mod conv_direct;
mod scratch;
mod transpose;
mod winograd;

/// Panics unless `s` holds exactly the elements of an NCHW `shape`, naming
/// the kernel `op` and the argument `what` (every conv and pool entry point
/// checks its slices this way).
fn check_len<T>(op: &str, what: &str, s: &[T], shape: [usize; 4]) {
    let want: usize = shape.iter().product();
    assert!(
        s.len() == want,
        "{op}: {what} has {} elements but shape {shape:?} needs {want}",
        s.len()
    );
}
