//! Launchers of `conv.cu`: im2col and col2im for convolution through
//! cuBLAS.

use super::{Conv2dGeom, FLOAT};

kernels! {
    family CONV;

    /// `nb` images between NCHW `src` and the column buffer `dst` (im2col),
    /// or back (col2im, from columns `src` into images `dst`).
    struct ColArgs { nb: i64, src: u64, dst: u64, g: Conv2dGeom }
        in ["im2col", "col2im"] for FLOAT;
}
