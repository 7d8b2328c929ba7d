//! One function per action: typed arguments in, an OFX status out. The entry
//! point parses the action and calls `dispatch`.

use crate::effects::{Context, EffectDef, EffectKind, FrameRole, Layout, Timeline, OUTPUT};
use crate::geometry::RectD;
use crate::instance::Instance;
use crate::ofx::effect::is;
use crate::ofx::{host, message, Action, Effect, OfxError, OfxResult, PropSet, Status};
use crate::params::{self, Kind, TextMode};
use crate::problem::Problem;
use crate::settings::{self, HostValues, Settings};
use crate::shot::{cache, job, serve, status};
use ofx_sys as sys;
use std::ffi::{c_void, CStr};
use std::sync::Arc;

/// Arguments of one action, as the entry point received them.
pub struct Call {
    pub kind: EffectKind,
    pub action: Action,
    pub handle: *const c_void,
    pub in_args: sys::OfxPropertySetHandle,
    pub out_args: sys::OfxPropertySetHandle,
}

pub fn dispatch(call: Call) -> Status {
    let def = call.kind.def();
    let result = match &call.action {
        Action::Load => load(),
        Action::Unload => {
            cache::global().purge();
            host::unload();
            Ok(sys::kOfxStatOK)
        }
        Action::Other(name) => {
            log::debug!("{}: action {name} left to the host", def.label());
            Ok(sys::kOfxStatReplyDefault)
        }
        _ => with_effect(def, &call),
    };
    result.unwrap_or_else(|e| {
        log::error!("{}: {:?} failed: {e}", def.label(), call.action);
        e.status()
    })
}

fn load() -> OfxResult<Status> {
    crate::logging::init();
    host::load()?;
    Ok(sys::kOfxStatOK)
}

/// What an instance action works with.
pub struct Ctx {
    pub def: &'static dyn EffectDef,
    pub effect: Effect,
    pub instance: Arc<Instance>,
    pub in_args: Option<PropSet>,
    pub out_args: Option<PropSet>,
}

fn with_effect(def: &'static dyn EffectDef, call: &Call) -> OfxResult<Status> {
    // A host that skips Load still gets answers if it set the host pointer.
    let host = host::current().or_else(|_| host::load())?;
    let effect = Effect::new(call.handle, host.clone())?;
    let in_args = host.props_of(call.in_args);
    let out_args = host.props_of(call.out_args);
    match call.action {
        Action::Describe => return describe(def, &effect),
        Action::DescribeInContext => return describe_in_context(def, &effect, in_args),
        Action::CreateInstance => return create_instance(def, &effect),
        Action::DestroyInstance => {
            // Resolve expects OK here, never ReplyDefault.
            match effect.take_instance_data::<Instance>()? {
                // A Generate job still running carries on for the shot
                // cache, but no longer calls the host about this instance.
                Some(instance) => instance.unlink(),
                None => log::warn!(
                    "{}: DestroyInstance on an instance without state",
                    def.label()
                ),
            }
            return Ok(sys::kOfxStatOK);
        }
        _ => {}
    }
    let instance = effect.instance_data::<Instance>()?;
    let ctx = Ctx {
        def,
        effect,
        instance,
        in_args,
        out_args,
    };
    match call.action {
        Action::GetClipPreferences => clip_preferences(&ctx),
        Action::GetRegionOfDefinition => region_of_definition(&ctx),
        Action::GetRegionsOfInterest => regions_of_interest(&ctx),
        Action::GetFramesNeeded => frames_needed(&ctx),
        Action::GetTimeDomain => time_domain(&ctx),
        Action::IsIdentity => is_identity(&ctx),
        Action::Render => crate::render::render(&ctx),
        Action::BeginSequenceRender | Action::EndSequenceRender => {
            log::debug!("{}: {:?}", def.label(), call.action);
            Ok(sys::kOfxStatOK)
        }
        Action::InstanceChanged => instance_changed(&ctx),
        Action::PurgeCaches => {
            cache::global().purge();
            Ok(sys::kOfxStatOK)
        }
        _ => Ok(sys::kOfxStatReplyDefault),
    }
}

/// A property the effect works without: a refusal is logged, not fatal.
fn soft(result: OfxResult<()>, what: &str) {
    if let Err(e) = result {
        log::warn!("host refused {what}: {e}");
    }
}

fn required(args: Option<PropSet>, what: &'static str) -> OfxResult<PropSet> {
    args.ok_or(OfxError::BadHandle(what))
}

enum Capability {
    Int(i32),
    Str(&'static CStr),
}

fn describe(def: &'static dyn EffectDef, effect: &Effect) -> OfxResult<Status> {
    let p = effect.props()?;
    p.set_string(sys::kOfxPropLabel, 0, def.label())?;
    p.set_string(sys::kOfxPropShortLabel, 0, def.label())?;
    p.set_string(sys::kOfxPropLongLabel, 0, def.label())?;
    p.set_string(sys::kOfxImageEffectPluginPropGrouping, 0, "GenFX")?;
    p.set_string(sys::kOfxPropPluginDescription, 0, def.description())?;
    let contexts: Vec<&CStr> = def.contexts().iter().map(|c| c.as_cstr()).collect();
    p.set_cstrs(sys::kOfxImageEffectPropSupportedContexts, &contexts)?;
    p.set_cstrs(
        sys::kOfxImageEffectPropSupportedPixelDepths,
        &[
            sys::kOfxBitDepthFloat,
            sys::kOfxBitDepthShort,
            sys::kOfxBitDepthByte,
        ],
    )?;
    // The rest are capabilities with sensible host defaults: a host that
    // refuses one of them still gets a usable effect.
    let capabilities: [(&CStr, Capability); 9] = [
        (
            sys::kOfxImageEffectPluginPropSingleInstance,
            Capability::Int(0),
        ),
        // Instance-safe: Natron then makes render clones, which share the
        // process-wide engine and shot cache (weights load once per process).
        (
            sys::kOfxImageEffectPluginRenderThreadSafety,
            Capability::Str(sys::kOfxImageEffectRenderInstanceSafe),
        ),
        // GenFX renders whole frames itself; host tiling would only split
        // the conversion of one frame.
        (
            sys::kOfxImageEffectPluginPropHostFrameThreading,
            Capability::Int(0),
        ),
        (
            sys::kOfxImageEffectPropSupportsMultiResolution,
            Capability::Int(1),
        ),
        (sys::kOfxImageEffectPropSupportsTiles, Capability::Int(0)),
        (
            sys::kOfxImageEffectPropTemporalClipAccess,
            Capability::Int(def.temporal() as i32),
        ),
        (
            sys::kOfxImageEffectPropSupportsMultipleClipDepths,
            Capability::Int(0),
        ),
        (
            sys::kOfxImageEffectPropSupportsMultipleClipPARs,
            Capability::Int(0),
        ),
        // Not offered yet: the engine's CUDA backend runs on its own context
        // and frames cross to the host through CPU memory; taking the host's
        // device pointers and stream needs a device-side conversion path
        // first. Declaring "false" means Resolve never hands us CUDA memory.
        (
            sys::kOfxImageEffectPropCudaRenderSupported,
            Capability::Str(c"false"),
        ),
    ];
    for (name, value) in capabilities {
        let result = match value {
            Capability::Int(v) => p.set_int(name, 0, v),
            Capability::Str(v) => p.set_cstr(name, 0, v),
        };
        if let Err(e) = result {
            log::warn!(
                "{}: host refused {}: {e}",
                def.label(),
                name.to_string_lossy()
            );
        }
    }
    Ok(sys::kOfxStatOK)
}

fn describe_in_context(
    def: &'static dyn EffectDef,
    effect: &Effect,
    in_args: Option<PropSet>,
) -> OfxResult<Status> {
    let context_name = required(in_args, "describe-in-context arguments")?
        .get_bytes(sys::kOfxImageEffectPropContext, 0)?;
    let Some(context) = Context::parse(&context_name).filter(|c| def.contexts().contains(c)) else {
        log::warn!(
            "{}: context {:?} is not offered",
            def.label(),
            String::from_utf8_lossy(&context_name)
        );
        return Ok(sys::kOfxStatErrUnsupported);
    };
    let rgba = [sys::kOfxImageComponentRGBA];
    let out = effect.define_clip(OUTPUT)?;
    out.set_cstrs(sys::kOfxImageEffectPropSupportedComponents, &rgba)?;
    soft(
        out.set_int(sys::kOfxImageEffectPropSupportsTiles, 0, 0),
        "output tiles",
    );
    for clip in def.clips(context) {
        let p = effect.define_clip(clip.name)?;
        p.set_cstrs(
            sys::kOfxImageEffectPropSupportedComponents,
            &[sys::kOfxImageComponentRGBA, sys::kOfxImageComponentRGB],
        )?;
        p.set_int(
            sys::kOfxImageEffectPropTemporalClipAccess,
            0,
            def.temporal() as i32,
        )?;
        p.set_int(sys::kOfxImageClipPropOptional, 0, clip.optional as i32)?;
        p.set_int(sys::kOfxImageClipPropIsMask, 0, 0)?;
        p.set_int(sys::kOfxImageEffectPropSupportsTiles, 0, 0)?;
    }
    define_params(def.kind(), context, effect)?;
    Ok(sys::kOfxStatOK)
}

fn define_params(kind: EffectKind, context: Context, effect: &Effect) -> OfxResult<()> {
    let set = effect.params()?;
    for spec in params::for_effect(kind) {
        let kind_name = match spec.kind {
            Kind::Text { .. } => sys::kOfxParamTypeString,
            Kind::Int { .. } => sys::kOfxParamTypeInteger,
            Kind::Double { .. } => sys::kOfxParamTypeDouble,
            Kind::Choice { .. } => sys::kOfxParamTypeChoice,
            Kind::Button => sys::kOfxParamTypePushButton,
            Kind::Status => sys::kOfxParamTypeString,
            Kind::Trigger => sys::kOfxParamTypeInteger,
        };
        let p = set.define(kind_name, spec.name)?;
        p.set_string(sys::kOfxPropLabel, 0, spec.label)?;
        p.set_string(sys::kOfxParamPropHint, 0, spec.hint)?;
        p.set_string(sys::kOfxParamPropScriptName, 0, spec.name)?;
        // A shot is one generation: a parameter that changed over time would
        // make every frame a different shot.
        if spec.kind != Kind::Button {
            soft(
                p.set_int(sys::kOfxParamPropAnimates, 0, 0),
                "parameter animation",
            );
        }
        if matches!(spec.kind, Kind::Status | Kind::Trigger) {
            // Written by the plugin: never an undo step.
            soft(p.set_int(sys::kOfxParamPropCanUndo, 0, 0), "undo");
        }
        if spec.kind == Kind::Status {
            // Describes this session's jobs: not part of the project. (The
            // trigger is saved: a host whose frame cache is keyed by
            // parameter values, as Natron's is, must not find frames drawn
            // before the shot was ready under a reloaded project's values.)
            soft(p.set_int(sys::kOfxParamPropPersistant, 0, 0), "persistence");
        }
        match spec.kind {
            Kind::Button => {}
            Kind::Status => {
                // A single line the user cannot edit, rather than a label
                // string: some hosts (Nuke) never redraw a label after the
                // instance is created.
                p.set_cstr(
                    sys::kOfxParamPropStringMode,
                    0,
                    sys::kOfxParamStringIsSingleLine,
                )?;
                soft(
                    p.set_int(sys::kOfxParamPropEnabled, 0, 0),
                    "read-only status",
                );
                p.set_string(sys::kOfxParamPropDefault, 0, crate::shot::status::IDLE)?;
                // The status changes with every percent of a job; only the
                // trigger below asks for frames again.
                soft(
                    p.set_int(sys::kOfxParamPropEvaluateOnChange, 0, 0),
                    "status evaluation",
                );
            }
            Kind::Trigger => {
                p.set_int(sys::kOfxParamPropDefault, 0, 0)?;
                p.set_int(sys::kOfxParamPropSecret, 0, 1)?;
                p.set_int(sys::kOfxParamPropEvaluateOnChange, 0, 1)?;
            }
            Kind::Text { mode, default } => {
                let mode_name = match mode {
                    TextMode::MultiLine => sys::kOfxParamStringIsMultiLine,
                    TextMode::Directory => sys::kOfxParamStringIsDirectoryPath,
                    TextMode::File => sys::kOfxParamStringIsFilePath,
                };
                p.set_cstr(sys::kOfxParamPropStringMode, 0, mode_name)?;
                if mode == TextMode::File {
                    // An open dialog, not a save dialog.
                    soft(
                        p.set_int(sys::kOfxParamPropStringFilePathExists, 0, 1),
                        "file path must exist",
                    );
                }
                p.set_string(sys::kOfxParamPropDefault, 0, default)?;
            }
            Kind::Int {
                default,
                min,
                max,
                display_min,
                display_max,
            } => {
                p.set_int(sys::kOfxParamPropDefault, 0, default)?;
                p.set_int(sys::kOfxParamPropMin, 0, min)?;
                p.set_int(sys::kOfxParamPropMax, 0, max)?;
                p.set_int(sys::kOfxParamPropDisplayMin, 0, display_min)?;
                p.set_int(sys::kOfxParamPropDisplayMax, 0, display_max)?;
            }
            Kind::Double {
                default,
                min,
                max,
                display_min,
                display_max,
                increment,
            } => {
                // Resolve clamps doubles to [-1, 1] unless a display range
                // is given, so every double sets both ranges.
                p.set_cstr(
                    sys::kOfxParamPropDoubleType,
                    0,
                    sys::kOfxParamDoubleTypePlain,
                )?;
                p.set_double(sys::kOfxParamPropDefault, 0, default)?;
                p.set_double(sys::kOfxParamPropMin, 0, min)?;
                p.set_double(sys::kOfxParamPropMax, 0, max)?;
                p.set_double(sys::kOfxParamPropDisplayMin, 0, display_min)?;
                p.set_double(sys::kOfxParamPropDisplayMax, 0, display_max)?;
                soft(
                    p.set_double(sys::kOfxParamPropIncrement, 0, increment),
                    "parameter increment",
                );
                soft(
                    p.set_int(sys::kOfxParamPropDigits, 0, 2),
                    "parameter digits",
                );
            }
            Kind::Choice { options, default } => {
                p.set_strings(sys::kOfxParamPropChoiceOption, options)?;
                p.set_int(sys::kOfxParamPropDefault, 0, default as i32)?;
            }
        }
    }
    // The transition context mandates a host-driven "Transition" double.
    if context == Context::Transition {
        let p = set.define(sys::kOfxParamTypeDouble, TRANSITION_PARAM)?;
        p.set_string(sys::kOfxPropLabel, 0, "Transition")?;
        p.set_double(sys::kOfxParamPropDefault, 0, 0.0)?;
        p.set_double(sys::kOfxParamPropMin, 0, 0.0)?;
        p.set_double(sys::kOfxParamPropMax, 0, 1.0)?;
        p.set_double(sys::kOfxParamPropDisplayMin, 0, 0.0)?;
        p.set_double(sys::kOfxParamPropDisplayMax, 0, 1.0)?;
    }
    let mut page_names = Vec::new();
    for page in params::Page::ALL {
        let children: Vec<&str> = params::for_effect(kind)
            .filter(|p| p.page == page)
            .map(|p| p.name)
            .collect();
        if children.is_empty() {
            continue;
        }
        let p = set.define(sys::kOfxParamTypePage, page.name())?;
        p.set_string(sys::kOfxPropLabel, 0, page.label())?;
        p.set_strings(sys::kOfxParamPropPageChild, &children)?;
        page_names.push(page.name());
    }
    if let Err(e) = set
        .props()
        .and_then(|p| p.set_strings(sys::kOfxPluginPropParamPageOrder, &page_names))
    {
        log::debug!("host did not take the page order: {e}");
    }
    Ok(())
}

fn create_instance(def: &'static dyn EffectDef, effect: &Effect) -> OfxResult<Status> {
    let name = effect
        .props()?
        .get_bytes(sys::kOfxImageEffectPropContext, 0)?;
    let context = Context::parse(&name)
        .filter(|c| def.contexts().contains(c))
        .ok_or_else(|| {
            OfxError::Value(format!(
                "instance in unknown context {:?}",
                String::from_utf8_lossy(&name)
            ))
        })?;
    effect.set_instance_data(Arc::new(Instance::new(context, effect.clone())))?;
    log::info!("{}: instance created in {context:?}", def.label());
    // Resolve expects OK here, never ReplyDefault.
    Ok(sys::kOfxStatOK)
}

/// The double the transition context requires; the host animates it from
/// 0 to 1 over the transition.
const TRANSITION_PARAM: &str = "Transition";

pub fn settings(ctx: &Ctx, time: f64) -> OfxResult<Settings> {
    let params = ctx.effect.params()?;
    settings::read(
        &HostValues {
            params: &params,
            time,
        },
        ctx.def.kind(),
    )
}

pub fn timeline(ctx: &Ctx, s: &Settings, time: f64) -> Timeline {
    let mut t = Timeline {
        length: s.length,
        context_frames: s.context_frames,
        backward: s.backward,
        ..Default::default()
    };
    for clip in ctx.def.clips(ctx.instance.context) {
        if let Ok(c) = ctx.effect.clip(clip.name) {
            if let (true, Some(range)) = (c.connected(), c.frame_range()) {
                t.clip_ranges.push((clip.name, range));
            }
        }
    }
    t.effect_range = ctx
        .effect
        .props()
        .and_then(|p| p.get_doubles::<2>(sys::kOfxImageEffectPropFrameRange))
        .ok()
        .filter(|[a, b]| a.is_finite() && b.is_finite() && b >= a)
        .map(|[a, b]| (a, b));
    if t.effect_range.is_none() && ctx.instance.context == Context::Transition {
        t.effect_range = transition_span_from_param(ctx, time);
    }
    t
}

/// A transition's span read from its `Transition` parameter, for hosts
/// that give the instance no frame range.
fn transition_span_from_param(ctx: &Ctx, time: f64) -> Option<(f64, f64)> {
    let params = ctx.effect.params().ok()?;
    let transition = params.param(TRANSITION_PARAM).ok()?;
    let at = |t: f64| transition.get_double(t).ok().filter(|v| v.is_finite());
    let span = crate::effects::transition_span_from_progress(
        time,
        at(time - 1.0),
        at(time)?,
        at(time + 1.0),
    );
    if let Some((a, b)) = span {
        log::debug!("no transition frame range from the host; the Transition parameter places it at {a}..{b}");
    }
    span
}

pub fn layout(ctx: &Ctx, time: f64) -> OfxResult<(Settings, Layout)> {
    let s = settings(ctx, time)?;
    let l = ctx
        .def
        .layout(ctx.instance.context, &timeline(ctx, &s, time))
        .map_err(|e| OfxError::Value(e.to_string()))?;
    Ok((s, l))
}

fn time_arg(ctx: &Ctx) -> OfxResult<f64> {
    let t = required(ctx.in_args, "action arguments")?.get_double(sys::kOfxPropTime, 0)?;
    if t.is_finite() {
        Ok(t)
    } else {
        Err(OfxError::Value(format!("time {t} is not a number")))
    }
}

/// The project rectangle in canonical coordinates.
pub fn project_rect(effect: &Effect) -> RectD {
    let p = effect.props().ok();
    let get = |name| p.as_ref().and_then(|p| p.get_doubles::<2>(name).ok());
    let [w, h] = get(sys::kOfxImageEffectPropProjectSize)
        .or_else(|| get(sys::kOfxImageEffectPropProjectExtent))
        .filter(|[w, h]| *w > 0.0 && *h > 0.0 && w.is_finite() && h.is_finite())
        .unwrap_or([1920.0, 1080.0]);
    let [x, y] = get(sys::kOfxImageEffectPropProjectOffset)
        .filter(|o| o.iter().all(|v| v.is_finite()))
        .unwrap_or([0.0, 0.0]);
    RectD {
        x1: x,
        y1: y,
        x2: x + w,
        y2: y + h,
    }
}

pub fn project_pixel_aspect(effect: &Effect) -> f64 {
    effect
        .props()
        .and_then(|p| p.get_double(sys::kOfxImageEffectPropProjectPixelAspectRatio, 0))
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(1.0)
}

fn clip_preferences(ctx: &Ctx) -> OfxResult<Status> {
    let out = required(ctx.out_args, "clip preference results")?;
    let first_input = ctx
        .def
        .clips(ctx.instance.context)
        .first()
        .and_then(|c| ctx.effect.clip(c.name).ok())
        .filter(|c| c.connected())
        .map(|c| c.premultiplication());
    let premult = ctx.def.output_premult(first_input);
    out.set_cstr(
        sys::kOfxImageEffectPropPreMultiplication,
        0,
        premult.as_cstr(),
    )?;
    // Generated frames differ from frame to frame, even in a generator.
    out.set_int(sys::kOfxImageEffectFrameVarying, 0, 1)?;
    let output_components = format!("OfxImageClipPropComponents_{OUTPUT}");
    out.set_cstr(
        &crate::ofx::props::c_string(&output_components)?,
        0,
        sys::kOfxImageComponentRGBA,
    )?;
    Ok(sys::kOfxStatOK)
}

fn region_of_definition(ctx: &Ctx) -> OfxResult<Status> {
    let time = time_arg(ctx)?;
    let out = required(ctx.out_args, "region of definition result")?;
    let rod = match layout(ctx, time).map(|(_, l)| l.role_at(time)) {
        Ok(FrameRole::Real { clip, time }) => ctx
            .effect
            .clip(clip)
            .and_then(|c| c.region_of_definition(time))
            .ok()
            .filter(|r| r.is_valid())
            .unwrap_or_else(|| project_rect(&ctx.effect)),
        _ => project_rect(&ctx.effect),
    };
    out.set_doubles(
        sys::kOfxImageEffectPropRegionOfDefinition,
        &[rod.x1, rod.y1, rod.x2, rod.y2],
    )?;
    Ok(sys::kOfxStatOK)
}

fn regions_of_interest(ctx: &Ctx) -> OfxResult<Status> {
    let time = time_arg(ctx)?;
    let out = required(ctx.out_args, "regions of interest result")?;
    let (_, l) = layout(ctx, time)?;
    let asked = required(ctx.in_args, "regions of interest arguments")?
        .get_doubles::<4>(sys::kOfxImageEffectPropRegionOfInterest)
        .ok();
    for clip in ctx.def.clips(ctx.instance.context) {
        let Ok(c) = ctx.effect.clip(clip.name) else {
            continue;
        };
        // Passing through needs what was asked; generating needs whole frames
        // (they are refitted to the working picture).
        let rect = match (l.role_at(time), asked) {
            (FrameRole::Real { clip: name, .. }, Some(r)) if name == clip.name => r,
            _ => {
                let r = c
                    .region_of_definition(time)
                    .ok()
                    .filter(|r| r.is_valid())
                    .unwrap_or_else(|| project_rect(&ctx.effect));
                [r.x1, r.y1, r.x2, r.y2]
            }
        };
        let name = crate::ofx::props::c_string(&format!("OfxImageClipPropRoI_{}", clip.name))?;
        out.set_doubles(&name, &rect)?;
    }
    Ok(sys::kOfxStatOK)
}

fn frames_needed(ctx: &Ctx) -> OfxResult<Status> {
    let time = time_arg(ctx)?;
    let out = required(ctx.out_args, "frames needed result")?;
    let (_, l) = layout(ctx, time)?;
    for (clip, (a, b)) in l.frames_needed(time) {
        let name = crate::ofx::props::c_string(&format!("OfxImageClipPropFrameRange_{clip}"))?;
        out.set_doubles(&name, &[a, b])?;
    }
    Ok(sys::kOfxStatOK)
}

fn time_domain(ctx: &Ctx) -> OfxResult<Status> {
    if ctx.instance.context != Context::General {
        return Ok(sys::kOfxStatReplyDefault);
    }
    let out = required(ctx.out_args, "time domain result")?;
    let (_, l) = layout(ctx, 0.0)?;
    out.set_doubles(
        sys::kOfxImageEffectPropFrameRange,
        &[l.domain.0, l.domain.1],
    )?;
    Ok(sys::kOfxStatOK)
}

fn is_identity(ctx: &Ctx) -> OfxResult<Status> {
    let time = time_arg(ctx)?;
    let (_, l) = match layout(ctx, time) {
        Ok(v) => v,
        // Render will report the problem; identity just says "no".
        Err(_) => return Ok(sys::kOfxStatReplyDefault),
    };
    match l.role_at(time) {
        FrameRole::Real {
            clip,
            time: source_time,
        } => {
            let out = required(ctx.out_args, "identity result")?;
            out.set_string(sys::kOfxPropName, 0, clip)?;
            out.set_double(sys::kOfxPropTime, 0, source_time)?;
            Ok(sys::kOfxStatOK)
        }
        _ => Ok(sys::kOfxStatReplyDefault),
    }
}

fn instance_changed(ctx: &Ctx) -> OfxResult<Status> {
    let changed = ctx
        .in_args
        .and_then(|a| a.get_string(sys::kOfxPropName, 0).ok())
        .unwrap_or_default();
    let reason = ctx
        .in_args
        .and_then(|a| a.get_bytes(sys::kOfxPropChangeReason, 0).ok())
        .unwrap_or_default();
    log::debug!(
        "{}: {changed} changed ({})",
        ctx.def.label(),
        String::from_utf8_lossy(&reason)
    );
    // The status line and the trigger are GenFX's own writes.
    if changed == params::STATUS || changed == params::SHOTS_READY {
        return Ok(sys::kOfxStatOK);
    }
    if is(&reason, sys::kOfxChangeUserEdited) || params::spec(&changed).is_some() {
        // A new value may fix the last problem: show the next one afresh.
        *ctx.instance.shown.lock() = None;
        message::clear_persistent(&ctx.effect);
    }
    if changed == params::GENERATE {
        generate_pressed(ctx);
        return Ok(sys::kOfxStatOK);
    }
    if changed == params::MODEL || changed == params::TEXT_ENCODER {
        crate::early_checks::model_changed(ctx);
    }
    if changed == params::QUALITY {
        if let Ok(set) = ctx.effect.params() {
            let custom = set
                .param(params::QUALITY)
                .and_then(|p| p.get_int(0.0))
                .map(|v| v == 3)
                .unwrap_or(true);
            if let Ok(props) = set.param(params::STEPS).and_then(|p| p.props()) {
                let _ = props.set_int(sys::kOfxParamPropEnabled, 0, custom as i32);
            }
        }
    }
    Ok(sys::kOfxStatOK)
}

/// The Generate button: the shot for the current settings and inputs,
/// started on its own thread so the host's UI thread returns at once. A
/// cached shot only asks the host to render its frames again.
fn generate_pressed(ctx: &Ctx) {
    let time = time_arg(ctx).unwrap_or(0.0);
    let scale = ctx
        .in_args
        .and_then(|a| a.get_doubles::<2>(sys::kOfxImageEffectPropRenderScale).ok())
        .filter(|s| s.iter().all(|v| v.is_finite() && *v > 0.0))
        .unwrap_or([1.0, 1.0]);
    let refuse = |text: String| {
        log::error!("{}: Generate: {text}", ctx.def.label());
        status::post(
            &ctx.instance,
            status::failed_text(text.trim_start_matches("GenFX: ")),
        );
        if !message::set_persistent(&ctx.effect, message::MessageKind::Error, &text) {
            message::show(&ctx.effect, message::MessageKind::Error, &text);
        }
        *ctx.instance.shown.lock() = Some(text);
    };
    let (s, layout) = match layout(ctx, time) {
        Ok(v) => v,
        Err(e) => return refuse(format!("GenFX: {e}")),
    };
    if layout.generated.is_none() {
        return refuse("GenFX: these settings leave no frames to generate".into());
    }
    let prepared = match serve::prepare(ctx, &s, &layout, scale) {
        Ok(p) => p,
        Err(Problem::Tell(text, _)) | Err(Problem::Quiet(text, _)) => return refuse(text),
    };
    let dir = job::cache_dir(&s);
    if job::cached(prepared.key, &prepared.request, dir.as_ref()).is_some() {
        status::post_shot(&ctx.instance, prepared.key);
        status::post_ready(&ctx.instance);
        return;
    }
    log::info!(
        "{}: Generate pressed; shot {} starts",
        ctx.def.label(),
        prepared.key
    );
    job::start_detached(
        ctx.def.label(),
        ctx.instance.clone(),
        prepared.key,
        prepared.request,
        dir,
    );
}
