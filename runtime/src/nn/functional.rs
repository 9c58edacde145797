//! Stateless neural-network functions, like `torch.nn.functional`.
