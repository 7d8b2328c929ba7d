//! What a bundle's plugins declare, for `genfx list` and tests.

use crate::abi::{OfxName, *};
use crate::bundle::Bundle;
use crate::objects::Effect;
use crate::props::Value;
use crate::values;
use crate::HostError;
use serde_json::json;
use std::collections::BTreeMap;

fn n(c: &std::ffi::CStr) -> &str {
    c.name()
}

#[derive(Clone, Debug)]
pub struct ClipInfo {
    pub name: String,
    pub label: String,
    pub optional: bool,
    pub temporal: bool,
    pub components: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ParamInfo {
    pub name: String,
    pub type_name: String,
    pub label: String,
    pub hint: String,
    pub default: Option<Value>,
    pub min: Option<Value>,
    pub max: Option<Value>,
    pub display_min: Option<Value>,
    pub display_max: Option<Value>,
    pub options: Vec<String>,
    pub page: Option<String>,
    /// A string parameter's mode (`OfxParamStringIsFilePath`, ...).
    pub string_mode: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ContextInfo {
    pub context: String,
    pub clips: Vec<ClipInfo>,
    pub params: Vec<ParamInfo>,
}

#[derive(Clone, Debug)]
pub struct PluginListing {
    pub id: String,
    pub version: (u32, u32),
    pub label: String,
    pub grouping: String,
    pub description: String,
    pub contexts: Vec<ContextInfo>,
    pub pixel_depths: Vec<String>,
    pub temporal: bool,
    pub thread_safety: String,
}

/// Short context names ("General") from full ones.
pub fn short_context(context: &str) -> &str {
    context
        .strip_prefix("OfxImageEffectContext")
        .unwrap_or(context)
}

/// The full context name from "general", "General" or the full name.
pub fn full_context(name: &str) -> String {
    if name.starts_with("OfxImageEffectContext") {
        return name.to_string();
    }
    let mut chars = name.chars();
    let capital: String = chars
        .next()
        .map(|c| {
            c.to_uppercase()
                .chain(chars.flat_map(char::to_lowercase))
                .collect()
        })
        .unwrap_or_default();
    format!("OfxImageEffectContext{capital}")
}

fn clips_of(effect: &Effect) -> Vec<ClipInfo> {
    effect
        .clips
        .lock()
        .iter()
        .map(|c| ClipInfo {
            name: c.name.clone(),
            label: c.props.string(n(kOfxPropLabel), 0).unwrap_or_default(),
            optional: c.props.int(n(kOfxImageClipPropOptional), 0) == Some(1),
            temporal: c.props.int(n(kOfxImageEffectPropTemporalClipAccess), 0) == Some(1),
            components: c
                .props
                .strings(n(kOfxImageEffectPropSupportedComponents))
                .unwrap_or_default(),
        })
        .collect()
}

fn params_of(effect: &Effect) -> Vec<ParamInfo> {
    let params = effect.params.params.lock().clone();
    let mut page_of = BTreeMap::new();
    for p in &params {
        if p.type_name == n(kOfxParamTypePage) {
            let label = p
                .props
                .string(n(kOfxPropLabel), 0)
                .unwrap_or(p.name.clone());
            for child in p
                .props
                .strings(n(kOfxParamPropPageChild))
                .unwrap_or_default()
            {
                page_of.entry(child).or_insert(label.clone());
            }
        }
    }
    params
        .iter()
        .filter(|p| p.type_name != n(kOfxParamTypePage))
        .map(|p| {
            let get = |name: &std::ffi::CStr| p.props.get(n(name));
            ParamInfo {
                name: p.name.clone(),
                type_name: p.type_name.clone(),
                label: p.props.string(n(kOfxPropLabel), 0).unwrap_or_default(),
                hint: p.props.string(n(kOfxParamPropHint), 0).unwrap_or_default(),
                default: get(kOfxParamPropDefault),
                min: get(kOfxParamPropMin),
                max: get(kOfxParamPropMax),
                display_min: get(kOfxParamPropDisplayMin),
                display_max: get(kOfxParamPropDisplayMax),
                options: p
                    .props
                    .strings(n(kOfxParamPropChoiceOption))
                    .unwrap_or_default(),
                page: page_of.get(&p.name).cloned(),
                string_mode: p.props.string(n(kOfxParamPropStringMode), 0),
            }
        })
        .collect()
}

/// Describes every plugin of the bundle in every context it supports.
pub fn list(bundle: &Bundle) -> Result<Vec<PluginListing>, HostError> {
    let mut out = Vec::new();
    for (index, info) in bundle.plugins.iter().enumerate() {
        let base = bundle.describe(index)?;
        let props = &base.props;
        let contexts = props
            .strings(n(kOfxImageEffectPropSupportedContexts))
            .unwrap_or_default();
        let mut described = Vec::new();
        for context in &contexts {
            let d = bundle.describe_in_context(index, &base, context)?;
            described.push(ContextInfo {
                context: context.clone(),
                clips: clips_of(&d),
                params: params_of(&d),
            });
        }
        out.push(PluginListing {
            id: info.id.clone(),
            version: info.version,
            label: props.string(n(kOfxPropLabel), 0).unwrap_or_default(),
            grouping: props
                .string(n(kOfxImageEffectPluginPropGrouping), 0)
                .unwrap_or_default(),
            description: props
                .string(n(kOfxPropPluginDescription), 0)
                .unwrap_or_default(),
            contexts: described,
            pixel_depths: props
                .strings(n(kOfxImageEffectPropSupportedPixelDepths))
                .unwrap_or_default(),
            temporal: props.int(n(kOfxImageEffectPropTemporalClipAccess), 0) == Some(1),
            thread_safety: props
                .string(n(kOfxImageEffectPluginRenderThreadSafety), 0)
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

fn opt(v: &Option<Value>) -> serde_json::Value {
    v.as_ref().map_or(serde_json::Value::Null, values::json)
}

pub fn to_json(listing: &[PluginListing]) -> serde_json::Value {
    let plugins: Vec<_> = listing
        .iter()
        .map(|p| {
            let contexts: Vec<_> = p
                .contexts
                .iter()
                .map(|c| {
                    json!({
                        "context": short_context(&c.context),
                        "clips": c.clips.iter().map(|clip| json!({
                            "name": clip.name,
                            "label": clip.label,
                            "optional": clip.optional,
                            "temporal": clip.temporal,
                            "components": clip.components,
                        })).collect::<Vec<_>>(),
                        "params": c.params.iter().map(|q| json!({
                            "name": q.name,
                            "type": q.type_name.strip_prefix("OfxParamType").unwrap_or(&q.type_name),
                            "label": q.label,
                            "hint": q.hint,
                            "default": opt(&q.default),
                            "min": opt(&q.min),
                            "max": opt(&q.max),
                            "display_min": opt(&q.display_min),
                            "display_max": opt(&q.display_max),
                            "options": q.options,
                            "page": q.page,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "id": p.id,
                "version": format!("{}.{}", p.version.0, p.version.1),
                "label": p.label,
                "grouping": p.grouping,
                "description": p.description,
                "pixel_depths": p.pixel_depths,
                "temporal_clip_access": p.temporal,
                "render_thread_safety": p.thread_safety,
                "contexts": contexts,
            })
        })
        .collect();
    json!({ "plugins": plugins })
}

pub fn to_text(listing: &[PluginListing]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for p in listing {
        let _ = writeln!(
            s,
            "{} {}.{}  \"{}\"  group: {}",
            p.id, p.version.0, p.version.1, p.label, p.grouping
        );
        let contexts: Vec<&str> = p
            .contexts
            .iter()
            .map(|c| short_context(&c.context))
            .collect();
        let _ = writeln!(s, "  contexts: {}", contexts.join(", "));
        for c in &p.contexts {
            let _ = writeln!(s, "  [{}]", short_context(&c.context));
            for clip in &c.clips {
                let mut flags = Vec::new();
                if clip.optional {
                    flags.push("optional");
                }
                if clip.temporal {
                    flags.push("temporal");
                }
                let _ = writeln!(
                    s,
                    "    clip {}{}",
                    clip.name,
                    if flags.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", flags.join(", "))
                    }
                );
            }
            for q in &c.params {
                let ty = q
                    .type_name
                    .strip_prefix("OfxParamType")
                    .unwrap_or(&q.type_name);
                let mut line = format!("    param {} : {ty}  \"{}\"", q.name, q.label);
                if let Some(d) = &q.default {
                    let _ = write!(line, "  default {}", values::text(d));
                }
                if let (Some(a), Some(b)) = (&q.min, &q.max) {
                    let _ = write!(line, "  range [{}..{}]", values::text(a), values::text(b));
                }
                if let (Some(a), Some(b)) = (&q.display_min, &q.display_max) {
                    let _ = write!(line, "  display [{}..{}]", values::text(a), values::text(b));
                }
                if !q.options.is_empty() {
                    let _ = write!(line, "  options {}", q.options.join(" | "));
                }
                if let Some(page) = &q.page {
                    let _ = write!(line, "  page {page}");
                }
                let _ = writeln!(s, "{line}");
            }
        }
    }
    s
}
