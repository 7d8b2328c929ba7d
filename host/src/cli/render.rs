//! `genfx render`.

use super::list::host_kind;
use super::{usage, Args, Failure};
use crate::credentials;
use crate::describe::full_context;
use crate::files::{self, Format};
use crate::objects::ParamValue;
use crate::source::{FolderSource, FrameSource};
use crate::{Bundle, Instance, InstanceSpec, Project};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// "A-B" or "A" as an inclusive range.
pub fn frame_range(text: &str) -> Result<(i32, i32), String> {
    let bad = || format!("--frames: '{text}' is not A-B or A");
    // A leading '-' belongs to the first number.
    let split = text[1.min(text.len())..].find('-').map(|i| i + 1);
    let (a, b) = match split {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, text),
    };
    let a: i32 = a.trim().parse().map_err(|_| bad())?;
    let b: i32 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(format!("--frames: {b} is before {a}"));
    }
    Ok((a, b))
}

pub fn output_format(args: &Args) -> Result<Format, Failure> {
    match args.one("format").unwrap_or("png") {
        "png" => Ok(Format::Png),
        "exr" => Ok(Format::Exr),
        other => Err(usage(format!("--format: '{other}' (png or exr)"))),
    }
}

pub fn frame_path(dir: &Path, frame: i32, format: Format) -> PathBuf {
    dir.join(format!("frame_{frame:05}.{}", format.extension()))
}

/// Whether `plugin` is one of GenFX's effects, whose rendered frames
/// are generated (another plugin's output is not ours to credit).
fn generated_by_genfx(plugin: &str) -> bool {
    plugin.starts_with("org.genfx.")
}

/// The effect's Model setting, for the manifest.
fn model_setting(instance: &Instance) -> PathBuf {
    match instance.param_value("model") {
        Ok(ParamValue::Text(text)) => PathBuf::from(text.to_string_lossy().into_owned()),
        _ => PathBuf::new(),
    }
}

fn size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or(format!("--size: '{text}' is not WxH"))?;
    match (w.parse(), h.parse()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 && w <= 16384 && h <= 16384 => Ok((w, h)),
        _ => Err(format!("--size: '{text}' is not WxH")),
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    args.check(&[
        "plugin",
        "context",
        "frames",
        "set",
        "source",
        "source-first",
        "out",
        "format",
        "host",
        "size",
        "fps",
        "text-encoder",
    ])
    .map_err(usage)?;
    let [bundle_path] = &args.positional[..] else {
        return Err(usage("render takes one BUNDLE"));
    };
    let plugin = args
        .one("plugin")
        .ok_or(usage("render needs --plugin ID"))?;
    let context = full_context(
        args.one("context")
            .ok_or(usage("render needs --context CONTEXT"))?,
    );
    let (first, last) = frame_range(
        args.one("frames")
            .ok_or(usage("render needs --frames A-B"))?,
    )
    .map_err(usage)?;
    let out = PathBuf::from(args.one("out").ok_or(usage("render needs --out DIR"))?);
    let format = output_format(&args)?;
    let fps: f64 = args.parsed("fps", 24.0).map_err(usage)?;
    let source_first: i32 = args.parsed("source-first", 0).map_err(usage)?;

    let bundle = Bundle::open(Path::new(bundle_path), host_kind(&args)?)?;
    let index = bundle.plugin_index(plugin)?;
    let base = bundle.describe(index)?;
    let descriptor = bundle.describe_in_context(index, &base, &context)?;
    let inputs: Vec<String> = descriptor
        .clips
        .lock()
        .iter()
        .filter(|c| !c.is_output())
        .map(|c| c.name.clone())
        .collect();

    let mut sources: BTreeMap<String, Arc<dyn FrameSource>> = BTreeMap::new();
    for spec in args.all("source") {
        let (clip, dir) = match spec.split_once('=') {
            Some((clip, dir)) => (clip.to_string(), dir),
            None => match &inputs[..] {
                [only] => (only.clone(), spec.as_str()),
                _ => {
                    return Err(usage(format!(
                        "--source {spec}: say which clip (CLIP=DIR); this context has: {}",
                        inputs.join(", ")
                    )))
                }
            },
        };
        let source = FolderSource::open(Path::new(dir), source_first)?;
        sources.insert(clip, Arc::new(source));
    }
    let (width, height) = match args.one("size") {
        Some(s) => size(s).map_err(usage)?,
        None => sources
            .values()
            .next()
            .map(|s| s.size())
            .unwrap_or((768, 512)),
    };
    let mut values = args
        .all("set")
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| usage(format!("--set {s}: expected NAME=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // --text-encoder is the plugin's Text encoder parameter, by its name.
    if let Some(te) = args.one("text-encoder") {
        values.push(("textEncoder".to_string(), te.to_string()));
    }
    let project = Project {
        width: width as f64,
        height: height as f64,
        fps,
        duration: (last - first + 1) as f64,
    };
    let instance = Instance::build(
        &bundle,
        index,
        &descriptor,
        &InstanceSpec {
            plugin: plugin.to_string(),
            context: context.clone(),
            project,
            sources,
            values,
        },
    )?;
    instance.create_instance()?;
    instance.clip_preferences()?;
    let domain = instance.time_domain()?;
    eprintln!(
        "genfx: {plugin} in {} context, time domain {}..{}, rendering {first}..{last} at {width}x{height}",
        crate::describe::short_context(&context),
        domain.0,
        domain.1
    );
    let signer = generated_by_genfx(plugin)
        .then(|| credentials::signer_for(&model_setting(&instance)))
        .transpose()
        .map_err(Failure::Failed)?;
    std::fs::create_dir_all(&out)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", out.display())))?;
    files::sweep_leftovers(&out);
    let mut uncredited = Vec::new();
    let result = instance.render_sequence(first, last, |frame, picture| {
        let path = frame_path(&out, frame, format);
        // A frame the effect passes through from a source clip (identity)
        // is real footage: it gets no "made by a trained model" manifest.
        let credit = match &signer {
            Some(s) if instance.is_identity(frame as f64)?.is_none() => Some(s),
            Some(_) => {
                uncredited.push(frame);
                None
            }
            None => None,
        };
        files::write_signed(&path, &picture, credit)?;
        println!("frame {frame} -> {}", path.display());
        Ok(())
    });
    if !uncredited.is_empty() {
        eprintln!(
            "genfx: {} frame{} passed through from the source without change and carr{} no Content Credentials: {uncredited:?}",
            uncredited.len(),
            if uncredited.len() == 1 { "" } else { "s" },
            if uncredited.len() == 1 { "ies" } else { "y" },
        );
    }
    let destroyed = instance.destroy();
    result?;
    destroyed?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(frame_range("1-5"), Ok((1, 5)));
        assert_eq!(frame_range("7"), Ok((7, 7)));
        assert_eq!(frame_range("-3-2"), Ok((-3, 2)));
        assert!(frame_range("5-1").is_err());
        assert!(frame_range("x").is_err());
    }
}
