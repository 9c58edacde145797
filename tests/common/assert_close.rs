//! Elementwise comparison of a result with PyTorch's.

use kiln::Tensor;

/// Panics unless `got` has `want`'s shape and every element is within
/// `atol + rtol * |want|` of it.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_vec::<f64>(), want.to_vec::<f64>());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}[{i}]: got {a}, want {b}"
        );
    }
}
