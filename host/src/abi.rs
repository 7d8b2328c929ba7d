//! The OpenFX C ABI as this host sees it: the shared bindings, plus a way to
//! read their string constants as Rust strings whichever form bindgen gave them.
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code)]

use std::ffi::CStr;

pub use self::tmp::*;

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

/// Stand-in for `ofx_sys` until the shared bindings land; same names and shapes
/// as bindgen produces from the OpenFX headers.
mod tmp {
    use std::os::raw::{c_char, c_double, c_int, c_uint, c_void};

    pub type OfxStatus = c_int;
    pub type OfxTime = c_double;
    #[repr(C)]
    pub struct OfxPropertySetStruct {
        _unused: [u8; 0],
    }
    pub type OfxPropertySetHandle = *mut OfxPropertySetStruct;
    #[repr(C)]
    pub struct OfxImageEffectStruct {
        _unused: [u8; 0],
    }
    pub type OfxImageEffectHandle = *mut OfxImageEffectStruct;
    #[repr(C)]
    pub struct OfxImageClipStruct {
        _unused: [u8; 0],
    }
    pub type OfxImageClipHandle = *mut OfxImageClipStruct;
    #[repr(C)]
    pub struct OfxParamSetStruct {
        _unused: [u8; 0],
    }
    pub type OfxParamSetHandle = *mut OfxParamSetStruct;
    #[repr(C)]
    pub struct OfxParamStruct {
        _unused: [u8; 0],
    }
    pub type OfxParamHandle = *mut OfxParamStruct;
    #[repr(C)]
    pub struct OfxImageMemoryStruct {
        _unused: [u8; 0],
    }
    pub type OfxImageMemoryHandle = *mut OfxImageMemoryStruct;
    #[repr(C)]
    pub struct OfxMutex {
        _unused: [u8; 0],
    }
    pub type OfxMutexHandle = *mut OfxMutex;

    #[repr(C)]
    #[derive(Debug, Default, Copy, Clone)]
    pub struct OfxRectD {
        pub x1: f64,
        pub y1: f64,
        pub x2: f64,
        pub y2: f64,
    }
    #[repr(C)]
    #[derive(Debug, Default, Copy, Clone)]
    pub struct OfxRectI {
        pub x1: c_int,
        pub y1: c_int,
        pub x2: c_int,
        pub y2: c_int,
    }
    #[repr(C)]
    #[derive(Debug, Default, Copy, Clone)]
    pub struct OfxRangeD {
        pub min: f64,
        pub max: f64,
    }

    #[repr(C)]
    pub struct OfxHost {
        pub host: OfxPropertySetHandle,
        pub fetchSuite: Option<
            unsafe extern "C" fn(
                host: OfxPropertySetHandle,
                suiteName: *const c_char,
                suiteVersion: c_int,
            ) -> *const c_void,
        >,
    }
    pub type OfxPluginEntryPoint = Option<
        unsafe extern "C" fn(
            action: *const c_char,
            handle: *const c_void,
            inArgs: OfxPropertySetHandle,
            outArgs: OfxPropertySetHandle,
        ) -> OfxStatus,
    >;
    #[repr(C)]
    pub struct OfxPlugin {
        pub pluginApi: *const c_char,
        pub apiVersion: c_int,
        pub pluginIdentifier: *const c_char,
        pub pluginVersionMajor: c_uint,
        pub pluginVersionMinor: c_uint,
        pub setHost: Option<unsafe extern "C" fn(host: *mut OfxHost)>,
        pub mainEntry: OfxPluginEntryPoint,
    }

    type P = OfxPropertySetHandle;
    type S = *const c_char;
    #[repr(C)]
    pub struct OfxPropertySuiteV1 {
        pub propSetPointer: Option<unsafe extern "C" fn(P, S, c_int, *mut c_void) -> OfxStatus>,
        pub propSetString: Option<unsafe extern "C" fn(P, S, c_int, S) -> OfxStatus>,
        pub propSetDouble: Option<unsafe extern "C" fn(P, S, c_int, f64) -> OfxStatus>,
        pub propSetInt: Option<unsafe extern "C" fn(P, S, c_int, c_int) -> OfxStatus>,
        pub propSetPointerN:
            Option<unsafe extern "C" fn(P, S, c_int, *const *mut c_void) -> OfxStatus>,
        pub propSetStringN: Option<unsafe extern "C" fn(P, S, c_int, *const S) -> OfxStatus>,
        pub propSetDoubleN: Option<unsafe extern "C" fn(P, S, c_int, *const f64) -> OfxStatus>,
        pub propSetIntN: Option<unsafe extern "C" fn(P, S, c_int, *const c_int) -> OfxStatus>,
        pub propGetPointer:
            Option<unsafe extern "C" fn(P, S, c_int, *mut *mut c_void) -> OfxStatus>,
        pub propGetString:
            Option<unsafe extern "C" fn(P, S, c_int, *mut *mut c_char) -> OfxStatus>,
        pub propGetDouble: Option<unsafe extern "C" fn(P, S, c_int, *mut f64) -> OfxStatus>,
        pub propGetInt: Option<unsafe extern "C" fn(P, S, c_int, *mut c_int) -> OfxStatus>,
        pub propGetPointerN:
            Option<unsafe extern "C" fn(P, S, c_int, *mut *mut c_void) -> OfxStatus>,
        pub propGetStringN:
            Option<unsafe extern "C" fn(P, S, c_int, *mut *mut c_char) -> OfxStatus>,
        pub propGetDoubleN: Option<unsafe extern "C" fn(P, S, c_int, *mut f64) -> OfxStatus>,
        pub propGetIntN: Option<unsafe extern "C" fn(P, S, c_int, *mut c_int) -> OfxStatus>,
        pub propReset: Option<unsafe extern "C" fn(P, S) -> OfxStatus>,
        pub propGetDimension: Option<unsafe extern "C" fn(P, S, *mut c_int) -> OfxStatus>,
    }

    #[repr(C)]
    pub struct OfxImageEffectSuiteV1 {
        pub getPropertySet: Option<unsafe extern "C" fn(OfxImageEffectHandle, *mut P) -> OfxStatus>,
        pub getParamSet:
            Option<unsafe extern "C" fn(OfxImageEffectHandle, *mut OfxParamSetHandle) -> OfxStatus>,
        pub clipDefine: Option<unsafe extern "C" fn(OfxImageEffectHandle, S, *mut P) -> OfxStatus>,
        pub clipGetHandle: Option<
            unsafe extern "C" fn(OfxImageEffectHandle, S, *mut OfxImageClipHandle, *mut P) -> OfxStatus,
        >,
        pub clipGetPropertySet: Option<unsafe extern "C" fn(OfxImageClipHandle, *mut P) -> OfxStatus>,
        pub clipGetImage: Option<
            unsafe extern "C" fn(OfxImageClipHandle, OfxTime, *const OfxRectD, *mut P) -> OfxStatus,
        >,
        pub clipReleaseImage: Option<unsafe extern "C" fn(P) -> OfxStatus>,
        pub clipGetRegionOfDefinition:
            Option<unsafe extern "C" fn(OfxImageClipHandle, OfxTime, *mut OfxRectD) -> OfxStatus>,
        pub abort: Option<unsafe extern "C" fn(OfxImageEffectHandle) -> c_int>,
        pub imageMemoryAlloc: Option<
            unsafe extern "C" fn(OfxImageEffectHandle, usize, *mut OfxImageMemoryHandle) -> OfxStatus,
        >,
        pub imageMemoryFree: Option<unsafe extern "C" fn(OfxImageMemoryHandle) -> OfxStatus>,
        pub imageMemoryLock:
            Option<unsafe extern "C" fn(OfxImageMemoryHandle, *mut *mut c_void) -> OfxStatus>,
        pub imageMemoryUnlock: Option<unsafe extern "C" fn(OfxImageMemoryHandle) -> OfxStatus>,
    }

    type H = OfxParamHandle;
    #[repr(C)]
    pub struct OfxParameterSuiteV1 {
        pub paramDefine: Option<unsafe extern "C" fn(OfxParamSetHandle, S, S, *mut P) -> OfxStatus>,
        pub paramGetHandle:
            Option<unsafe extern "C" fn(OfxParamSetHandle, S, *mut H, *mut P) -> OfxStatus>,
        pub paramSetGetPropertySet:
            Option<unsafe extern "C" fn(OfxParamSetHandle, *mut P) -> OfxStatus>,
        pub paramGetPropertySet: Option<unsafe extern "C" fn(H, *mut P) -> OfxStatus>,
        pub paramGetValue: Option<unsafe extern "C" fn(H, ...) -> OfxStatus>,
        pub paramGetValueAtTime: Option<unsafe extern "C" fn(H, OfxTime, ...) -> OfxStatus>,
        pub paramGetDerivative: Option<unsafe extern "C" fn(H, OfxTime, ...) -> OfxStatus>,
        pub paramGetIntegral: Option<unsafe extern "C" fn(H, OfxTime, OfxTime, ...) -> OfxStatus>,
        pub paramSetValue: Option<unsafe extern "C" fn(H, ...) -> OfxStatus>,
        pub paramSetValueAtTime: Option<unsafe extern "C" fn(H, OfxTime, ...) -> OfxStatus>,
        pub paramGetNumKeys: Option<unsafe extern "C" fn(H, *mut c_uint) -> OfxStatus>,
        pub paramGetKeyTime: Option<unsafe extern "C" fn(H, c_uint, *mut OfxTime) -> OfxStatus>,
        pub paramGetKeyIndex: Option<unsafe extern "C" fn(H, OfxTime, c_int, *mut c_int) -> OfxStatus>,
        pub paramDeleteKey: Option<unsafe extern "C" fn(H, OfxTime) -> OfxStatus>,
        pub paramDeleteAllKeys: Option<unsafe extern "C" fn(H) -> OfxStatus>,
        pub paramCopy: Option<unsafe extern "C" fn(H, H, OfxTime, *const OfxRangeD) -> OfxStatus>,
        pub paramEditBegin: Option<unsafe extern "C" fn(OfxParamSetHandle, S) -> OfxStatus>,
        pub paramEditEnd: Option<unsafe extern "C" fn(OfxParamSetHandle) -> OfxStatus>,
    }

    #[repr(C)]
    pub struct OfxMessageSuiteV1 {
        pub message: Option<unsafe extern "C" fn(*mut c_void, S, S, S, ...) -> OfxStatus>,
    }
    #[repr(C)]
    pub struct OfxMessageSuiteV2 {
        pub message: Option<unsafe extern "C" fn(*mut c_void, S, S, S, ...) -> OfxStatus>,
        pub setPersistentMessage:
            Option<unsafe extern "C" fn(*mut c_void, S, S, S, ...) -> OfxStatus>,
        pub clearPersistentMessage: Option<unsafe extern "C" fn(*mut c_void) -> OfxStatus>,
    }
    #[repr(C)]
    pub struct OfxProgressSuiteV1 {
        pub progressStart: Option<unsafe extern "C" fn(*mut c_void, S) -> OfxStatus>,
        pub progressUpdate: Option<unsafe extern "C" fn(*mut c_void, f64) -> OfxStatus>,
        pub progressEnd: Option<unsafe extern "C" fn(*mut c_void) -> OfxStatus>,
    }
    #[repr(C)]
    pub struct OfxProgressSuiteV2 {
        pub progressStart: Option<unsafe extern "C" fn(*mut c_void, S, S) -> OfxStatus>,
        pub progressUpdate: Option<unsafe extern "C" fn(*mut c_void, f64) -> OfxStatus>,
        pub progressEnd: Option<unsafe extern "C" fn(*mut c_void) -> OfxStatus>,
    }
    pub type OfxThreadFunctionV1 =
        Option<unsafe extern "C" fn(threadIndex: c_uint, threadMax: c_uint, customArg: *mut c_void)>;
    #[repr(C)]
    pub struct OfxMultiThreadSuiteV1 {
        pub multiThread:
            Option<unsafe extern "C" fn(OfxThreadFunctionV1, c_uint, *mut c_void) -> OfxStatus>,
        pub multiThreadNumCPUs: Option<unsafe extern "C" fn(*mut c_uint) -> OfxStatus>,
        pub multiThreadIndex: Option<unsafe extern "C" fn(*mut c_uint) -> OfxStatus>,
        pub multiThreadIsSpawnedThread: Option<unsafe extern "C" fn() -> c_int>,
        pub mutexCreate: Option<unsafe extern "C" fn(*mut OfxMutexHandle, c_int) -> OfxStatus>,
        pub mutexDestroy: Option<unsafe extern "C" fn(OfxMutexHandle) -> OfxStatus>,
        pub mutexLock: Option<unsafe extern "C" fn(OfxMutexHandle) -> OfxStatus>,
        pub mutexUnLock: Option<unsafe extern "C" fn(OfxMutexHandle) -> OfxStatus>,
        pub mutexTryLock: Option<unsafe extern "C" fn(OfxMutexHandle) -> OfxStatus>,
    }
    #[repr(C)]
    pub struct OfxMemorySuiteV1 {
        pub memoryAlloc:
            Option<unsafe extern "C" fn(*mut c_void, usize, *mut *mut c_void) -> OfxStatus>,
        pub memoryFree: Option<unsafe extern "C" fn(*mut c_void) -> OfxStatus>,
    }

    use std::ffi::CStr;
    pub const kOfxActionLoad: &CStr = c"OfxActionLoad";
    pub const kOfxActionUnload: &CStr = c"OfxActionUnload";
    pub const kOfxActionDescribe: &CStr = c"OfxActionDescribe";
    pub const kOfxActionCreateInstance: &CStr = c"OfxActionCreateInstance";
    pub const kOfxActionDestroyInstance: &CStr = c"OfxActionDestroyInstance";
    pub const kOfxActionInstanceChanged: &CStr = c"OfxActionInstanceChanged";
    pub const kOfxActionBeginInstanceChanged: &CStr = c"OfxActionBeginInstanceChanged";
    pub const kOfxActionEndInstanceChanged: &CStr = c"OfxActionEndInstanceChanged";
    pub const kOfxActionPurgeCaches: &CStr = c"OfxActionPurgeCaches";
    pub const kOfxActionSyncPrivateData: &CStr = c"OfxActionSyncPrivateData";
    pub const kOfxImageEffectActionDescribeInContext: &CStr = c"OfxImageEffectActionDescribeInContext";
    pub const kOfxImageEffectActionGetClipPreferences: &CStr = c"OfxImageEffectActionGetClipPreferences";
    pub const kOfxImageEffectActionGetTimeDomain: &CStr = c"OfxImageEffectActionGetTimeDomain";
    pub const kOfxImageEffectActionBeginSequenceRender: &CStr = c"OfxImageEffectActionBeginSequenceRender";
    pub const kOfxImageEffectActionEndSequenceRender: &CStr = c"OfxImageEffectActionEndSequenceRender";
    pub const kOfxImageEffectActionGetRegionOfDefinition: &CStr = c"OfxImageEffectActionGetRegionOfDefinition";
    pub const kOfxImageEffectActionGetRegionsOfInterest: &CStr = c"OfxImageEffectActionGetRegionsOfInterest";
    pub const kOfxImageEffectActionGetFramesNeeded: &CStr = c"OfxImageEffectActionGetFramesNeeded";
    pub const kOfxImageEffectActionIsIdentity: &CStr = c"OfxImageEffectActionIsIdentity";
    pub const kOfxImageEffectActionRender: &CStr = c"OfxImageEffectActionRender";
    pub const kOfxPropertySuite: &CStr = c"OfxPropertySuite";
    pub const kOfxImageEffectSuite: &CStr = c"OfxImageEffectSuite";
    pub const kOfxParameterSuite: &CStr = c"OfxParameterSuite";
    pub const kOfxMessageSuite: &CStr = c"OfxMessageSuite";
    pub const kOfxProgressSuite: &CStr = c"OfxProgressSuite";
    pub const kOfxMultiThreadSuite: &CStr = c"OfxMultiThreadSuite";
    pub const kOfxMemorySuite: &CStr = c"OfxMemorySuite";
    pub const kOfxPropAPIVersion: &CStr = c"OfxPropAPIVersion";
    pub const kOfxPropType: &CStr = c"OfxPropType";
    pub const kOfxPropName: &CStr = c"OfxPropName";
    pub const kOfxPropLabel: &CStr = c"OfxPropLabel";
    pub const kOfxPropShortLabel: &CStr = c"OfxPropShortLabel";
    pub const kOfxPropLongLabel: &CStr = c"OfxPropLongLabel";
    pub const kOfxPropVersion: &CStr = c"OfxPropVersion";
    pub const kOfxPropVersionLabel: &CStr = c"OfxPropVersionLabel";
    pub const kOfxPropPluginDescription: &CStr = c"OfxPropPluginDescription";
    pub const kOfxPropTime: &CStr = c"OfxPropTime";
    pub const kOfxPropIsInteractive: &CStr = c"OfxPropIsInteractive";
    pub const kOfxPropInstanceData: &CStr = c"OfxPropInstanceData";
    pub const kOfxPropIcon: &CStr = c"OfxPropIcon";
    pub const kOfxPropChangeReason: &CStr = c"OfxPropChangeReason";
    pub const kOfxPropEffectInstance: &CStr = c"OfxPropEffectInstance";
    pub const kOfxTypeImageEffectHost: &CStr = c"OfxTypeImageEffectHost";
    pub const kOfxTypeImageEffect: &CStr = c"OfxTypeImageEffect";
    pub const kOfxTypeImageEffectInstance: &CStr = c"OfxTypeImageEffectInstance";
    pub const kOfxTypeClip: &CStr = c"OfxTypeClip";
    pub const kOfxTypeImage: &CStr = c"OfxTypeImage";
    pub const kOfxTypeParameter: &CStr = c"OfxTypeParameter";
    pub const kOfxTypeParameterInstance: &CStr = c"OfxTypeParameterInstance";
    pub const kOfxImageEffectHostPropIsBackground: &CStr = c"OfxImageEffectHostPropIsBackground";
    pub const kOfxImageEffectPropSupportsOverlays: &CStr = c"OfxImageEffectPropSupportsOverlays";
    pub const kOfxImageEffectPropSupportsMultiResolution: &CStr = c"OfxImageEffectPropSupportsMultiResolution";
    pub const kOfxImageEffectPropSupportsTiles: &CStr = c"OfxImageEffectPropSupportsTiles";
    pub const kOfxImageEffectPropTemporalClipAccess: &CStr = c"OfxImageEffectPropTemporalClipAccess";
    pub const kOfxImageEffectPropSupportedComponents: &CStr = c"OfxImageEffectPropSupportedComponents";
    pub const kOfxImageEffectPropSupportedContexts: &CStr = c"OfxImageEffectPropSupportedContexts";
    pub const kOfxImageEffectPropSupportedPixelDepths: &CStr = c"OfxImageEffectPropSupportedPixelDepths";
    pub const kOfxImageEffectPropSupportsMultipleClipDepths: &CStr = c"OfxImageEffectPropSupportsMultipleClipDepths";
    pub const kOfxImageEffectPropSupportsMultipleClipPARs: &CStr = c"OfxImageEffectPropSupportsMultipleClipPARs";
    pub const kOfxImageEffectPropSetableFrameRate: &CStr = c"OfxImageEffectPropSetableFrameRate";
    pub const kOfxImageEffectPropSetableFielding: &CStr = c"OfxImageEffectPropSetableFielding";
    pub const kOfxImageEffectPropRenderQualityDraft: &CStr = c"OfxImageEffectPropRenderQualityDraft";
    pub const kOfxImageEffectPropOpenGLRenderSupported: &CStr = c"OfxImageEffectPropOpenGLRenderSupported";
    pub const kOfxImageEffectPropCudaRenderSupported: &CStr = c"OfxImageEffectPropCudaRenderSupported";
    pub const kOfxImageEffectPropCudaStreamSupported: &CStr = c"OfxImageEffectPropCudaStreamSupported";
    pub const kOfxImageEffectPropCudaEnabled: &CStr = c"OfxImageEffectPropCudaEnabled";
    pub const kOfxImageEffectPropCudaStream: &CStr = c"OfxImageEffectPropCudaStream";
    pub const kOfxImageEffectPropMetalRenderSupported: &CStr = c"OfxImageEffectPropMetalRenderSupported";
    pub const kOfxImageEffectPropOpenCLRenderSupported: &CStr = c"OfxImageEffectPropOpenCLRenderSupported";
    pub const kOfxImageEffectInstancePropSequentialRender: &CStr = c"OfxImageEffectInstancePropSequentialRender";
    pub const kOfxImageEffectPropSequentialRenderStatus: &CStr = c"OfxImageEffectPropSequentialRenderStatus";
    pub const kOfxImageEffectPropInteractiveRenderStatus: &CStr = c"OfxImageEffectPropInteractiveRenderStatus";
    pub const kOfxParamHostPropSupportsCustomInteract: &CStr = c"OfxParamHostPropSupportsCustomInteract";
    pub const kOfxParamHostPropSupportsStringAnimation: &CStr = c"OfxParamHostPropSupportsStringAnimation";
    pub const kOfxParamHostPropSupportsChoiceAnimation: &CStr = c"OfxParamHostPropSupportsChoiceAnimation";
    pub const kOfxParamHostPropSupportsBooleanAnimation: &CStr = c"OfxParamHostPropSupportsBooleanAnimation";
    pub const kOfxParamHostPropSupportsCustomAnimation: &CStr = c"OfxParamHostPropSupportsCustomAnimation";
    pub const kOfxParamHostPropSupportsStrChoice: &CStr = c"OfxParamHostPropSupportsStrChoice";
    pub const kOfxParamHostPropSupportsStrChoiceAnimation: &CStr = c"OfxParamHostPropSupportsStrChoiceAnimation";
    pub const kOfxParamHostPropSupportsParametricAnimation: &CStr = c"OfxParamHostPropSupportsParametricAnimation";
    pub const kOfxParamHostPropMaxParameters: &CStr = c"OfxParamHostPropMaxParameters";
    pub const kOfxParamHostPropMaxPages: &CStr = c"OfxParamHostPropMaxPages";
    pub const kOfxParamHostPropPageRowColumnCount: &CStr = c"OfxParamHostPropPageRowColumnCount";
    pub const kOfxImageEffectPluginPropGrouping: &CStr = c"OfxImageEffectPluginPropGrouping";
    pub const kOfxImageEffectPluginPropSingleInstance: &CStr = c"OfxImageEffectPluginPropSingleInstance";
    pub const kOfxImageEffectPluginRenderThreadSafety: &CStr = c"OfxImageEffectPluginRenderThreadSafety";
    pub const kOfxImageEffectPluginPropHostFrameThreading: &CStr = c"OfxImageEffectPluginPropHostFrameThreading";
    pub const kOfxImageEffectPluginPropFieldRenderTwiceAlways: &CStr = c"OfxImageEffectPluginPropFieldRenderTwiceAlways";
    pub const kOfxImageEffectPluginPropOverlayInteractV1: &CStr = c"OfxImageEffectPluginPropOverlayInteractV1";
    pub const kOfxImageEffectPluginPropOverlayInteractV2: &CStr = c"OfxImageEffectPluginPropOverlayInteractV2";
    pub const kOfxImageEffectPluginPropFilePath: &CStr = c"OfxImageEffectPluginPropFilePath";
    pub const kOfxImageEffectPropClipPreferencesSlaveParam: &CStr = c"OfxImageEffectPropClipPreferencesSlaveParam";
    pub const kOfxImageEffectPropContext: &CStr = c"OfxImageEffectPropContext";
    pub const kOfxImageEffectPropPluginHandle: &CStr = c"OfxImageEffectPropPluginHandle";
    pub const kOfxImageEffectPropProjectSize: &CStr = c"OfxImageEffectPropProjectSize";
    pub const kOfxImageEffectPropProjectOffset: &CStr = c"OfxImageEffectPropProjectOffset";
    pub const kOfxImageEffectPropProjectExtent: &CStr = c"OfxImageEffectPropProjectExtent";
    pub const kOfxImageEffectPropProjectPixelAspectRatio: &CStr = c"OfxImageEffectPropProjectPixelAspectRatio";
    pub const kOfxImageEffectInstancePropEffectDuration: &CStr = c"OfxImageEffectInstancePropEffectDuration";
    pub const kOfxImageEffectPropFrameRate: &CStr = c"OfxImageEffectPropFrameRate";
    pub const kOfxImageEffectPropFrameRange: &CStr = c"OfxImageEffectPropFrameRange";
    pub const kOfxImageEffectPropUnmappedFrameRange: &CStr = c"OfxImageEffectPropUnmappedFrameRange";
    pub const kOfxImageEffectPropUnmappedFrameRate: &CStr = c"OfxImageEffectPropUnmappedFrameRate";
    pub const kOfxImageEffectPropFrameStep: &CStr = c"OfxImageEffectPropFrameStep";
    pub const kOfxImageEffectPropRenderScale: &CStr = c"OfxImageEffectPropRenderScale";
    pub const kOfxImageEffectPropRenderWindow: &CStr = c"OfxImageEffectPropRenderWindow";
    pub const kOfxImageEffectPropFieldToRender: &CStr = c"OfxImageEffectPropFieldToRender";
    pub const kOfxImageEffectPropRegionOfDefinition: &CStr = c"OfxImageEffectPropRegionOfDefinition";
    pub const kOfxImageEffectPropRegionOfInterest: &CStr = c"OfxImageEffectPropRegionOfInterest";
    pub const kOfxImageEffectPropPixelDepth: &CStr = c"OfxImageEffectPropPixelDepth";
    pub const kOfxImageEffectPropComponents: &CStr = c"OfxImageEffectPropComponents";
    pub const kOfxImageEffectPropPreMultiplication: &CStr = c"OfxImageEffectPropPreMultiplication";
    pub const kOfxImageEffectFrameVarying: &CStr = c"OfxImageEffectFrameVarying";
    pub const kOfxImageEffectPropInAnalysis: &CStr = c"OfxImageEffectPropInAnalysis";
    pub const kOfxImageClipPropOptional: &CStr = c"OfxImageClipPropOptional";
    pub const kOfxImageClipPropFieldExtraction: &CStr = c"OfxImageClipPropFieldExtraction";
    pub const kOfxImageClipPropIsMask: &CStr = c"OfxImageClipPropIsMask";
    pub const kOfxImageClipPropConnected: &CStr = c"OfxImageClipPropConnected";
    pub const kOfxImageClipPropUnmappedPixelDepth: &CStr = c"OfxImageClipPropUnmappedPixelDepth";
    pub const kOfxImageClipPropUnmappedComponents: &CStr = c"OfxImageClipPropUnmappedComponents";
    pub const kOfxImageClipPropFieldOrder: &CStr = c"OfxImageClipPropFieldOrder";
    pub const kOfxImageClipPropContinuousSamples: &CStr = c"OfxImageClipPropContinuousSamples";
    pub const kOfxImagePropData: &CStr = c"OfxImagePropData";
    pub const kOfxImagePropBounds: &CStr = c"OfxImagePropBounds";
    pub const kOfxImagePropRegionOfDefinition: &CStr = c"OfxImagePropRegionOfDefinition";
    pub const kOfxImagePropRowBytes: &CStr = c"OfxImagePropRowBytes";
    pub const kOfxImagePropField: &CStr = c"OfxImagePropField";
    pub const kOfxImagePropUniqueIdentifier: &CStr = c"OfxImagePropUniqueIdentifier";
    pub const kOfxImagePropPixelAspectRatio: &CStr = c"OfxImagePropPixelAspectRatio";
    pub const kOfxImageEffectContextGenerator: &CStr = c"OfxImageEffectContextGenerator";
    pub const kOfxImageEffectContextFilter: &CStr = c"OfxImageEffectContextFilter";
    pub const kOfxImageEffectContextGeneral: &CStr = c"OfxImageEffectContextGeneral";
    pub const kOfxImageEffectContextTransition: &CStr = c"OfxImageEffectContextTransition";
    pub const kOfxImageEffectContextPaint: &CStr = c"OfxImageEffectContextPaint";
    pub const kOfxImageEffectContextRetimer: &CStr = c"OfxImageEffectContextRetimer";
    pub const kOfxBitDepthNone: &CStr = c"OfxBitDepthNone";
    pub const kOfxBitDepthByte: &CStr = c"OfxBitDepthByte";
    pub const kOfxBitDepthShort: &CStr = c"OfxBitDepthShort";
    pub const kOfxBitDepthHalf: &CStr = c"OfxBitDepthHalf";
    pub const kOfxBitDepthFloat: &CStr = c"OfxBitDepthFloat";
    pub const kOfxImageComponentNone: &CStr = c"OfxImageComponentNone";
    pub const kOfxImageComponentRGBA: &CStr = c"OfxImageComponentRGBA";
    pub const kOfxImageComponentRGB: &CStr = c"OfxImageComponentRGB";
    pub const kOfxImageComponentAlpha: &CStr = c"OfxImageComponentAlpha";
    pub const kOfxImageOpaque: &CStr = c"OfxImageOpaque";
    pub const kOfxImageEffectRenderUnsafe: &CStr = c"OfxImageEffectRenderUnsafe";
    pub const kOfxImageEffectRenderInstanceSafe: &CStr = c"OfxImageEffectRenderInstanceSafe";
    pub const kOfxImageEffectRenderFullySafe: &CStr = c"OfxImageEffectRenderFullySafe";
    pub const kOfxParamTypeInteger: &CStr = c"OfxParamTypeInteger";
    pub const kOfxParamTypeDouble: &CStr = c"OfxParamTypeDouble";
    pub const kOfxParamTypeBoolean: &CStr = c"OfxParamTypeBoolean";
    pub const kOfxParamTypeChoice: &CStr = c"OfxParamTypeChoice";
    pub const kOfxParamTypeStrChoice: &CStr = c"OfxParamTypeStrChoice";
    pub const kOfxParamTypeRGBA: &CStr = c"OfxParamTypeRGBA";
    pub const kOfxParamTypeRGB: &CStr = c"OfxParamTypeRGB";
    pub const kOfxParamTypeDouble2D: &CStr = c"OfxParamTypeDouble2D";
    pub const kOfxParamTypeInteger2D: &CStr = c"OfxParamTypeInteger2D";
    pub const kOfxParamTypeDouble3D: &CStr = c"OfxParamTypeDouble3D";
    pub const kOfxParamTypeInteger3D: &CStr = c"OfxParamTypeInteger3D";
    pub const kOfxParamTypeString: &CStr = c"OfxParamTypeString";
    pub const kOfxParamTypeCustom: &CStr = c"OfxParamTypeCustom";
    pub const kOfxParamTypeBytes: &CStr = c"OfxParamTypeBytes";
    pub const kOfxParamTypeGroup: &CStr = c"OfxParamTypeGroup";
    pub const kOfxParamTypePage: &CStr = c"OfxParamTypePage";
    pub const kOfxParamTypePushButton: &CStr = c"OfxParamTypePushButton";
    pub const kOfxParamTypeParametric: &CStr = c"OfxParamTypeParametric";
    pub const kOfxParamPropType: &CStr = c"OfxParamPropType";
    pub const kOfxParamPropSecret: &CStr = c"OfxParamPropSecret";
    pub const kOfxParamPropHint: &CStr = c"OfxParamPropHint";
    pub const kOfxParamPropScriptName: &CStr = c"OfxParamPropScriptName";
    pub const kOfxParamPropParent: &CStr = c"OfxParamPropParent";
    pub const kOfxParamPropEnabled: &CStr = c"OfxParamPropEnabled";
    pub const kOfxParamPropDataPtr: &CStr = c"OfxParamPropDataPtr";
    pub const kOfxParamPropCanUndo: &CStr = c"OfxParamPropCanUndo";
    pub const kOfxParamPropEvaluateOnChange: &CStr = c"OfxParamPropEvaluateOnChange";
    pub const kOfxParamPropPluginMayWrite: &CStr = c"OfxParamPropPluginMayWrite";
    pub const kOfxParamPropCacheInvalidation: &CStr = c"OfxParamPropCacheInvalidation";
    pub const kOfxParamPropInteractV1: &CStr = c"OfxParamPropInteractV1";
    pub const kOfxParamPropInteractSize: &CStr = c"OfxParamPropInteractSize";
    pub const kOfxParamPropInteractSizeAspect: &CStr = c"OfxParamPropInteractSizeAspect";
    pub const kOfxParamPropInteractMinimumSize: &CStr = c"OfxParamPropInteractMinimumSize";
    pub const kOfxParamPropInteractPreferedSize: &CStr = c"OfxParamPropInteractPreferedSize";
    pub const kOfxParamPropHasHostOverlayHandle: &CStr = c"OfxParamPropHasHostOverlayHandle";
    pub const kOfxParamPropUseHostOverlayHandle: &CStr = c"OfxParamPropUseHostOverlayHandle";
    pub const kOfxParamPropDefault: &CStr = c"OfxParamPropDefault";
    pub const kOfxParamPropAnimates: &CStr = c"OfxParamPropAnimates";
    pub const kOfxParamPropIsAnimating: &CStr = c"OfxParamPropIsAnimating";
    pub const kOfxParamPropIsAutoKeying: &CStr = c"OfxParamPropIsAutoKeying";
    pub const kOfxParamPropMin: &CStr = c"OfxParamPropMin";
    pub const kOfxParamPropMax: &CStr = c"OfxParamPropMax";
    pub const kOfxParamPropDisplayMin: &CStr = c"OfxParamPropDisplayMin";
    pub const kOfxParamPropDisplayMax: &CStr = c"OfxParamPropDisplayMax";
    pub const kOfxParamPropIncrement: &CStr = c"OfxParamPropIncrement";
    pub const kOfxParamPropDigits: &CStr = c"OfxParamPropDigits";
    pub const kOfxParamPropDoubleType: &CStr = c"OfxParamPropDoubleType";
    pub const kOfxParamPropDefaultCoordinateSystem: &CStr = c"OfxParamPropDefaultCoordinateSystem";
    pub const kOfxParamPropChoiceOption: &CStr = c"OfxParamPropChoiceOption";
    pub const kOfxParamPropChoiceOrder: &CStr = c"OfxParamPropChoiceOrder";
    pub const kOfxParamPropChoiceEnum: &CStr = c"OfxParamPropChoiceEnum";
    pub const kOfxParamPropStringMode: &CStr = c"OfxParamPropStringMode";
    pub const kOfxParamPropStringFilePathExists: &CStr = c"OfxParamPropStringFilePathExists";
    pub const kOfxParamPropPageChild: &CStr = c"OfxParamPropPageChild";
    pub const kOfxParamPropGroupOpen: &CStr = c"OfxParamPropGroupOpen";
    pub const kOfxParamPropDimensionLabel: &CStr = c"OfxParamPropDimensionLabel";
    pub const kOfxParamPropShowTimeMarker: &CStr = c"OfxParamPropShowTimeMarker";
    pub const kOfxParamPropCustomInterpCallbackV1: &CStr = c"OfxParamPropCustomInterpCallbackV1";
    pub const kOfxMessageFatal: &CStr = c"OfxMessageFatal";
    pub const kOfxMessageError: &CStr = c"OfxMessageError";
    pub const kOfxMessageWarning: &CStr = c"OfxMessageWarning";
    pub const kOfxMessageMessage: &CStr = c"OfxMessageMessage";
    pub const kOfxMessageLog: &CStr = c"OfxMessageLog";
    pub const kOfxMessageQuestion: &CStr = c"OfxMessageQuestion";
    pub const kOfxParamDoubleTypePlain: &CStr = c"OfxParamDoubleTypePlain";
    pub const kOfxParamStringIsSingleLine: &CStr = c"OfxParamStringIsSingleLine";
    pub const kOfxChangeUserEdited: &CStr = c"OfxChangeUserEdited";
    pub const kOfxChangePluginEdited: &CStr = c"OfxChangePluginEdited";
    pub const kOfxChangeTime: &CStr = c"OfxChangeTime";
    pub const kOfxCoordinatesCanonical: &CStr = c"OfxCoordinatesCanonical";
    pub const kOfxImageEffectPluginApi: &CStr = c"OfxImageEffectPluginAPI";
    pub const kOfxImageEffectSimpleSourceClipName: &CStr = c"Source";
    pub const kOfxImageEffectOutputClipName: &CStr = c"Output";
    pub const kOfxImageEffectTransitionSourceFromClipName: &CStr = c"SourceFrom";
    pub const kOfxImageEffectTransitionSourceToClipName: &CStr = c"SourceTo";
    pub const kOfxImageEffectTransitionParamName: &CStr = c"Transition";
    pub const kOfxImagePreMultiplied: &CStr = c"OfxImageAlphaPremultiplied";
    pub const kOfxImageUnPreMultiplied: &CStr = c"OfxImageAlphaUnPremultiplied";
    pub const kOfxImageFieldNone: &CStr = c"OfxFieldNone";
    pub const kOfxImageFieldBoth: &CStr = c"OfxFieldBoth";
    pub const kOfxParamPropPersistant: &CStr = c"OfxParamPropPersistant";
    pub const kOfxImageEffectPluginApiVersion: u32 = 1;
    pub const kOfxStatOK: u32 = 0;
    pub const kOfxStatFailed: u32 = 1;
    pub const kOfxStatErrFatal: u32 = 2;
    pub const kOfxStatErrUnknown: u32 = 3;
    pub const kOfxStatErrMissingHostFeature: u32 = 4;
    pub const kOfxStatErrUnsupported: u32 = 5;
    pub const kOfxStatErrExists: u32 = 6;
    pub const kOfxStatErrFormat: u32 = 7;
    pub const kOfxStatErrMemory: u32 = 8;
    pub const kOfxStatErrBadHandle: u32 = 9;
    pub const kOfxStatErrBadIndex: u32 = 10;
    pub const kOfxStatErrValue: u32 = 11;
    pub const kOfxStatReplyYes: u32 = 12;
    pub const kOfxStatReplyNo: u32 = 13;
    pub const kOfxStatReplyDefault: u32 = 14;
    pub const kOfxStatErrImageFormat: u32 = 1000;
}
