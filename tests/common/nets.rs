//! Small models the fixtures and golden sets store, shared by the tests
//! that load them (`pretrained.rs`, `pth.rs`) and the CUDA training check
//! (`cuda.rs`); each test uses some of them.
#![allow(dead_code)]

use kiln::network;

network! {
    /// The fixtures' `Small` model with batch norm.
    pub struct SmallBn(input: [3, 16, 16]) {
        features: [Conv2d(3 -> 8, kernel: 3, padding: 1), BatchNorm2d(8), ReLU, MaxPool2d(2)],
        flatten,
        classifier: [Linear(512 -> 10)],
    }
}

network! {
    /// The golden set's VGG-style net trained one step with batch norm: batch
    /// norm, dropout (p = 0, so deterministic), adaptive pooling.
    pub struct VggTiny(input: [3, 16, 16]) {
        features: [
            Conv2d(3 -> 8, kernel: 3, padding: 1), BatchNorm2d(8), ReLU, MaxPool2d(2),
            Conv2d(8 -> 16, kernel: 3, padding: 1), BatchNorm2d(16), ReLU, MaxPool2d(2),
        ],
        avgpool: AdaptiveAvgPool2d(1),
        flatten,
        classifier: [Linear(16 -> 32), ReLU, Dropout(0.0), Linear(32 -> 10)],
    }
}
