//! The host side of the OpenFX suites, as C entry points.
//!
//! Every entry catches panics (a panic must not unwind into the plugin) and
//! looks up each handle in its registry before use, so bad handles get
//! `kOfxStatErrBadHandle` rather than a crash.

pub mod effect;
pub mod memory;
pub mod message;
pub mod param;
pub mod progress;
pub mod property;
pub mod thread;

#[cfg(test)]
mod tests;

use crate::abi::{stat, OfxStatus};
use crate::objects::HostShared;
use crate::registry::Registry;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Hosts by the address of their property set, the handle `fetchSuite` gets.
pub static HOSTS: Registry<HostShared> = Registry::new();

/// Runs a suite entry, turning a panic into `kOfxStatErrFatal`.
pub(crate) fn guard(f: impl FnOnce() -> OfxStatus) -> OfxStatus {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(stat::ERR_FATAL)
}

/// A name argument from the plugin; `None` when null or not UTF-8.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn name_arg<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract (the
    // OpenFX API passes C strings for every name).
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// Writes `value` through an out-pointer from the plugin, refusing null.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) -> OfxStatus {
    if out.is_null() {
        return stat::ERR_BAD_HANDLE;
    }
    // SAFETY: non-null, and the plugin passed it as a place for a `T`.
    unsafe { out.write(value) };
    stat::OK
}

/// `fetchSuite`: hands out the suites this host implements.
///
/// # Safety
/// Called by the plugin with a suite name that is null or a C string.
pub unsafe extern "C" fn fetch_suite(
    host: crate::abi::OfxPropertySetHandle,
    name: *const c_char,
    version: c_int,
) -> *const c_void {
    let found = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the name is a C string or null per the OpenFX API.
        let Some(name) = (unsafe { name_arg(name) }) else {
            return std::ptr::null();
        };
        let resolve = HOSTS.get(host as usize).is_some_and(|h| h.resolve);
        suite(name, version, resolve)
    }));
    found.unwrap_or(std::ptr::null())
}

fn addr<T>(suite: &'static T) -> *const c_void {
    suite as *const T as *const c_void
}

fn suite(name: &str, version: c_int, resolve: bool) -> *const c_void {
    use crate::abi::{OfxName, *};
    let is = |c: &CStr| name == c.name();
    match version {
        1 if is(kOfxPropertySuite) => addr(&property::SUITE),
        1 if is(kOfxImageEffectSuite) => addr(&effect::SUITE),
        1 if is(kOfxParameterSuite) => addr(&param::SUITE),
        1 if is(kOfxMessageSuite) => addr(&message::SUITE_V1),
        2 if is(kOfxMessageSuite) && resolve => addr(&message::SUITE_V2_RESOLVE),
        2 if is(kOfxMessageSuite) => addr(&message::SUITE_V2),
        1 if is(kOfxProgressSuite) => addr(&progress::SUITE_V1),
        2 if is(kOfxProgressSuite) => addr(&progress::SUITE_V2),
        1 if is(kOfxMultiThreadSuite) => addr(&thread::SUITE),
        1 if is(kOfxMemorySuite) => addr(&memory::SUITE),
        _ => std::ptr::null(),
    }
}
