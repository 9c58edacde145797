//! Where a tensor's data lives.

use std::fmt;

/// A compute device, like `torch.device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory; kernels run on the CPU.
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal (needs the `cuda` feature).
    Cuda(usize),
    /// A test device (`"test:N"`): host memory behind the same
    /// device-generic path a GPU takes. Its tensors have their own storage
    /// type, so ops on them go through the backend interface, the
    /// same-device checks and transfers exactly as CUDA tensors do, and
    /// compute with the CPU's kernels on copies (results equal the CPU's).
    /// It lets the test suites check every op's device dispatch and
    /// autograd glue without a GPU; it is slow and meant for tests.
    Test(usize),
}

impl Device {
    /// True when this is a CUDA device.
    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// True when kiln was built with CUDA support and a CUDA driver with at
    /// least one device can be loaded on this machine. Never panics.
    pub fn cuda_is_available() -> bool {
        crate::backend::cuda_is_available()
    }

    /// Parses `"cpu"`, `"cuda"` or `"cuda:N"`, as PyTorch does, and the
    /// test device `"test:N"`.
    pub fn parse(s: &str) -> Option<Device> {
        match s {
            "cpu" => Some(Device::Cpu),
            "cuda" => Some(Device::Cuda(0)),
            _ => {
                if let Some(n) = s.strip_prefix("test:") {
                    return n.parse().ok().map(Device::Test);
                }
                s.strip_prefix("cuda:")
                    .and_then(|n| n.parse().ok())
                    .map(Device::Cuda)
            }
        }
    }

    /// Checks that tensors can be placed on this device, with the reason
    /// when they cannot: kiln built without the `cuda` feature, no driver,
    /// or no GPU with this ordinal. The CPU is always available.
    ///
    /// ```
    /// use kiln_runtime::Device;
    /// assert!(Device::Cpu.check_available().is_ok());
    /// if !Device::cuda_is_available() {
    ///     let err = Device::Cuda(0).check_available().unwrap_err();
    ///     assert!(err.to_string().starts_with("cuda:0 is not available"));
    /// }
    /// ```
    pub fn check_available(&self) -> Result<(), DeviceUnavailable> {
        match *self {
            Device::Cpu | Device::Test(_) => Ok(()),
            Device::Cuda(i) => {
                #[cfg(feature = "cuda")]
                {
                    crate::backend::cuda::try_device(i)
                        .map(|_| ())
                        .map_err(|e| DeviceUnavailable {
                            device: *self,
                            reason: e.to_string(),
                        })
                }
                #[cfg(not(feature = "cuda"))]
                {
                    let _ = i;
                    Err(DeviceUnavailable {
                        device: *self,
                        reason: "kiln was built without the `cuda` feature (rebuild with --features cuda)"
                            .into(),
                    })
                }
            }
        }
    }

    /// Waits until the work queued on this device has finished, like
    /// `torch.cuda.synchronize()`; a no-op on the CPU, whose ops complete
    /// before they return. Use it before reading a timer.
    ///
    /// Panics when the device is a GPU that cannot be used, or with the
    /// op's message when a kernel this thread launched since its last
    /// synchronisation found an index out of range (a bad class target,
    /// say): CUDA ops report those here rather than wait for the GPU.
    pub fn synchronize(&self) {
        if let Device::Cuda(i) = *self {
            #[cfg(feature = "cuda")]
            crate::backend::cuda::synchronize(i)
                .unwrap_or_else(|e| panic!("synchronize: cuda:{i}: {e}"));
            #[cfg(not(feature = "cuda"))]
            panic!("synchronize: cuda:{i}: kiln was built without the `cuda` feature");
        }
    }
}

impl std::str::FromStr for Device {
    type Err = ParseDeviceError;

    /// Parses `"cpu"`, `"cuda"` or `"cuda:N"`.
    fn from_str(s: &str) -> Result<Device, ParseDeviceError> {
        Device::parse(s).ok_or_else(|| ParseDeviceError(s.to_string()))
    }
}

/// A device name that is not `cpu`, `cuda` or `cuda:N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseDeviceError(pub String);

impl fmt::Display for ParseDeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown device {:?} (expected cpu, cuda or cuda:N)",
            self.0
        )
    }
}

impl std::error::Error for ParseDeviceError {}

/// Why a device cannot be used, from [`Device::check_available`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceUnavailable {
    /// The device asked for.
    pub device: Device,
    /// Why it cannot be used.
    pub reason: String,
}

impl fmt::Display for DeviceUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not available: {}", self.device, self.reason)
    }
}

impl std::error::Error for DeviceUnavailable {}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
            Device::Test(i) => write!(f, "test:{i}"),
        }
    }
}
