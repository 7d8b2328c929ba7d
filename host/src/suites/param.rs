//! `OfxParameterSuiteV1`. The variadic get/set entries are C shims in
//! `csrc/varargs.c` (stable Rust cannot define variadic functions); they read
//! the `...` arguments and call the fixed-signature `genfx_host_param_*`
//! functions below.

use super::{guard, name_arg, write_out};
use crate::abi::{OfxName, *};
use crate::defaults;
use crate::objects::{Param, ParamKind, ParamSet, ParamValue, ValueKind, PARAMS, PARAM_SETS};
use crate::props::Value;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::Arc;

extern "C" {
    fn genfx_host_paramGetValue(param: OfxParamHandle, ...) -> OfxStatus;
    fn genfx_host_paramGetValueAtTime(param: OfxParamHandle, time: OfxTime, ...) -> OfxStatus;
    fn genfx_host_paramGetDerivative(param: OfxParamHandle, time: OfxTime, ...) -> OfxStatus;
    fn genfx_host_paramGetIntegral(
        param: OfxParamHandle,
        time1: OfxTime,
        time2: OfxTime,
        ...
    ) -> OfxStatus;
    fn genfx_host_paramSetValue(param: OfxParamHandle, ...) -> OfxStatus;
    fn genfx_host_paramSetValueAtTime(param: OfxParamHandle, time: OfxTime, ...) -> OfxStatus;
}

pub static SUITE: OfxParameterSuiteV1 = OfxParameterSuiteV1 {
    paramDefine: Some(param_define),
    paramGetHandle: Some(param_get_handle),
    paramSetGetPropertySet: Some(param_set_get_property_set),
    paramGetPropertySet: Some(param_get_property_set),
    paramGetValue: Some(genfx_host_paramGetValue),
    paramGetValueAtTime: Some(genfx_host_paramGetValueAtTime),
    paramGetDerivative: Some(genfx_host_paramGetDerivative),
    paramGetIntegral: Some(genfx_host_paramGetIntegral),
    paramSetValue: Some(genfx_host_paramSetValue),
    paramSetValueAtTime: Some(genfx_host_paramSetValueAtTime),
    paramGetNumKeys: Some(param_get_num_keys),
    paramGetKeyTime: Some(param_get_key_time),
    paramGetKeyIndex: Some(param_get_key_index),
    paramDeleteKey: Some(param_delete_key),
    paramDeleteAllKeys: Some(param_delete_all_keys),
    paramCopy: Some(param_copy),
    paramEditBegin: Some(param_edit_begin),
    paramEditEnd: Some(param_edit_end),
};

fn set_of(handle: OfxParamSetHandle) -> Result<Arc<ParamSet>, OfxStatus> {
    PARAM_SETS.get(handle as usize).ok_or(stat::ERR_BAD_HANDLE)
}

fn param(handle: OfxParamHandle) -> Result<Arc<Param>, OfxStatus> {
    PARAMS.get(handle as usize).ok_or(stat::ERR_BAD_HANDLE)
}

/// Defines a parameter on a descriptor's set (also used by the host to
/// mirror descriptors into instances).
pub fn define(set: &ParamSet, type_name: &str, name: &str) -> Result<Arc<Param>, OfxStatus> {
    let kind = ParamKind::from_type(type_name).ok_or(stat::ERR_UNKNOWN)?;
    if set.get(name).is_some() {
        return Err(stat::ERR_EXISTS);
    }
    let props = defaults::param_descriptor(name, type_name, kind);
    let param = Param::new(name, type_name, kind, props);
    set.params.lock().push(param.clone());
    Ok(param)
}

unsafe extern "C" fn param_define(
    set: OfxParamSetHandle,
    type_name: *const c_char,
    name: *const c_char,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    guard(|| {
        let set = match set_of(set) {
            Ok(s) => s,
            Err(s) => return s,
        };
        // SAFETY: C strings from the plugin.
        let (Some(type_name), Some(name)) =
            (unsafe { name_arg(type_name) }, unsafe { name_arg(name) })
        else {
            return stat::ERR_VALUE;
        };
        match define(&set, type_name, name) {
            Ok(p) => {
                if out.is_null() {
                    stat::OK
                } else {
                    // SAFETY: non-null place for a handle.
                    unsafe { write_out(out, p.props.handle() as OfxPropertySetHandle) }
                }
            }
            Err(s) => s,
        }
    })
}

unsafe extern "C" fn param_get_handle(
    set: OfxParamSetHandle,
    name: *const c_char,
    out: *mut OfxParamHandle,
    props: *mut OfxPropertySetHandle,
) -> OfxStatus {
    guard(|| {
        let set = match set_of(set) {
            Ok(s) => s,
            Err(s) => return s,
        };
        // SAFETY: C string from the plugin.
        let Some(name) = (unsafe { name_arg(name) }) else {
            return stat::ERR_UNKNOWN;
        };
        let Some(p) = set.get(name) else {
            return stat::ERR_UNKNOWN;
        };
        if !props.is_null() {
            // SAFETY: non-null place for a handle.
            unsafe { props.write(p.props.handle() as OfxPropertySetHandle) };
        }
        // SAFETY: `out` is null (refused) or a place for a handle.
        unsafe { write_out(out, p.handle() as OfxParamHandle) }
    })
}

unsafe extern "C" fn param_set_get_property_set(
    set: OfxParamSetHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    guard(|| match set_of(set) {
        // SAFETY: `out` is null (refused) or a place for a handle.
        Ok(s) => unsafe { write_out(out, s.props.handle() as OfxPropertySetHandle) },
        Err(s) => s,
    })
}

unsafe extern "C" fn param_get_property_set(
    handle: OfxParamHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    guard(|| match param(handle) {
        // SAFETY: `out` is null (refused) or a place for a handle.
        Ok(p) => unsafe { write_out(out, p.props.handle() as OfxPropertySetHandle) },
        Err(s) => s,
    })
}

/// Called by the C shims: the kind (0 int, 1 double, 2 string) and count of
/// values `param` carries.
///
/// # Safety
/// `kind` and `count` are null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn genfx_host_param_shape(
    handle: *mut c_void,
    kind: *mut c_int,
    count: *mut c_int,
) -> OfxStatus {
    guard(|| {
        let p = match param(handle as OfxParamHandle) {
            Ok(p) => p,
            Err(s) => return s,
        };
        let Some((k, n)) = p.kind.shape() else {
            return stat::ERR_UNSUPPORTED;
        };
        let k = match k {
            ValueKind::Int => 0,
            ValueKind::Double => 1,
            ValueKind::Text => 2,
        };
        // SAFETY: the C shim passes two valid out-pointers.
        unsafe {
            write_out(kind, k);
            write_out(count, n as c_int)
        }
    })
}

/// Called by the C shims with the `count` output pointers the plugin passed.
/// Values are constant over time here (no animation), so the derivative is
/// zero and the integral is value × duration.
///
/// # Safety
/// `outs` holds `count` pointers, each valid for a write of the parameter's
/// value type (as the plugin promised by passing them).
#[no_mangle]
pub unsafe extern "C" fn genfx_host_param_get(
    handle: *mut c_void,
    mode: c_int,
    t1: f64,
    t2: f64,
    outs: *const *mut c_void,
    count: c_int,
) -> OfxStatus {
    guard(|| {
        let p = match param(handle as OfxParamHandle) {
            Ok(p) => p,
            Err(s) => return s,
        };
        let Ok(count) = usize::try_from(count) else {
            return stat::ERR_VALUE;
        };
        // SAFETY: the C shim passes `count` pointers it read from the varargs.
        let outs = unsafe { std::slice::from_raw_parts(outs, count) };
        if outs.iter().any(|o| o.is_null()) {
            return stat::ERR_VALUE;
        }
        // A host-driven parameter (a transition's progress) has its own
        // curve: its value at the asked time, and its slope.
        if p.driven.lock().is_some() {
            let (Some(now), Some(first)) = (p.driven_at(t1), outs.first()) else {
                return stat::ERR_UNSUPPORTED;
            };
            let v = match mode {
                0 | 1 => now,
                2 => p.driven_at(t1 + 0.5).unwrap_or(now) - p.driven_at(t1 - 0.5).unwrap_or(now),
                _ => return stat::ERR_UNSUPPORTED,
            };
            // SAFETY: a driven parameter is a single double; the out-pointer
            // is the plugin's place for it.
            unsafe { (*first as *mut f64).write(v) };
            return stat::OK;
        }
        let value = p.value.lock();
        let scale = match mode {
            2 => 0.0,
            3 => t2 - t1,
            _ => 1.0,
        };
        match &*value {
            ParamValue::Ints(v) if mode >= 2 => {
                // Derivatives and integrals of integer parameters are doubles.
                for (o, x) in outs.iter().zip(v) {
                    // SAFETY: each out-pointer is the plugin's place for a double.
                    unsafe { (*o as *mut f64).write(*x as f64 * scale) };
                }
            }
            ParamValue::Ints(v) => {
                for (o, x) in outs.iter().zip(v) {
                    // SAFETY: each out-pointer is the plugin's place for an int.
                    unsafe { (*o as *mut c_int).write(*x) };
                }
            }
            ParamValue::Doubles(v) => {
                for (o, x) in outs.iter().zip(v) {
                    // SAFETY: each out-pointer is the plugin's place for a double.
                    unsafe { (*o as *mut f64).write(*x * scale) };
                }
            }
            ParamValue::Text(s) => {
                if mode >= 2 {
                    return stat::ERR_UNSUPPORTED;
                }
                // The string stays valid until the parameter changes.
                // SAFETY: the out-pointer is the plugin's place for a `char*`.
                unsafe { (outs[0] as *mut *const c_char).write(s.as_ptr()) };
            }
            ParamValue::None => return stat::ERR_UNSUPPORTED,
        }
        stat::OK
    })
}

/// Called by the C shims with the values read from the varargs.
///
/// # Safety
/// `ints` and `doubles` hold `count` values; `text` is null or a C string.
#[no_mangle]
pub unsafe extern "C" fn genfx_host_param_set(
    handle: *mut c_void,
    _at_time: c_int,
    _time: f64,
    ints: *const c_int,
    doubles: *const f64,
    text: *const c_char,
    count: c_int,
) -> OfxStatus {
    guard(|| {
        let p = match param(handle as OfxParamHandle) {
            Ok(p) => p,
            Err(s) => return s,
        };
        let Some((kind, n)) = p.kind.shape() else {
            return stat::ERR_UNSUPPORTED;
        };
        if usize::try_from(count).ok() != Some(n) {
            return stat::ERR_VALUE;
        }
        let value = match kind {
            // SAFETY: the shim passes arrays of `count` items.
            ValueKind::Int => {
                ParamValue::Ints(unsafe { std::slice::from_raw_parts(ints, n) }.to_vec())
            }
            ValueKind::Double => {
                // SAFETY: as above.
                ParamValue::Doubles(unsafe { std::slice::from_raw_parts(doubles, n) }.to_vec())
            }
            ValueKind::Text => {
                if text.is_null() {
                    return stat::ERR_VALUE;
                }
                // SAFETY: a non-null C string from the plugin.
                ParamValue::Text(unsafe { CStr::from_ptr(text) }.to_owned())
            }
        };
        match set_value(&p, value) {
            Ok(()) => {
                // A plugin's write to a parameter that evaluates on change
                // is its request for a new render (what an interactive host
                // does next); this host counts it.
                if p.props.int(kOfxParamPropEvaluateOnChange.name(), 0) == Some(1) {
                    p.evaluations
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                stat::OK
            }
            Err(s) => s,
        }
    })
}

/// Stores a new value after checking it fits the parameter.
pub fn set_value(p: &Param, value: ParamValue) -> Result<(), OfxStatus> {
    let fits = match (&value, p.kind.shape()) {
        (ParamValue::Ints(v), Some((ValueKind::Int, n))) => v.len() == n,
        (ParamValue::Doubles(v), Some((ValueKind::Double, n))) => v.len() == n,
        (ParamValue::Text(_), Some((ValueKind::Text, _))) => true,
        _ => false,
    };
    if !fits {
        return Err(stat::ERR_VALUE);
    }
    if let (ParamKind::Choice, ParamValue::Ints(v)) = (p.kind, &value) {
        let options = p
            .props
            .strings(kOfxParamPropChoiceOption.name())
            .map_or(0, |o| o.len());
        if v[0] < 0 || v[0] as usize >= options.max(1) {
            return Err(stat::ERR_VALUE);
        }
    }
    *p.value.lock() = value;
    Ok(())
}

unsafe extern "C" fn param_get_num_keys(handle: OfxParamHandle, out: *mut c_uint) -> OfxStatus {
    guard(|| match param(handle) {
        // SAFETY: `out` is null (refused) or a place for a count.
        Ok(_) => unsafe { write_out(out, 0) },
        Err(s) => s,
    })
}

unsafe extern "C" fn param_get_key_time(
    handle: OfxParamHandle,
    _nth: c_uint,
    _out: *mut OfxTime,
) -> OfxStatus {
    // This host never animates parameters: there are no keys.
    guard(|| param(handle).map_or_else(|s| s, |_| stat::ERR_BAD_INDEX))
}

unsafe extern "C" fn param_get_key_index(
    handle: OfxParamHandle,
    _time: OfxTime,
    _direction: c_int,
    _out: *mut c_int,
) -> OfxStatus {
    guard(|| param(handle).map_or_else(|s| s, |_| stat::FAILED))
}

unsafe extern "C" fn param_delete_key(handle: OfxParamHandle, _time: OfxTime) -> OfxStatus {
    guard(|| param(handle).map_or_else(|s| s, |_| stat::ERR_BAD_INDEX))
}

unsafe extern "C" fn param_delete_all_keys(handle: OfxParamHandle) -> OfxStatus {
    guard(|| param(handle).map_or_else(|s| s, |_| stat::OK))
}

unsafe extern "C" fn param_copy(
    to: OfxParamHandle,
    from: OfxParamHandle,
    _offset: OfxTime,
    _range: *const OfxRangeD,
) -> OfxStatus {
    guard(|| {
        let (to, from) = match (param(to), param(from)) {
            (Ok(t), Ok(f)) => (t, f),
            _ => return stat::ERR_BAD_HANDLE,
        };
        if to.type_name != from.type_name {
            return stat::ERR_VALUE;
        }
        let value = from.value.lock().clone();
        *to.value.lock() = value;
        stat::OK
    })
}

unsafe extern "C" fn param_edit_begin(set: OfxParamSetHandle, _name: *const c_char) -> OfxStatus {
    guard(|| set_of(set).map_or_else(|s| s, |_| stat::OK))
}

unsafe extern "C" fn param_edit_end(set: OfxParamSetHandle) -> OfxStatus {
    guard(|| set_of(set).map_or_else(|s| s, |_| stat::OK))
}

/// A text value for a parameter from host-side input, keeping raw bytes.
pub fn text_value(bytes: &[u8]) -> ParamValue {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    ParamValue::Text(CString::new(&bytes[..end]).unwrap_or_default())
}

/// The parameter's default, read from its descriptor properties.
pub fn default_of(p: &Param) -> ParamValue {
    p.default_value()
}

/// The value as a property value, for listings.
pub fn as_prop_value(v: &ParamValue) -> Option<Value> {
    match v {
        ParamValue::Ints(i) => Some(Value::Int(i.clone())),
        ParamValue::Doubles(d) => Some(Value::Double(d.clone())),
        ParamValue::Text(t) => Some(Value::Str(vec![t.clone()])),
        ParamValue::None => None,
    }
}
