//! An effect instance and the actions a host runs on it, in Natron's order:
//! CreateInstance, GetClipPreferences, GetTimeDomain, BeginSequenceRender,
//! then per frame GetRegionOfDefinition, GetRegionsOfInterest,
//! GetFramesNeeded, IsIdentity, Render; EndSequenceRender, DestroyInstance.
//!
//! Each action is also public on its own so tests can call them in any order.

use crate::abi::{OfxName, *};
use crate::bundle::{action_error, Bundle};
use crate::defaults::{self, Project};
use crate::image::{Buffer, Components, Depth, Picture};
use crate::objects::{Clip, Effect, Message, Misbehave, Param, ParamKind, ParamValue, Progress};
use crate::props::{PropertySet, Value};
use crate::source::FrameSource;
use crate::suites::param as param_suite;
use crate::HostError;
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn n(c: &CStr) -> &str {
    c.name()
}

/// A rectangle in pixels (render scale is 1 on this host).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

/// Why a host renders a frame, as the render action's arguments and clips
/// tell the plugin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderKind {
    /// Natron's draft quality while scrubbing
    /// (`kOfxImageEffectPropRenderQualityDraft` = 1).
    pub draft: bool,
    /// A Resolve thumbnail (its clip property `kOfxImageClipPropThumbnail`
    /// = 1 on every clip of the instance during the render).
    pub thumbnail: bool,
}

/// Resolve's thumbnail clip property, spelled as its header spells it.
pub const RESOLVE_THUMBNAIL: &str = "kOfxImageClipPropThumbnail";

/// What the plugin asked for in GetClipPreferences, per clip.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipPreference {
    pub components: String,
    pub depth: String,
    pub par: f64,
}

/// Everything needed to make an instance.
pub struct InstanceSpec {
    pub plugin: String,
    pub context: String,
    pub project: Project,
    /// Input clips by name.
    pub sources: BTreeMap<String, Arc<dyn FrameSource>>,
    /// Parameter values given before CreateInstance, as from a saved project.
    pub values: Vec<(String, String)>,
}

pub struct Instance {
    pub bundle: Arc<Bundle>,
    pub plugin: usize,
    pub context: String,
    pub project: Project,
    pub effect: Arc<Effect>,
    /// CreateInstance succeeded, so DestroyInstance is owed.
    created: AtomicBool,
    destroyed: AtomicBool,
}

impl Instance {
    /// Describe, DescribeInContext and CreateInstance.
    pub fn create(bundle: &Arc<Bundle>, spec: InstanceSpec) -> Result<Arc<Self>, HostError> {
        let plugin = bundle.plugin_index(&spec.plugin)?;
        let base = bundle.describe(plugin)?;
        let descriptor = bundle.describe_in_context(plugin, &base, &spec.context)?;
        let instance = Self::build(bundle, plugin, &descriptor, &spec)?;
        instance.create_instance()?;
        Ok(instance)
    }

    /// The host-side instance objects, before the plugin hears of them.
    pub fn build(
        bundle: &Arc<Bundle>,
        plugin: usize,
        descriptor: &Effect,
        spec: &InstanceSpec,
    ) -> Result<Arc<Self>, HostError> {
        let props = PropertySet::copy_of("effect instance", &descriptor.props);
        defaults::add_instance_props(&props, &spec.context, spec.project);
        let effect = Effect::new(props, bundle.shared.clone(), true);
        for clip in descriptor.clips.lock().iter() {
            let props = PropertySet::copy_of(format!("clip {}", clip.name), &clip.props);
            defaults::add_clip_instance_props(&props, spec.project.fps);
            let instance_clip = Clip::new(&clip.name, props, &effect);
            let supported = clip
                .props
                .strings(n(kOfxImageEffectPropSupportedComponents))
                .unwrap_or_default();
            let components = preferred_components(&supported);
            instance_clip
                .props
                .put(n(kOfxImageEffectPropComponents), Value::str(components));
            if let Some(source) = spec.sources.get(&clip.name) {
                connect(&instance_clip, source.clone());
            } else if instance_clip.is_output() {
                instance_clip
                    .props
                    .put(n(kOfxImageClipPropConnected), Value::Int(vec![1]));
                let range = Value::Double(vec![0.0, spec.project.duration - 1.0]);
                instance_clip
                    .props
                    .put(n(kOfxImageEffectPropFrameRange), range.clone());
                instance_clip
                    .props
                    .put(n(kOfxImageEffectPropUnmappedFrameRange), range);
            }
            effect.clips.lock().push(instance_clip);
        }
        for name in spec.sources.keys() {
            if effect.clip(name).is_none() {
                let clips: Vec<String> =
                    effect.clips.lock().iter().map(|c| c.name.clone()).collect();
                return Err(HostError::Usage(format!(
                    "{} in context {} has no clip '{name}'; its clips: {}",
                    spec.plugin,
                    spec.context,
                    clips.join(", ")
                )));
            }
        }
        // A transition spans the project here: the instance's frame range
        // says so, and the host drives `Transition` from 0 to 1 across it.
        let transition = (spec.context == n(kOfxImageEffectContextTransition))
            .then_some((0.0, spec.project.duration - 1.0));
        if let Some((first, last)) = transition {
            effect.props.put(
                n(kOfxImageEffectPropFrameRange),
                Value::Double(vec![first, last]),
            );
        }
        for param in descriptor.params.params.lock().iter() {
            let props = PropertySet::copy_of(format!("parameter {}", param.name), &param.props);
            props.put(n(kOfxPropType), Value::str(n(kOfxTypeParameterInstance)));
            let p = Param::new(&param.name, &param.type_name, param.kind, props);
            *p.value.lock() = p.default_value();
            if param.name == "Transition" && matches!(param.kind, ParamKind::Double(1)) {
                *p.driven.lock() = transition;
            }
            effect.params.params.lock().push(p);
        }
        let instance = Arc::new(Self {
            bundle: bundle.clone(),
            plugin,
            context: spec.context.clone(),
            project: spec.project,
            effect,
            created: AtomicBool::new(false),
            destroyed: AtomicBool::new(false),
        });
        for (name, text) in &spec.values {
            instance.set_param(name, text)?;
        }
        Ok(instance)
    }

    pub fn id(&self) -> &str {
        &self.bundle.plugins[self.plugin].id
    }

    /// Sets the hostile behaviour of this instance.
    pub fn misbehave(&self, f: impl FnOnce(&mut Misbehave)) {
        f(&mut self.effect.misbehave.lock());
    }

    /// Asks the plugin to stop (what `abort()` answers from now on).
    pub fn abort(&self, yes: bool) {
        self.effect.abort.store(yes, Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<Message> {
        self.effect.messages.lock().clone()
    }

    pub fn persistent_message(&self) -> Option<Message> {
        self.effect.persistent.lock().clone()
    }

    pub fn progress(&self) -> Vec<Progress> {
        self.effect.progress.lock().clone()
    }

    pub fn clip(&self, name: &str) -> Option<Arc<Clip>> {
        self.effect.clip(name)
    }

    pub fn param(&self, name: &str) -> Result<Arc<Param>, HostError> {
        self.effect.params.get(name).ok_or_else(|| {
            let names: Vec<String> = self
                .effect
                .params
                .params
                .lock()
                .iter()
                .filter(|p| p.kind.shape().is_some())
                .map(|p| p.name.clone())
                .collect();
            HostError::Usage(format!(
                "{} has no parameter '{name}'; it has: {}",
                self.id(),
                names.join(", ")
            ))
        })
    }

    /// Sets a parameter from text, as typed on a command line.
    pub fn set_param(&self, name: &str, text: &str) -> Result<(), HostError> {
        let p = self.param(name)?;
        let value = crate::values::parse(&p, text)?;
        param_suite::set_value(&p, value)
            .map_err(|_| HostError::Usage(format!("value '{text}' does not fit parameter {name}")))
    }

    /// Sets a text parameter to raw bytes (they need not be UTF-8).
    pub fn set_param_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), HostError> {
        let p = self.param(name)?;
        param_suite::set_value(&p, param_suite::text_value(bytes))
            .map_err(|_| HostError::Usage(format!("parameter {name} does not take text")))
    }

    pub fn param_value(&self, name: &str) -> Result<ParamValue, HostError> {
        Ok(self.param(name)?.value.lock().clone())
    }

    /// Runs `action` on this instance; OK and ReplyDefault are success.
    fn run(
        &self,
        action: &CStr,
        in_args: Option<&PropertySet>,
        out_args: Option<&PropertySet>,
    ) -> Result<OfxStatus, HostError> {
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(HostError::Usage(format!(
                "{} on an instance of {} that was destroyed",
                action.name(),
                self.id()
            )));
        }
        let seen = self.effect.messages.lock().len();
        let misbehave = self.effect.misbehave.lock().clone();
        let status = self.bundle.call(
            self.plugin,
            action,
            self.effect.handle(),
            in_args,
            out_args,
            &misbehave,
        );
        match status {
            s if s == stat::OK || s == stat::REPLY_DEFAULT => Ok(s),
            s if s == stat::REPLY_YES || s == stat::REPLY_NO => Ok(s),
            s => {
                let messages = self.effect.messages.lock()[seen..].to_vec();
                let mut messages = messages;
                if let Some(p) = self.persistent_message() {
                    if !messages.contains(&p) {
                        messages.push(p);
                    }
                }
                Err(action_error(self.id(), action, s, messages))
            }
        }
    }

    pub fn create_instance(&self) -> Result<(), HostError> {
        let status = self.run(kOfxActionCreateInstance, None, None)?;
        if self.bundle.kind == defaults::HostKind::Resolve && status != stat::OK {
            // Resolve refuses an instance whose CreateInstance is not OK.
            return Err(action_error(
                self.id(),
                kOfxActionCreateInstance,
                status,
                self.messages(),
            ));
        }
        self.created.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn input_clips(&self) -> Vec<Arc<Clip>> {
        self.effect
            .clips
            .lock()
            .iter()
            .filter(|c| !c.is_output())
            .cloned()
            .collect()
    }

    /// GetClipPreferences; applies the answers to the clips.
    pub fn clip_preferences(&self) -> Result<BTreeMap<String, ClipPreference>, HostError> {
        let out = PropertySet::new("GetClipPreferences outArgs");
        let clips = self.effect.clips.lock().clone();
        for clip in &clips {
            let components = clip
                .props
                .string(n(kOfxImageEffectPropComponents), 0)
                .unwrap_or_else(|| n(kOfxImageComponentRGBA).to_string());
            out.define(
                &format!("OfxImageClipPropComponents_{}", clip.name),
                Value::str(&components),
            );
            out.define(
                &format!("OfxImageClipPropDepth_{}", clip.name),
                Value::str(n(kOfxBitDepthFloat)),
            );
            out.define(
                &format!("OfxImageClipPropPAR_{}", clip.name),
                Value::Double(vec![1.0]),
            );
        }
        out.define(
            n(kOfxImageEffectPropFrameRate),
            Value::Double(vec![self.project.fps]),
        );
        out.define(
            n(kOfxImageClipPropFieldOrder),
            Value::str(n(kOfxImageFieldNone)),
        );
        out.define(
            n(kOfxImageEffectPropPreMultiplication),
            Value::str(n(kOfxImagePreMultiplied)),
        );
        out.define(n(kOfxImageClipPropContinuousSamples), Value::Int(vec![0]));
        out.define(n(kOfxImageEffectFrameVarying), Value::Int(vec![0]));
        self.run(kOfxImageEffectActionGetClipPreferences, None, Some(&out))?;
        let mut answers = BTreeMap::new();
        for clip in &clips {
            let components = out
                .string(&format!("OfxImageClipPropComponents_{}", clip.name), 0)
                .filter(|c| Components::from_name(c).is_some())
                .unwrap_or_else(|| n(kOfxImageComponentRGBA).to_string());
            let depth = out
                .string(&format!("OfxImageClipPropDepth_{}", clip.name), 0)
                .filter(|d| Depth::from_name(d).is_some())
                .unwrap_or_else(|| n(kOfxBitDepthFloat).to_string());
            let par = out
                .double(&format!("OfxImageClipPropPAR_{}", clip.name), 0)
                .unwrap_or(1.0);
            clip.props
                .put(n(kOfxImageEffectPropComponents), Value::str(&components));
            clip.props
                .put(n(kOfxImageEffectPropPixelDepth), Value::str(&depth));
            clip.props
                .put(n(kOfxImagePropPixelAspectRatio), Value::Double(vec![par]));
            if clip.is_output() {
                if let Some(premult) = out.string(n(kOfxImageEffectPropPreMultiplication), 0) {
                    clip.props.put(
                        n(kOfxImageEffectPropPreMultiplication),
                        Value::str(&premult),
                    );
                }
            }
            answers.insert(
                clip.name.clone(),
                ClipPreference {
                    components,
                    depth,
                    par,
                },
            );
        }
        Ok(answers)
    }

    /// The range the host assumes when the plugin leaves the time domain to it:
    /// the union of the connected inputs, else the project.
    pub fn default_time_domain(&self) -> (f64, f64) {
        let ranges: Vec<(i32, i32)> = self
            .input_clips()
            .iter()
            .filter_map(|c| c.source.lock().as_ref().map(|s| s.range()))
            .collect();
        if ranges.is_empty() {
            return (0.0, self.project.duration - 1.0);
        }
        let first = ranges.iter().map(|r| r.0).min().unwrap_or(0);
        let last = ranges.iter().map(|r| r.1).max().unwrap_or(0);
        (first as f64, last as f64)
    }

    pub fn time_domain(&self) -> Result<(f64, f64), HostError> {
        let (first, last) = self.default_time_domain();
        let out = PropertySet::new("GetTimeDomain outArgs");
        out.define(
            n(kOfxImageEffectPropFrameRange),
            Value::Double(vec![first, last]),
        );
        let status = self.run(kOfxImageEffectActionGetTimeDomain, None, Some(&out))?;
        if status == stat::OK {
            let range = out
                .doubles(n(kOfxImageEffectPropFrameRange))
                .unwrap_or_default();
            if let [a, b] = range[..] {
                return Ok((a, b));
            }
        }
        Ok((first, last))
    }

    fn sequence_args(&self, what: &str, range: (f64, f64)) -> Arc<PropertySet> {
        let args = PropertySet::new(what);
        args.define(
            n(kOfxImageEffectPropFrameRange),
            Value::Double(vec![range.0, range.1]),
        );
        args.define(n(kOfxImageEffectPropFrameStep), Value::Double(vec![1.0]));
        args.define(n(kOfxPropIsInteractive), Value::Int(vec![0]));
        args.define(
            n(kOfxImageEffectPropRenderScale),
            Value::Double(vec![1.0, 1.0]),
        );
        define_render_status(&args);
        args
    }

    pub fn begin_sequence(&self, range: (f64, f64)) -> Result<(), HostError> {
        let args = self.sequence_args("BeginSequenceRender inArgs", range);
        self.run(kOfxImageEffectActionBeginSequenceRender, Some(&args), None)
            .map(drop)
    }

    pub fn end_sequence(&self, range: (f64, f64)) -> Result<(), HostError> {
        let args = self.sequence_args("EndSequenceRender inArgs", range);
        self.run(kOfxImageEffectActionEndSequenceRender, Some(&args), None)
            .map(drop)
    }

    fn project_rect(&self) -> Rect {
        Rect {
            x1: 0.0,
            y1: 0.0,
            x2: self.project.width,
            y2: self.project.height,
        }
    }

    fn time_args(&self, what: &str, time: f64) -> Arc<PropertySet> {
        let args = PropertySet::new(what);
        args.define(n(kOfxPropTime), Value::Double(vec![time]));
        args.define(
            n(kOfxImageEffectPropRenderScale),
            Value::Double(vec![1.0, 1.0]),
        );
        args
    }

    pub fn region_of_definition(&self, time: f64) -> Result<Rect, HostError> {
        let args = self.time_args("GetRegionOfDefinition inArgs", time);
        let default = self.project_rect();
        let out = PropertySet::new("GetRegionOfDefinition outArgs");
        out.define(
            n(kOfxImageEffectPropRegionOfDefinition),
            Value::Double(vec![default.x1, default.y1, default.x2, default.y2]),
        );
        let status = self.run(
            kOfxImageEffectActionGetRegionOfDefinition,
            Some(&args),
            Some(&out),
        )?;
        let v = out
            .doubles(n(kOfxImageEffectPropRegionOfDefinition))
            .unwrap_or_default();
        match (status, &v[..]) {
            (s, [x1, y1, x2, y2]) if s == stat::OK => Ok(Rect {
                x1: *x1,
                y1: *y1,
                x2: *x2,
                y2: *y2,
            }),
            _ => Ok(default),
        }
    }

    pub fn regions_of_interest(&self, time: f64) -> Result<BTreeMap<String, Rect>, HostError> {
        let args = self.time_args("GetRegionsOfInterest inArgs", time);
        let window = self.project_rect();
        let rect = Value::Double(vec![window.x1, window.y1, window.x2, window.y2]);
        args.define(n(kOfxImageEffectPropRegionOfInterest), rect.clone());
        let out = PropertySet::new("GetRegionsOfInterest outArgs");
        let inputs = self.input_clips();
        for clip in &inputs {
            out.define(&format!("OfxImageClipPropRoI_{}", clip.name), rect.clone());
        }
        self.run(
            kOfxImageEffectActionGetRegionsOfInterest,
            Some(&args),
            Some(&out),
        )?;
        let mut regions = BTreeMap::new();
        for clip in &inputs {
            if let Some([x1, y1, x2, y2]) = out
                .doubles(&format!("OfxImageClipPropRoI_{}", clip.name))
                .as_deref()
            {
                regions.insert(
                    clip.name.clone(),
                    Rect {
                        x1: *x1,
                        y1: *y1,
                        x2: *x2,
                        y2: *y2,
                    },
                );
            }
        }
        Ok(regions)
    }

    /// GetFramesNeeded: the (min, max) ranges each input clip will be asked for.
    pub fn frames_needed(&self, time: f64) -> Result<BTreeMap<String, Vec<(f64, f64)>>, HostError> {
        let args = self.time_args("GetFramesNeeded inArgs", time);
        let out = PropertySet::new("GetFramesNeeded outArgs");
        let inputs = self.input_clips();
        for clip in &inputs {
            out.define(
                &format!("OfxImageClipPropFrameRange_{}", clip.name),
                Value::Double(vec![time, time]),
            );
        }
        self.run(
            kOfxImageEffectActionGetFramesNeeded,
            Some(&args),
            Some(&out),
        )?;
        let mut needed = BTreeMap::new();
        for clip in &inputs {
            let v = out
                .doubles(&format!("OfxImageClipPropFrameRange_{}", clip.name))
                .unwrap_or_default();
            needed.insert(
                clip.name.clone(),
                v.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
            );
        }
        Ok(needed)
    }

    fn render_args(&self, what: &str, time: f64) -> Arc<PropertySet> {
        self.render_args_as(what, time, RenderKind::default())
    }

    fn render_args_as(&self, what: &str, time: f64, kind: RenderKind) -> Arc<PropertySet> {
        let args = self.time_args(what, time);
        let w = self.project_rect();
        args.define(
            n(kOfxImageEffectPropFieldToRender),
            Value::str(n(kOfxImageFieldNone)),
        );
        args.define(
            n(kOfxImageEffectPropRenderWindow),
            Value::Int(vec![w.x1 as i32, w.y1 as i32, w.x2 as i32, w.y2 as i32]),
        );
        define_render_status(&args);
        // An interactive host's renders answer the user (the viewer); a
        // background renderer's do not.
        if !self.bundle.is_background() {
            args.put(
                n(kOfxImageEffectPropInteractiveRenderStatus),
                Value::Int(vec![1]),
            );
        }
        if kind.draft {
            args.put(
                n(kOfxImageEffectPropRenderQualityDraft),
                Value::Int(vec![1]),
            );
        }
        args
    }

    /// IsIdentity: `Some((clip, time))` when the plugin says the output is
    /// that clip at that time.
    pub fn is_identity(&self, time: f64) -> Result<Option<(String, f64)>, HostError> {
        let args = self.render_args("IsIdentity inArgs", time);
        let out = PropertySet::new("IsIdentity outArgs");
        out.define(n(kOfxPropName), Value::str(""));
        out.define(n(kOfxPropTime), Value::Double(vec![time]));
        let status = self.run(kOfxImageEffectActionIsIdentity, Some(&args), Some(&out))?;
        if status != stat::OK && status != stat::REPLY_YES {
            return Ok(None);
        }
        let clip = out.string(n(kOfxPropName), 0).unwrap_or_default();
        let at = out.double(n(kOfxPropTime), 0).unwrap_or(time);
        Ok(Some((clip, at)))
    }

    /// The Render action into a fresh output buffer.
    pub fn render(&self, time: f64) -> Result<Picture, HostError> {
        self.render_as(time, RenderKind::default())
    }

    /// The Render action for a draft or thumbnail render.
    pub fn render_as(&self, time: f64, kind: RenderKind) -> Result<Picture, HostError> {
        let clips = self.effect.clips.lock().clone();
        if kind.thumbnail {
            for clip in &clips {
                clip.props.put(RESOLVE_THUMBNAIL, Value::Int(vec![1]));
            }
        }
        let result = self.render_into(time, kind);
        if kind.thumbnail {
            for clip in &clips {
                clip.props.remove(RESOLVE_THUMBNAIL);
            }
        }
        result
    }

    fn render_into(&self, time: f64, kind: RenderKind) -> Result<Picture, HostError> {
        let output = self
            .clip(n(kOfxImageEffectOutputClipName))
            .ok_or_else(|| HostError::Plugin(format!("{} defined no Output clip", self.id())))?;
        let depth = output
            .props
            .string(n(kOfxImageEffectPropPixelDepth), 0)
            .and_then(|d| Depth::from_name(&d))
            .unwrap_or(Depth::Float);
        let components = output
            .props
            .string(n(kOfxImageEffectPropComponents), 0)
            .and_then(|c| Components::from_name(&c))
            .unwrap_or(Components::Rgba);
        let negative = self.effect.misbehave.lock().negative_row_bytes;
        let buffer = Arc::new(Buffer::new(
            self.project.width as u32,
            self.project.height as u32,
            depth,
            components,
            negative,
        ));
        output.outputs.lock().insert(time.to_bits(), buffer.clone());
        let args = self.render_args_as("Render inArgs", time, kind);
        let result = self.run(kOfxImageEffectActionRender, Some(&args), None);
        output.outputs.lock().remove(&time.to_bits());
        result?;
        Ok(buffer.to_picture())
    }

    /// One frame the way Natron asks for it: RoD, RoI, frames needed,
    /// identity (then the host copies the source), else Render.
    pub fn render_frame(&self, time: f64) -> Result<Picture, HostError> {
        self.region_of_definition(time)?;
        self.regions_of_interest(time)?;
        self.frames_needed(time)?;
        if let Some((clip, at)) = self.is_identity(time)? {
            let source = self
                .clip(&clip)
                .and_then(|c| c.source.lock().clone())
                .ok_or_else(|| {
                    HostError::Plugin(format!(
                        "{} said frame {time} is identity to clip '{clip}', which has no frames",
                        self.id()
                    ))
                })?;
            let frame = source.frame(at.round() as i32)?;
            return frame.map(|p| (*p).clone()).ok_or_else(|| {
                HostError::Plugin(format!(
                    "{} said frame {time} is clip '{clip}' at {at}, outside its frames",
                    self.id()
                ))
            });
        }
        self.render(time)
    }

    /// Frames `first..=last` in order, with Begin/EndSequenceRender around them.
    pub fn render_sequence(
        &self,
        first: i32,
        last: i32,
        mut each: impl FnMut(i32, Picture) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        let range = (first as f64, last as f64);
        self.begin_sequence(range)?;
        let mut result = Ok(());
        for frame in first..=last {
            result = self.render_frame(frame as f64).and_then(|p| each(frame, p));
            if result.is_err() {
                break;
            }
        }
        // End the sequence even after a failure, as hosts do.
        let end = self.end_sequence(range);
        result.and(end)
    }

    /// InstanceChanged for a parameter the user edited.
    pub fn instance_changed(&self, param: &str, time: f64) -> Result<(), HostError> {
        let args = PropertySet::new("InstanceChanged inArgs");
        args.define(n(kOfxPropType), Value::str(n(kOfxTypeParameter)));
        args.define(n(kOfxPropName), Value::str(param));
        args.define(n(kOfxPropChangeReason), Value::str(n(kOfxChangeUserEdited)));
        args.define(n(kOfxPropTime), Value::Double(vec![time]));
        args.define(
            n(kOfxImageEffectPropRenderScale),
            Value::Double(vec![1.0, 1.0]),
        );
        self.run(kOfxActionBeginInstanceChanged, Some(&args), None)?;
        let changed = self.run(kOfxActionInstanceChanged, Some(&args), None);
        self.run(kOfxActionEndInstanceChanged, Some(&args), None)?;
        changed.map(drop)
    }

    /// PurgeCaches: the plugin should free what it keeps in memory.
    pub fn purge_caches(&self) -> Result<(), HostError> {
        self.run(kOfxActionPurgeCaches, None, None).map(drop)
    }

    /// The user presses a push button: InstanceChanged for it, as edited by
    /// the user.
    pub fn press(&self, button: &str, time: f64) -> Result<(), HostError> {
        self.instance_changed(button, time)
    }

    /// How many times the plugin asked for a new render by setting a
    /// parameter that evaluates on change.
    pub fn render_requests(&self) -> usize {
        self.effect
            .params
            .params
            .lock()
            .iter()
            .map(|p| p.evaluations.load(Ordering::SeqCst))
            .sum()
    }

    /// DestroyInstance. Later actions on this instance are refused by the host.
    pub fn destroy(&self) -> Result<(), HostError> {
        let result = self.run(kOfxActionDestroyInstance, None, None);
        self.destroyed.store(true, Ordering::SeqCst);
        let status = result?;
        if self.bundle.kind == defaults::HostKind::Resolve && status != stat::OK {
            return Err(action_error(
                self.id(),
                kOfxActionDestroyInstance,
                status,
                Vec::new(),
            ));
        }
        Ok(())
    }

    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::SeqCst)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.created.load(Ordering::SeqCst) && !self.is_destroyed() {
            if let Err(e) = self.destroy() {
                log::warn!("{e}");
            }
        }
    }
}

/// What a batch host says of every render and sequence: not sequential,
/// not interactive, full quality.
fn define_render_status(args: &PropertySet) {
    for name in [
        kOfxImageEffectPropSequentialRenderStatus,
        kOfxImageEffectPropInteractiveRenderStatus,
        kOfxImageEffectPropRenderQualityDraft,
    ] {
        args.define(n(name), Value::Int(vec![0]));
    }
}

/// RGBA when the clip takes it, else what it takes.
fn preferred_components(supported: &[String]) -> &'static str {
    for c in [Components::Rgba, Components::Rgb, Components::Alpha] {
        if supported.iter().any(|s| s == c.name()) {
            return c.name();
        }
    }
    Components::Rgba.name()
}

/// Connects an input clip to its frames and tells the plugin their range.
pub fn connect(clip: &Clip, source: Arc<dyn FrameSource>) {
    let (first, last) = source.range();
    let range = Value::Double(vec![first as f64, last as f64]);
    clip.props
        .put(n(kOfxImageClipPropConnected), Value::Int(vec![1]));
    clip.props
        .put(n(kOfxImageEffectPropFrameRange), range.clone());
    clip.props
        .put(n(kOfxImageEffectPropUnmappedFrameRange), range);
    *clip.source.lock() = Some(source);
}
