//! The CUDA driver API entry points cudarc calls.
//!
//! Handles (contexts, streams, events, modules, functions) are small integers
//! cast to pointers: nothing ever dereferences them, and an unknown one is
//! answered with `CUDA_ERROR_INVALID_HANDLE` instead of undefined behaviour.
//! Enumerations arrive as plain integers for the same reason: an attribute
//! number this driver does not know must not become an invalid Rust enum.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use cudarc::driver::sys::{cudaError_enum as R, CUdeviceptr};

use crate::image::{self, Image};
use crate::queue::{self, enqueue, flush, flush_all, stream_id, KernelLaunch, Op};
use crate::state::{config, emu, report, Counters};

/// The one context: the device's primary context.
const CONTEXT: usize = 0x10;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

fn handle<T>(id: u64) -> *mut T {
    id as usize as *mut T
}

fn device_ok(dev: c_int) -> bool {
    dev >= 0 && dev < config().devices
}

/// Writes `v` through an out-pointer the caller gave, refusing null.
///
/// # Safety
/// `p` must be null or valid for a write of `T`.
unsafe fn put<T>(p: *mut T, v: T) -> R {
    if p.is_null() {
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    // SAFETY: non-null, and valid for writes by the caller's contract.
    unsafe { p.write(v) };
    R::CUDA_SUCCESS
}

// --- initialisation and devices ----------------------------------------------------

#[no_mangle]
pub extern "C" fn cuInit(_flags: c_uint) -> R {
    let _ = emu();
    R::CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> R {
    // SAFETY: the caller's out-pointer.
    unsafe { put(version, config().driver_version) }
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> R {
    // SAFETY: the caller's out-pointer.
    unsafe { put(count, config().devices) }
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(device: *mut c_int, ordinal: c_int) -> R {
    if !device_ok(ordinal) {
        return R::CUDA_ERROR_INVALID_DEVICE;
    }
    // SAFETY: the caller's out-pointer.
    unsafe { put(device, ordinal) }
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: c_int) -> R {
    if !device_ok(dev) {
        return R::CUDA_ERROR_INVALID_DEVICE;
    }
    if name.is_null() || len <= 0 {
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    let (major, minor) = config().cc;
    let text = format!("GenFX emulated CUDA device (SIMT on the CPU, sm_{major}{minor})");
    let n = text.len().min(len as usize - 1);
    // SAFETY: the caller gave `len` writable bytes; we write `n + 1 <= len`.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), name.cast::<u8>(), n);
        *name.add(n) = 0;
    }
    R::CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: c_int) -> R {
    if !device_ok(dev) {
        return R::CUDA_ERROR_INVALID_DEVICE;
    }
    // SAFETY: the caller's out-pointer.
    unsafe { put(bytes, config().total_memory as usize) }
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid(uuid: *mut [u8; 16], dev: c_int) -> R {
    if !device_ok(dev) {
        return R::CUDA_ERROR_INVALID_DEVICE;
    }
    let mut id = *b"genfx-emu-dev-00";
    id[15] = b'0' + (dev % 10) as u8;
    // SAFETY: the caller's out-pointer to a CUuuid (16 bytes).
    unsafe { put(uuid, id) }
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid_v2(uuid: *mut [u8; 16], dev: c_int) -> R {
    // SAFETY: same contract.
    unsafe { cuDeviceGetUuid(uuid, dev) }
}

/// `cuDeviceGetAttribute` for the attributes anything of ours asks about;
/// the rest read 0, as an attribute a device lacks does.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    value: *mut c_int,
    attribute: c_int,
    dev: c_int,
) -> R {
    if !device_ok(dev) {
        return R::CUDA_ERROR_INVALID_DEVICE;
    }
    let c = config();
    let v = match attribute {
        1 => 1024,                         // MAX_THREADS_PER_BLOCK
        2 | 3 => 1024,                     // MAX_BLOCK_DIM_X, _Y
        4 => 64,                           // MAX_BLOCK_DIM_Z
        5 => i32::MAX,                     // MAX_GRID_DIM_X
        6 | 7 => 65535,                    // MAX_GRID_DIM_Y, _Z
        8 => 48 * 1024,                    // MAX_SHARED_MEMORY_PER_BLOCK
        10 => 32,                          // WARP_SIZE
        16 => 132,                         // MULTIPROCESSOR_COUNT
        75 => c.cc.0,                      // COMPUTE_CAPABILITY_MAJOR
        76 => c.cc.1,                      // COMPUTE_CAPABILITY_MINOR
        81 => c.max_shared_optin() as i32, // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        97 => c.max_shared_optin() as i32, // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        115 => 1,                          // MEMORY_POOLS_SUPPORTED
        _ => 0,
    };
    // SAFETY: the caller's out-pointer.
    unsafe { put(value, v) }
}

// --- contexts -------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(ctx: *mut *mut c_void, dev: c_int) -> R {
    if !device_ok(dev) {
        return R::CUDA_ERROR_INVALID_DEVICE;
    }
    // SAFETY: the caller's out-pointer.
    unsafe { put(ctx, CONTEXT as *mut c_void) }
}

#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: c_int) -> R {
    if device_ok(dev) {
        R::CUDA_SUCCESS
    } else {
        R::CUDA_ERROR_INVALID_DEVICE
    }
}

#[no_mangle]
pub extern "C" fn cuCtxSetCurrent(ctx: *mut c_void) -> R {
    CURRENT.with(|c| c.set(ctx as usize));
    R::CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(ctx: *mut *mut c_void) -> R {
    let current = CURRENT.with(|c| c.get());
    // SAFETY: the caller's out-pointer.
    unsafe { put(ctx, current as *mut c_void) }
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetDevice(dev: *mut c_int) -> R {
    // SAFETY: the caller's out-pointer.
    unsafe { put(dev, 0) }
}

#[no_mangle]
pub extern "C" fn cuCtxSynchronize() -> R {
    Counters::add(&emu().counters.syncs, 1);
    flush_all()
}

#[no_mangle]
pub extern "C" fn cuCtxSetLimit(_limit: c_int, _value: usize) -> R {
    R::CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetLimit(value: *mut usize, _limit: c_int) -> R {
    // SAFETY: the caller's out-pointer.
    unsafe { put(value, 0) }
}

#[no_mangle]
pub extern "C" fn cuCtxSetFlags(_flags: c_uint) -> R {
    R::CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetStreamPriorityRange(least: *mut c_int, greatest: *mut c_int) -> R {
    // SAFETY: the caller's out-pointers (either may be null per the API).
    unsafe {
        if !least.is_null() {
            *least = 0;
        }
        if !greatest.is_null() {
            *greatest = 0;
        }
    }
    R::CUDA_SUCCESS
}

// --- memory -------------------------------------------------------------------------

/// One allocation, with the configured capacity and the injected fault.
pub fn allocate(bytes: usize) -> Result<u64, R> {
    let e = emu();
    let c = config();
    let n = e.counters.allocs.fetch_add(1, Ordering::Relaxed) + 1;
    if c.fail_alloc_at.is_some_and(|at| n >= at) {
        report(format!(
            "injected out of memory at allocation {n} ({bytes} bytes; fail_alloc_at)"
        ));
        return Err(R::CUDA_ERROR_OUT_OF_MEMORY);
    }
    let mut mem = e.memory.lock();
    if mem.live_bytes + bytes as u64 > c.total_memory {
        return Err(R::CUDA_ERROR_OUT_OF_MEMORY);
    }
    let addr = mem
        .alloc(bytes as u64, c.dry_run)
        .ok_or(R::CUDA_ERROR_OUT_OF_MEMORY)?;
    let live = mem.live_bytes;
    drop(mem);
    e.counters.live_bytes.store(live, Ordering::Relaxed);
    e.counters.peak_bytes.fetch_max(live, Ordering::Relaxed);
    Ok(addr)
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytes: usize) -> R {
    if dptr.is_null() {
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    match allocate(bytes) {
        // SAFETY: checked non-null; the caller's out-pointer.
        Ok(a) => unsafe { put(dptr, a) },
        Err(r) => r,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAllocAsync(
    dptr: *mut CUdeviceptr,
    bytes: usize,
    stream: *mut c_void,
) -> R {
    if !emu().queues.lock().has_stream(stream_id(stream)) {
        return R::CUDA_ERROR_INVALID_HANDLE;
    }
    // SAFETY: same contract as cuMemAlloc_v2; the address is usable in
    // stream order at once, which a block allocated now satisfies.
    unsafe { cuMemAlloc_v2(dptr, bytes) }
}

#[no_mangle]
pub extern "C" fn cuMemFree_v2(dptr: CUdeviceptr) -> R {
    if dptr == 0 {
        return R::CUDA_SUCCESS;
    }
    // queued work that still uses the block runs first; nothing else does
    // (see the queue module on why this is stricter than CUDA)
    let Some((base, bytes)) = emu().memory.lock().resolve(dptr) else {
        return R::CUDA_ERROR_INVALID_VALUE;
    };
    queue::flush_touching(base, base + bytes);
    match queue::free(dptr) {
        Ok(()) => R::CUDA_SUCCESS,
        Err(r) => r,
    }
}

#[no_mangle]
pub extern "C" fn cuMemFreeAsync(dptr: CUdeviceptr, stream: *mut c_void) -> R {
    if dptr == 0 {
        return R::CUDA_SUCCESS;
    }
    if config().dry_run {
        return match queue::free(dptr) {
            Ok(()) => R::CUDA_SUCCESS,
            Err(r) => r,
        };
    }
    enqueue(stream_id(stream), Op::Free { addr: dptr })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> R {
    let c = config();
    let live = emu().memory.lock().live_bytes;
    // SAFETY: the caller's out-pointers.
    unsafe {
        let r = put(free, c.total_memory.saturating_sub(live) as usize);
        if r != R::CUDA_SUCCESS {
            return r;
        }
        put(total, c.total_memory as usize)
    }
}

/// Checks a copy's device range now (in a dry run that is all there is).
fn check_now(what: &str, addr: u64, len: usize) -> R {
    match emu().memory.lock().check(what, addr, len as u64) {
        Ok(()) => R::CUDA_SUCCESS,
        Err(m) => {
            report(m);
            R::CUDA_ERROR_INVALID_VALUE
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    len: usize,
    stream: *mut c_void,
) -> R {
    let r = check_now("host-to-device copy", dst, len);
    if r != R::CUDA_SUCCESS {
        return r;
    }
    Counters::add(&emu().counters.h2d_bytes, len as u64);
    if config().dry_run || len == 0 {
        return R::CUDA_SUCCESS;
    }
    if src.is_null() {
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    // A copy from pageable memory is staged before the call returns, so the
    // caller may reuse its buffer at once: take the bytes now.
    // SAFETY: the caller's `len` readable bytes at `src`.
    let data = unsafe { std::slice::from_raw_parts(src.cast::<u8>(), len) }.to_vec();
    enqueue(stream_id(stream), Op::HtoD { dst, data })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, len: usize) -> R {
    // SAFETY: same contract; then wait, as the synchronous copy does.
    let r = unsafe { cuMemcpyHtoDAsync_v2(dst, src, len, std::ptr::null_mut()) };
    if r != R::CUDA_SUCCESS {
        return r;
    }
    flush_all()
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    len: usize,
    stream: *mut c_void,
) -> R {
    let r = check_now("device-to-host copy", src, len);
    if r != R::CUDA_SUCCESS {
        return r;
    }
    if dst.is_null() && len > 0 {
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    Counters::add(&emu().counters.d2h_bytes, len as u64);
    if len == 0 {
        return R::CUDA_SUCCESS;
    }
    if config().dry_run {
        // nothing was computed: hand back zeros, deterministically
        // SAFETY: the caller's `len` writable bytes at `dst`.
        unsafe { std::ptr::write_bytes(dst.cast::<u8>(), 0, len) };
        return R::CUDA_SUCCESS;
    }
    // Until the stream is waited for, the host buffer holds poison: a read
    // that forgot to wait sees NaNs, not the data.
    // SAFETY: as above.
    unsafe { std::ptr::write_bytes(dst.cast::<u8>(), crate::memory::POISON, len) };
    enqueue(
        stream_id(stream),
        Op::DtoH {
            dst: dst as usize,
            src,
            len,
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, len: usize) -> R {
    Counters::add(&emu().counters.syncs, 1);
    // SAFETY: same contract; the synchronous copy waits for the device.
    let r = unsafe { cuMemcpyDtoHAsync_v2(dst, src, len, std::ptr::null_mut()) };
    if r != R::CUDA_SUCCESS {
        return r;
    }
    flush_all()
}

#[no_mangle]
pub extern "C" fn cuMemcpyDtoDAsync_v2(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    len: usize,
    stream: *mut c_void,
) -> R {
    for (what, addr) in [
        ("device copy source", src),
        ("device copy destination", dst),
    ] {
        let r = check_now(what, addr, len);
        if r != R::CUDA_SUCCESS {
            return r;
        }
    }
    Counters::add(&emu().counters.d2d_bytes, len as u64);
    enqueue(stream_id(stream), Op::DtoD { dst, src, len })
}

#[no_mangle]
pub extern "C" fn cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, len: usize) -> R {
    let r = cuMemcpyDtoDAsync_v2(dst, src, len, std::ptr::null_mut());
    if r != R::CUDA_SUCCESS {
        return r;
    }
    flush_all()
}

#[no_mangle]
pub extern "C" fn cuMemsetD8Async(
    dst: CUdeviceptr,
    value: u8,
    len: usize,
    stream: *mut c_void,
) -> R {
    let r = check_now("memset", dst, len);
    if r != R::CUDA_SUCCESS {
        return r;
    }
    enqueue(stream_id(stream), Op::Memset { dst, value, len })
}

#[no_mangle]
pub extern "C" fn cuMemsetD8_v2(dst: CUdeviceptr, value: u8, len: usize) -> R {
    let r = cuMemsetD8Async(dst, value, len, std::ptr::null_mut());
    if r != R::CUDA_SUCCESS {
        return r;
    }
    flush_all()
}

// --- streams and events ------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(stream: *mut *mut c_void, _flags: c_uint) -> R {
    let id = emu().queues.lock().new_stream();
    // SAFETY: the caller's out-pointer.
    unsafe { put(stream, handle(id)) }
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamCreateWithPriority(
    stream: *mut *mut c_void,
    flags: c_uint,
    _priority: c_int,
) -> R {
    // SAFETY: same contract.
    unsafe { cuStreamCreate(stream, flags) }
}

#[no_mangle]
pub extern "C" fn cuStreamDestroy_v2(stream: *mut c_void) -> R {
    let id = stream_id(stream);
    // work already queued still runs, as CUDA completes it after the
    // destroy; its failures belong to whoever waited on the stream
    let _ = flush(id);
    if emu().queues.lock().destroy_stream(id) {
        R::CUDA_SUCCESS
    } else {
        R::CUDA_ERROR_INVALID_HANDLE
    }
}

#[no_mangle]
pub extern "C" fn cuStreamSynchronize(stream: *mut c_void) -> R {
    Counters::add(&emu().counters.syncs, 1);
    flush(stream_id(stream))
}

#[no_mangle]
pub extern "C" fn cuStreamQuery(stream: *mut c_void) -> R {
    flush(stream_id(stream))
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamIsCapturing(_stream: *mut c_void, status: *mut c_int) -> R {
    // SAFETY: the caller's out-pointer (CU_STREAM_CAPTURE_STATUS_NONE).
    unsafe { put(status, 0) }
}

#[no_mangle]
pub extern "C" fn cuStreamWaitEvent(stream: *mut c_void, event: *mut c_void, _flags: c_uint) -> R {
    let waiter = stream_id(stream);
    let producer = emu().queues.lock().event_stream(event as u64);
    match producer {
        None => R::CUDA_ERROR_INVALID_HANDLE,
        // the producer's work up to the event must come before the waiter's
        // later work: run it now
        Some(Some(p)) if p != waiter => flush(p),
        Some(_) => R::CUDA_SUCCESS,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(event: *mut *mut c_void, _flags: c_uint) -> R {
    let id = emu().queues.lock().new_event();
    // SAFETY: the caller's out-pointer.
    unsafe { put(event, handle(id)) }
}

#[no_mangle]
pub extern "C" fn cuEventDestroy_v2(event: *mut c_void) -> R {
    if emu().queues.lock().destroy_event(event as u64) {
        R::CUDA_SUCCESS
    } else {
        R::CUDA_ERROR_INVALID_HANDLE
    }
}

#[no_mangle]
pub extern "C" fn cuEventRecord(event: *mut c_void, stream: *mut c_void) -> R {
    let id = stream_id(stream);
    if config().dry_run {
        let mut q = emu().queues.lock();
        return match q.events.get_mut(&(event as u64)) {
            Some(e) => {
                e.at = Some(std::time::Instant::now());
                R::CUDA_SUCCESS
            }
            None => R::CUDA_ERROR_INVALID_HANDLE,
        };
    }
    enqueue(
        id,
        Op::Record {
            event: event as u64,
        },
    )
}

fn event_flush(event: *mut c_void) -> R {
    let producer = emu().queues.lock().event_stream(event as u64);
    match producer {
        None => R::CUDA_ERROR_INVALID_HANDLE,
        Some(Some(p)) => flush(p),
        Some(None) => R::CUDA_SUCCESS,
    }
}

#[no_mangle]
pub extern "C" fn cuEventSynchronize(event: *mut c_void) -> R {
    Counters::add(&emu().counters.syncs, 1);
    event_flush(event)
}

#[no_mangle]
pub extern "C" fn cuEventQuery(event: *mut c_void) -> R {
    event_flush(event)
}

#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime(
    ms: *mut f32,
    start: *mut c_void,
    end: *mut c_void,
) -> R {
    let q = emu().queues.lock();
    let at = |e: *mut c_void| q.events.get(&(e as u64)).and_then(|e| e.at);
    match (at(start), at(end)) {
        // not a GPU timing: the emulator has no clock of its own
        // SAFETY: the caller's out-pointer.
        (Some(a), Some(b)) => unsafe {
            put(ms, b.saturating_duration_since(a).as_secs_f32() * 1e3)
        },
        _ => R::CUDA_ERROR_NOT_READY,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime_v2(
    ms: *mut f32,
    start: *mut c_void,
    end: *mut c_void,
) -> R {
    // SAFETY: same contract.
    unsafe { cuEventElapsedTime(ms, start, end) }
}

// --- modules and functions ------------------------------------------------------------------

struct Module {
    /// The SIMT emulator's module these kernels were compiled from.
    simt: Option<String>,
    entries: Vec<String>,
}

struct Function {
    module: u64,
    name: String,
    max_dynamic_shared: u32,
}

#[derive(Default)]
pub struct Modules {
    next: u64,
    modules: HashMap<u64, Module>,
    functions: HashMap<u64, Function>,
}

/// The emulator's modules and their kernels, read once.
fn simt_modules() -> &'static HashMap<String, BTreeSet<String>> {
    static INDEX: OnceLock<HashMap<String, BTreeSet<String>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (module, kernel) in genfx_kernels_emu::module_kernels() {
            index.entry(module).or_default().insert(kernel);
        }
        index
    })
}

/// The emulator module compiled from the same source as an image with
/// `entries`: the smallest one holding all of them, else the one holding
/// most (its other names fail at launch, by name).
fn bind(entries: &[String]) -> Option<String> {
    let covered = |m: &BTreeSet<String>| entries.iter().filter(|e| m.contains(*e)).count();
    simt_modules()
        .iter()
        .filter(|(_, m)| covered(m) > 0)
        .max_by_key(|(name, m)| {
            (
                covered(m),
                std::cmp::Reverse(m.len()),
                std::cmp::Reverse(*name),
            )
        })
        .map(|(name, _)| name.clone())
}

fn load_image(img: &Image) -> R {
    let c = config();
    if img.min_driver > c.driver_version {
        report(format!(
            "module needs a CUDA {}.{} driver; this one is {}.{} (driver_version)",
            img.min_driver / 1000,
            img.min_driver % 1000 / 10,
            c.driver_version / 1000,
            c.driver_version % 1000 / 10
        ));
        return if img.cubin_arch.is_some() {
            R::CUDA_ERROR_INVALID_IMAGE
        } else {
            R::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
        };
    }
    if let Some((major, minor)) = img.cubin_arch {
        if major != c.cc.0 || minor > c.cc.1 {
            report(format!(
                "cubin for sm_{major}{minor} does not run on an sm_{}{} device",
                c.cc.0, c.cc.1
            ));
            return R::CUDA_ERROR_NO_BINARY_FOR_GPU;
        }
    }
    if let Some((major, minor)) = img.ptx_target {
        if (major, minor) > c.cc {
            report(format!(
                "PTX for sm_{major}{minor} cannot be compiled for an sm_{}{} device",
                c.cc.0, c.cc.1
            ));
            return R::CUDA_ERROR_NO_BINARY_FOR_GPU;
        }
    }
    R::CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut *mut c_void, image: *const c_void) -> R {
    if module.is_null() {
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    // SAFETY: the caller passes a complete PTX string or cubin, as the API
    // requires.
    let img = match unsafe { image::parse_raw(image.cast()) } {
        Ok(img) => img,
        Err(image::ImageError::Invalid(why)) => {
            report(format!("cuModuleLoadData: {why}"));
            return if why.contains("ELF") {
                R::CUDA_ERROR_INVALID_IMAGE
            } else {
                R::CUDA_ERROR_INVALID_PTX
            };
        }
    };
    let r = load_image(&img);
    if r != R::CUDA_SUCCESS {
        return r;
    }
    let simt = bind(&img.entries);
    let mut m = emu().modules.lock();
    m.next += 1;
    let id = 0x1000 + m.next;
    m.modules.insert(
        id,
        Module {
            simt,
            entries: img.entries,
        },
    );
    // SAFETY: checked non-null above.
    unsafe { put(module, handle(id)) }
}

#[no_mangle]
pub extern "C" fn cuModuleUnload(module: *mut c_void) -> R {
    let mut m = emu().modules.lock();
    let id = module as u64;
    if m.modules.remove(&id).is_none() {
        return R::CUDA_ERROR_INVALID_HANDLE;
    }
    m.functions.retain(|_, f| f.module != id);
    R::CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleGetFunction(
    func: *mut *mut c_void,
    module: *mut c_void,
    name: *const c_char,
) -> R {
    if func.is_null() || name.is_null() {
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    // SAFETY: the caller's NUL-terminated kernel name.
    let name = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    let mut m = emu().modules.lock();
    let Some(md) = m.modules.get(&(module as u64)) else {
        return R::CUDA_ERROR_INVALID_HANDLE;
    };
    if !md.entries.contains(&name) {
        return R::CUDA_ERROR_NOT_FOUND;
    }
    m.next += 1;
    let id = 0x1000 + m.next;
    m.functions.insert(
        id,
        Function {
            module: module as u64,
            name,
            max_dynamic_shared: 48 * 1024,
        },
    );
    // SAFETY: checked non-null above.
    unsafe { put(func, handle(id)) }
}

#[no_mangle]
pub extern "C" fn cuFuncSetAttribute(func: *mut c_void, attribute: c_int, value: c_int) -> R {
    const MAX_DYNAMIC_SHARED_SIZE_BYTES: c_int = 8;
    let limit = config().max_shared_optin();
    let mut m = emu().modules.lock();
    let Some(f) = m.functions.get_mut(&(func as u64)) else {
        return R::CUDA_ERROR_INVALID_HANDLE;
    };
    if attribute == MAX_DYNAMIC_SHARED_SIZE_BYTES {
        if value < 0 || value as u32 > limit {
            report(format!(
                "kernel '{}': {value} bytes of dynamic shared memory asked for; this device allows {limit}",
                f.name
            ));
            return R::CUDA_ERROR_INVALID_VALUE;
        }
        f.max_dynamic_shared = value as u32;
    }
    R::CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuFuncGetAttribute(
    value: *mut c_int,
    attribute: c_int,
    func: *mut c_void,
) -> R {
    let m = emu().modules.lock();
    let Some(f) = m.functions.get(&(func as u64)) else {
        return R::CUDA_ERROR_INVALID_HANDLE;
    };
    let (major, minor) = config().cc;
    let v = match attribute {
        0 => 1024,                          // MAX_THREADS_PER_BLOCK
        4 => 64,                            // NUM_REGS
        5 | 6 => major * 10 + minor,        // PTX_VERSION, BINARY_VERSION
        8 => f.max_dynamic_shared as c_int, // MAX_DYNAMIC_SHARED_SIZE_BYTES
        _ => 0,
    };
    // SAFETY: the caller's out-pointer.
    unsafe { put(value, v) }
}

#[no_mangle]
pub extern "C" fn cuFuncSetCacheConfig(_func: *mut c_void, _config: c_int) -> R {
    R::CUDA_SUCCESS
}

#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn cuLaunchKernel(
    func: *mut c_void,
    grid_x: c_uint,
    grid_y: c_uint,
    grid_z: c_uint,
    block_x: c_uint,
    block_y: c_uint,
    block_z: c_uint,
    shared_bytes: c_uint,
    stream: *mut c_void,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> R {
    let e = emu();
    let (simt, name, max_shared) = {
        let m = e.modules.lock();
        let Some(f) = m.functions.get(&(func as u64)) else {
            return R::CUDA_ERROR_INVALID_HANDLE;
        };
        let simt = m.modules.get(&f.module).and_then(|md| md.simt.clone());
        (simt, f.name.clone(), f.max_dynamic_shared)
    };
    if !extra.is_null() && params.is_null() {
        report(format!(
            "kernel '{name}': `extra` launch parameters are not emulated"
        ));
        return R::CUDA_ERROR_NOT_SUPPORTED;
    }
    let signature = simt
        .as_deref()
        .and_then(|module| Some((module, genfx_kernels_emu::kernel_params(module, &name)?)));
    let Some((module, signature)) = signature else {
        report(format!(
            "kernel '{name}' is in the loaded image but the SIMT emulator has no kernel of that name \
             (add it to the GENFX_SIMT_EXPORTS of its kernels/*.cu file)"
        ));
        return R::CUDA_ERROR_NOT_SUPPORTED;
    };
    if shared_bytes > max_shared {
        report(format!(
            "kernel '{name}': {shared_bytes} bytes of dynamic shared memory without raising \
             CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (now {max_shared})"
        ));
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    if !signature.is_empty() && params.is_null() {
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    let values: Vec<Vec<u8>> = signature
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // SAFETY: cuLaunchKernel's contract: one pointer per kernel
            // parameter, each to a value of that parameter's size.
            unsafe {
                let at = *params.add(i);
                std::slice::from_raw_parts(at.cast::<u8>(), p.size as usize).to_vec()
            }
        })
        .collect();
    let n = e.counters.launches.fetch_add(1, Ordering::Relaxed) + 1;
    let launch = KernelLaunch {
        pointer: signature.iter().map(|p| p.pointer != 0).collect(),
        module: module.to_string(),
        kernel: name,
        dims: genfx_kernels_emu::Dims {
            grid: [grid_x, grid_y, grid_z],
            block: [block_x, block_y, block_z],
            shared_mem_bytes: shared_bytes,
        },
        params: values,
        fail: config().fail_launch_at == Some(n),
    };
    // arguments and shape are checked now, as the real launch refuses a bad
    // configuration at once; the kernel runs when its stream is waited for
    if let Err(why) = queue::check_launch(&launch) {
        report(why);
        return R::CUDA_ERROR_INVALID_VALUE;
    }
    *e.kernel_launches
        .lock()
        .entry(launch.kernel.clone())
        .or_insert(0) += 1;
    enqueue(stream_id(stream), Op::Launch(launch))
}

// --- errors ---------------------------------------------------------------------------------

fn error_text(code: c_int) -> (&'static CStr, &'static CStr) {
    match code {
        0 => (c"CUDA_SUCCESS", c"no error"),
        1 => (c"CUDA_ERROR_INVALID_VALUE", c"invalid argument"),
        2 => (c"CUDA_ERROR_OUT_OF_MEMORY", c"out of memory"),
        3 => (c"CUDA_ERROR_NOT_INITIALIZED", c"initialization error"),
        100 => (
            c"CUDA_ERROR_NO_DEVICE",
            c"no CUDA-capable device is detected",
        ),
        101 => (c"CUDA_ERROR_INVALID_DEVICE", c"invalid device ordinal"),
        200 => (
            c"CUDA_ERROR_INVALID_IMAGE",
            c"device kernel image is invalid",
        ),
        209 => (
            c"CUDA_ERROR_NO_BINARY_FOR_GPU",
            c"no kernel image is available for execution on the device",
        ),
        218 => (c"CUDA_ERROR_INVALID_PTX", c"a PTX JIT compilation failed"),
        222 => (
            c"CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
            c"the provided PTX was compiled with an unsupported toolchain",
        ),
        400 => (c"CUDA_ERROR_INVALID_HANDLE", c"invalid resource handle"),
        500 => (c"CUDA_ERROR_NOT_FOUND", c"named symbol not found"),
        600 => (c"CUDA_ERROR_NOT_READY", c"device not ready"),
        700 => (
            c"CUDA_ERROR_ILLEGAL_ADDRESS",
            c"an illegal memory access was encountered",
        ),
        719 => (c"CUDA_ERROR_LAUNCH_FAILED", c"unspecified launch failure"),
        801 => (c"CUDA_ERROR_NOT_SUPPORTED", c"operation not supported"),
        _ => (c"CUDA_ERROR_UNKNOWN", c"unknown error"),
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(code: c_int, out: *mut *const c_char) -> R {
    // SAFETY: the caller's out-pointer; the string is static.
    unsafe { put(out, error_text(code).0.as_ptr()) }
}

#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(code: c_int, out: *mut *const c_char) -> R {
    // SAFETY: the caller's out-pointer; the string is static.
    unsafe { put(out, error_text(code).1.as_ptr()) }
}
