//! One GPU per process: its context, loaded kernel modules and the weights
//! already uploaded to it. Jobs get their own stream and allocator
//! ([`GpuDevice::new_stream`] + [`super::alloc::CachingAllocator`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cudarc::driver::{result as drv, sys, CudaContext, CudaStream, DriverError};
use parking_lot::Mutex;

use super::alloc::CachingAllocator;
use super::dtype::Half;
use super::error::CudaError;
use super::probe::{guard, Libraries};
use super::storage::CudaStorage;

/// Picks the GPU when the host does not: an ordinal, default 0.
pub const DEVICE_ENV: &str = "GENFX_CUDA_DEVICE";

/// An opened GPU. Shared by every job and every plugin instance of the
/// process, so that weights are uploaded once.
pub struct GpuDevice {
    ctx: Arc<CudaContext>,
    ordinal: usize,
    /// How many devices this process opened before this one: 0 for the one
    /// [`GpuDevice::get`] shares, more for extra contexts on the same card
    /// (which tests open to start from nothing).
    instance: usize,
    name: String,
    compute_capability: (i32, i32),
    half: Half,
    /// Kernel modules by name, loaded on first use.
    pub(crate) modules: Mutex<HashMap<&'static str, Arc<cudarc::driver::CudaModule>>>,
    /// Weights uploaded so far, by the caller's key (file and tensor name).
    pub(crate) weights: Mutex<HashMap<String, Arc<CudaStorage>>>,
    /// Where weights live: shared by every job, freed only on eviction.
    pub(crate) weight_memory: Arc<CachingAllocator<DriverMemory>>,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuDevice(cuda:{} {} sm_{}{})",
            self.ordinal, self.name, self.compute_capability.0, self.compute_capability.1
        )
    }
}

/// Maps a driver status to our error; `call` names the driver function.
pub(crate) fn driver_err(call: &'static str, e: DriverError) -> CudaError {
    use sys::cudaError_enum as E;
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    match e.0 {
        E::CUDA_ERROR_NO_DEVICE | E::CUDA_ERROR_STUB_LIBRARY => {
            CudaError::NoDriver(format!("{call}: {name}"))
        }
        _ => CudaError::Driver { call, detail: name },
    }
}

impl GpuDevice {
    /// The process-wide device for `ordinal` (default: `$GENFX_CUDA_DEVICE`
    /// or 0), opened on first use. Never panics: without a driver this is
    /// [`CudaError::NoDriver`].
    pub fn get(ordinal: Option<usize>) -> Result<Arc<GpuDevice>, CudaError> {
        static OPEN: OnceLock<Mutex<HashMap<usize, Arc<GpuDevice>>>> = OnceLock::new();
        let ordinal = match ordinal {
            Some(o) => o,
            None => match std::env::var(DEVICE_ENV) {
                Ok(v) => v.trim().parse().map_err(|_| {
                    CudaError::NoDriver(format!("{DEVICE_ENV}={v:?} is not a device number"))
                })?,
                Err(_) => 0,
            },
        };
        let mut open = OPEN.get_or_init(Default::default).lock();
        if let Some(dev) = open.get(&ordinal) {
            return Ok(dev.clone());
        }
        let dev = Arc::new(Self::open(ordinal, Libraries::detect())?);
        log::info!(
            "CUDA device {ordinal}: {} (compute {}.{}), storing {}",
            dev.name,
            dev.compute_capability.0,
            dev.compute_capability.1,
            dev.half.name()
        );
        open.insert(ordinal, dev.clone());
        Ok(dev)
    }

    /// Opens `ordinal` if `libs` says the driver can be loaded.
    pub fn open(ordinal: usize, libs: Libraries) -> Result<GpuDevice, CudaError> {
        libs.require_driver()?;
        guard("cuInit", || {
            let count =
                CudaContext::device_count().map_err(|e| driver_err("cuDeviceGetCount", e))?;
            if count <= 0 {
                return Err(CudaError::NoDriver(
                    "the driver reports no CUDA device".into(),
                ));
            }
            if ordinal >= count as usize {
                return Err(CudaError::NoDriver(format!(
                    "device {ordinal} asked for, {count} present"
                )));
            }
            let ctx =
                CudaContext::new(ordinal).map_err(|e| driver_err("cuDevicePrimaryCtxRetain", e))?;
            let name = ctx.name().map_err(|e| driver_err("cuDeviceGetName", e))?;
            let (major, minor) = ctx
                .compute_capability()
                .map_err(|e| driver_err("cuDeviceGetAttribute", e))?;
            static OPENED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            Ok(GpuDevice {
                instance: OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                weights: Mutex::new(HashMap::new()),
                weight_memory: CachingAllocator::new(DriverMemory { ctx: ctx.clone() }),
                ctx,
                ordinal,
                name,
                compute_capability: (major, minor),
                half: Half::for_compute_capability(major, minor),
                modules: Mutex::new(HashMap::new()),
            })
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// `cuda:N`, or `cuda:N.K` for the Kth extra device opened on card N:
    /// the name caches of weights and models key on, so that a device
    /// opened afresh never finds another's tensors.
    pub fn label(&self) -> String {
        match self.instance {
            0 => format!("cuda:{}", self.ordinal),
            k => format!("cuda:{}.{k}", self.ordinal),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// The NVRTC/PTX architecture name, e.g. `sm_90`.
    pub fn arch(&self) -> String {
        format!(
            "sm_{}{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }

    /// The driver's CUDA version, e.g. (12, 4), when it says.
    pub fn driver_version(&self) -> Option<(i32, i32)> {
        guard("cuDriverGetVersion", || {
            let mut v = 0;
            // SAFETY: one out-pointer to a live local.
            unsafe { sys::cuDriverGetVersion(&mut v) }
                .result()
                .map_err(|e| driver_err("cuDriverGetVersion", e))?;
            Ok((v / 1000, v % 1000 / 10))
        })
        .ok()
    }

    /// 16-bit storage type of this card (bf16 from Ampere on, else f16).
    pub fn half(&self) -> Half {
        self.half
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// `(free, total)` bytes of device memory.
    pub fn mem_info(&self) -> Result<(usize, usize), CudaError> {
        guard("cuMemGetInfo", || {
            self.ctx
                .mem_get_info()
                .map_err(|e| driver_err("cuMemGetInfo", e))
        })
    }

    /// A fresh stream for one job.
    pub fn new_stream(&self) -> Result<Arc<CudaStream>, CudaError> {
        guard("cuStreamCreate", || {
            self.ctx
                .new_stream()
                .map_err(|e| driver_err("cuStreamCreate", e))
        })
    }

    /// Wraps a stream the host gave us (Resolve's `CudaStream`); work is
    /// queued on it and it is never synchronised by us.
    ///
    /// # Safety
    /// `raw` must be a live stream of this device's primary context that
    /// outlives the returned handle.
    pub unsafe fn borrow_host_stream(&self, raw: sys::CUstream) -> Arc<CudaStream> {
        // SAFETY: forwarded to the caller.
        unsafe { self.ctx.wrap_borrowed_stream(raw) }
    }

    /// Memory straight from the driver, for a caching allocator.
    pub fn raw_memory(&self) -> DriverMemory {
        DriverMemory {
            ctx: self.ctx.clone(),
        }
    }

    /// Drops cached weights whose key starts with `prefix` (e.g. the text
    /// encoder once the prompt is encoded); their memory returns to the
    /// driver when no tensor uses them any more.
    pub fn evict_weights(&self, prefix: &str) {
        self.weights.lock().retain(|k, _| !k.starts_with(prefix));
        self.weight_memory.release_cached();
    }

    /// Number of weights held on the GPU.
    pub fn cached_weights(&self) -> usize {
        self.weights.lock().len()
    }
}

/// `cuMemAlloc`/`cuMemFree` on one device.
pub struct DriverMemory {
    ctx: Arc<CudaContext>,
}

impl super::alloc::RawMemory for DriverMemory {
    fn alloc(&self, bytes: usize) -> Result<Option<u64>, CudaError> {
        guard("cuMemAlloc", || {
            self.ctx
                .bind_to_thread()
                .map_err(|e| driver_err("cuCtxSetCurrent", e))?;
            // SAFETY: the context is current; the memory is uninitialised,
            // which is fine for raw bytes every op writes before reading.
            match unsafe { drv::malloc_sync(bytes) } {
                Ok(ptr) => Ok(Some(ptr)),
                Err(DriverError(sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY)) => Ok(None),
                Err(e) => Err(driver_err("cuMemAlloc", e)),
            }
        })
    }

    fn free(&self, ptr: u64) {
        let freed = guard("cuMemFree", || {
            self.ctx
                .bind_to_thread()
                .map_err(|e| driver_err("cuCtxSetCurrent", e))?;
            // SAFETY: `ptr` came from `malloc_sync` on this context and is
            // freed once; cuMemFree waits for work still using it.
            unsafe { drv::free_sync(ptr) }.map_err(|e| driver_err("cuMemFree", e))
        });
        if let Err(e) = freed {
            log::warn!("leaking a GPU block: {e}");
        }
    }

    fn mem_info(&self) -> (usize, usize) {
        guard("cuMemGetInfo", || {
            self.ctx
                .mem_get_info()
                .map_err(|e| driver_err("cuMemGetInfo", e))
        })
        .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_without_a_driver_is_a_typed_error_not_a_panic() {
        let absent = Libraries {
            driver: false,
            nvrtc: false,
            cublas: false,
            cublaslt: false,
        };
        match GpuDevice::open(0, absent) {
            Err(CudaError::NoDriver(reason)) => assert!(reason.contains("driver")),
            other => panic!("expected NoDriver, got {other:?}"),
        }
    }

    #[test]
    fn the_real_probe_never_panics() {
        // On this machine either a GPU opens or a typed error says why not.
        match GpuDevice::get(None) {
            Ok(dev) => assert!(dev.arch().starts_with("sm_")),
            Err(e) => assert!(
                e.is_unavailable() || matches!(e, CudaError::Driver { .. }),
                "{e}"
            ),
        }
    }
}
