//! `OfxProgressSuiteV1/V2`: recorded per instance; an update answers
//! `kOfxStatReplyNo` once the host asked the instance to abort.

use super::guard;
use crate::abi::*;
use crate::objects::{Progress, EFFECTS};
use std::ffi::CStr;
use std::os::raw::{c_char, c_void};
use std::sync::atomic::Ordering;

pub static SUITE_V1: OfxProgressSuiteV1 = OfxProgressSuiteV1 {
    progressStart: Some(start_v1),
    progressUpdate: Some(update),
    progressEnd: Some(end),
};

pub static SUITE_V2: OfxProgressSuiteV2 = OfxProgressSuiteV2 {
    progressStart: Some(start_v2),
    progressUpdate: Some(update),
    progressEnd: Some(end),
};

fn record(handle: *mut c_void, event: Progress) -> OfxStatus {
    match EFFECTS.get(handle as usize) {
        Some(effect) => {
            effect.progress.lock().push(event);
            stat::OK
        }
        None => stat::ERR_BAD_HANDLE,
    }
}

unsafe fn label(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null C string per the API.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

unsafe extern "C" fn start_v1(handle: *mut c_void, text: *const c_char) -> OfxStatus {
    guard(|| {
        // SAFETY: C string or null.
        let label = unsafe { label(text) };
        record(handle, Progress::Start { label })
    })
}

unsafe extern "C" fn start_v2(
    handle: *mut c_void,
    text: *const c_char,
    _id: *const c_char,
) -> OfxStatus {
    guard(|| {
        // SAFETY: C string or null.
        let label = unsafe { label(text) };
        record(handle, Progress::Start { label })
    })
}

unsafe extern "C" fn update(handle: *mut c_void, fraction: f64) -> OfxStatus {
    guard(|| {
        let st = record(handle, Progress::Update(fraction));
        if st != stat::OK {
            return st;
        }
        match EFFECTS.get(handle as usize) {
            Some(e) if e.abort.load(Ordering::SeqCst) => stat::REPLY_NO,
            _ => stat::OK,
        }
    })
}

unsafe extern "C" fn end(handle: *mut c_void) -> OfxStatus {
    guard(|| record(handle, Progress::End))
}
