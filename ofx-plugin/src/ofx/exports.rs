//! The exported C entry points and the plug-in table: the ABI edge. Every
//! call is wrapped in `catch_unwind`: a panic becomes a failed status and a
//! log line, never an unwind into the host. Actions are parsed here into
//! `Action` and handed to `crate::actions::dispatch`.

use super::{host, Action};
use crate::actions::{dispatch, Call};
use crate::effects::EffectKind;
use ofx_sys as sys;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The plug-in table. `OfxPlugin` holds raw pointers, so it is wrapped to be
/// a `static`; every pointer in it is to 'static, immutable data.
#[repr(transparent)]
struct PluginTable([sys::OfxPlugin; 3]);

// SAFETY: the table is never written after initialisation; its pointers are
// to static C strings and functions, valid from any thread.
unsafe impl Sync for PluginTable {}

macro_rules! entry {
    ($name:ident, $kind:expr) => {
        unsafe extern "C" fn $name(
            action: *const c_char,
            handle: *const c_void,
            in_args: sys::OfxPropertySetHandle,
            out_args: sys::OfxPropertySetHandle,
        ) -> sys::OfxStatus {
            main_entry($kind, action, handle, in_args, out_args)
        }
    };
}

entry!(generate_entry, EffectKind::Generate);
entry!(extend_entry, EffectKind::Extend);
entry!(fill_entry, EffectKind::Fill);

const fn plugin(id: &'static CStr, entry: sys::OfxPluginEntryPoint) -> sys::OfxPlugin {
    sys::OfxPlugin {
        pluginApi: sys::kOfxImageEffectPluginApi.as_ptr(),
        apiVersion: sys::kOfxImageEffectPluginApiVersion,
        pluginIdentifier: id.as_ptr(),
        pluginVersionMajor: 0,
        pluginVersionMinor: 1,
        setHost: Some(set_host),
        mainEntry: entry,
    }
}

static PLUGINS: PluginTable = PluginTable([
    plugin(c"org.genfx.Generate", Some(generate_entry)),
    plugin(c"org.genfx.Extend", Some(extend_entry)),
    plugin(c"org.genfx.Fill", Some(fill_entry)),
]);

unsafe extern "C" fn set_host(host: *mut sys::OfxHost) {
    // SAFETY: the host passes null or a valid OfxHost to setHost.
    let _ = catch_unwind(|| unsafe { host::set_host_pointer(host) });
}

fn main_entry(
    kind: EffectKind,
    action: *const c_char,
    handle: *const c_void,
    in_args: sys::OfxPropertySetHandle,
    out_args: sys::OfxPropertySetHandle,
) -> sys::OfxStatus {
    let result = catch_unwind(AssertUnwindSafe(|| {
        if action.is_null() {
            log::error!("host called the entry point with a null action");
            return sys::kOfxStatErrBadHandle;
        }
        // SAFETY: a non-null action is a NUL-terminated string from the host,
        // valid for the duration of this call.
        let action = Action::parse(unsafe { CStr::from_ptr(action) });
        dispatch(Call {
            kind,
            action,
            handle,
            in_args,
            out_args,
        })
    }));
    result.unwrap_or_else(|_| {
        // The panic hook has logged the message and backtrace.
        log::error!("a panic was stopped at the {kind:?} entry point");
        sys::kOfxStatFailed
    })
}

/// Number of plug-ins in this binary.
#[no_mangle]
pub extern "C" fn OfxGetNumberOfPlugins() -> c_int {
    // Logging is best effort; a failure to set it up must not unwind here.
    let _ = catch_unwind(crate::logging::init);
    PLUGINS.0.len() as c_int
}

/// The nth plug-in, or null outside the range.
#[no_mangle]
pub extern "C" fn OfxGetPlugin(nth: c_int) -> *mut sys::OfxPlugin {
    usize::try_from(nth)
        .ok()
        .and_then(|i| PLUGINS.0.get(i))
        .map(|p| p as *const sys::OfxPlugin as *mut sys::OfxPlugin)
        .unwrap_or(std::ptr::null_mut())
}

/// OFX 1.5: the host, before the other calls. GenFX works with any host.
///
/// # Safety
/// `host` is null or points to a valid `OfxHost` that stays valid while the
/// binary is loaded, as the OpenFX API requires of hosts.
#[no_mangle]
pub unsafe extern "C" fn OfxSetHost(host: *const sys::OfxHost) -> sys::OfxStatus {
    catch_unwind(|| {
        crate::logging::init();
        // SAFETY: the host passes null or a valid OfxHost to OfxSetHost.
        unsafe { host::set_host_pointer(host) };
        sys::kOfxStatOK
    })
    .unwrap_or(sys::kOfxStatFailed)
}
