//! The render action: pass real frames through, leave empty frames
//! transparent, and fetch generated frames from the shot behind the cache.

use crate::actions::{layout, project_pixel_aspect, project_rect, Ctx};
use crate::colour::{self, Encoding};
use crate::effects::{FrameRole, InputRole, JobKind, Layout, OUTPUT};
use crate::framing::{self, Edge, Plane};
use crate::geometry::RectI;
use crate::ofx::message::{self, MessageKind};
use crate::ofx::progress::Progress;
use crate::ofx::{threads, Effect, Image, OfxError, OfxResult, Status};
use crate::pixels::{read_row, write_row, Premult};
use crate::settings::{CacheSetting, Settings};
use crate::shot::{cache, disk, notes, KeyHasher, ShotKey};
use genfx::engine::{self, Clip, EngineError, Frame, Job, JobObserver, Shot, ShotRequest, Stage};
use ofx_sys as sys;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// What went wrong in a render, and whether a person should be told.
enum Problem {
    /// Shown to the user (persistent where the host can) and logged.
    Tell(String, Status),
    /// Only logged (aborts, host protocol errors).
    Quiet(String, Status),
}

impl From<OfxError> for Problem {
    fn from(e: OfxError) -> Self {
        match e {
            OfxError::ImageFormat(_) => {
                Problem::Tell(format!("GenFX cannot use this image: {e}"), e.status())
            }
            _ => Problem::Quiet(e.to_string(), e.status()),
        }
    }
}

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
            let key = generated(ctx, &settings, &layout, index, scale, &mut output, window)?;
            Ok(notes::global().message(key))
        }
    }
}

fn clear(ctx: &Ctx, output: &mut Image, window: RectI) {
    let bounds = output.bounds;
    let bpp = output.layout.bytes_per_pixel();
    let rows = output.rows_mut();
    let area = window.intersect(&bounds);
    let cells: Vec<Mutex<&mut [u8]>> = rows.into_iter().map(Mutex::new).collect();
    threads::for_each(&ctx.effect.host, area.height(), &|i| {
        let y = (area.y1 - bounds.y1) as usize + i;
        let mut row = cells[y].lock();
        let from = (area.x1 - bounds.x1) as usize * bpp;
        row[from..from + area.width() * bpp].fill(0);
    });
}

/// Copies a real frame. Same layout: the bytes, untouched. Otherwise
/// converted through straight RGBA.
fn pass_through(
    ctx: &Ctx,
    source: &Image,
    output: &mut Image,
    window: RectI,
) -> Result<(), Problem> {
    if !source.layout.supported() {
        return Err(OfxError::ImageFormat(format!("input of {:?}", source.layout)).into());
    }
    clear(ctx, output, window);
    let out_bounds = output.bounds;
    let area = window.intersect(&out_bounds).intersect(&source.bounds);
    let (out_layout, out_premult) = (output.layout, output.premult);
    let same = source.layout == out_layout
        && (source.premult == out_premult
            || source.layout.components != crate::pixels::Components::Rgba);
    let cells: Vec<Mutex<&mut [u8]>> = output.rows_mut().into_iter().map(Mutex::new).collect();
    let ok = threads::for_each(&ctx.effect.host, area.height(), &|i| {
        let y = area.y1 + i as i32;
        let Some(src) = source.row(y) else { return };
        let mut dst = cells[(y - out_bounds.y1) as usize].lock();
        if same {
            let bpp = out_layout.bytes_per_pixel();
            let s = (area.x1 - source.bounds.x1) as usize * bpp;
            let d = (area.x1 - out_bounds.x1) as usize * bpp;
            let n = area.width() * bpp;
            dst[d..d + n].copy_from_slice(&src[s..s + n]);
        } else {
            let mut rgba = vec![0.0f32; source.bounds.width() * 4];
            read_row(src, source.layout, source.premult, &mut rgba);
            let s = (area.x1 - source.bounds.x1) as usize * 4;
            let d = (area.x1 - out_bounds.x1) as usize * out_layout.bytes_per_pixel();
            write_row(
                &rgba[s..s + area.width() * 4],
                out_layout,
                out_premult,
                &mut dst[d..],
            );
        }
    });
    if !ok {
        return Err(Problem::Quiet(
            "copying a frame panicked".into(),
            sys::kOfxStatFailed,
        ));
    }
    Ok(())
}

/// The picture geometry shared by every frame of a shot.
struct Geometry {
    /// The project rectangle in pixels at the render scale.
    canvas: RectI,
    pixel_aspect: f64,
    working: (u32, u32),
    fit: framing::Fit,
    encoding: Encoding,
}

fn geometry(ctx: &Ctx, settings: &Settings, scale: [f64; 2]) -> Geometry {
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
fn to_model_frame(
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
struct Gathered {
    inputs: Vec<(InputRole, Clip)>,
    /// What the user should know: an input shorter than Context frames.
    notes: Vec<String>,
}

fn gather(ctx: &Ctx, layout: &Layout, g: &Geometry, s: &Settings) -> Result<Gathered, Problem> {
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

fn request(
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
    let identity = disk::model_identity(&r.model).ok().flatten();
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

/// Reports job progress to the host's progress bar and answers its abort.
struct HostObserver {
    effect: Effect,
    key: ShotKey,
    progress: Option<Progress>,
    stopped: AtomicBool,
}

impl JobObserver for HostObserver {
    fn progress(&self, stage: Stage, done: u32, total: u32) {
        let within = if total == 0 {
            0.0
        } else {
            done.min(total) as f64 / total as f64
        };
        let (from, to) = match stage {
            Stage::LoadingModel => (0.0, 0.05),
            Stage::EncodingPrompt => (0.05, 0.1),
            Stage::EncodingFrames => (0.1, 0.15),
            Stage::Denoising => (0.15, 0.9),
            Stage::Decoding => (0.9, 1.0),
        };
        if let Some(p) = &self.progress {
            if !p.update(from + (to - from) * within) {
                self.stopped.store(true, Ordering::SeqCst);
            }
        }
    }

    fn should_abort(&self) -> bool {
        self.stopped.load(Ordering::SeqCst) || self.effect.abort_requested()
    }

    fn notice(&self, message: &str) {
        log::warn!("shot {}: {message}", self.key);
        notes::global().record(self.key, message);
    }
}

fn cache_dir(s: &Settings) -> Option<PathBuf> {
    match &s.cache {
        CacheSetting::Off => None,
        CacheSetting::Default => disk::default_dir(),
        CacheSetting::Folder(p) => Some(p.clone()),
    }
}

fn run_job(
    ctx: &Ctx,
    key: ShotKey,
    request: &ShotRequest,
    dir: Option<(PathBuf, Option<u64>)>,
) -> Result<Shot, EngineError> {
    // The disk entry's key names the model by its weights' fingerprint and
    // is the one `genfx generate` uses for the same request.
    let disk = dir.and_then(|(dir, limit)| match disk::key_of(request) {
        Ok(Some(disk_key)) => Some((dir, disk_key, limit)),
        Ok(None) => None,
        Err(why) => {
            let note = format!("the shot is not kept in the cache folder: {why}");
            log::warn!("shot {key}: {note}");
            notes::global().record(key, &note);
            None
        }
    });
    if let Some((dir, disk_key, _)) = &disk {
        match disk::load(dir, disk_key) {
            disk::Loaded::Hit(shot) if valid(&shot, request) => {
                log::info!(
                    "{}: shot {key} read from {}",
                    ctx.def.label(),
                    dir.display()
                );
                return Ok(shot);
            }
            disk::Loaded::Discarded(why) => {
                log::warn!(
                    "shot {key}: discarded a damaged cached shot ({why}); generating it again"
                );
            }
            disk::Loaded::Hit(_) | disk::Loaded::Miss => {}
        }
    }
    let label = format!(
        "{}: generating {} frames",
        ctx.def.label(),
        request.num_frames
    );
    let observer = HostObserver {
        effect: ctx.effect.clone(),
        key,
        progress: Progress::start(&ctx.effect, &label),
        stopped: AtomicBool::new(false),
    };
    log::info!(
        "{}: shot {key}: {}x{}, {} frames, job {:?}",
        ctx.def.label(),
        request.width,
        request.height,
        request.num_frames,
        std::mem::discriminant(&request.job)
    );
    // The plugin keeps finished shots itself, in the folder each instance's
    // Cache parameter names; the engine's process-wide disk cache (which
    // serves the command line) would store every shot a second time.
    static ENGINE_DISK_CACHE_OFF: std::sync::Once = std::sync::Once::new();
    ENGINE_DISK_CACHE_OFF.call_once(|| genfx::pipeline::disk_cache::set_cache_folder(None));
    let shot = engine::default_engine().generate(request, &observer)?;
    if !valid(&shot, request) {
        return Err(EngineError::Failed(format!(
            "the engine returned {} frames, expected {} of {}x{}",
            shot.frames.len(),
            request.num_frames,
            request.width,
            request.height
        )));
    }
    if let Some((dir, disk_key, limit)) = &disk {
        if let Err(e) = disk::store(dir, disk_key, &shot, *limit) {
            // The shot is still good; only the disk copy is lost.
            observer.notice(&format!(
                "the shot could not be kept in the cache folder {} ({e}), so reopening the \
                 project will generate it again; free some space or choose another Cache folder",
                dir.display()
            ));
        }
    }
    Ok(shot)
}

fn valid(shot: &Shot, r: &ShotRequest) -> bool {
    shot.frames.len() == r.num_frames as usize
        && shot
            .frames
            .iter()
            .all(|f| f.width == r.width && f.height == r.height)
}

fn generated(
    ctx: &Ctx,
    s: &Settings,
    layout: &Layout,
    index: u32,
    scale: [f64; 2],
    output: &mut Image,
    window: RectI,
) -> Result<ShotKey, Problem> {
    let g = geometry(ctx, s, scale);
    let gathered = gather(ctx, layout, &g, s)?;
    let request = request(ctx, layout, s, &g, gathered.inputs)?;
    let key = shot_key(&request);
    for note in &gathered.notes {
        notes::global().record(key, note);
    }
    let dir = cache_dir(s);
    let effect = ctx.effect.clone();
    let disk = dir.map(|d| (d, s.cache_limit));
    let shot = cache::global().get_or_run(key, || run_job(ctx, key, &request, disk), &|| {
        effect.abort_requested()
    });
    let shot = match shot {
        Ok(shot) => shot,
        Err(EngineError::Aborted) => {
            clear(ctx, output, window);
            return Err(Problem::Quiet("aborted".into(), sys::kOfxStatFailed));
        }
        Err(e) => {
            clear(ctx, output, window);
            let text = match &e {
                // The text encoder's messages say what to get and where
                // to put it; the Model folder is not what is wrong then.
                EngineError::NoModel(m) if m.starts_with("text encoder:") => format!(
                    "GenFX: {e}. The Text encoder parameter names a T5 file or folder (see the \
                     README)."
                ),
                EngineError::NoModel(_) => format!(
                    "GenFX: {e}. Set Model to an LTX-Video checkpoint or model folder (see the README)."
                ),
                _ => format!("GenFX: {e}"),
            };
            let status = if matches!(e, EngineError::OutOfMemory(_)) {
                sys::kOfxStatErrMemory
            } else {
                sys::kOfxStatFailed
            };
            return Err(Problem::Tell(text, status));
        }
    };
    let frame = shot
        .frames
        .get(index as usize)
        .ok_or_else(|| Problem::Quiet(format!("shot has no frame {index}"), sys::kOfxStatFailed))?;
    write_generated(ctx, frame, &g, output, window)?;
    Ok(key)
}

/// Scales a model frame back to the canvas and writes it, opaque, into the
/// render window.
fn write_generated(
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

#[cfg(test)]
mod tests {
    use super::*;

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
