//! The OpenFX C ABI as this host sees it: the shared bindings, plus a way to
//! read their string constants as Rust strings whichever form bindgen gave them.

use std::ffi::CStr;

pub use self::extra::*;
pub use ofx_sys::*;

/// A property, action or suite name from the bindings.
pub trait OfxName {
    fn cstr(&self) -> &CStr;
    fn name(&self) -> &str {
        // The headers only hold ASCII names.
        self.cstr().to_str().unwrap_or("")
    }
}

impl<const N: usize> OfxName for [u8; N] {
    fn cstr(&self) -> &CStr {
        CStr::from_bytes_with_nul(self).unwrap_or(c"")
    }
}

impl OfxName for CStr {
    fn cstr(&self) -> &CStr {
        self
    }
}

/// Status codes as `OfxStatus`, whatever integer type bindgen chose for them.
pub mod stat {
    use super::*;
    pub const OK: OfxStatus = kOfxStatOK as OfxStatus;
    pub const FAILED: OfxStatus = kOfxStatFailed as OfxStatus;
    pub const ERR_FATAL: OfxStatus = kOfxStatErrFatal as OfxStatus;
    pub const ERR_UNKNOWN: OfxStatus = kOfxStatErrUnknown as OfxStatus;
    pub const ERR_MISSING_HOST_FEATURE: OfxStatus = kOfxStatErrMissingHostFeature as OfxStatus;
    pub const ERR_UNSUPPORTED: OfxStatus = kOfxStatErrUnsupported as OfxStatus;
    pub const ERR_EXISTS: OfxStatus = kOfxStatErrExists as OfxStatus;
    pub const ERR_FORMAT: OfxStatus = kOfxStatErrFormat as OfxStatus;
    pub const ERR_MEMORY: OfxStatus = kOfxStatErrMemory as OfxStatus;
    pub const ERR_BAD_HANDLE: OfxStatus = kOfxStatErrBadHandle as OfxStatus;
    pub const ERR_BAD_INDEX: OfxStatus = kOfxStatErrBadIndex as OfxStatus;
    pub const ERR_VALUE: OfxStatus = kOfxStatErrValue as OfxStatus;
    pub const REPLY_YES: OfxStatus = kOfxStatReplyYes as OfxStatus;
    pub const REPLY_NO: OfxStatus = kOfxStatReplyNo as OfxStatus;
    pub const REPLY_DEFAULT: OfxStatus = kOfxStatReplyDefault as OfxStatus;
    pub const ERR_IMAGE_FORMAT: OfxStatus = kOfxStatErrImageFormat as OfxStatus;
}

/// A readable name for a status code, for error messages.
pub fn status_name(status: OfxStatus) -> &'static str {
    match status {
        stat::OK => "kOfxStatOK",
        stat::FAILED => "kOfxStatFailed",
        stat::ERR_FATAL => "kOfxStatErrFatal",
        stat::ERR_UNKNOWN => "kOfxStatErrUnknown",
        stat::ERR_MISSING_HOST_FEATURE => "kOfxStatErrMissingHostFeature",
        stat::ERR_UNSUPPORTED => "kOfxStatErrUnsupported",
        stat::ERR_EXISTS => "kOfxStatErrExists",
        stat::ERR_FORMAT => "kOfxStatErrFormat",
        stat::ERR_MEMORY => "kOfxStatErrMemory",
        stat::ERR_BAD_HANDLE => "kOfxStatErrBadHandle",
        stat::ERR_BAD_INDEX => "kOfxStatErrBadIndex",
        stat::ERR_VALUE => "kOfxStatErrValue",
        stat::REPLY_YES => "kOfxStatReplyYes",
        stat::REPLY_NO => "kOfxStatReplyNo",
        stat::REPLY_DEFAULT => "kOfxStatReplyDefault",
        stat::ERR_IMAGE_FORMAT => "kOfxStatErrImageFormat",
        _ => "unknown status",
    }
}

/// Names from the OpenFX spec that the shared headers leave out because the
/// plugin never uses them; a host still defines them on its objects.
#[allow(non_upper_case_globals)]
mod extra {
    use std::ffi::CStr;
    pub const kOfxImageEffectPluginPropFilePath: &CStr = c"OfxImageEffectPluginPropFilePath";
    pub const kOfxImageEffectPluginPropOverlayInteractV2: &CStr =
        c"OfxImageEffectPluginPropOverlayInteractV2";
    pub const kOfxImageEffectPropInAnalysis: &CStr = c"OfxImageEffectPropInAnalysis";
    pub const kOfxImageEffectPropMetalRenderSupported: &CStr =
        c"OfxImageEffectPropMetalRenderSupported";
    pub const kOfxImageEffectPropOpenCLRenderSupported: &CStr =
        c"OfxImageEffectPropOpenCLRenderSupported";
    pub const kOfxImageEffectPropOpenGLRenderSupported: &CStr =
        c"OfxImageEffectPropOpenGLRenderSupported";
    pub const kOfxParamCoordinatesCanonical: &CStr = c"OfxParamCoordinatesCanonical";
    pub const kOfxParamHostPropSupportsParametricAnimation: &CStr =
        c"OfxParamHostPropSupportsParametricAnimation";
    pub const kOfxParamHostPropSupportsStrChoiceAnimation: &CStr =
        c"OfxParamHostPropSupportsStrChoiceAnimation";
    pub const kOfxParamPropChoiceEnum: &CStr = c"OfxParamPropChoiceEnum";
    pub const kOfxParamPropCustomInterpCallbackV1: &CStr = c"OfxParamPropCustomCallbackV1";
    pub const kOfxParamPropDefaultCoordinateSystem: &CStr = c"OfxParamPropDefaultCoordinateSystem";
    pub const kOfxParamPropHasHostOverlayHandle: &CStr = c"OfxParamPropHasHostOverlayHandle";
    pub const kOfxParamPropInteractMinimumSize: &CStr = c"OfxParamPropInteractMinimumSize";
    pub const kOfxParamPropInteractPreferedSize: &CStr = c"OfxParamPropInteractPreferedSize";
    pub const kOfxParamPropInteractSize: &CStr = c"OfxParamPropInteractSize";
    pub const kOfxParamPropInteractSizeAspect: &CStr = c"OfxParamPropInteractSizeAspect";
    pub const kOfxParamPropUseHostOverlayHandle: &CStr = c"OfxParamPropUseHostOverlayHandle";
    pub const kOfxParamTypeBytes: &CStr = c"OfxParamTypeBytes";
    pub const kOfxParamTypeParametric: &CStr = c"OfxParamTypeParametric";
}
