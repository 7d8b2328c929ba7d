//! The progress suite (V2 preferred, V1 as fallback) as a guard that ends
//! the progress bar when dropped.

use super::effect::Effect;
use super::host::Host;
use super::props::c_string;
use ofx_sys as sys;
use std::ffi::c_void;
use std::sync::Arc;

type UpdateFn = unsafe extern "C" fn(*mut c_void, f64) -> sys::OfxStatus;
type EndFn = unsafe extern "C" fn(*mut c_void) -> sys::OfxStatus;

pub struct Progress {
    handle: *mut c_void,
    update: Option<UpdateFn>,
    end: Option<EndFn>,
    _host: Arc<Host>,
}

// SAFETY: the instance handle is an opaque host token and the suite functions
// may be called from the render thread that owns this guard or any other.
unsafe impl Send for Progress {}
// SAFETY: no Rust-side state is mutated through `&self`.
unsafe impl Sync for Progress {}

impl Progress {
    /// Starts a progress bar on the instance; `None` when the host has none.
    pub fn start(effect: &Effect, label: &str) -> Option<Progress> {
        let (host, handle) = (effect.host.clone(), effect.as_void());
        let label = c_string(&label.replace('\0', " ")).ok()?;
        let (update, end) = if let Some(v2) = host
            .suites
            .progress_v2
            .filter(|s| s.progressStart.is_some())
        {
            let start = v2.progressStart?;
            // SAFETY: host function with the instance handle and two
            // NUL-terminated strings.
            let status = unsafe { start(handle, label.as_ptr(), c"GenFXShot".as_ptr()) };
            if status != sys::kOfxStatOK {
                return None;
            }
            (v2.progressUpdate, v2.progressEnd)
        } else {
            let v1 = host.suites.progress_v1?;
            let start = v1.progressStart?;
            // SAFETY: host function with the instance handle and a label.
            let status = unsafe { start(handle, label.as_ptr()) };
            if status != sys::kOfxStatOK {
                return None;
            }
            (v1.progressUpdate, v1.progressEnd)
        };
        Some(Progress {
            handle,
            update,
            end,
            _host: host,
        })
    }

    /// Reports `fraction` in [0, 1]. False when the user asked to stop.
    pub fn update(&self, fraction: f64) -> bool {
        let Some(f) = self.update else { return true };
        // SAFETY: host function with the handle progress was started on.
        let status = unsafe { f(self.handle, fraction.clamp(0.0, 1.0)) };
        status != sys::kOfxStatReplyNo
    }
}

impl Progress {
    /// Drops the guard without ending the bar: for an instance the host has
    /// destroyed, whose handle must not be used again.
    pub fn abandon(mut self) {
        self.end = None;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(f) = self.end {
            // SAFETY: ends the bar started in `start`, once.
            unsafe { f(self.handle) };
        }
    }
}
