//! The properties the host puts on each kind of object before the plugin
//! sees it, with their types and defaults as the OpenFX spec gives them.
//! A plugin may only set properties defined here (else kOfxStatErrUnknown).

use crate::abi::{OfxName, *};
use crate::objects::ParamKind;
use crate::props::{PropertySet, Value};
use std::sync::Arc;

/// Which host the headless host pretends to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    Natron,
    Resolve,
}

impl HostKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "natron" => Some(HostKind::Natron),
            "resolve" | "davinci" | "davinciresolve" => Some(HostKind::Resolve),
            _ => None,
        }
    }
}

fn i(v: i32) -> Value {
    Value::Int(vec![v])
}
fn d(v: f64) -> Value {
    Value::Double(vec![v])
}
fn s(v: &str) -> Value {
    Value::str(v)
}
fn n(name: &std::ffi::CStr) -> &str {
    name.name()
}

/// The host's own description, as Natron or Resolve give it.
pub fn host_props(kind: HostKind) -> Arc<PropertySet> {
    let p = PropertySet::new("host");
    let (name, label, version, version_label) = match kind {
        HostKind::Natron => ("fr.inria.Natron", "Natron", vec![2, 5, 0], "2.5.0"),
        HostKind::Resolve => (
            "DaVinciResolveLite",
            "DaVinci Resolve",
            vec![19, 1, 0],
            "19.1.0",
        ),
    };
    p.define(n(kOfxPropAPIVersion), Value::Int(vec![1, 4]));
    p.define(n(kOfxPropType), s(n(kOfxTypeImageEffectHost)));
    p.define(n(kOfxPropName), s(name));
    p.define(n(kOfxPropLabel), s(label));
    p.define(n(kOfxPropVersion), Value::Int(version));
    p.define(n(kOfxPropVersionLabel), s(version_label));
    p.define(n(kOfxImageEffectHostPropIsBackground), i(1));
    p.define(n(kOfxImageEffectPropSupportsOverlays), i(0));
    p.define(n(kOfxImageEffectPropSupportsMultiResolution), i(1));
    p.define(n(kOfxImageEffectPropSupportsTiles), i(1));
    p.define(n(kOfxImageEffectPropTemporalClipAccess), i(1));
    p.define(
        n(kOfxImageEffectPropSupportedComponents),
        Value::strs(&[
            n(kOfxImageComponentRGBA),
            n(kOfxImageComponentRGB),
            n(kOfxImageComponentAlpha),
        ]),
    );
    let contexts: Vec<&str> = match kind {
        HostKind::Natron => vec![
            n(kOfxImageEffectContextGenerator),
            n(kOfxImageEffectContextFilter),
            n(kOfxImageEffectContextGeneral),
            n(kOfxImageEffectContextTransition),
            n(kOfxImageEffectContextPaint),
        ],
        HostKind::Resolve => vec![
            n(kOfxImageEffectContextGenerator),
            n(kOfxImageEffectContextFilter),
            n(kOfxImageEffectContextGeneral),
            n(kOfxImageEffectContextTransition),
        ],
    };
    p.define(
        n(kOfxImageEffectPropSupportedContexts),
        Value::strs(&contexts),
    );
    p.define(
        n(kOfxImageEffectPropSupportedPixelDepths),
        Value::strs(&[
            n(kOfxBitDepthFloat),
            n(kOfxBitDepthShort),
            n(kOfxBitDepthByte),
        ]),
    );
    p.define(n(kOfxImageEffectPropSupportsMultipleClipDepths), i(1));
    p.define(n(kOfxImageEffectPropSupportsMultipleClipPARs), i(0));
    p.define(n(kOfxImageEffectPropSetableFrameRate), i(0));
    p.define(n(kOfxImageEffectPropSetableFielding), i(0));
    p.define(n(kOfxImageEffectInstancePropSequentialRender), i(0));
    p.define(n(kOfxImageEffectPropRenderQualityDraft), i(0));
    p.define(n(kOfxImageEffectPropOpenGLRenderSupported), s("false"));
    p.define(n(kOfxImageEffectPropCudaRenderSupported), s("false"));
    p.define(n(kOfxImageEffectPropCudaStreamSupported), s("false"));
    p.define(n(kOfxParamHostPropSupportsCustomInteract), i(0));
    p.define(n(kOfxParamHostPropSupportsStringAnimation), i(0));
    p.define(n(kOfxParamHostPropSupportsChoiceAnimation), i(0));
    p.define(n(kOfxParamHostPropSupportsBooleanAnimation), i(0));
    p.define(n(kOfxParamHostPropSupportsCustomAnimation), i(0));
    p.define(n(kOfxParamHostPropSupportsStrChoice), i(1));
    p.define(n(kOfxParamHostPropSupportsStrChoiceAnimation), i(0));
    p.define(n(kOfxParamHostPropSupportsParametricAnimation), i(0));
    p.define(n(kOfxParamHostPropMaxParameters), i(-1));
    p.define(n(kOfxParamHostPropMaxPages), i(0));
    p.define(
        n(kOfxParamHostPropPageRowColumnCount),
        Value::Int(vec![0, 0]),
    );
    p
}

/// An effect descriptor, before Describe.
pub fn effect_descriptor(file_path: &str) -> Arc<PropertySet> {
    let p = PropertySet::new("effect descriptor");
    p.define(n(kOfxPropType), s(n(kOfxTypeImageEffect)));
    p.define(n(kOfxPropLabel), s(""));
    p.define(n(kOfxPropShortLabel), s(""));
    p.define(n(kOfxPropLongLabel), s(""));
    p.define(n(kOfxPropVersion), Value::Int(vec![0]));
    p.define(n(kOfxPropVersionLabel), s(""));
    p.define(n(kOfxPropPluginDescription), s(""));
    p.define(n(kOfxPropIcon), Value::strs(&["", ""]));
    p.define(n(kOfxImageEffectPluginPropGrouping), s(""));
    p.define(n(kOfxImageEffectPropSupportedContexts), Value::Str(vec![]));
    p.define(
        n(kOfxImageEffectPropSupportedPixelDepths),
        Value::Str(vec![]),
    );
    p.define(n(kOfxImageEffectPluginPropSingleInstance), i(0));
    p.define(
        n(kOfxImageEffectPluginRenderThreadSafety),
        s(n(kOfxImageEffectRenderInstanceSafe)),
    );
    p.define(n(kOfxImageEffectPluginPropHostFrameThreading), i(1));
    p.define(n(kOfxImageEffectPropSupportsMultiResolution), i(1));
    p.define(n(kOfxImageEffectPropSupportsTiles), i(1));
    p.define(n(kOfxImageEffectPropTemporalClipAccess), i(0));
    p.define(n(kOfxImageEffectPluginPropFieldRenderTwiceAlways), i(1));
    p.define(n(kOfxImageEffectPropSupportsMultipleClipDepths), i(0));
    p.define(n(kOfxImageEffectPropSupportsMultipleClipPARs), i(0));
    p.define(
        n(kOfxImageEffectPluginPropOverlayInteractV1),
        Value::Pointer(vec![0]),
    );
    p.define(
        n(kOfxImageEffectPluginPropOverlayInteractV2),
        Value::Pointer(vec![0]),
    );
    p.define(
        n(kOfxImageEffectPropClipPreferencesSlaveParam),
        Value::Str(vec![]),
    );
    p.define(n(kOfxImageEffectPluginPropFilePath), s(file_path));
    p.define(n(kOfxImageEffectPropOpenGLRenderSupported), s("false"));
    p.define(n(kOfxImageEffectPropCudaRenderSupported), s("false"));
    p.define(n(kOfxImageEffectPropCudaStreamSupported), s("false"));
    p.define(n(kOfxImageEffectPropMetalRenderSupported), s("false"));
    p.define(n(kOfxImageEffectPropOpenCLRenderSupported), s("false"));
    p
}

/// Turns a copy of a context descriptor into an instance's properties.
pub fn add_instance_props(p: &PropertySet, context: &str, project: Project) {
    p.put(n(kOfxPropType), s(n(kOfxTypeImageEffectInstance)));
    p.put(n(kOfxImageEffectPropContext), s(context));
    p.put(n(kOfxPropInstanceData), Value::Pointer(vec![0]));
    p.put(
        n(kOfxImageEffectPropProjectSize),
        Value::Double(vec![project.width, project.height]),
    );
    p.put(
        n(kOfxImageEffectPropProjectOffset),
        Value::Double(vec![0.0, 0.0]),
    );
    p.put(
        n(kOfxImageEffectPropProjectExtent),
        Value::Double(vec![project.width, project.height]),
    );
    p.put(n(kOfxImageEffectPropProjectPixelAspectRatio), d(1.0));
    p.put(
        n(kOfxImageEffectInstancePropEffectDuration),
        d(project.duration),
    );
    p.put(n(kOfxImageEffectInstancePropSequentialRender), i(0));
    p.put(n(kOfxImageEffectPropFrameRate), d(project.fps));
    p.put(n(kOfxPropIsInteractive), i(0));
    p.put(n(kOfxImageEffectPropInAnalysis), i(0));
    p.put(n(kOfxImageEffectPropCudaEnabled), i(0));
    p.put(n(kOfxImageEffectPropCudaStream), Value::Pointer(vec![0]));
}

/// The project an instance lives in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Project {
    pub width: f64,
    pub height: f64,
    pub fps: f64,
    pub duration: f64,
}

pub fn clip_descriptor(name: &str) -> Arc<PropertySet> {
    let p = PropertySet::new(format!("clip {name}"));
    p.define(n(kOfxPropType), s(n(kOfxTypeClip)));
    p.define(n(kOfxPropName), s(name));
    p.define(n(kOfxPropLabel), s(name));
    p.define(n(kOfxPropShortLabel), s(name));
    p.define(n(kOfxPropLongLabel), s(name));
    p.define(
        n(kOfxImageEffectPropSupportedComponents),
        Value::Str(vec![]),
    );
    p.define(n(kOfxImageEffectPropTemporalClipAccess), i(0));
    p.define(n(kOfxImageClipPropOptional), i(0));
    p.define(
        n(kOfxImageClipPropFieldExtraction),
        s("OfxImageFieldDoubled"),
    );
    p.define(n(kOfxImageClipPropIsMask), i(0));
    p.define(n(kOfxImageEffectPropSupportsTiles), i(1));
    p
}

/// Adds what a clip instance has beyond its descriptor.
pub fn add_clip_instance_props(p: &PropertySet, fps: f64) {
    p.put(n(kOfxImageEffectPropPixelDepth), s(n(kOfxBitDepthFloat)));
    p.put(
        n(kOfxImageEffectPropComponents),
        s(n(kOfxImageComponentRGBA)),
    );
    p.put(
        n(kOfxImageClipPropUnmappedPixelDepth),
        s(n(kOfxBitDepthFloat)),
    );
    p.put(
        n(kOfxImageClipPropUnmappedComponents),
        s(n(kOfxImageComponentRGBA)),
    );
    p.put(
        n(kOfxImageEffectPropPreMultiplication),
        s(n(kOfxImagePreMultiplied)),
    );
    p.put(n(kOfxImagePropPixelAspectRatio), d(1.0));
    p.put(n(kOfxImageEffectPropFrameRate), d(fps));
    p.put(
        n(kOfxImageEffectPropFrameRange),
        Value::Double(vec![0.0, 0.0]),
    );
    p.put(n(kOfxImageClipPropFieldOrder), s(n(kOfxImageFieldNone)));
    p.put(n(kOfxImageClipPropConnected), i(0));
    p.put(
        n(kOfxImageEffectPropUnmappedFrameRange),
        Value::Double(vec![0.0, 0.0]),
    );
    p.put(n(kOfxImageEffectPropUnmappedFrameRate), d(fps));
    p.put(n(kOfxImageClipPropContinuousSamples), i(0));
}

/// A parameter descriptor of `kind`, before the plugin fills it in.
pub fn param_descriptor(name: &str, type_name: &str, kind: ParamKind) -> Arc<PropertySet> {
    let p = PropertySet::new(format!("parameter {name}"));
    p.define(n(kOfxPropType), s(n(kOfxTypeParameter)));
    p.define(n(kOfxParamPropType), s(type_name));
    p.define(n(kOfxPropName), s(name));
    p.define(n(kOfxPropLabel), s(name));
    p.define(n(kOfxPropShortLabel), s(name));
    p.define(n(kOfxPropLongLabel), s(name));
    p.define(n(kOfxParamPropSecret), i(0));
    p.define(n(kOfxParamPropHint), s(""));
    p.define(n(kOfxParamPropScriptName), s(name));
    p.define(n(kOfxParamPropParent), s(""));
    p.define(n(kOfxParamPropEnabled), i(1));
    p.define(n(kOfxParamPropDataPtr), Value::Pointer(vec![0]));
    p.define(n(kOfxPropIcon), Value::strs(&["", ""]));
    p.define(n(kOfxParamPropCanUndo), i(1));
    p.define(n(kOfxParamPropInteractV1), Value::Pointer(vec![0]));
    p.define(n(kOfxParamPropInteractSize), Value::Double(vec![0.0, 0.0]));
    p.define(n(kOfxParamPropInteractSizeAspect), d(1.0));
    p.define(
        n(kOfxParamPropInteractMinimumSize),
        Value::Int(vec![10, 10]),
    );
    p.define(
        n(kOfxParamPropInteractPreferedSize),
        Value::Int(vec![10, 10]),
    );
    p.define(n(kOfxParamPropHasHostOverlayHandle), i(0));
    p.define(n(kOfxParamPropUseHostOverlayHandle), i(0));
    let valued = kind.shape().is_some();
    if valued {
        p.define(n(kOfxParamPropPersistant), i(1));
        p.define(n(kOfxParamPropEvaluateOnChange), i(1));
        p.define(n(kOfxParamPropPluginMayWrite), i(0));
        p.define(
            n(kOfxParamPropCacheInvalidation),
            s("OfxParamInvalidateValueChange"),
        );
        p.define(n(kOfxParamPropAnimates), i(1));
        p.define(n(kOfxParamPropIsAnimating), i(0));
        p.define(n(kOfxParamPropIsAutoKeying), i(0));
    }
    match kind {
        ParamKind::Integer(dim) => {
            p.define(n(kOfxParamPropDefault), Value::Int(vec![0; dim]));
            p.define(n(kOfxParamPropMin), Value::Int(vec![i32::MIN; dim]));
            p.define(n(kOfxParamPropMax), Value::Int(vec![i32::MAX; dim]));
            p.define(n(kOfxParamPropDisplayMin), Value::Int(vec![i32::MIN; dim]));
            p.define(n(kOfxParamPropDisplayMax), Value::Int(vec![i32::MAX; dim]));
            if dim > 1 {
                p.define(
                    n(kOfxParamPropDimensionLabel),
                    Value::strs(&["x", "y", "z"][..dim]),
                );
            }
        }
        ParamKind::Double(dim) => {
            p.define(n(kOfxParamPropDefault), Value::Double(vec![0.0; dim]));
            p.define(n(kOfxParamPropMin), Value::Double(vec![-f64::MAX; dim]));
            p.define(n(kOfxParamPropMax), Value::Double(vec![f64::MAX; dim]));
            p.define(
                n(kOfxParamPropDisplayMin),
                Value::Double(vec![-f64::MAX; dim]),
            );
            p.define(
                n(kOfxParamPropDisplayMax),
                Value::Double(vec![f64::MAX; dim]),
            );
            p.define(n(kOfxParamPropIncrement), d(1.0));
            p.define(n(kOfxParamPropDigits), i(2));
            p.define(n(kOfxParamPropDoubleType), s(n(kOfxParamDoubleTypePlain)));
            p.define(
                n(kOfxParamPropDefaultCoordinateSystem),
                s(n(kOfxParamCoordinatesCanonical)),
            );
            if dim > 1 {
                let labels: &[&str] = if dim == 4 {
                    &["r", "g", "b", "a"]
                } else {
                    &["x", "y", "z"][..dim]
                };
                p.define(n(kOfxParamPropDimensionLabel), Value::strs(labels));
            }
        }
        ParamKind::Boolean => p.define(n(kOfxParamPropDefault), i(0)),
        ParamKind::Choice => {
            p.define(n(kOfxParamPropDefault), i(0));
            p.define(n(kOfxParamPropChoiceOption), Value::Str(vec![]));
            p.define(n(kOfxParamPropChoiceOrder), Value::Int(vec![]));
        }
        ParamKind::StrChoice => {
            p.define(n(kOfxParamPropDefault), s(""));
            p.define(n(kOfxParamPropChoiceOption), Value::Str(vec![]));
            p.define(n(kOfxParamPropChoiceEnum), Value::Str(vec![]));
        }
        ParamKind::String => {
            p.define(n(kOfxParamPropDefault), s(""));
            p.define(
                n(kOfxParamPropStringMode),
                s(n(kOfxParamStringIsSingleLine)),
            );
            p.define(n(kOfxParamPropStringFilePathExists), i(1));
        }
        ParamKind::Custom => {
            p.define(n(kOfxParamPropDefault), s(""));
            p.define(
                n(kOfxParamPropCustomInterpCallbackV1),
                Value::Pointer(vec![0]),
            );
        }
        ParamKind::NoValue => {
            if type_name == n(kOfxParamTypePage) {
                p.define(n(kOfxParamPropPageChild), Value::Str(vec![]));
            }
            if type_name == n(kOfxParamTypeGroup) {
                p.define(n(kOfxParamPropGroupOpen), i(1));
            }
        }
    }
    p
}
