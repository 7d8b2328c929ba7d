//! The render action: pass real frames through, leave empty frames
//! transparent, and serve generated frames from the shot module.

use crate::actions::{layout, Ctx};
use crate::effects::{FrameRole, OUTPUT};
use crate::geometry::RectI;
use crate::ofx::message::{self, MessageKind};
use crate::ofx::{OfxError, OfxResult, Status};
use crate::paint::{clear, pass_through};
use crate::problem::Problem;
use crate::shot::{notes, serve};
use ofx_sys as sys;

pub fn render(ctx: &Ctx) -> OfxResult<Status> {
    match render_frame(ctx) {
        Ok(None) => {
            let mut shown = ctx.instance.shown.lock();
            if shown.take().is_some() {
                message::clear_persistent(&ctx.effect);
            }
            Ok(sys::kOfxStatOK)
        }
        Ok(Some(note)) => {
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

/// Renders one frame; `Some` carries a note about the shot it came from.
fn render_frame(ctx: &Ctx) -> Result<Option<String>, Problem> {
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
            Ok(None)
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
            Ok(None)
        }
        FrameRole::Generated { index } => {
            let key = serve::generated(ctx, &settings, &layout, index, scale, &mut output, window)?;
            Ok(notes::global().message(key))
        }
    }
}
