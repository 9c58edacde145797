//! kiln facade

pub use kiln_macros::network;
