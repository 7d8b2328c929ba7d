//! Building a shot request from what the host gives: the picture geometry,
//! the real frames of each input at the working size, the engine request
//! and its key.

use crate::actions::{project_pixel_aspect, project_rect, Ctx};
use crate::colour::{self, Encoding};
use crate::effects::{InputRole, JobKind, Layout, OUTPUT};
use crate::framing::{self, Edge, Plane};
use crate::geometry::RectI;
use crate::ofx::{Image, OfxError};
use crate::pixels::read_row;
use crate::problem::Problem;
use crate::settings::Settings;
use crate::shot::{KeyHasher, ShotKey};
use genfx::engine::{self, Clip, Frame, Job, ShotRequest};
use ofx_sys as sys;

/// The picture geometry shared by every frame of a shot.
pub(crate) struct Geometry {
    /// The project rectangle in pixels at the render scale.
    pub canvas: RectI,
    pub pixel_aspect: f64,
    pub working: (u32, u32),
    pub fit: framing::Fit,
    pub encoding: Encoding,
}

pub(crate) fn geometry(ctx: &Ctx, settings: &Settings, scale: [f64; 2]) -> Geometry {
    let pixel_aspect = project_pixel_aspect(&ctx.effect);
    let rect = project_rect(&ctx.effect);
    let canvas = rect.to_pixels((scale[0], scale[1]), pixel_aspect);
    // The working size follows the project's full-resolution display aspect,
    // so proxy renders ask for the same shot.
    let working = framing::working_size(rect.x2 - rect.x1, rect.y2 - rect.y1, settings.resolution);
    let fit = framing::fit(
        (canvas.width(), canvas.height()),
        pixel_aspect,
        working,
        settings.framing,
    );
    Geometry {
        canvas,
        pixel_aspect,
        working,
        fit,
        encoding: colour::resolve(settings.colour, &ctx.effect.host.name),
    }
}

/// A host image placed on the canvas and converted to a model frame.
pub(crate) fn to_model_frame(
    image: &Image,
    g: &Geometry,
    framing: framing::Framing,
) -> Result<Frame, Problem> {
    if !image.layout.supported() {
        return Err(OfxError::ImageFormat(format!("input of {:?}", image.layout)).into());
    }
    let (cw, ch) = (g.canvas.width(), g.canvas.height());
    let mut plane = Plane {
        width: cw,
        height: ch,
        channels: 3,
        data: vec![0.0; cw * ch * 3],
    };
    let mut rgba = vec![0.0f32; image.bounds.width() * 4];
    let span = RectI {
        x1: g.canvas.x1,
        y1: g.canvas.y1,
        x2: g.canvas.x2,
        y2: g.canvas.y2,
    }
    .intersect(&image.bounds);
    for y in span.y1..span.y2 {
        let Some(row) = image.row(y) else { continue };
        read_row(row, image.layout, image.premult, &mut rgba);
        let top = (g.canvas.y2 - 1 - y) as usize;
        for x in span.x1..span.x2 {
            let s = (x - image.bounds.x1) as usize * 4;
            let d = (top * cw + (x - g.canvas.x1) as usize) * 3;
            for c in 0..3 {
                plane.data[d + c] = g.encoding.decode(rgba[s + c]);
            }
        }
    }
    let (ax, ay) = g.fit.canvas_to_working();
    let edge = if framing == framing::Framing::Pad {
        Edge::Zero
    } else {
        Edge::Clamp
    };
    let mut work = framing::resample(
        &plane,
        g.working.0 as usize,
        g.working.1 as usize,
        ax,
        ay,
        edge,
    );
    for v in &mut work.data {
        *v = g.encoding.to_model(*v).clamp(0.0, 1.0);
    }
    Frame::new(g.working.0, g.working.1, work.data)
        .map_err(|e| Problem::Quiet(e.to_string(), sys::kOfxStatFailed))
}

/// The real frames each input gives, at the working size.
pub(crate) struct Gathered {
    pub inputs: Vec<(InputRole, Clip)>,
    /// What the user should know: an input shorter than Context frames.
    pub notes: Vec<String>,
}

pub(crate) fn gather(
    ctx: &Ctx,
    layout: &Layout,
    g: &Geometry,
    s: &Settings,
) -> Result<Gathered, Problem> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for span in &layout.inputs {
        let clip = ctx.effect.clip(span.clip)?;
        let mut frames = Vec::new();
        for &t in &span.times {
            match clip.image(t as f64)? {
                Some(image) => frames.push(to_model_frame(&image, g, s.framing)?),
                None => log::warn!(
                    "{}: no {} frame at {t}; conditioning on fewer frames",
                    ctx.def.label(),
                    span.clip
                ),
            }
        }
        if frames.is_empty() && span.role != InputRole::Reference {
            return Err(Problem::Tell(
                format!(
                    "GenFX: the {} input gave no frames at {:?}",
                    span.clip, span.times
                ),
                sys::kOfxStatFailed,
            ));
        }
        // A still as Reference is the usual case, not a short clip.
        let asked = s.context_frames as usize;
        if span.role != InputRole::Reference && frames.len() < asked {
            notes.push(format!(
                "the {} input gives {} real frame(s) at the seam; Context frames asks for {asked}",
                span.clip,
                frames.len()
            ));
        }
        if !frames.is_empty() {
            out.push((span.role, Clip { frames }));
        }
    }
    Ok(Gathered { inputs: out, notes })
}

pub(crate) fn request(
    ctx: &Ctx,
    layout: &Layout,
    s: &Settings,
    g: &Geometry,
    inputs: Vec<(InputRole, Clip)>,
) -> Result<ShotRequest, Problem> {
    let take = |role: InputRole, inputs: &mut Vec<(InputRole, Clip)>| {
        inputs
            .iter()
            .position(|(r, _)| *r == role)
            .map(|i| inputs.remove(i).1)
    };
    let mut inputs = inputs;
    let job = match layout.job {
        JobKind::Generate => Job::Generate {
            reference: take(InputRole::Reference, &mut inputs),
        },
        JobKind::ExtendForward | JobKind::ExtendBackward => {
            let context = take(InputRole::Context, &mut inputs).unwrap_or_default();
            if layout.job == JobKind::ExtendForward {
                Job::ExtendForward { context }
            } else {
                Job::ExtendBackward { context }
            }
        }
        JobKind::Fill => Job::Fill {
            before: take(InputRole::Before, &mut inputs).unwrap_or_default(),
            after: take(InputRole::After, &mut inputs).unwrap_or_default(),
        },
    };
    if s.prompt.trim().is_empty() && matches!(job, Job::Generate { reference: None }) {
        return Err(Problem::Tell(
            "GenFX Generate: write a prompt (or connect a Reference input).".into(),
            sys::kOfxStatFailed,
        ));
    }
    let frame_rate = ctx
        .effect
        .clip(OUTPUT)
        .ok()
        .and_then(|c| c.frame_rate())
        .or_else(|| {
            ctx.effect
                .props()
                .ok()
                .and_then(|p| p.get_double(sys::kOfxImageEffectPropFrameRate, 0).ok())
        })
        .filter(|r| r.is_finite() && *r > 0.0)
        .unwrap_or(24.0);
    Ok(ShotRequest {
        model: s.model.clone(),
        text_encoder: s.text_encoder.clone(),
        prompt: s.prompt.clone(),
        negative_prompt: s.negative_prompt.clone(),
        seed: s.seed,
        quality: s.quality,
        guidance: s.guidance,
        width: g.working.0,
        height: g.working.1,
        num_frames: layout.generated.map(|(_, n)| n).unwrap_or(1),
        frame_rate,
        strength: s.strength,
        job,
        windows: s.windows,
    })
}

/// The in-memory key of a request: every field, every input pixel, and the
/// model's identity — a fingerprint of its weight and config files (see
/// `genfx::pipeline::model_identity`), so replaced weights or a new variant
/// file in the same folder make a new key. The fingerprint is recomputed
/// only when a file's stat changes, so this stays cheap per render call.
pub fn shot_key(r: &ShotRequest) -> ShotKey {
    let mut h = KeyHasher::default();
    // v3: the model is named by its files' fingerprint.
    h.str("genfx-shot-v3").str(&r.model.to_string_lossy());
    // A model that cannot be named keys on its path alone; its job fails
    // or runs uncached and says why.
    let identity = super::disk::model_identity(&r.model).ok().flatten();
    h.str(identity.as_deref().unwrap_or("")).str(
        &r.text_encoder
            .as_deref()
            .map_or(String::new(), |t| t.to_string_lossy().into_owned()),
    );
    // A latent upsampler added or replaced changes what the distilled
    // presets make (two passes instead of one); none leaves the key as it was.
    if let Some(up) = genfx::pipeline::two_pass::find_for_spec(&r.model, &r.model) {
        let file = if up.is_dir() {
            up.join("config.json")
        } else {
            up.clone()
        };
        let modified = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        h.str(&up.to_string_lossy()).u64(modified);
    }
    h.str(&r.prompt).str(&r.negative_prompt).u64(r.seed);
    match r.quality {
        engine::Quality::Draft => h.u64(1),
        engine::Quality::Standard => h.u64(2),
        engine::Quality::High => h.u64(3),
        engine::Quality::Steps(n) => h.u64(0x100 + n as u64),
    };
    h.f64(r.guidance as f64)
        .u64(r.width as u64)
        .u64(r.height as u64)
        .u64(r.num_frames as u64);
    h.f64(r.frame_rate).f64(r.strength as f64);
    // Set window settings change a long shot; automatic ones leave the key
    // as it was.
    if !r.windows.is_automatic() {
        let w = r.windows;
        h.str("windows")
            .u64(w.length.map_or(0, u64::from))
            .u64(w.overlap.map_or(0, u64::from))
            .f64(w.drift.map_or(-1.0, f64::from));
    }
    let clips: Vec<(u64, &Clip)> = match &r.job {
        Job::Generate { reference } => reference.iter().map(|c| (10, c)).collect(),
        Job::ExtendForward { context } => vec![(20, context)],
        Job::ExtendBackward { context } => vec![(30, context)],
        Job::Fill { before, after } => vec![(40, before), (41, after)],
    };
    h.u64(match &r.job {
        Job::Generate { .. } => 1,
        Job::ExtendForward { .. } => 2,
        Job::ExtendBackward { .. } => 3,
        Job::Fill { .. } => 4,
    });
    for (tag, clip) in clips {
        h.u64(tag).u64(clip.frames.len() as u64);
        for f in &clip.frames {
            h.u64(f.width as u64).u64(f.height as u64).f32s(&f.rgb);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn request(job: Job) -> ShotRequest {
        ShotRequest {
            model: PathBuf::from("/nonexistent/model"),
            text_encoder: None,
            prompt: "a boat".into(),
            negative_prompt: String::new(),
            seed: 7,
            quality: engine::Quality::Standard,
            guidance: 3.0,
            width: 64,
            height: 32,
            num_frames: 9,
            frame_rate: 24.0,
            strength: 1.0,
            job,
            windows: Default::default(),
        }
    }

    fn clip(v: f32) -> Clip {
        Clip {
            frames: vec![Frame::new(2, 1, vec![v; 6]).unwrap()],
        }
    }

    #[test]
    fn the_key_covers_every_field_and_input_pixel() {
        let base = request(Job::ExtendForward { context: clip(0.5) });
        assert_eq!(shot_key(&base), shot_key(&base.clone()));
        let variants = [
            ShotRequest {
                seed: 8,
                ..base.clone()
            },
            ShotRequest {
                prompt: "a ship".into(),
                ..base.clone()
            },
            ShotRequest {
                quality: engine::Quality::Steps(2),
                ..base.clone()
            },
            ShotRequest {
                guidance: 3.5,
                ..base.clone()
            },
            ShotRequest {
                width: 96,
                ..base.clone()
            },
            ShotRequest {
                num_frames: 17,
                ..base.clone()
            },
            ShotRequest {
                frame_rate: 25.0,
                ..base.clone()
            },
            ShotRequest {
                strength: 0.9,
                ..base.clone()
            },
            ShotRequest {
                windows: engine::WindowSettings {
                    length: Some(33),
                    ..Default::default()
                },
                ..base.clone()
            },
            ShotRequest {
                windows: engine::WindowSettings {
                    overlap: Some(9),
                    ..Default::default()
                },
                ..base.clone()
            },
            ShotRequest {
                windows: engine::WindowSettings {
                    drift: Some(0.0),
                    ..Default::default()
                },
                ..base.clone()
            },
            ShotRequest {
                model: PathBuf::from("/other"),
                ..base.clone()
            },
            ShotRequest {
                text_encoder: Some(PathBuf::from("/t5xxl_fp16.safetensors")),
                ..base.clone()
            },
            ShotRequest {
                job: Job::ExtendBackward { context: clip(0.5) },
                ..base.clone()
            },
            ShotRequest {
                job: Job::ExtendForward {
                    context: clip(0.51),
                },
                ..base.clone()
            },
            ShotRequest {
                job: Job::Fill {
                    before: clip(0.5),
                    after: Clip::default(),
                },
                ..base.clone()
            },
            ShotRequest {
                job: Job::Fill {
                    before: Clip::default(),
                    after: clip(0.5),
                },
                ..base.clone()
            },
        ];
        let mut keys = std::collections::HashSet::new();
        keys.insert(shot_key(&base));
        for v in &variants {
            assert!(keys.insert(shot_key(v)), "{v:?} collides");
        }
    }

    #[test]
    fn a_latent_upsampler_added_to_the_model_makes_a_new_key() {
        let dir = std::env::temp_dir().join(format!("genfx-key-upsampler-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = ShotRequest {
            model: dir.clone(),
            ..request(Job::Generate { reference: None })
        };
        let without = shot_key(&r);
        std::fs::write(dir.join("ltxv-spatial-upscaler-0.9.8.safetensors"), b"x").unwrap();
        let with = shot_key(&r);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(without, with);
    }
}
