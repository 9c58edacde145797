//! `Display`/`Debug` for tensors, printed like PyTorch.
