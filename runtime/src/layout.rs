//! How a tensor's elements map onto its storage: shape, strides (in
//! elements) and an offset. View ops (transpose, narrow, expand, reshape of
//! contiguous data) only change the layout and share the storage.

/// Shape, strides and storage offset of a tensor view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// Row-major (C-order) strides for `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= d;
    }
    strides
}

/// Broadcasts two shapes by NumPy/PyTorch rules, or `None` when they clash.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Normalises a possibly negative dimension index against `rank`, panicking
/// with the op's name when it is out of range.
pub fn normalize_dim(op: &str, dim: isize, rank: usize) -> usize {
    let r = rank.max(1) as isize;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r {
        panic!(
            "{op}: dimension out of range (expected to be in range of [{}, {}], but got {dim})",
            -r,
            r - 1
        );
    }
    d as usize
}

impl Layout {
    /// A contiguous row-major layout of `shape` at offset 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            strides: contiguous_strides(shape),
            shape: shape.to_vec(),
            offset: 0,
        }
    }

    /// Builds a layout from raw parts.
    pub fn new(shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Self {
        debug_assert_eq!(shape.len(), strides.len());
        Layout {
            shape,
            strides,
            offset,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Strides in elements.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Offset of element 0 in the storage, in elements.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when elements are laid out row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != acc {
                return false;
            }
            acc *= d;
        }
        true
    }

    /// The range of storage this layout touches when contiguous.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.numel())
    }

    /// Swaps two dimensions.
    pub fn transpose(&self, d0: usize, d1: usize) -> Layout {
        let mut l = self.clone();
        l.shape.swap(d0, d1);
        l.strides.swap(d0, d1);
        l
    }

    /// Reorders dimensions; `dims` must be a permutation.
    pub fn permute(&self, dims: &[usize]) -> Layout {
        Layout {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        }
    }

    /// Restricts `dim` to `start..start + len`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Layout {
        let mut l = self.clone();
        l.offset += start * l.strides[dim];
        l.shape[dim] = len;
        l
    }

    /// Selects index `i` of `dim`, removing the dimension.
    pub fn select(&self, dim: usize, i: usize) -> Layout {
        let mut l = self.clone();
        l.offset += i * l.strides[dim];
        l.shape.remove(dim);
        l.strides.remove(dim);
        l
    }

    /// Broadcasts to `shape` with zero strides, or `None` if impossible.
    pub fn broadcast_to(&self, shape: &[usize]) -> Option<Layout> {
        if shape.len() < self.rank() {
            return None;
        }
        let extra = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for i in 0..self.rank() {
            let (d, s) = (self.shape[i], self.strides[i]);
            let t = shape[extra + i];
            strides[extra + i] = if d == t {
                s
            } else if d == 1 {
                0
            } else {
                return None;
            };
        }
        Some(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// Inserts a size-1 dimension at `dim`.
    pub fn unsqueeze(&self, dim: usize) -> Layout {
        let mut l = self.clone();
        let stride = if dim < l.rank() {
            l.strides[dim] * l.shape[dim]
        } else {
            1
        };
        l.shape.insert(dim, 1);
        l.strides.insert(dim, stride);
        l
    }

    /// Removes the listed size-1 dimensions (sorted ascending).
    pub fn squeeze(&self, dims: &[usize]) -> Layout {
        let mut l = self.clone();
        for &d in dims.iter().rev() {
            l.shape.remove(d);
            l.strides.remove(d);
        }
        l
    }

    /// A view with a new shape when the strides allow it without a copy
    /// (the same rule as `torch.Tensor.view`), else `None`.
    pub fn reshape_view(&self, shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout {
                shape: shape.to_vec(),
                strides: contiguous_strides(shape),
                offset: self.offset,
            });
        }
        // Group old dimensions into chunks that are contiguous among
        // themselves and map each new dimension onto one chunk.
        let old: Vec<(usize, usize)> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(d, _)| **d != 1)
            .map(|(&d, &s)| (d, s))
            .collect();
        let mut new_strides = vec![0; shape.len()];
        let mut oi = 0;
        let mut ni = 0;
        while ni < shape.len() {
            if shape[ni] == 1 {
                new_strides[ni] = 1;
                ni += 1;
                continue;
            }
            if oi >= old.len() {
                return None;
            }
            // Chunk of old dims [oi, oj) that is internally contiguous.
            let mut oj = oi + 1;
            while oj < old.len() && old[oj - 1].1 == old[oj].0 * old[oj].1 {
                oj += 1;
            }
            let chunk: usize = old[oi..oj].iter().map(|x| x.0).product();
            let base = old[oj - 1].1;
            // New dims consuming exactly this chunk.
            let mut prod = 1;
            let start = ni;
            while ni < shape.len() && prod < chunk {
                prod *= shape[ni];
                ni += 1;
            }
            if prod != chunk {
                return None;
            }
            let mut acc = base;
            for k in (start..ni).rev() {
                new_strides[k] = acc;
                acc *= shape[k];
            }
            oi = oj;
        }
        if oi != old.len() {
            return None;
        }
        Some(Layout {
            shape: shape.to_vec(),
            strides: new_strides,
            offset: self.offset,
        })
    }

    /// Storage offsets of all elements in row-major order.
    pub fn offsets(&self) -> StridedOffsets<'_> {
        StridedOffsets::new(self)
    }
}

/// Iterator over the storage offsets of a layout's elements, row-major.
pub struct StridedOffsets<'a> {
    layout: &'a Layout,
    index: Vec<usize>,
    next: Option<usize>,
}

impl<'a> StridedOffsets<'a> {
    fn new(layout: &'a Layout) -> Self {
        let next = (layout.numel() > 0).then_some(layout.offset);
        StridedOffsets {
            layout,
            index: vec![0; layout.rank()],
            next,
        }
    }
}

impl Iterator for StridedOffsets<'_> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        let cur = self.next?;
        let mut off = cur;
        let mut d = self.layout.rank();
        loop {
            if d == 0 {
                self.next = None;
                break;
            }
            d -= 1;
            self.index[d] += 1;
            off += self.layout.strides[d];
            if self.index[d] < self.layout.shape[d] {
                self.next = Some(off);
                break;
            }
            off -= self.layout.strides[d] * self.layout.shape[d];
            self.index[d] = 0;
        }
        Some(cur)
    }
}

/// Calls `f(base_offset)` for each row of the layout, where a row is the
/// innermost dimension (length `shape[last]`, stride `strides[last]`). For a
/// rank-0 layout there is one row of length 1.
pub fn for_each_row(layout: &Layout, mut f: impl FnMut(usize)) {
    let rank = layout.rank();
    if layout.numel() == 0 {
        return;
    }
    if rank <= 1 {
        f(layout.offset);
        return;
    }
    let outer = Layout::new(
        layout.shape[..rank - 1].to_vec(),
        layout.strides[..rank - 1].to_vec(),
        layout.offset,
    );
    for off in outer.offsets() {
        f(off);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_and_transpose() {
        let l = Layout::contiguous(&[2, 3, 4]);
        assert!(l.is_contiguous());
        assert_eq!(l.strides(), &[12, 4, 1]);
        let t = l.transpose(0, 2);
        assert!(!t.is_contiguous());
        assert_eq!(t.shape(), &[4, 3, 2]);
        let offs: Vec<usize> = Layout::contiguous(&[2, 2])
            .transpose(0, 1)
            .offsets()
            .collect();
        assert_eq!(offs, vec![0, 2, 1, 3]);
    }

    #[test]
    fn reshape_view_rules() {
        let l = Layout::contiguous(&[2, 3, 4]);
        assert_eq!(l.reshape_view(&[6, 4]).unwrap().strides(), &[4, 1]);
        let t = l.transpose(1, 2); // [2,4,3] strides [12,1,4]
        assert!(t.reshape_view(&[2, 12]).is_none());
        assert_eq!(
            t.reshape_view(&[2, 4, 3, 1]).unwrap().strides()[..3],
            [12, 1, 4]
        );
        let n = l.narrow(2, 0, 2); // [2,3,2] strides [12,4,1]
        assert_eq!(n.reshape_view(&[6, 2]).unwrap().strides(), &[4, 1]);
        assert!(n.reshape_view(&[12]).is_none());
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shapes(&[3, 1], &[4]), Some(vec![3, 4]));
        assert_eq!(broadcast_shapes(&[2, 3], &[3, 2]), None);
        let b = Layout::contiguous(&[3, 1])
            .broadcast_to(&[2, 3, 4])
            .unwrap();
        assert_eq!(b.strides(), &[0, 1, 0]);
    }
}
