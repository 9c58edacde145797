//! CUDA backend (feature `cuda`): device storage, NVRTC kernels, cuBLAS.
