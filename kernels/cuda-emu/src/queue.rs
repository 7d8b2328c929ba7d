//! Streams and events: work queued per stream and run, in order, when the
//! host waits for it.
//!
//! Deferring the work is what lets a test see a missing wait: a copy to the
//! host has not happened until someone synchronises, exactly as on a GPU
//! (where it merely has not happened *yet*). Each stream's queue runs at the
//! first of: `cuStreamSynchronize`, `cuEventSynchronize` or `cuEventQuery` on
//! an event recorded in it, `cuStreamQuery`, `cuStreamWaitEvent` on such an
//! event from another stream, `cuCtxSynchronize` or a synchronous copy (both
//! wait for the whole device, as in CUDA).
//!
//! `cuMemFree` waits too on a GPU, but code that leans on that to make a host
//! read safe breaks as soon as a caching allocator stops freeing. So here a
//! free runs only the queued work that still uses the block being freed (and
//! what precedes it in its stream): stricter than CUDA, which is the point.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::time::Instant;

use cudarc::driver::sys::cudaError_enum as R;

use crate::blas::GemmOp;
use crate::state::{emu, report, Counters};

/// The legacy default stream (a null `CUstream`, `CU_STREAM_LEGACY` or
/// `CU_STREAM_PER_THREAD`).
pub const DEFAULT_STREAM: u64 = 0;

pub struct KernelLaunch {
    /// The SIMT emulator's module (source file stem) and kernel.
    pub module: String,
    pub kernel: String,
    pub dims: genfx_kernels_emu::Dims,
    /// Each parameter's bytes, copied at launch time as CUDA does.
    pub params: Vec<Vec<u8>>,
    /// Which parameters are device pointers.
    pub pointer: Vec<bool>,
    /// Fault injection: this launch fails when it runs.
    pub fail: bool,
}

impl Op {
    /// Whether the op reads or writes device memory in `[base, end)`.
    fn touches(&self, base: u64, end: u64) -> bool {
        let hit = |addr: u64, len: u64| addr < end && base < addr + len.max(1);
        match self {
            Op::Launch(l) => l.pointers().any(|p| p >= base && p <= end),
            Op::Gemm(g) => [g.a.ptr, g.b.ptr, g.c.ptr]
                .iter()
                .any(|&p| p >= base && p < end),
            Op::HtoD { dst, data } => hit(*dst, data.len() as u64),
            Op::DtoH { src, len, .. } => hit(*src, *len as u64),
            Op::DtoD { dst, src, len } => hit(*dst, *len as u64) || hit(*src, *len as u64),
            Op::Memset { dst, len, .. } => hit(*dst, *len as u64),
            Op::Free { addr } => *addr == base,
            Op::Record { .. } => false,
        }
    }
}

impl KernelLaunch {
    /// The device addresses among the launch's arguments.
    fn pointers(&self) -> impl Iterator<Item = u64> + '_ {
        self.params
            .iter()
            .zip(&self.pointer)
            .filter(|(_, &is_pointer)| is_pointer)
            .filter_map(|(bytes, _)| Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)))
    }
}

pub enum Op {
    Launch(KernelLaunch),
    Gemm(Box<GemmOp>),
    /// The bytes were taken from the host when the copy was queued.
    HtoD {
        dst: u64,
        data: Vec<u8>,
    },
    /// Written into host memory when the copy runs.
    DtoH {
        dst: usize,
        src: u64,
        len: usize,
    },
    DtoD {
        dst: u64,
        src: u64,
        len: usize,
    },
    Memset {
        dst: u64,
        value: u8,
        len: usize,
    },
    Free {
        addr: u64,
    },
    Record {
        event: u64,
    },
}

#[derive(Default)]
pub struct Stream {
    ops: VecDeque<Op>,
    /// The first failure of work on this stream; sticky, as a CUDA context's
    /// is (scoped to the stream here, so that one test's planted fault does
    /// not fail every other test in the same process).
    error: Option<R>,
}

#[derive(Default)]
pub struct Event {
    /// The stream the last record was queued on, while it has not run.
    pending_on: Option<u64>,
    pub at: Option<Instant>,
    /// Destroyed while a record was still queued: forgotten once it runs.
    destroyed: bool,
}

pub struct Queues {
    next_id: u64,
    streams: HashMap<u64, Stream>,
    pub events: HashMap<u64, Event>,
}

impl Default for Queues {
    fn default() -> Self {
        let mut streams = HashMap::new();
        streams.insert(DEFAULT_STREAM, Stream::default());
        Queues {
            // ids double as handles; stay clear of CU_STREAM_LEGACY (1) and
            // CU_STREAM_PER_THREAD (2)
            next_id: 16,
            streams,
            events: HashMap::new(),
        }
    }
}

impl Queues {
    pub fn new_stream(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.streams.insert(id, Stream::default());
        id
    }

    pub fn new_event(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.events.insert(id, Event::default());
        id
    }

    pub fn has_stream(&self, id: u64) -> bool {
        self.streams.contains_key(&id)
    }

    pub fn destroy_stream(&mut self, id: u64) -> bool {
        id != DEFAULT_STREAM && self.streams.remove(&id).is_some()
    }

    pub fn event_stream(&self, event: u64) -> Option<Option<u64>> {
        self.events.get(&event).map(|e| e.pending_on)
    }

    /// Forgets `event` now, or when its queued record has run (a destroyed
    /// event still completes, as in CUDA). False for an unknown handle.
    pub fn destroy_event(&mut self, event: u64) -> bool {
        match self.events.get_mut(&event) {
            Some(e) if e.pending_on.is_some() => {
                e.destroyed = true;
                true
            }
            Some(_) => self.events.remove(&event).is_some(),
            None => false,
        }
    }
}

/// The stream id behind a `CUstream` handle.
pub fn stream_id(handle: *mut c_void) -> u64 {
    match handle as u64 {
        0..=2 => DEFAULT_STREAM,
        id => id,
    }
}

/// Queues `op` on `stream`; in a dry run nothing is queued (the caller has
/// checked and counted it already).
pub fn enqueue(stream: u64, op: Op) -> R {
    if crate::state::config().dry_run {
        return R::CUDA_SUCCESS;
    }
    let mut q = emu().queues.lock();
    if let Op::Record { event } = op {
        match q.events.get_mut(&event) {
            Some(e) => e.pending_on = Some(stream),
            None => return R::CUDA_ERROR_INVALID_HANDLE,
        }
    }
    match q.streams.get_mut(&stream) {
        Some(s) if s.error.is_some() => s.error.expect("checked"),
        Some(s) => {
            s.ops.push_back(op);
            R::CUDA_SUCCESS
        }
        None => R::CUDA_ERROR_INVALID_HANDLE,
    }
}

/// Runs everything queued on `stream`; its sticky error, if any.
pub fn flush(stream: u64) -> R {
    run_queue(stream).0
}

/// Runs `stream`'s queue: its status, and whether the failure (if any)
/// happened in this call rather than earlier.
fn run_queue(stream: u64) -> (R, bool) {
    run_queue_while(stream, |_| true)
}

/// Runs, in every stream, the queued work up to the last op that uses
/// device memory in `[base, end)`; later work stays queued.
pub fn flush_touching(base: u64, end: u64) {
    let ids: Vec<u64> = emu().queues.lock().streams.keys().copied().collect();
    for id in ids {
        run_queue_while(id, |ops| ops.iter().any(|op| op.touches(base, end)));
    }
}

/// Runs `stream`'s ops one by one while `more` says the remaining queue
/// still needs running.
fn run_queue_while(stream: u64, more: impl Fn(&VecDeque<Op>) -> bool) -> (R, bool) {
    let e = emu();
    let _running = e.exec.lock();
    loop {
        let op = {
            let mut q = e.queues.lock();
            let Some(s) = q.streams.get_mut(&stream) else {
                return (R::CUDA_ERROR_INVALID_HANDLE, false);
            };
            if let Some(err) = s.error {
                s.ops.clear();
                return (err, false);
            }
            if !more(&s.ops) {
                return (R::CUDA_SUCCESS, false);
            }
            match s.ops.pop_front() {
                Some(op) => op,
                None => return (R::CUDA_SUCCESS, false),
            }
        };
        if let Err(code) = run(op) {
            let mut q = e.queues.lock();
            if let Some(s) = q.streams.get_mut(&stream) {
                s.error = Some(code);
                s.ops.clear();
            }
            return (code, true);
        }
    }
}

/// Runs every stream's queue (the default stream last). Returns the first
/// failure that happened now: a stream that failed earlier has already told
/// its own waiter, and other jobs' streams stay usable.
pub fn flush_all() -> R {
    let mut ids: Vec<u64> = emu().queues.lock().streams.keys().copied().collect();
    ids.sort_by_key(|&id| (id == DEFAULT_STREAM, id));
    let mut first = R::CUDA_SUCCESS;
    for id in ids {
        let (r, now) = run_queue(id);
        if now && first == R::CUDA_SUCCESS {
            first = r;
        }
    }
    first
}

/// What an address range of live device memory holds, as a slice.
///
/// # Safety
/// `[addr, addr + len)` must lie in one live, backed allocation (checked by
/// the caller against the memory table) that nothing else writes meanwhile.
pub unsafe fn device_bytes<'a>(addr: u64, len: usize) -> &'a mut [u8] {
    // SAFETY: forwarded to the caller.
    unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) }
}

fn check(what: &str, addr: u64, len: usize) -> Result<(), R> {
    emu()
        .memory
        .lock()
        .check(what, addr, len as u64)
        .map_err(|m| {
            report(m);
            R::CUDA_ERROR_ILLEGAL_ADDRESS
        })
}

struct Resolver;

impl genfx_kernels_emu::Resolver for Resolver {
    fn resolve(&self, addr: u64) -> Option<genfx_kernels_emu::Allocation> {
        emu().memory.lock().resolve(addr)
    }
}

/// Checks a launch's arguments against live memory without running it.
pub fn check_launch(l: &KernelLaunch) -> Result<(), String> {
    let ptrs: Vec<*const c_void> = l.params.iter().map(|p| p.as_ptr().cast()).collect();
    // SAFETY: `ptrs` holds one pointer per parameter, each to a buffer of
    // that parameter's size (made from the kernel's signature); nothing runs.
    unsafe {
        genfx_kernels_emu::launch_raw(
            &l.module,
            &l.kernel,
            l.dims,
            ptrs.as_ptr(),
            &Resolver,
            false,
        )
    }
    .map_err(|e| e.to_string())
}

fn run(op: Op) -> Result<(), R> {
    match op {
        Op::Launch(l) => {
            if l.fail {
                report(format!(
                    "injected launch failure in kernel '{}' (fail_launch_at)",
                    l.kernel
                ));
                return Err(R::CUDA_ERROR_LAUNCH_FAILED);
            }
            let ptrs: Vec<*const c_void> = l.params.iter().map(|p| p.as_ptr().cast()).collect();
            // SAFETY: one pointer per parameter, each to that parameter's
            // bytes; device pointers are resolved to live host-backed blocks
            // by the memory table, and the exec lock keeps them alive.
            let r = unsafe {
                genfx_kernels_emu::launch_raw(
                    &l.module,
                    &l.kernel,
                    l.dims,
                    ptrs.as_ptr(),
                    &Resolver,
                    true,
                )
            };
            r.map_err(|e| {
                report(format!("{e}"));
                match e {
                    genfx_kernels_emu::EmuError::Fault(_) => R::CUDA_ERROR_ILLEGAL_ADDRESS,
                    genfx_kernels_emu::EmuError::BadLaunch(_) => R::CUDA_ERROR_LAUNCH_FAILED,
                }
            })
        }
        Op::Gemm(g) => crate::blas::run(&g).map_err(|m| {
            report(m);
            R::CUDA_ERROR_ILLEGAL_ADDRESS
        }),
        Op::HtoD { dst, data } => {
            check("host-to-device copy", dst, data.len())?;
            // SAFETY: checked against the memory table just above.
            unsafe { device_bytes(dst, data.len()) }.copy_from_slice(&data);
            Ok(())
        }
        Op::DtoH { dst, src, len } => {
            check("device-to-host copy", src, len)?;
            if !host_untouched(dst, len) {
                report(format!(
                    "a device-to-host copy of {len} bytes into host 0x{dst:x} ran after the host had \
                     already used or freed that buffer: it was read or reused without waiting for the \
                     stream (the copy was dropped)"
                ));
                return Err(R::CUDA_ERROR_ILLEGAL_ADDRESS);
            }
            // SAFETY: the source range is checked; the host range is the
            // caller's, still mapped and still holding the poison written
            // when the copy was queued, so nobody has used it meanwhile.
            unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len) };
            Ok(())
        }
        Op::DtoD { dst, src, len } => {
            check("device-to-device copy (source)", src, len)?;
            check("device-to-device copy (destination)", dst, len)?;
            // SAFETY: both ranges checked; `copy` allows overlap.
            unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, len) };
            Ok(())
        }
        Op::Memset { dst, value, len } => {
            check("memset", dst, len)?;
            // SAFETY: checked just above.
            unsafe { device_bytes(dst, len) }.fill(value);
            Ok(())
        }
        Op::Free { addr } => free(addr),
        Op::Record { event } => {
            let mut q = emu().queues.lock();
            let destroyed = match q.events.get_mut(&event) {
                Some(e) => {
                    e.pending_on = None;
                    e.at = Some(Instant::now());
                    e.destroyed
                }
                None => false,
            };
            if destroyed {
                q.events.remove(&event);
            }
            Ok(())
        }
    }
}

/// Whether a host buffer a deferred copy is about to fill is still mapped
/// and still holds only the poison written when the copy was queued. Code
/// that reads the buffer before waiting for the stream, and then frees it,
/// changes that (the allocator writes its own bookkeeping there, or unmaps
/// it): the copy must then not land, or it would write into freed memory.
fn host_untouched(addr: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
    let start = addr / page * page;
    let span = (addr + len).div_ceil(page) * page - start;
    let mut resident = vec![0u8; span / page];
    // SAFETY: mincore only reports on the range, failing with ENOMEM when any
    // page of it is unmapped; `resident` has one byte per page.
    let mapped =
        unsafe { libc::mincore(start as *mut libc::c_void, span, resident.as_mut_ptr()) } == 0;
    // SAFETY: the range is mapped (checked just above) and the queued copy
    // made it readable memory of this process.
    mapped
        && unsafe { std::slice::from_raw_parts(addr as *const u8, len) }
            .iter()
            .all(|&b| b == crate::memory::POISON)
}

/// Returns a block to the table and updates the counters.
pub fn free(addr: u64) -> Result<(), R> {
    let e = emu();
    match e.memory.lock().free(addr) {
        Some(bytes) => {
            Counters::add(&e.counters.frees, 1);
            e.counters
                .live_bytes
                .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        None => {
            report(format!(
                "free of 0x{addr:x}, which is not the start of a live allocation"
            ));
            Err(R::CUDA_ERROR_INVALID_VALUE)
        }
    }
}
