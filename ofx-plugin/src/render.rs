//! The render action: pass real frames through, leave empty frames
//! transparent, and serve generated frames from the shot module.

use crate::actions::{layout, Ctx};
use crate::effects::{FrameRole, OUTPUT};
use crate::geometry::RectI;
use crate::ofx::message::{self, MessageKind};
use crate::ofx::PropSet;
use crate::ofx::{OfxError, OfxResult, Status};
use crate::paint::{clear, pass_through};
use crate::problem::Problem;
use crate::settings::Settings;
use crate::shot::notes;
use crate::shot::serve::{self, Served, Start};
use ofx_sys as sys;
use std::ffi::CStr;

/// What a frame that rendered means for the message area.
enum Outcome {
    /// All is well: a message left from an earlier problem goes.
    Clean,
    /// Something the user should know about the shot.
    Note(String),
    /// A stand-in for a shot that is not cached: what the message area says
    /// (a failed Generate, say) stays.
    Keep,
}

pub fn render(ctx: &Ctx) -> OfxResult<Status> {
    match render_frame(ctx) {
        Ok(Outcome::Keep) => Ok(sys::kOfxStatOK),
        Ok(Outcome::Clean) => {
            let mut shown = ctx.instance.shown.lock();
            if shown.take().is_some() {
                message::clear_persistent(&ctx.effect);
            }
            Ok(sys::kOfxStatOK)
        }
        Ok(Outcome::Note(note)) => {
            warn(ctx, &note);
            Ok(sys::kOfxStatOK)
        }
        Err(Problem::Quiet(text, status)) => {
            log::warn!("{}: render: {text}", ctx.def.label());
            Ok(status)
        }
        Err(Problem::Tell(text, status)) => {
            log::error!("{}: render: {text}", ctx.def.label());
            tell(ctx, &text);
            Ok(status)
        }
    }
}

/// Puts a problem in front of the user once: a persistent message where the
/// host has one, else one dialog per distinct problem.
fn tell(ctx: &Ctx, text: &str) {
    let mut shown = ctx.instance.shown.lock();
    if shown.as_deref() == Some(text) {
        return;
    }
    if !message::set_persistent(&ctx.effect, MessageKind::Error, text) {
        message::show(&ctx.effect, MessageKind::Error, text);
    }
    *shown = Some(text.to_string());
}

/// Shows what the user should know about a frame that rendered, as a
/// persistent warning; hosts without one get it in the log only, since a
/// dialog per rendered frame would stop the user's work.
fn warn(ctx: &Ctx, text: &str) {
    let mut shown = ctx.instance.shown.lock();
    if shown.as_deref() == Some(text) {
        return;
    }
    log::warn!("{}: {text}", ctx.def.label());
    message::set_persistent(&ctx.effect, MessageKind::Warning, text);
    *shown = Some(text.to_string());
}

/// Renders one frame.
fn render_frame(ctx: &Ctx) -> Result<Outcome, Problem> {
    let args = ctx.in_args.ok_or(OfxError::BadHandle("render arguments"))?;
    let time = args.get_double(sys::kOfxPropTime, 0)?;
    if !time.is_finite() {
        return Err(Problem::Quiet(
            format!("render at time {time}"),
            sys::kOfxStatErrValue,
        ));
    }
    // GenFX declares CUDA render unsupported; a host that sends device
    // pointers anyway must get a refusal, not a CPU read of GPU memory.
    if args
        .get_int(sys::kOfxImageEffectPropCudaEnabled, 0)
        .unwrap_or(0)
        != 0
    {
        return Err(Problem::Tell(
            "GenFX: this host sent CUDA images; GenFX renders on the CPU side for now. \
             Turn off GPU image processing for GenFX."
                .into(),
            sys::kOfxStatErrUnsupported,
        ));
    }
    let window = args.get_ints::<4>(sys::kOfxImageEffectPropRenderWindow)?;
    let window = RectI {
        x1: window[0],
        y1: window[1],
        x2: window[2],
        y2: window[3],
    };
    let scale = args
        .get_doubles::<2>(sys::kOfxImageEffectPropRenderScale)
        .ok()
        .filter(|s| s.iter().all(|v| v.is_finite() && *v > 0.0))
        .unwrap_or([1.0, 1.0]);
    let mut output = ctx.effect.clip(OUTPUT)?.image(time)?.ok_or_else(|| {
        Problem::Quiet(
            format!("the host gave no output image at {time}"),
            sys::kOfxStatFailed,
        )
    })?;
    if !output.layout.supported() {
        return Err(OfxError::ImageFormat(format!("output of {:?}", output.layout)).into());
    }
    let (settings, layout) = match layout(ctx, time) {
        Ok(v) => v,
        Err(OfxError::Value(text)) => {
            clear(ctx, &mut output, window);
            return Err(Problem::Tell(format!("GenFX: {text}"), sys::kOfxStatFailed));
        }
        Err(e) => return Err(e.into()),
    };
    match layout.role_at(time) {
        FrameRole::Empty => {
            clear(ctx, &mut output, window);
            Ok(Outcome::Clean)
        }
        FrameRole::Real {
            clip,
            time: source_time,
        } => {
            let source = ctx.effect.clip(clip)?.image(source_time)?;
            let Some(source) = source else {
                clear(ctx, &mut output, window);
                return Err(Problem::Tell(
                    format!("GenFX: the {clip} input has no image at frame {source_time}"),
                    sys::kOfxStatFailed,
                ));
            };
            pass_through(ctx, &source, &mut output, window)?;
            Ok(Outcome::Clean)
        }
        FrameRole::Generated { index } => {
            let start = may_start(ctx, &args, &settings);
            match serve::generated(
                ctx,
                &settings,
                &layout,
                index,
                scale,
                start,
                &mut output,
                window,
            )? {
                Served::Shot(key) => Ok(notes::global()
                    .message(key)
                    .map_or(Outcome::Clean, Outcome::Note)),
                Served::StandIn => Ok(Outcome::Keep),
            }
        }
    }
}

/// Resolve's clip-instance property marking a render as a thumbnail (its
/// `ofxImageEffectExt.h` spells the name with a leading "k"). The OpenFX
/// standard itself has no thumbnail property.
const RESOLVE_THUMBNAIL: &CStr = c"kOfxImageClipPropThumbnail";

/// Whether this render may start the shot's job. Thumbnails (Resolve) and
/// draft renders (Natron while scrubbing) never do. A background renderer
/// (render farm, NatronRenderer, `genfx render`) always does, as does an
/// interactive host whose "When to generate" is "On first render";
/// otherwise only the Generate button starts a job. A host that does not
/// say whether it is a background renderer counts as interactive: an
/// editor never gets a surprise ten-minute job.
fn may_start(ctx: &Ctx, args: &PropSet, s: &Settings) -> Start {
    let draft = args
        .get_int(sys::kOfxImageEffectPropRenderQualityDraft, 0)
        .is_ok_and(|v| v != 0);
    let thumbnail = std::iter::once(OUTPUT)
        .chain(ctx.def.clips(ctx.instance.context).iter().map(|c| c.name))
        .filter_map(|name| ctx.effect.clip(name).ok())
        .any(|clip| {
            clip.props
                .get_int(RESOLVE_THUMBNAIL, 0)
                .is_ok_and(|v| v != 0)
        });
    if draft || thumbnail {
        return Start::No;
    }
    let background = ctx
        .effect
        .host
        .props
        .get_int(sys::kOfxImageEffectHostPropIsBackground, 0)
        .is_ok_and(|v| v != 0);
    if background || s.generate_on_render {
        Start::Yes
    } else {
        Start::No
    }
}
