//! The multi-thread suite: run independent tasks on the host's worker
//! threads, or on this thread when the host has none to lend.

use super::host::Host;
use ofx_sys as sys;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

struct Job<'a> {
    tasks: usize,
    body: &'a (dyn Fn(usize) + Sync),
    panicked: AtomicBool,
}

unsafe extern "C" fn trampoline(index: u32, count: u32, arg: *mut c_void) {
    // SAFETY: `arg` is the `Job` that `for_each` keeps alive until
    // multiThread returns; it is only read through a shared reference.
    let job = unsafe { &*(arg as *const Job) };
    let count = count.max(1) as usize;
    // A panic must not unwind into the host's thread pool.
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut task = index as usize;
        while task < job.tasks {
            (job.body)(task);
            task += count;
        }
    }));
    if result.is_err() {
        job.panicked.store(true, Ordering::SeqCst);
    }
}

/// Runs `body(i)` for every `i < tasks`, each exactly once when this returns
/// normally. Tasks must be independent and idempotent (a host pool that
/// fails part way is followed by a run of all of them here). Returns false if
/// a task panicked.
pub fn for_each(host: &Host, tasks: usize, body: &(dyn Fn(usize) + Sync)) -> bool {
    if tasks == 0 {
        return true;
    }
    if let Some(suite) = host.suites.threads {
        // SAFETY: a host function taking no arguments.
        let nested = suite
            .multiThreadIsSpawnedThread
            .map(|f| unsafe { f() } != 0)
            .unwrap_or(true);
        if let (false, Some(run), Some(cpus)) =
            (nested, suite.multiThread, suite.multiThreadNumCPUs)
        {
            let mut n = 0u32;
            // SAFETY: host function writing one unsigned int we own.
            if unsafe { cpus(&mut n) } == sys::kOfxStatOK && n > 1 {
                let job = Job {
                    tasks,
                    body,
                    panicked: AtomicBool::new(false),
                };
                let threads = n.min(tasks as u32);
                // SAFETY: the trampoline matches OfxThreadFunctionV1 and `job`
                // outlives the call, which returns after every thread is done.
                let status =
                    unsafe { run(Some(trampoline), threads, &job as *const Job as *mut c_void) };
                if status == sys::kOfxStatOK {
                    return !job.panicked.load(Ordering::SeqCst);
                }
                log::debug!("multiThread answered {status}; running tasks on this thread");
            }
        }
    }
    catch_unwind(AssertUnwindSafe(|| (0..tasks).for_each(body))).is_ok()
}
