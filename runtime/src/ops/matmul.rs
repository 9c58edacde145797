//! Matrix products in all of `torch.matmul`'s forms, through gemm with
//! strides (transposed and broadcast operands are never copied).

use crate::Tensor;
use crate::layout::{Layout, broadcast_shapes};
use crate::storage::CpuStorage;
use kiln_kernels::cpu::int_matmul::int_gemm;
use kiln_kernels::cpu::matmul::gemm;

/// `a[..., m, k] @ b[..., k, n]` with broadcast batch dimensions (no autograd).
fn matmul_nd_raw(a: &Tensor, b: &Tensor) -> Tensor {
    let (ra, rb) = (a.dim(), b.dim());
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 {
        panic!(
            "matmul: mat1 and mat2 shapes cannot be multiplied ({}x{} and {}x{}; shapes {:?} and {:?})",
            m,
            k,
            k2,
            n,
            a.shape(),
            b.shape()
        );
    }
    if a.dtype() != b.dtype() {
        panic!(
            "matmul: expected both operands to have the same dtype, but got {} and {}",
            a.dtype(),
            b.dtype()
        );
    }
    if a.device() != b.device() {
        panic!(
            "matmul: expected both operands on the same device, but found {} and {}",
            a.device(),
            b.device()
        );
    }
    let batch = broadcast_shapes(&a.shape()[..ra - 2], &b.shape()[..rb - 2]).unwrap_or_else(|| {
        panic!(
            "matmul: batch dimensions of {:?} and {:?} cannot be broadcast",
            a.shape(),
            b.shape()
        )
    });
    let mut sa = batch.clone();
    sa.extend([m, k]);
    let mut sb = batch.clone();
    sb.extend([k, n]);
    let la = a.layout().broadcast_to(&sa).expect("broadcast");
    let lb = b.layout().broadcast_to(&sb).expect("broadcast");
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    crate::backend::of(a.device()).matmul((a, &la), (b, &lb), &out_shape)
}

impl Tensor {
    /// `a[..., m, k] @ b[..., k, n]` with broadcast batch dims, with backward.
    fn matmul_nd(&self, other: &Tensor) -> Tensor {
        let out = matmul_nd_raw(self, other);
        Tensor::from_binary_saved(out, "MmBackward0", self, other, |g, need, a, b| {
            vec![
                need[0].then(|| g.matmul_nd(&b.transpose(-1, -2)).sum_to(a.shape())),
                need[1].then(|| a.transpose(-1, -2).matmul_nd(g).sum_to(b.shape())),
            ]
        })
    }

    /// Matrix product with `torch.matmul`'s rules: 1-D·1-D is a dot
    /// product, 2-D·2-D a matrix product, 1-D operands are promoted and the
    /// added dimension removed, and batch dimensions broadcast.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let a = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]);
    /// let v = Tensor::from([1.0f32, 1.0]);
    /// assert_eq!(a.matmul(&v).to_vec::<f32>(), vec![3.0, 7.0]);
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (ra, rb) = (self.dim(), other.dim());
        if ra == 0 || rb == 0 {
            panic!(
                "matmul: both arguments need at least 1 dimension, but got shapes {:?} and {:?}",
                self.shape(),
                other.shape()
            );
        }
        let a = if ra == 1 {
            self.unsqueeze(0)
        } else {
            self.shallow_clone()
        };
        let b = if rb == 1 {
            other.unsqueeze(-1)
        } else {
            other.shallow_clone()
        };
        let mut out = a.matmul_nd(&b);
        if rb == 1 {
            out = out.squeeze_dim(-1);
        }
        if ra == 1 {
            out = out.squeeze_dim(if rb == 1 { -1 } else { -2 });
        }
        out
    }

    /// 2-D matrix product, like `torch.mm`.
    pub fn mm(&self, other: &Tensor) -> Tensor {
        if self.dim() != 2 || other.dim() != 2 {
            panic!(
                "mm: expected 2-D tensors, got shapes {:?} and {:?}",
                self.shape(),
                other.shape()
            );
        }
        self.matmul_nd(other)
    }

    /// Batched matrix product of 3-D tensors, like `torch.bmm`.
    pub fn bmm(&self, other: &Tensor) -> Tensor {
        if self.dim() != 3 || other.dim() != 3 || self.shape()[0] != other.shape()[0] {
            panic!(
                "bmm: expected 3-D tensors with equal batch sizes, got shapes {:?} and {:?}",
                self.shape(),
                other.shape()
            );
        }
        self.matmul_nd(other)
    }
}

/// The CPU's batched product of `a` and `b` read through layouts already
/// broadcast to `[batch.., m, k]` and `[batch.., k, n]` (the kernel behind
/// [`Backend::matmul`](crate::backend::Backend::matmul)).
pub(crate) fn matmul_cpu(
    (a, la): (&Tensor, &Layout),
    (b, lb): (&Tensor, &Layout),
    out_shape: &[usize],
) -> Tensor {
    let r = la.rank();
    let (m, k, n) = (la.shape()[r - 2], la.shape()[r - 1], lb.shape()[r - 1]);
    let batch = &out_shape[..r - 2];
    let (la, lb) = (la.clone(), lb.clone());
    let nb: usize = batch.iter().product();
    // Offsets of each batch's matrix in both operands.
    let batch_offsets = |l: &Layout| -> Vec<usize> {
        let r = l.rank();
        let bl = Layout::new(
            l.shape()[..r - 2].to_vec(),
            l.strides()[..r - 2].to_vec(),
            l.offset(),
        );
        bl.offsets().collect()
    };
    let (oa, ob) = (batch_offsets(&la), batch_offsets(&lb));
    let st = |l: &Layout| {
        let r = l.rank();
        (l.strides()[r - 2] as isize, l.strides()[r - 1] as isize)
    };
    let ((a_rs, a_cs), (b_rs, b_cs)) = (st(&la), st(&lb));
    let ga = a.read_storage();
    let gb = b.read_storage();
    // One `[m, n]` product per batch, by `$gemm` (given the destination's
    // arguments `$dst` after the block). Integer products wrap like
    // PyTorch's, exactly (no float round trip).
    macro_rules! run {
        ($gemm:ident($($dst:expr),*), $x:expr, $y:expr, $zero:expr) => {{
            let mut out = vec![$zero; nb * m * n];
            for i in 0..nb {
                let block = &mut out[i * m * n..(i + 1) * m * n];
                let (x, y) = (&$x[oa[i]..], &$y[ob[i]..]);
                $gemm(m, n, k, block, $($dst,)* x, a_rs, a_cs, y, b_rs, b_cs);
            }
            out
        }};
    }
    let out = match (ga.cpu("matmul"), gb.cpu("matmul")) {
        (CpuStorage::F32(x), CpuStorage::F32(y)) => {
            CpuStorage::F32(run!(gemm(n as isize, 1, false), x, y, 0f32))
        }
        (CpuStorage::F64(x), CpuStorage::F64(y)) => {
            CpuStorage::F64(run!(gemm(n as isize, 1, false), x, y, 0f64))
        }
        (CpuStorage::F16(_), _) | (CpuStorage::BF16(_), _) => {
            drop((ga, gb));
            let dt = a.dtype();
            let r = matmul_nd_raw(
                &a.to_dtype(crate::DType::F32),
                &b.to_dtype(crate::DType::F32),
            );
            return r.to_dtype(dt);
        }
        (CpuStorage::I64(x), CpuStorage::I64(y)) => CpuStorage::I64(run!(int_gemm(), x, y, 0i64)),
        (CpuStorage::U8(x), CpuStorage::U8(y)) => CpuStorage::U8(run!(int_gemm(), x, y, 0u8)),
        (s, _) => panic!(
            "matmul: \"addmm_impl_cpu_\" not implemented for {} tensors",
            s.dtype()
        ),
    };
    Tensor::from_cpu(out, out_shape)
}
