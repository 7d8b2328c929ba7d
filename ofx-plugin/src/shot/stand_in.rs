//! What a generated frame shows while its shot is not cached and the render
//! may not start it (thumbnails, draft renders, interactive renders before
//! Generate is pressed).
//!
//! Extend and Fill hold the real frame next to the seam: the cut reads as
//! it will (a thumbnail of the clip looks like the clip), and nothing is
//! invented. Generate has no real frame to show, so it draws a placeholder:
//! a dark frame with light diagonal stripes. Dark, so it never flashes in a
//! cut or a thumbnail strip; striped, so it cannot be taken for a black
//! frame, a transparent gap or a generated picture.

use crate::actions::Ctx;
use crate::effects::{InputRole, JobKind, Layout};
use crate::geometry::RectI;
use crate::ofx::{threads, Image, OfxError};
use crate::paint::{clear, pass_through};
use crate::pixels::{write_row, Premult};
use crate::problem::Problem;
use crate::shot::request::Geometry;
use ofx_sys as sys;
use parking_lot::Mutex;

/// Placeholder values (in the output's own encoding, opaque).
pub const PLACEHOLDER_DARK: f32 = 0.05;
pub const PLACEHOLDER_LIGHT: f32 = 0.2;
/// Stripe period and width in canvas pixels at render scale 1.
const PERIOD: i64 = 32;
const STRIPE: i64 = 8;

/// Draws the stand-in for generated frame `index` of the shot.
pub(crate) fn draw(
    ctx: &Ctx,
    layout: &Layout,
    index: u32,
    g: &Geometry,
    scale: f64,
    output: &mut Image,
    window: RectI,
) -> Result<(), Problem> {
    if let Some((clip, time)) = held_frame(layout, index) {
        if let Some(source) = ctx.effect.clip(clip)?.image(time as f64)? {
            return pass_through(ctx, &source, output, window);
        }
        log::debug!("{}: no {clip} frame at {time} to hold", ctx.def.label());
    }
    placeholder(ctx, g, scale, output, window)
}

/// The real frame Extend and Fill hold for generated frame `index`: the
/// context frame at the seam (Extend), or the end of the clip on the same
/// side of the gap's middle (Fill). `None` for Generate.
pub fn held_frame(layout: &Layout, index: u32) -> Option<(&'static str, i64)> {
    let span = |role: InputRole| layout.inputs.iter().find(|s| s.role == role);
    let count = layout.generated.map(|(_, n)| n).unwrap_or(1);
    let (span, first) = match layout.job {
        JobKind::Generate => return None,
        JobKind::ExtendForward => (span(InputRole::Context)?, false),
        JobKind::ExtendBackward => (span(InputRole::Context)?, true),
        JobKind::Fill => {
            if index * 2 < count {
                (
                    span(InputRole::Before).or_else(|| span(InputRole::After))?,
                    false,
                )
            } else {
                (
                    span(InputRole::After).or_else(|| span(InputRole::Before))?,
                    true,
                )
            }
        }
    };
    let time = if first {
        span.times.first()
    } else {
        span.times.last()
    };
    time.map(|t| (span.clip, *t))
}

/// Whether canvas pixel (x, y) lies on a stripe.
pub fn on_stripe(x: i64, y: i64, scale: f64) -> bool {
    let period = ((PERIOD as f64 * scale).round() as i64).max(2);
    let stripe = ((STRIPE as f64 * scale).round() as i64).clamp(1, period - 1);
    (x + y).rem_euclid(period) < stripe
}

fn placeholder(
    ctx: &Ctx,
    g: &Geometry,
    scale: f64,
    output: &mut Image,
    window: RectI,
) -> Result<(), Problem> {
    if !output.layout.supported() {
        return Err(OfxError::ImageFormat(format!("output of {:?}", output.layout)).into());
    }
    clear(ctx, output, window);
    let out_bounds = output.bounds;
    let (out_layout, out_premult) = (output.layout, output.premult);
    let area = window.intersect(&out_bounds).intersect(&g.canvas);
    let cells: Vec<Mutex<&mut [u8]>> = output.rows_mut().into_iter().map(Mutex::new).collect();
    let premult = if out_premult == Premult::Opaque {
        Premult::Unpremultiplied
    } else {
        out_premult
    };
    let ok = threads::for_each(&ctx.effect.host, area.height(), &|i| {
        let y = area.y1 + i as i32;
        let mut rgba = Vec::with_capacity(area.width() * 4);
        for x in area.x1..area.x2 {
            let v = if on_stripe(
                (x - g.canvas.x1) as i64,
                (g.canvas.y2 - 1 - y) as i64,
                scale,
            ) {
                PLACEHOLDER_LIGHT
            } else {
                PLACEHOLDER_DARK
            };
            rgba.extend_from_slice(&[v, v, v, 1.0]);
        }
        let mut dst = cells[(y - out_bounds.y1) as usize].lock();
        let d = (area.x1 - out_bounds.x1) as usize * out_layout.bytes_per_pixel();
        write_row(&rgba, out_layout, premult, &mut dst[d..]);
    });
    if !ok {
        return Err(Problem::Quiet(
            "drawing a placeholder panicked".into(),
            sys::kOfxStatFailed,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::InputSpan;

    fn layout(job: JobKind, inputs: Vec<InputSpan>) -> Layout {
        Layout {
            generated: Some((10, 9)),
            domain: (0.0, 18.0),
            real: vec![],
            inputs,
            job,
        }
    }

    fn span(role: InputRole, clip: &'static str, times: Vec<i64>) -> InputSpan {
        InputSpan { role, clip, times }
    }

    #[test]
    fn held_frames_sit_at_the_seam() {
        let fwd = layout(
            JobKind::ExtendForward,
            vec![span(InputRole::Context, "Source", vec![7, 8, 9])],
        );
        assert_eq!(held_frame(&fwd, 0), Some(("Source", 9)));
        assert_eq!(held_frame(&fwd, 8), Some(("Source", 9)));
        let back = layout(
            JobKind::ExtendBackward,
            vec![span(InputRole::Context, "Source", vec![0, 1, 2])],
        );
        assert_eq!(held_frame(&back, 3), Some(("Source", 0)));
        let fill = layout(
            JobKind::Fill,
            vec![
                span(InputRole::Before, "Before", vec![5, 6]),
                span(InputRole::After, "After", vec![0, 1]),
            ],
        );
        assert_eq!(held_frame(&fill, 0), Some(("Before", 6)));
        assert_eq!(held_frame(&fill, 4), Some(("Before", 6)));
        assert_eq!(held_frame(&fill, 5), Some(("After", 0)));
        let gen = layout(JobKind::Generate, vec![]);
        assert_eq!(held_frame(&gen, 0), None);
    }

    #[test]
    fn stripes_cover_a_quarter_and_scale() {
        let on = (0..64)
            .flat_map(|y| (0..64).map(move |x| (x, y)))
            .filter(|&(x, y)| on_stripe(x, y, 1.0))
            .count();
        assert_eq!(on, 64 * 64 / 4);
        assert!(on_stripe(0, 0, 0.5) && on_stripe(3, 0, 0.5) && !on_stripe(4, 0, 0.5));
    }
}
