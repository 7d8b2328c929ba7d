//! Parameters: defining them at describe time and reading or writing their
//! values through the suite's C varargs functions.

use super::error::{check, OfxError, OfxResult};
use super::props::{c_string, PropSet};
use ofx_sys as sys;
use std::ffi::{c_char, c_int, CStr};
use std::ptr;

macro_rules! suite_fn {
    ($suite:expr, $name:ident) => {
        $suite.$name.ok_or(OfxError::Missing(concat!(
            "parameter suite ",
            stringify!($name)
        )))?
    };
}

/// An effect's parameter set (descriptor or instance).
#[derive(Clone, Copy)]
pub struct ParamSet {
    handle: sys::OfxParamSetHandle,
    suite: &'static sys::OfxParameterSuiteV1,
    props: &'static sys::OfxPropertySuiteV1,
}

// SAFETY: an opaque host handle; the parameter suite may be called from any
// thread of the host.
unsafe impl Send for ParamSet {}
// SAFETY: no Rust-side state.
unsafe impl Sync for ParamSet {}

impl ParamSet {
    pub fn new(
        handle: sys::OfxParamSetHandle,
        suite: &'static sys::OfxParameterSuiteV1,
        props: &'static sys::OfxPropertySuiteV1,
    ) -> OfxResult<Self> {
        if handle.is_null() {
            return Err(OfxError::BadHandle("parameter set"));
        }
        Ok(Self {
            handle,
            suite,
            props,
        })
    }

    /// Declares a parameter (describe time) and returns its property set.
    pub fn define(&self, kind: &CStr, name: &str) -> OfxResult<PropSet> {
        let f = suite_fn!(self.suite, paramDefine);
        let name = c_string(name)?;
        let mut props: sys::OfxPropertySetHandle = ptr::null_mut();
        // SAFETY: non-null host handle, NUL-terminated strings, and an out
        // pointer that outlives the call.
        check("paramDefine", unsafe {
            f(self.handle, kind.as_ptr(), name.as_ptr(), &mut props)
        })?;
        PropSet::new(props, self.props).ok_or(OfxError::BadHandle("parameter properties"))
    }

    /// The set's own properties (page order lives there).
    pub fn props(&self) -> OfxResult<PropSet> {
        let f = suite_fn!(self.suite, paramSetGetPropertySet);
        let mut props: sys::OfxPropertySetHandle = ptr::null_mut();
        // SAFETY: non-null host handle and an out pointer that outlives the call.
        check("paramSetGetPropertySet", unsafe {
            f(self.handle, &mut props)
        })?;
        PropSet::new(props, self.props).ok_or(OfxError::BadHandle("parameter set properties"))
    }

    /// An instance's parameter by name.
    pub fn param(&self, name: &str) -> OfxResult<Param> {
        let f = suite_fn!(self.suite, paramGetHandle);
        let cname = c_string(name)?;
        let mut handle: sys::OfxParamHandle = ptr::null_mut();
        // SAFETY: non-null host handle, NUL-terminated name, out pointer valid
        // for the call; a null property-set out pointer is allowed by the API.
        check("paramGetHandle", unsafe {
            f(self.handle, cname.as_ptr(), &mut handle, ptr::null_mut())
        })?;
        if handle.is_null() {
            return Err(OfxError::BadHandle("parameter"));
        }
        Ok(Param {
            handle,
            suite: self.suite,
            props: self.props,
        })
    }
}

/// One parameter of an instance.
#[derive(Clone, Copy)]
pub struct Param {
    handle: sys::OfxParamHandle,
    suite: &'static sys::OfxParameterSuiteV1,
    props: &'static sys::OfxPropertySuiteV1,
}

impl Param {
    pub fn props(&self) -> OfxResult<PropSet> {
        let f = suite_fn!(self.suite, paramGetPropertySet);
        let mut props: sys::OfxPropertySetHandle = ptr::null_mut();
        // SAFETY: non-null host handle and an out pointer valid for the call.
        check("paramGetPropertySet", unsafe { f(self.handle, &mut props) })?;
        PropSet::new(props, self.props).ok_or(OfxError::BadHandle("parameter properties"))
    }

    /// Integer, boolean and choice parameters: one `int` at `time`.
    pub fn get_int(&self, time: f64) -> OfxResult<i32> {
        let f = suite_fn!(self.suite, paramGetValueAtTime);
        let mut value: c_int = 0;
        // SAFETY: the varargs of an integer-valued parameter are one `int *`,
        // which is what we pass; it outlives the call.
        check("paramGetValueAtTime", unsafe {
            f(self.handle, time, &mut value as *mut c_int)
        })?;
        Ok(value)
    }

    /// Double parameters: one `double` at `time`.
    pub fn get_double(&self, time: f64) -> OfxResult<f64> {
        let f = suite_fn!(self.suite, paramGetValueAtTime);
        let mut value: f64 = 0.0;
        // SAFETY: the varargs of a 1-D double parameter are one `double *`.
        check("paramGetValueAtTime", unsafe {
            f(self.handle, time, &mut value as *mut f64)
        })?;
        Ok(value)
    }

    /// String parameters: the bytes, copied. Null reads as empty.
    pub fn get_bytes(&self, time: f64) -> OfxResult<Vec<u8>> {
        let f = suite_fn!(self.suite, paramGetValueAtTime);
        let mut value: *mut c_char = ptr::null_mut();
        // SAFETY: the varargs of a string parameter are one `char **`.
        check("paramGetValueAtTime", unsafe {
            f(self.handle, time, &mut value as *mut *mut c_char)
        })?;
        if value.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: on success the host hands a NUL-terminated string it owns and
        // keeps valid until the next call on this parameter; we copy it now.
        Ok(unsafe { CStr::from_ptr(value) }.to_bytes().to_vec())
    }

    pub fn set_int(&self, value: i32) -> OfxResult<()> {
        let f = suite_fn!(self.suite, paramSetValue);
        // SAFETY: an integer-valued parameter takes one `int` vararg.
        check("paramSetValue", unsafe { f(self.handle, value as c_int) })
    }

    pub fn set_double(&self, value: f64) -> OfxResult<()> {
        let f = suite_fn!(self.suite, paramSetValue);
        // SAFETY: a 1-D double parameter takes one `double` vararg.
        check("paramSetValue", unsafe { f(self.handle, value) })
    }

    pub fn set_string(&self, value: &str) -> OfxResult<()> {
        let f = suite_fn!(self.suite, paramSetValue);
        let value = c_string(value)?;
        // SAFETY: a string parameter takes one `const char *` vararg; the host
        // copies it before returning.
        check("paramSetValue", unsafe { f(self.handle, value.as_ptr()) })
    }
}
