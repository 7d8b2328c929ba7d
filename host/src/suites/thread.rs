//! `OfxMultiThreadSuiteV1` on real OS threads.

use super::{guard, write_out};
use crate::abi::*;
use parking_lot::lock_api::RawReentrantMutex;
use parking_lot::{Mutex, RawMutex, RawThreadId};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::os::raw::{c_int, c_uint, c_void};
use std::sync::Arc;

pub static SUITE: OfxMultiThreadSuiteV1 = OfxMultiThreadSuiteV1 {
    multiThread: Some(multi_thread),
    multiThreadNumCPUs: Some(num_cpus),
    multiThreadIndex: Some(index),
    multiThreadIsSpawnedThread: Some(is_spawned),
    mutexCreate: Some(mutex_create),
    mutexDestroy: Some(mutex_destroy),
    mutexLock: Some(mutex_lock),
    mutexUnLock: Some(mutex_unlock),
    mutexTryLock: Some(mutex_try_lock),
};

thread_local! {
    /// This thread's index when spawned by `multiThread`.
    static INDEX: Cell<Option<u32>> = const { Cell::new(None) };
}

fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The plugin's custom argument, passed to threads it runs on.
struct Arg(*mut c_void);
// SAFETY: the plugin hands this pointer to its own function on every thread
// and promises (by calling multiThread) that its function is thread safe.
unsafe impl Send for Arg {}
// SAFETY: as for Send; the host never dereferences it.
unsafe impl Sync for Arg {}

unsafe extern "C" fn multi_thread(
    func: OfxThreadFunctionV1,
    count: c_uint,
    arg: *mut c_void,
) -> OfxStatus {
    guard(|| {
        let Some(func) = func else {
            return stat::ERR_VALUE;
        };
        let count = if count == 0 { cpus() } else { count };
        if count == 1 {
            // SAFETY: calling the plugin's thread function as the API says.
            unsafe { func(0, 1, arg) };
            return stat::OK;
        }
        let arg = Arg(arg);
        let arg = &arg;
        let failed = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .map(|i| {
                    std::thread::Builder::new().spawn_scoped(scope, move || {
                        INDEX.with(|c| c.set(Some(i)));
                        // SAFETY: the plugin's function with its own argument,
                        // on a thread of its asking.
                        unsafe { func(i, count, arg.0) };
                    })
                })
                .collect();
            handles
                .into_iter()
                .any(|h| h.map_or(true, |h| h.join().is_err()))
        });
        if failed {
            stat::FAILED
        } else {
            stat::OK
        }
    })
}

unsafe extern "C" fn num_cpus(out: *mut c_uint) -> OfxStatus {
    // SAFETY: `out` is null (refused) or a place for a count.
    guard(|| unsafe { write_out(out, cpus()) })
}

unsafe extern "C" fn index(out: *mut c_uint) -> OfxStatus {
    // SAFETY: `out` is null (refused) or a place for an index.
    guard(|| unsafe { write_out(out, INDEX.with(|c| c.get()).unwrap_or(0)) })
}

unsafe extern "C" fn is_spawned() -> c_int {
    INDEX.with(|c| c.get()).is_some() as c_int
}

type Recursive = RawReentrantMutex<RawMutex, RawThreadId>;

/// Live mutexes by handle. The plugin locks and unlocks them across calls, so
/// they are raw (guard-less) recursive locks.
static MUTEXES: Mutex<BTreeMap<usize, Arc<Recursive>>> = Mutex::new(BTreeMap::new());

fn mutex(handle: OfxMutexHandle) -> Option<Arc<Recursive>> {
    MUTEXES.lock().get(&(handle as usize)).cloned()
}

unsafe extern "C" fn mutex_create(out: *mut OfxMutexHandle, lock_count: c_int) -> OfxStatus {
    guard(|| {
        let m = Arc::new(Recursive::INIT);
        for _ in 0..lock_count.max(0) {
            m.lock();
        }
        let handle = Arc::as_ptr(&m) as usize;
        MUTEXES.lock().insert(handle, m);
        // SAFETY: `out` is null (refused) or a place for a handle.
        unsafe { write_out(out, handle as OfxMutexHandle) }
    })
}

unsafe extern "C" fn mutex_destroy(handle: OfxMutexHandle) -> OfxStatus {
    guard(|| match MUTEXES.lock().remove(&(handle as usize)) {
        Some(_) => stat::OK,
        None => stat::ERR_BAD_HANDLE,
    })
}

unsafe extern "C" fn mutex_lock(handle: OfxMutexHandle) -> OfxStatus {
    guard(|| match mutex(handle) {
        Some(m) => {
            m.lock();
            stat::OK
        }
        None => stat::ERR_BAD_HANDLE,
    })
}

unsafe extern "C" fn mutex_unlock(handle: OfxMutexHandle) -> OfxStatus {
    guard(|| match mutex(handle) {
        Some(m) if m.is_owned_by_current_thread() => {
            // SAFETY: this thread holds the lock (checked just above).
            unsafe { m.unlock() };
            stat::OK
        }
        Some(_) => stat::ERR_VALUE,
        None => stat::ERR_BAD_HANDLE,
    })
}

unsafe extern "C" fn mutex_try_lock(handle: OfxMutexHandle) -> OfxStatus {
    guard(|| match mutex(handle) {
        Some(m) if m.try_lock() => stat::OK,
        Some(_) => stat::FAILED,
        None => stat::ERR_BAD_HANDLE,
    })
}
