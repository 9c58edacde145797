//! Per-device state: the CUDA context, the stream every kernel runs on,
//! the cuBLAS handle, compiled kernel modules and the caching allocator.
//!
//! Every op on a device is issued on its single stream, so ops are ordered
//! and a buffer freed by one op can be reused by the next without waiting.

use super::CudaError;
use super::alloc::Allocator;
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use kiln_kernels::cuda::{KernelFamily, nvrtc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The number of CUDA devices, or why none can be used (cached).
pub fn device_count() -> Result<usize, CudaError> {
    static COUNT: OnceLock<Result<usize, String>> = OnceLock::new();
    COUNT.get_or_init(probe).clone().map_err(CudaError::new)
}

/// Loads the driver library and counts devices without panicking: cudarc
/// panics when the library is missing, so its presence is checked first,
/// and any panic left is caught.
fn probe() -> Result<usize, String> {
    // SAFETY: only tries to open the library by its standard names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("the CUDA driver library (libcuda.so) was not found".into());
    }
    let counted = std::panic::catch_unwind(|| {
        cudarc::driver::result::init()?;
        cudarc::driver::result::device::get_count()
    });
    match counted {
        Ok(Ok(0)) => Err("no CUDA device was found".into()),
        Ok(Ok(n)) => Ok(n as usize),
        Ok(Err(e)) => Err(format!("CUDA driver initialisation failed: {e:?}")),
        Err(_) => Err("loading the CUDA driver failed".into()),
    }
}

/// One CUDA device as kiln uses it.
pub struct CudaDevice {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: &'static str,
    blas: Mutex<Option<CudaBlas>>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    pub(crate) alloc: Allocator,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaDevice(cuda:{}, {})", self.ordinal, self.arch)
    }
}

impl CudaDevice {
    /// The device with this ordinal, created on first use.
    pub fn get(ordinal: usize) -> Result<Arc<CudaDevice>, CudaError> {
        static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<CudaDevice>>>> = OnceLock::new();
        let count = device_count().map_err(|e| e.on_device(ordinal))?;
        if ordinal >= count {
            return Err(
                CudaError::new(format!("only {count} CUDA device(s) present")).on_device(ordinal),
            );
        }
        let mut map = DEVICES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(d) = map.get(&ordinal) {
            d.bind()?;
            return Ok(d.clone());
        }
        let dev = Arc::new(CudaDevice::create(ordinal).map_err(|e| e.on_device(ordinal))?);
        map.insert(ordinal, dev.clone());
        Ok(dev)
    }

    fn create(ordinal: usize) -> Result<CudaDevice, CudaError> {
        let ctx = CudaContext::new(ordinal).map_err(CudaError::driver)?;
        let stream = ctx.new_stream().map_err(CudaError::driver)?;
        let (major, minor) = ctx.compute_capability().map_err(CudaError::driver)?;
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        Ok(CudaDevice {
            ordinal,
            ctx,
            stream,
            arch,
            blas: Mutex::new(None),
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            alloc: Allocator::new(),
        })
    }

    /// Makes this device's context current on the calling thread.
    pub(crate) fn bind(&self) -> Result<(), CudaError> {
        self.ctx.bind_to_thread().map_err(CudaError::driver)
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The virtual architecture kernels are compiled for (`compute_XY`).
    pub fn arch(&self) -> &'static str {
        self.arch
    }

    /// The device's name as the driver reports it.
    pub fn name(&self) -> Result<String, CudaError> {
        self.ctx.name().map_err(CudaError::driver)
    }

    /// The stream all of kiln's work on this device is issued on.
    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits until all work queued on the device has finished.
    ///
    /// Panics with the op's message when a kernel this thread launched
    /// since its last synchronisation found an index out of range (see
    /// `validate`).
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(CudaError::driver)?;
        super::validate::raise_pending(self)
    }

    /// The cuBLAS handle (created on first use, bound to the stream, with
    /// the default math mode: no TF32 for f32 products).
    pub(crate) fn blas(&self) -> Result<MutexGuard<'_, Option<CudaBlas>>, CudaError> {
        let mut guard = self.blas.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            // SAFETY: only tries to open the library by its standard names.
            if !unsafe { cudarc::cublas::sys::is_culib_present() } {
                return Err(CudaError::new(
                    "the cuBLAS library (libcublas) was not found",
                ));
            }
            let blas = CudaBlas::new(self.stream.clone())
                .map_err(|e| CudaError::new(format!("cuBLAS initialisation failed: {e:?}")))?;
            // SAFETY: the handle is valid; the mode is a plain enum value.
            unsafe {
                cudarc::cublas::sys::cublasSetMathMode(
                    *blas.handle(),
                    cudarc::cublas::sys::cublasMath_t::CUBLAS_DEFAULT_MATH,
                )
            }
            .result()
            .map_err(|e| CudaError::new(format!("cublasSetMathMode failed: {e:?}")))?;
            *guard = Some(blas);
        }
        Ok(guard)
    }

    /// The kernel `name` of `family`, compiling the family with NVRTC and
    /// loading it the first time one of its kernels is asked for.
    pub(crate) fn function(
        &self,
        family: &KernelFamily,
        name: &str,
    ) -> Result<CudaFunction, CudaError> {
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(f.clone());
        }
        let module = self.module(family)?;
        let f = module.load_function(name).map_err(|e| {
            CudaError::new(format!(
                "kernel {name} not found in {}.cu: {e:?}",
                family.name
            ))
        })?;
        self.functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), f.clone());
        Ok(f)
    }

    fn module(&self, family: &KernelFamily) -> Result<Arc<CudaModule>, CudaError> {
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = modules.get(family.name) {
            return Ok(m.clone());
        }
        let ptx = nvrtc::compile_ptx(family, self.arch).map_err(CudaError::new)?;
        let m = self.ctx.load_module(ptx).map_err(|e| {
            CudaError::new(format!(
                "loading {}.cu compiled for {} failed: {e:?} (is the NVRTC library newer than the driver?)",
                family.name, self.arch
            ))
        })?;
        modules.insert(family.name, m.clone());
        Ok(m)
    }
}
