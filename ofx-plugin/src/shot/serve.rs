//! Serving a generated frame: the shot from the cache (or its job), scaled
//! back to the canvas and written into the output.

use crate::actions::Ctx;
use crate::effects::Layout;
use crate::framing::{self, Edge, Plane};
use crate::geometry::RectI;
use crate::ofx::{threads, Image};
use crate::paint::clear;
use crate::pixels::{write_row, Premult};
use crate::problem::Problem;
use crate::settings::Settings;
use crate::shot::job::{self, cache_dir, explain, JobReporter};
use crate::shot::request::{gather, geometry, request, shot_key, Geometry};
use crate::shot::{cache, notes, stand_in, status, ShotKey};
use genfx::engine::{EngineError, Frame, ShotRequest};
use ofx_sys as sys;
use parking_lot::Mutex;
use std::sync::Arc;

/// Whether a render may start the shot's job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Generate the shot if it is not cached (background renderers, or
    /// "When to generate" = "On first render"); wait for it.
    Yes,
    /// Serve the shot only if it is cached; otherwise a stand-in
    /// (thumbnails, draft renders, interactive renders before Generate).
    No,
}

/// What a generated frame's render showed.
pub(crate) enum Served {
    /// The shot's frame.
    Shot(ShotKey),
    /// A stand-in: the shot is not cached and this render may not start it.
    StandIn,
}

/// A shot request for the instance's settings, with its geometry and key.
pub(crate) struct Prepared {
    pub geometry: Geometry,
    pub request: ShotRequest,
    pub key: ShotKey,
}

pub(crate) fn prepare(
    ctx: &Ctx,
    s: &Settings,
    layout: &Layout,
    scale: [f64; 2],
) -> Result<Prepared, Problem> {
    let geometry = geometry(ctx, s, scale);
    let gathered = gather(ctx, layout, &geometry, s)?;
    let request = request(ctx, layout, s, &geometry, gathered.inputs)?;
    let key = shot_key(&request);
    for note in &gathered.notes {
        notes::global().record(key, note);
    }
    Ok(Prepared {
        geometry,
        request,
        key,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn generated(
    ctx: &Ctx,
    s: &Settings,
    layout: &Layout,
    index: u32,
    scale: [f64; 2],
    start: Start,
    output: &mut Image,
    window: RectI,
) -> Result<Served, Problem> {
    let Prepared {
        geometry: g,
        request,
        key,
    } = prepare(ctx, s, layout, scale)?;
    let dir = cache_dir(s);
    let index = index as usize;
    let frame = match start {
        Start::No => {
            // A frame already made (a running job's first windows, or a
            // finished shot in memory or in the cache folder), else the
            // stand-in.
            let ready = cache::global().ready_frame(key, index).or_else(|| {
                job::cached(key, &request, dir.as_ref())?;
                cache::global().ready_frame(key, index)
            });
            status::post_shot(&ctx.instance, key);
            // A running job's frames shown here (it was started elsewhere):
            // this instance's status line follows the job to its end.
            let shown = ctx.instance.clone();
            let watcher = Arc::as_ptr(&shown) as usize;
            cache::global().when_settled(key, watcher, move || status::post_shot(&shown, key));
            match ready {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    clear(ctx, output, window);
                    let (text, status) = explain(&e);
                    return Err(Problem::Tell(text, status));
                }
                None => {
                    stand_in::draw(ctx, layout, index as u32, &g, scale[0], output, window)?;
                    return Ok(Served::StandIn);
                }
            }
        }
        Start::Yes => {
            let (label, instance) = (ctx.def.label(), ctx.instance.clone());
            let job = move || -> cache::Job {
                Box::new(move |handle| {
                    let shown = instance.clone();
                    handle.when_settled(move || status::post_shot(&shown, key));
                    let reporter = JobReporter::new(instance, false);
                    let engine = job::plugin_engine();
                    job::run_job(label, key, &request, dir, &reporter, handle, &*engine)
                })
            };
            let effect = ctx.effect.clone();
            let frame = cache::global().frame(key, index, job, &|| effect.abort_requested());
            status::post_shot(&ctx.instance, key);
            match frame {
                Ok(frame) => frame,
                Err(EngineError::Aborted) => {
                    clear(ctx, output, window);
                    return Err(Problem::Quiet("aborted".into(), sys::kOfxStatFailed));
                }
                Err(e) => {
                    clear(ctx, output, window);
                    let (text, status) = explain(&e);
                    return Err(Problem::Tell(text, status));
                }
            }
        }
    };
    write_generated(ctx, &frame, &g, output, window)?;
    Ok(Served::Shot(key))
}

/// Scales a model frame back to the canvas and writes it, opaque, into the
/// render window.
pub(crate) fn write_generated(
    ctx: &Ctx,
    frame: &Frame,
    g: &Geometry,
    output: &mut Image,
    window: RectI,
) -> Result<(), Problem> {
    let mut plane = Plane {
        width: frame.width as usize,
        height: frame.height as usize,
        channels: 3,
        data: frame.rgb.clone(),
    };
    for v in &mut plane.data {
        *v = g.encoding.from_model(*v);
    }
    let (ax, ay) = g.fit.working_to_canvas();
    let (cw, ch) = (g.canvas.width(), g.canvas.height());
    let canvas = framing::resample(&plane, cw, ch, ax, ay, Edge::Clamp);
    clear(ctx, output, window);
    let out_bounds = output.bounds;
    let (out_layout, out_premult) = (output.layout, output.premult);
    let area = window.intersect(&out_bounds).intersect(&g.canvas);
    let encoding = g.encoding;
    let cells: Vec<Mutex<&mut [u8]>> = output.rows_mut().into_iter().map(Mutex::new).collect();
    let ok = threads::for_each(&ctx.effect.host, area.height(), &|i| {
        let y = area.y1 + i as i32;
        let top = (g.canvas.y2 - 1 - y) as usize;
        let mut rgba = Vec::with_capacity(area.width() * 4);
        for x in area.x1..area.x2 {
            let s = (top * cw + (x - g.canvas.x1) as usize) * 3;
            rgba.extend_from_slice(&[
                encoding.encode(canvas.data[s]),
                encoding.encode(canvas.data[s + 1]),
                encoding.encode(canvas.data[s + 2]),
                1.0,
            ]);
        }
        let mut dst = cells[(y - out_bounds.y1) as usize].lock();
        let d = (area.x1 - out_bounds.x1) as usize * out_layout.bytes_per_pixel();
        let premult = if out_premult == Premult::Opaque {
            Premult::Unpremultiplied
        } else {
            out_premult
        };
        write_row(&rgba, out_layout, premult, &mut dst[d..]);
    });
    let _ = (ch, g.pixel_aspect);
    if !ok {
        return Err(Problem::Quiet(
            "writing a frame panicked".into(),
            sys::kOfxStatFailed,
        ));
    }
    Ok(())
}
