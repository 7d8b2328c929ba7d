//! The host: the `OfxHost` the plug-in was given and the suites fetched from
//! it at Load. Everything here lives for the whole process.

use super::error::{OfxError, OfxResult};
use super::props::PropSet;
use ofx_sys as sys;
use parking_lot::{Mutex, RwLock};
use std::ffi::CStr;
use std::sync::Arc;

/// The suites GenFX uses. The first three are required; the others are
/// used when present.
pub struct Suites {
    pub property: &'static sys::OfxPropertySuiteV1,
    pub effect: &'static sys::OfxImageEffectSuiteV1,
    pub param: &'static sys::OfxParameterSuiteV1,
    pub message_v1: Option<&'static sys::OfxMessageSuiteV1>,
    pub message_v2: Option<&'static sys::OfxMessageSuiteV2>,
    pub progress_v1: Option<&'static sys::OfxProgressSuiteV1>,
    pub progress_v2: Option<&'static sys::OfxProgressSuiteV2>,
    pub threads: Option<&'static sys::OfxMultiThreadSuiteV1>,
}

/// What the plug-in knows about the host application.
pub struct Host {
    pub suites: Suites,
    pub props: PropSet,
    /// `kOfxPropName`, e.g. "fr.inria.Natron" or "DaVinciResolve".
    pub name: String,
    pub label: String,
    pub api_version: (i32, i32),
}

/// The `OfxHost` struct as last handed to `setHost`/`OfxSetHost` (copied:
/// it is two pointers the host keeps valid while the binary is loaded).
#[derive(Clone, Copy)]
struct RawHost(sys::OfxHost);

// SAFETY: the host's property set handle and fetchSuite function are global
// to the host process and callable from any thread.
unsafe impl Send for RawHost {}

static RAW_HOST: Mutex<Option<RawHost>> = Mutex::new(None);
static HOST: RwLock<Option<Arc<Host>>> = RwLock::new(None);

/// Remembers the host pointer. Null is ignored: a later Load then fails with a
/// missing-host error instead of dereferencing it.
///
/// # Safety
/// `host` is null or points to a valid `OfxHost`, as the host passes it to
/// `setHost`/`OfxSetHost`.
pub unsafe fn set_host_pointer(host: *const sys::OfxHost) {
    if host.is_null() {
        log::warn!("host passed a null OfxHost pointer");
        return;
    }
    // SAFETY: the host passes a pointer to a valid OfxHost; we only copy it.
    let copy = unsafe { *host };
    *RAW_HOST.lock() = Some(RawHost(copy));
}

fn fetch<T>(raw: &sys::OfxHost, name: &CStr, version: i32) -> Option<&'static T> {
    let fetch_suite = raw.fetchSuite?;
    if raw.host.is_null() {
        return None;
    }
    // SAFETY: fetchSuite is the host's own function, called with its own host
    // handle and a NUL-terminated name as the API requires.
    let suite = unsafe { fetch_suite(raw.host, name.as_ptr(), version) };
    // SAFETY: a non-null answer points to the suite struct of that name and
    // version, valid while the binary is loaded (our 'static).
    (!suite.is_null()).then(|| unsafe { &*(suite as *const T) })
}

/// Fetches the suites from the host set by `setHost`. Called at Load; a
/// second Load reuses the first result.
pub fn load() -> OfxResult<Arc<Host>> {
    if let Some(host) = HOST.read().as_ref() {
        return Ok(host.clone());
    }
    let raw = RAW_HOST
        .lock()
        .ok_or(OfxError::Missing("an OfxHost (setHost was not called)"))?
        .0;
    let property: &sys::OfxPropertySuiteV1 =
        fetch(&raw, sys::kOfxPropertySuite, 1).ok_or(OfxError::Missing("the property suite"))?;
    let effect: &sys::OfxImageEffectSuiteV1 = fetch(&raw, sys::kOfxImageEffectSuite, 1)
        .ok_or(OfxError::Missing("the image effect suite"))?;
    let param: &sys::OfxParameterSuiteV1 =
        fetch(&raw, sys::kOfxParameterSuite, 1).ok_or(OfxError::Missing("the parameter suite"))?;
    let suites = Suites {
        property,
        effect,
        param,
        message_v1: fetch(&raw, sys::kOfxMessageSuite, 1),
        message_v2: fetch(&raw, sys::kOfxMessageSuite, 2),
        progress_v1: fetch(&raw, sys::kOfxProgressSuite, 1),
        progress_v2: fetch(&raw, sys::kOfxProgressSuite, 2),
        threads: fetch(&raw, sys::kOfxMultiThreadSuite, 1),
    };
    let props = PropSet::new(raw.host, property).ok_or(OfxError::BadHandle("host property set"))?;
    let name = props.get_string(sys::kOfxPropName, 0).unwrap_or_default();
    let label = props.get_string(sys::kOfxPropLabel, 0).unwrap_or_default();
    let api_version = (
        props.get_int(sys::kOfxPropAPIVersion, 0).unwrap_or(1),
        props.get_int(sys::kOfxPropAPIVersion, 1).unwrap_or(0),
    );
    log::info!(
        "host {name:?} ({label}), OFX API {}.{}; message suite v2: {}, progress v2: {}, multithread: {}",
        api_version.0,
        api_version.1,
        suites.message_v2.is_some(),
        suites.progress_v2.is_some(),
        suites.threads.is_some()
    );
    let host = Arc::new(Host {
        suites,
        props,
        name,
        label,
        api_version,
    });
    *HOST.write() = Some(host.clone());
    Ok(host)
}

/// The loaded host, for every action after Load.
pub fn current() -> OfxResult<Arc<Host>> {
    HOST.read()
        .clone()
        .ok_or(OfxError::Missing("a loaded host (Load was not called)"))
}

/// Forgets the suites at Unload; the pointer stays for a later Load.
pub fn unload() {
    *HOST.write() = None;
}

impl Host {
    pub fn props_of(&self, handle: sys::OfxPropertySetHandle) -> Option<PropSet> {
        PropSet::new(handle, self.suites.property)
    }

    /// Whether a named host feature string property contains `value`.
    pub fn supports(&self, name: &CStr, value: &CStr) -> bool {
        let Ok(count) = self.props.dimension(name) else {
            return false;
        };
        (0..count).any(|i| {
            self.props
                .get_bytes(name, i)
                .map(|v| v == value.to_bytes())
                .unwrap_or(false)
        })
    }
}
