//! `OfxPropertySuiteV1` over [`crate::props::PropertySet`].

use super::{guard, name_arg};
use crate::abi::{stat, OfxPropertySetHandle, OfxPropertySuiteV1, OfxStatus};
use crate::props::{PropError, PropertySet, Value, PROPERTY_SETS};
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Arc;

pub static SUITE: OfxPropertySuiteV1 = OfxPropertySuiteV1 {
    propSetPointer: Some(set_pointer),
    propSetString: Some(set_string),
    propSetDouble: Some(set_double),
    propSetInt: Some(set_int),
    propSetPointerN: Some(set_pointer_n),
    propSetStringN: Some(set_string_n),
    propSetDoubleN: Some(set_double_n),
    propSetIntN: Some(set_int_n),
    propGetPointer: Some(get_pointer),
    propGetString: Some(get_string),
    propGetDouble: Some(get_double),
    propGetInt: Some(get_int),
    propGetPointerN: Some(get_pointer_n),
    propGetStringN: Some(get_string_n),
    propGetDoubleN: Some(get_double_n),
    propGetIntN: Some(get_int_n),
    propReset: Some(reset),
    propGetDimension: Some(get_dimension),
};

fn status(error: PropError) -> OfxStatus {
    match error {
        PropError::Unknown => stat::ERR_UNKNOWN,
        PropError::BadIndex => stat::ERR_BAD_INDEX,
        PropError::WrongType => stat::ERR_VALUE,
    }
}

/// Resolves the set and property name, or says why not.
///
/// # Safety
/// `name` is null or a C string.
unsafe fn target(
    props: OfxPropertySetHandle,
    name: *const c_char,
) -> Result<(Arc<PropertySet>, String), OfxStatus> {
    let set = PROPERTY_SETS
        .get(props as usize)
        .ok_or(stat::ERR_BAD_HANDLE)?;
    // SAFETY: forwarded contract.
    let name = unsafe { name_arg(name) }.ok_or(stat::ERR_UNKNOWN)?;
    Ok((set, name.to_string()))
}

unsafe fn set_one(
    props: OfxPropertySetHandle,
    name: *const c_char,
    index: c_int,
    value: Value,
) -> OfxStatus {
    // SAFETY: forwarded contract.
    let (set, name) = match unsafe { target(props, name) } {
        Ok(t) => t,
        Err(s) => return s,
    };
    let Ok(index) = usize::try_from(index) else {
        return stat::ERR_BAD_INDEX;
    };
    match set.set_at(&name, index, value) {
        Ok(()) => stat::OK,
        Err(e) => status(e),
    }
}

/// Reads `count` items from a plugin array.
///
/// # Safety
/// `values` is null or valid for `count` reads.
unsafe fn read_n<T: Copy>(values: *const T, count: c_int) -> Result<Vec<T>, OfxStatus> {
    let count = usize::try_from(count).map_err(|_| stat::ERR_BAD_INDEX)?;
    if count == 0 {
        return Ok(Vec::new());
    }
    if values.is_null() {
        return Err(stat::ERR_VALUE);
    }
    // SAFETY: non-null and valid for `count` items per the caller.
    Ok(unsafe { std::slice::from_raw_parts(values, count) }.to_vec())
}

unsafe fn set_n(
    props: OfxPropertySetHandle,
    name: *const c_char,
    value: Result<Value, OfxStatus>,
) -> OfxStatus {
    // SAFETY: forwarded contract.
    let (set, name) = match unsafe { target(props, name) } {
        Ok(t) => t,
        Err(s) => return s,
    };
    let value = match value {
        Ok(v) => v,
        Err(s) => return s,
    };
    match set.set(&name, value) {
        Ok(()) => stat::OK,
        Err(e) => status(e),
    }
}

/// Copies a plugin's C string, keeping its bytes even when not UTF-8.
///
/// # Safety
/// `p` is null or a C string.
unsafe fn owned(p: *const c_char) -> Option<CString> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null C string per the caller.
    Some(unsafe { CStr::from_ptr(p) }.to_owned())
}

unsafe extern "C" fn set_pointer(
    props: OfxPropertySetHandle,
    name: *const c_char,
    index: c_int,
    value: *mut c_void,
) -> OfxStatus {
    // SAFETY: C strings from the plugin, per the API.
    guard(|| unsafe { set_one(props, name, index, Value::Pointer(vec![value as usize])) })
}

unsafe extern "C" fn set_string(
    props: OfxPropertySetHandle,
    name: *const c_char,
    index: c_int,
    value: *const c_char,
) -> OfxStatus {
    guard(|| {
        // SAFETY: C strings from the plugin, per the API.
        let Some(value) = (unsafe { owned(value) }) else {
            return stat::ERR_VALUE;
        };
        // SAFETY: as above.
        unsafe { set_one(props, name, index, Value::Str(vec![value])) }
    })
}

unsafe extern "C" fn set_double(
    props: OfxPropertySetHandle,
    name: *const c_char,
    index: c_int,
    value: f64,
) -> OfxStatus {
    // SAFETY: C strings from the plugin, per the API.
    guard(|| unsafe { set_one(props, name, index, Value::Double(vec![value])) })
}

unsafe extern "C" fn set_int(
    props: OfxPropertySetHandle,
    name: *const c_char,
    index: c_int,
    value: c_int,
) -> OfxStatus {
    // SAFETY: C strings from the plugin, per the API.
    guard(|| unsafe { set_one(props, name, index, Value::Int(vec![value])) })
}

unsafe extern "C" fn set_pointer_n(
    props: OfxPropertySetHandle,
    name: *const c_char,
    count: c_int,
    values: *const *mut c_void,
) -> OfxStatus {
    guard(|| {
        // SAFETY: the plugin passes `count` values.
        let v = unsafe { read_n(values, count) }
            .map(|v| Value::Pointer(v.into_iter().map(|p| p as usize).collect()));
        // SAFETY: C string name.
        unsafe { set_n(props, name, v) }
    })
}

unsafe extern "C" fn set_string_n(
    props: OfxPropertySetHandle,
    name: *const c_char,
    count: c_int,
    values: *const *const c_char,
) -> OfxStatus {
    guard(|| {
        // SAFETY: the plugin passes `count` C strings.
        let v = unsafe { read_n(values, count) }.and_then(|ptrs| {
            ptrs.into_iter()
                // SAFETY: each is a C string or null (refused).
                .map(|p| unsafe { owned(p) }.ok_or(stat::ERR_VALUE))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Str)
        });
        // SAFETY: C string name.
        unsafe { set_n(props, name, v) }
    })
}

unsafe extern "C" fn set_double_n(
    props: OfxPropertySetHandle,
    name: *const c_char,
    count: c_int,
    values: *const f64,
) -> OfxStatus {
    guard(|| {
        // SAFETY: the plugin passes `count` values.
        let v = unsafe { read_n(values, count) }.map(Value::Double);
        // SAFETY: C string name.
        unsafe { set_n(props, name, v) }
    })
}

unsafe extern "C" fn set_int_n(
    props: OfxPropertySetHandle,
    name: *const c_char,
    count: c_int,
    values: *const c_int,
) -> OfxStatus {
    guard(|| {
        // SAFETY: the plugin passes `count` values.
        let v = unsafe { read_n(values, count) }.map(Value::Int);
        // SAFETY: C string name.
        unsafe { set_n(props, name, v) }
    })
}

/// Reads elements `[first, first + count)` into `out` via `pick`.
///
/// # Safety
/// `out` is null or valid for `count` writes of `T`.
unsafe fn get_into<T>(
    props: OfxPropertySetHandle,
    name: *const c_char,
    first: c_int,
    count: c_int,
    out: *mut T,
    pick: impl Fn(&Value, usize) -> Result<T, PropError>,
) -> OfxStatus {
    // SAFETY: forwarded contract.
    let (set, name) = match unsafe { target(props, name) } {
        Ok(t) => t,
        Err(s) => return s,
    };
    let (Ok(first), Ok(count)) = (usize::try_from(first), usize::try_from(count)) else {
        return stat::ERR_BAD_INDEX;
    };
    if out.is_null() {
        return stat::ERR_VALUE;
    }
    let result = set.with(&name, |value| -> Result<(), PropError> {
        if first + count > value.len() {
            // Type errors win over index errors so the plugin learns the real cause.
            pick(value, 0).map(drop).or_else(|e| match e {
                PropError::WrongType => Err(e),
                _ => Ok(()),
            })?;
            return Err(PropError::BadIndex);
        }
        for i in 0..count {
            let item = pick(value, first + i)?;
            // SAFETY: `out` is valid for `count` writes per the caller.
            unsafe { out.add(i).write(item) };
        }
        Ok(())
    });
    match result {
        Ok(Ok(())) => stat::OK,
        Ok(Err(e)) | Err(e) => status(e),
    }
}

fn pointer(v: &Value, i: usize) -> Result<*mut c_void, PropError> {
    match v {
        Value::Pointer(p) => p
            .get(i)
            .map(|&p| p as *mut c_void)
            .ok_or(PropError::BadIndex),
        _ => Err(PropError::WrongType),
    }
}

fn string(v: &Value, i: usize) -> Result<*mut c_char, PropError> {
    match v {
        // The pointer stays valid while the property keeps this value.
        Value::Str(s) => s
            .get(i)
            .map(|s| s.as_ptr() as *mut c_char)
            .ok_or(PropError::BadIndex),
        _ => Err(PropError::WrongType),
    }
}

fn double(v: &Value, i: usize) -> Result<f64, PropError> {
    match v {
        Value::Double(d) => d.get(i).copied().ok_or(PropError::BadIndex),
        _ => Err(PropError::WrongType),
    }
}

fn int(v: &Value, i: usize) -> Result<c_int, PropError> {
    match v {
        Value::Int(d) => d.get(i).copied().ok_or(PropError::BadIndex),
        _ => Err(PropError::WrongType),
    }
}

unsafe extern "C" fn get_pointer(
    props: OfxPropertySetHandle,
    name: *const c_char,
    index: c_int,
    out: *mut *mut c_void,
) -> OfxStatus {
    // SAFETY: one write to `out`, per the API.
    guard(|| unsafe { get_into(props, name, index, 1, out, pointer) })
}

unsafe extern "C" fn get_string(
    props: OfxPropertySetHandle,
    name: *const c_char,
    index: c_int,
    out: *mut *mut c_char,
) -> OfxStatus {
    // SAFETY: one write to `out`, per the API.
    guard(|| unsafe { get_into(props, name, index, 1, out, string) })
}

unsafe extern "C" fn get_double(
    props: OfxPropertySetHandle,
    name: *const c_char,
    index: c_int,
    out: *mut f64,
) -> OfxStatus {
    // SAFETY: one write to `out`, per the API.
    guard(|| unsafe { get_into(props, name, index, 1, out, double) })
}

unsafe extern "C" fn get_int(
    props: OfxPropertySetHandle,
    name: *const c_char,
    index: c_int,
    out: *mut c_int,
) -> OfxStatus {
    // SAFETY: one write to `out`, per the API.
    guard(|| unsafe { get_into(props, name, index, 1, out, int) })
}

unsafe extern "C" fn get_pointer_n(
    props: OfxPropertySetHandle,
    name: *const c_char,
    count: c_int,
    out: *mut *mut c_void,
) -> OfxStatus {
    // SAFETY: `count` writes to `out`, per the API.
    guard(|| unsafe { get_into(props, name, 0, count, out, pointer) })
}

unsafe extern "C" fn get_string_n(
    props: OfxPropertySetHandle,
    name: *const c_char,
    count: c_int,
    out: *mut *mut c_char,
) -> OfxStatus {
    // SAFETY: `count` writes to `out`, per the API.
    guard(|| unsafe { get_into(props, name, 0, count, out, string) })
}

unsafe extern "C" fn get_double_n(
    props: OfxPropertySetHandle,
    name: *const c_char,
    count: c_int,
    out: *mut f64,
) -> OfxStatus {
    // SAFETY: `count` writes to `out`, per the API.
    guard(|| unsafe { get_into(props, name, 0, count, out, double) })
}

unsafe extern "C" fn get_int_n(
    props: OfxPropertySetHandle,
    name: *const c_char,
    count: c_int,
    out: *mut c_int,
) -> OfxStatus {
    // SAFETY: `count` writes to `out`, per the API.
    guard(|| unsafe { get_into(props, name, 0, count, out, int) })
}

unsafe extern "C" fn reset(props: OfxPropertySetHandle, name: *const c_char) -> OfxStatus {
    guard(|| {
        // SAFETY: C string name.
        let (set, name) = match unsafe { target(props, name) } {
            Ok(t) => t,
            Err(s) => return s,
        };
        match set.reset(&name) {
            Ok(()) => stat::OK,
            Err(e) => status(e),
        }
    })
}

unsafe extern "C" fn get_dimension(
    props: OfxPropertySetHandle,
    name: *const c_char,
    count: *mut c_int,
) -> OfxStatus {
    guard(|| {
        // SAFETY: C string name.
        let (set, name) = match unsafe { target(props, name) } {
            Ok(t) => t,
            Err(s) => return s,
        };
        match set.dimension(&name) {
            // SAFETY: `count` is null (refused) or a place for an int.
            Ok(n) => unsafe { super::write_out(count, n as c_int) },
            Err(e) => status(e),
        }
    })
}
