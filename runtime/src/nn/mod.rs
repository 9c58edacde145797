//! Neural-network building blocks, like `torch.nn`.

pub mod functional;
