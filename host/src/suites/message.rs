//! `OfxMessageSuiteV1/V2`. The printf-style entries are C shims in
//! `csrc/varargs.c` that format the text and call [`genfx_host_message`].

use super::guard;
use crate::abi::{OfxName, *};
use crate::objects::{Message, EFFECTS};
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

extern "C" {
    fn genfx_host_message_v(
        handle: *mut c_void,
        kind: *const c_char,
        id: *const c_char,
        format: *const c_char,
        ...
    ) -> OfxStatus;
    fn genfx_host_persistent_message_v(
        handle: *mut c_void,
        kind: *const c_char,
        id: *const c_char,
        format: *const c_char,
        ...
    ) -> OfxStatus;
}

pub static SUITE_V1: OfxMessageSuiteV1 = OfxMessageSuiteV1 {
    message: Some(genfx_host_message_v),
};

pub static SUITE_V2: OfxMessageSuiteV2 = OfxMessageSuiteV2 {
    message: Some(genfx_host_message_v),
    setPersistentMessage: Some(genfx_host_persistent_message_v),
    clearPersistentMessage: Some(clear_persistent_message),
};

/// Resolve hands out V2 with the persistent-message entries null.
pub static SUITE_V2_RESOLVE: OfxMessageSuiteV2 = OfxMessageSuiteV2 {
    message: Some(genfx_host_message_v),
    setPersistentMessage: None,
    clearPersistentMessage: None,
};

/// Text from a plugin string; bytes that are not UTF-8 are replaced.
///
/// # Safety
/// `p` is null or a C string.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null C string per the caller.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Called by the C shims with the formatted text.
///
/// # Safety
/// `kind`, `id` and `message` are null or C strings.
#[no_mangle]
pub unsafe extern "C" fn genfx_host_message(
    handle: *mut c_void,
    kind: *const c_char,
    id: *const c_char,
    message: *const c_char,
    persistent: c_int,
) -> OfxStatus {
    guard(|| {
        if kind.is_null() || message.is_null() {
            return stat::ERR_VALUE;
        }
        // SAFETY: C strings from the plugin (null handled).
        let record = unsafe {
            Message {
                kind: text(kind),
                id: text(id),
                text: text(message),
                persistent: persistent != 0,
            }
        };
        eprintln!("genfx-host: [{}] {}", record.kind, record.text);
        let question = record.kind == kOfxMessageQuestion.name();
        match EFFECTS.get(handle as usize) {
            Some(effect) => {
                if record.persistent {
                    *effect.persistent.lock() = Some(record.clone());
                }
                effect.messages.lock().push(record);
            }
            None => {
                if persistent != 0 {
                    // Persistent messages belong to an instance.
                    return stat::ERR_BAD_HANDLE;
                }
                crate::objects::ORPHAN_MESSAGES.lock().push(record);
            }
        }
        // Nobody is there to answer a question on a headless host.
        if question {
            stat::REPLY_NO
        } else {
            stat::OK
        }
    })
}

unsafe extern "C" fn clear_persistent_message(handle: *mut c_void) -> OfxStatus {
    guard(|| match EFFECTS.get(handle as usize) {
        Some(effect) => {
            *effect.persistent.lock() = None;
            stat::OK
        }
        None => stat::ERR_BAD_HANDLE,
    })
}
