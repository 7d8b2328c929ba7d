//! The message suite, V2 preferred, V1 as fallback; a V2 table whose members
//! are null (as some hosts hand out) is treated member by member.

use super::effect::Effect;
use super::props::c_string;
use ofx_sys as sys;
use std::ffi::CStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Error,
    Warning,
    Message,
}

impl MessageKind {
    fn as_cstr(self) -> &'static CStr {
        match self {
            MessageKind::Error => sys::kOfxMessageError,
            MessageKind::Warning => sys::kOfxMessageWarning,
            MessageKind::Message => sys::kOfxMessageMessage,
        }
    }
}

const MESSAGE_ID: &CStr = c"GenFX";
const FORMAT: &CStr = c"%s";

fn text(message: &str) -> std::ffi::CString {
    // A NUL inside the text would cut it short; replace it rather than fail.
    c_string(&message.replace('\0', " ")).unwrap_or_default()
}

/// Shows a message in the host (a dialog in most hosts) about `effect`. Returns whether a host function took it.
pub fn show(effect: &Effect, kind: MessageKind, message: &str) -> bool {
    let (host, handle) = (&effect.host, effect.as_void());
    let f = host
        .suites
        .message_v2
        .and_then(|s| s.message)
        .or_else(|| host.suites.message_v1.and_then(|s| s.message));
    let Some(f) = f else { return false };
    let body = text(message);
    // SAFETY: a host message function; the format is "%s" with exactly one
    // NUL-terminated string vararg, so the host's printf reads nothing else.
    let status = unsafe {
        f(
            handle,
            kind.as_cstr().as_ptr(),
            MESSAGE_ID.as_ptr(),
            FORMAT.as_ptr(),
            body.as_ptr(),
        )
    };
    status == sys::kOfxStatOK || status == sys::kOfxStatReplyYes || status == sys::kOfxStatReplyNo
}

/// Sets the instance's persistent message (shown on the node/clip until
/// cleared). False when the host has no V2 function for it.
pub fn set_persistent(effect: &Effect, kind: MessageKind, message: &str) -> bool {
    let (host, handle) = (&effect.host, effect.as_void());
    let Some(f) = host.suites.message_v2.and_then(|s| s.setPersistentMessage) else {
        return false;
    };
    let body = text(message);
    // SAFETY: as in `show`: "%s" and one string vararg.
    let status = unsafe {
        f(
            handle,
            kind.as_cstr().as_ptr(),
            MESSAGE_ID.as_ptr(),
            FORMAT.as_ptr(),
            body.as_ptr(),
        )
    };
    status == sys::kOfxStatOK
}

/// Clears the persistent message, where the host can.
pub fn clear_persistent(effect: &Effect) {
    let (host, handle) = (&effect.host, effect.as_void());
    if let Some(f) = host
        .suites
        .message_v2
        .and_then(|s| s.clearPersistentMessage)
    {
        // SAFETY: the host's function, given the instance handle.
        unsafe { f(handle) };
    }
}
