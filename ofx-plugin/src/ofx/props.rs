//! Typed access to a host property set.

use super::error::{check, OfxError, OfxResult};
use ofx_sys as sys;
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;

/// A property set handle and the suite that reads it. Only built from a
/// non-null handle the host gave us.
#[derive(Clone, Copy)]
pub struct PropSet {
    handle: sys::OfxPropertySetHandle,
    suite: &'static sys::OfxPropertySuiteV1,
}

// SAFETY: a property set handle is an opaque token the host gives out for use
// from its render threads; the OFX API lets any thread call the property suite.
unsafe impl Send for PropSet {}
// SAFETY: as above; `PropSet` holds no Rust-side state.
unsafe impl Sync for PropSet {}

macro_rules! suite_fn {
    ($suite:expr, $name:ident) => {
        $suite.$name.ok_or(OfxError::Missing(concat!(
            "property suite ",
            stringify!($name)
        )))?
    };
}

pub(crate) fn c_string(text: &str) -> OfxResult<CString> {
    CString::new(text).map_err(|_| OfxError::Value(format!("text contains a NUL byte: {text:?}")))
}

impl PropSet {
    pub fn new(
        handle: sys::OfxPropertySetHandle,
        suite: &'static sys::OfxPropertySuiteV1,
    ) -> Option<Self> {
        (!handle.is_null()).then_some(Self { handle, suite })
    }

    pub fn raw(&self) -> sys::OfxPropertySetHandle {
        self.handle
    }

    pub fn get_int(&self, name: &CStr, index: i32) -> OfxResult<i32> {
        let f = suite_fn!(self.suite, propGetInt);
        let mut value = 0;
        // SAFETY: the handle is non-null and came from the host, the name is a
        // NUL-terminated string, and `value` outlives the call.
        check("propGetInt", unsafe {
            f(self.handle, name.as_ptr(), index, &mut value)
        })?;
        Ok(value)
    }

    pub fn get_double(&self, name: &CStr, index: i32) -> OfxResult<f64> {
        let f = suite_fn!(self.suite, propGetDouble);
        let mut value = 0.0;
        // SAFETY: as in `get_int`.
        check("propGetDouble", unsafe {
            f(self.handle, name.as_ptr(), index, &mut value)
        })?;
        Ok(value)
    }

    pub fn get_pointer(&self, name: &CStr, index: i32) -> OfxResult<*mut c_void> {
        let f = suite_fn!(self.suite, propGetPointer);
        let mut value: *mut c_void = ptr::null_mut();
        // SAFETY: as in `get_int`.
        check("propGetPointer", unsafe {
            f(self.handle, name.as_ptr(), index, &mut value)
        })?;
        Ok(value)
    }

    /// The value as bytes, copied out of the host's storage. Null reads as
    /// empty.
    pub fn get_bytes(&self, name: &CStr, index: i32) -> OfxResult<Vec<u8>> {
        let f = suite_fn!(self.suite, propGetString);
        let mut value: *mut c_char = ptr::null_mut();
        // SAFETY: as in `get_int`.
        check("propGetString", unsafe {
            f(self.handle, name.as_ptr(), index, &mut value)
        })?;
        if value.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: on success the host returns a NUL-terminated string it owns
        // and keeps alive at least until the next call on this set; we copy it
        // at once.
        Ok(unsafe { CStr::from_ptr(value) }.to_bytes().to_vec())
    }

    /// The value as text; invalid UTF-8 is replaced, never trusted.
    pub fn get_string(&self, name: &CStr, index: i32) -> OfxResult<String> {
        Ok(String::from_utf8_lossy(&self.get_bytes(name, index)?).into_owned())
    }

    pub fn dimension(&self, name: &CStr) -> OfxResult<i32> {
        let f = suite_fn!(self.suite, propGetDimension);
        let mut count = 0;
        // SAFETY: as in `get_int`.
        check("propGetDimension", unsafe {
            f(self.handle, name.as_ptr(), &mut count)
        })?;
        Ok(count)
    }

    pub fn get_doubles<const N: usize>(&self, name: &CStr) -> OfxResult<[f64; N]> {
        let f = suite_fn!(self.suite, propGetDoubleN);
        let mut values = [0.0; N];
        // SAFETY: `values` holds exactly N doubles, the count we pass.
        check("propGetDoubleN", unsafe {
            f(self.handle, name.as_ptr(), N as i32, values.as_mut_ptr())
        })?;
        Ok(values)
    }

    pub fn get_ints<const N: usize>(&self, name: &CStr) -> OfxResult<[i32; N]> {
        let f = suite_fn!(self.suite, propGetIntN);
        let mut values = [0; N];
        // SAFETY: `values` holds exactly N ints, the count we pass.
        check("propGetIntN", unsafe {
            f(self.handle, name.as_ptr(), N as i32, values.as_mut_ptr())
        })?;
        Ok(values)
    }

    pub fn set_int(&self, name: &CStr, index: i32, value: i32) -> OfxResult<()> {
        let f = suite_fn!(self.suite, propSetInt);
        // SAFETY: non-null host handle and NUL-terminated name.
        check("propSetInt", unsafe {
            f(self.handle, name.as_ptr(), index, value)
        })
    }

    pub fn set_double(&self, name: &CStr, index: i32, value: f64) -> OfxResult<()> {
        let f = suite_fn!(self.suite, propSetDouble);
        // SAFETY: non-null host handle and NUL-terminated name.
        check("propSetDouble", unsafe {
            f(self.handle, name.as_ptr(), index, value)
        })
    }

    pub(crate) fn set_pointer(&self, name: &CStr, index: i32, value: *mut c_void) -> OfxResult<()> {
        let f = suite_fn!(self.suite, propSetPointer);
        // SAFETY: non-null host handle and NUL-terminated name; the host only
        // stores the pointer.
        check("propSetPointer", unsafe {
            f(self.handle, name.as_ptr(), index, value)
        })
    }

    pub fn set_cstr(&self, name: &CStr, index: i32, value: &CStr) -> OfxResult<()> {
        let f = suite_fn!(self.suite, propSetString);
        // SAFETY: both strings are NUL-terminated; the host copies the value.
        check("propSetString", unsafe {
            f(self.handle, name.as_ptr(), index, value.as_ptr())
        })
    }

    pub fn set_string(&self, name: &CStr, index: i32, value: &str) -> OfxResult<()> {
        self.set_cstr(name, index, &c_string(value)?)
    }

    pub fn set_cstrs(&self, name: &CStr, values: &[&CStr]) -> OfxResult<()> {
        let f = suite_fn!(self.suite, propSetStringN);
        let pointers: Vec<*const c_char> = values.iter().map(|v| v.as_ptr()).collect();
        // SAFETY: `pointers` holds `values.len()` NUL-terminated strings that
        // outlive the call; the host copies them.
        check("propSetStringN", unsafe {
            f(
                self.handle,
                name.as_ptr(),
                pointers.len() as i32,
                pointers.as_ptr(),
            )
        })
    }

    pub fn set_strings(&self, name: &CStr, values: &[&str]) -> OfxResult<()> {
        let owned = values
            .iter()
            .map(|v| c_string(v))
            .collect::<OfxResult<Vec<_>>>()?;
        let borrowed: Vec<&CStr> = owned.iter().map(|c| c.as_c_str()).collect();
        self.set_cstrs(name, &borrowed)
    }

    pub fn set_doubles(&self, name: &CStr, values: &[f64]) -> OfxResult<()> {
        let f = suite_fn!(self.suite, propSetDoubleN);
        // SAFETY: `values` holds the count we pass; the host copies them.
        check("propSetDoubleN", unsafe {
            f(
                self.handle,
                name.as_ptr(),
                values.len() as i32,
                values.as_ptr(),
            )
        })
    }

    pub fn set_ints(&self, name: &CStr, values: &[i32]) -> OfxResult<()> {
        let f = suite_fn!(self.suite, propSetIntN);
        // SAFETY: `values` holds the count we pass; the host copies them.
        check("propSetIntN", unsafe {
            f(
                self.handle,
                name.as_ptr(),
                values.len() as i32,
                values.as_ptr(),
            )
        })
    }
}
