//! Driver entry points cudarc can reach that GenFX does not use: each answers
//! `CUDA_ERROR_NOT_SUPPORTED` instead of being a missing symbol, which cudarc
//! would turn into a panic.
//!
//! The stubs take no parameters: under the C calling conventions we build
//! for, the caller owns its arguments, so ignoring them is sound.

use cudarc::driver::sys::cudaError_enum as R;

macro_rules! not_supported {
    ($($name:ident),* $(,)?) => {
        $(
            #[no_mangle]
            pub extern "C" fn $name() -> R {
                crate::state::report(format!("{} is not emulated", stringify!($name)));
                R::CUDA_ERROR_NOT_SUPPORTED
            }
        )*
    };
}

not_supported!(
    cuCtxCreate_v3,
    cuCtxCreate_v4,
    cuCtxDestroy_v2,
    cuCtxGetCacheConfig,
    cuCtxSetCacheConfig,
    cuDeviceGetDefaultMemPool,
    cuDeviceGetMemPool,
    cuDeviceSetMemPool,
    cuDestroyExternalMemory,
    cuExternalMemoryGetMappedBuffer,
    cuImportExternalMemory,
    cuGraphDestroy,
    cuGraphExecDestroy,
    cuGraphInstantiateWithFlags,
    cuGraphLaunch,
    cuGraphUpload,
    cuLaunchCooperativeKernel,
    cuLaunchHostFunc,
    cuMemAdvise_v2,
    cuMemAllocFromPoolAsync,
    cuMemAllocManaged,
    cuMemAllocHost_v2,
    cuMemFreeHost,
    cuMemHostAlloc,
    cuMemPoolCreate,
    cuMemPoolDestroy,
    cuMemPoolGetAttribute,
    cuMemPoolSetAttribute,
    cuMemPoolTrimTo,
    cuMemPrefetchAsync_v2,
    cuMemcpyPeerAsync,
    cuMemsetD32_v2,
    cuMemsetD32Async,
    cuMemsetD16_v2,
    cuMemsetD16Async,
    cuModuleGetGlobal_v2,
    cuModuleLoad,
    cuModuleLoadDataEx,
    cuOccupancyAvailableDynamicSMemPerBlock,
    cuOccupancyMaxActiveBlocksPerMultiprocessor,
    cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags,
    cuOccupancyMaxPotentialBlockSize,
    cuOccupancyMaxPotentialBlockSizeWithFlags,
    cuOccupancyMaxActiveClusters,
    cuOccupancyMaxPotentialClusterSize,
    cuProfilerStart,
    cuProfilerStop,
    cuStreamAttachMemAsync,
    cuStreamBeginCapture_v2,
    cuStreamEndCapture,
    cuLaunchKernelEx,
    cuPointerGetAttribute,
);
