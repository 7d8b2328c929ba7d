//! `genfx generate`: a GenFX job straight on the engine, no OpenFX host.

use super::render::{frame_path, output_format};
use super::{usage, Args, Failure};
use crate::credentials;
use crate::files;
use crate::image::Picture;
use crate::source::{FolderSource, FrameSource};
use genfx::engine::{
    self, Clip, EngineError, Frame, FrameSink, Job, JobObserver, Quality, ShotRequest, Stage,
    WindowSettings,
};
use genfx::pipeline::disk_cache;
use parking_lot::Mutex;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Prints progress: a bar redrawn in place on a terminal, a line per change
/// of stage (and per tenth) otherwise, so logs stay readable.
struct ProgressPrinter {
    terminal: bool,
    last: Mutex<Option<(Stage, u32)>>,
}

impl JobObserver for ProgressPrinter {
    fn progress(&self, stage: Stage, done: u32, total: u32) {
        let total = total.max(1);
        let tenth = done * 10 / total;
        let mut last = self.last.lock();
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let width = 30;
            let filled = (done.min(total) * width / total) as usize;
            let _ = write!(
                err,
                "\r{:<16} [{}{}] {done}/{total}",
                format!("{stage:?}"),
                "#".repeat(filled),
                "-".repeat(width as usize - filled)
            );
            if done >= total {
                let _ = writeln!(err);
            }
        } else if *last != Some((stage, tenth)) {
            let _ = writeln!(err, "genfx: {stage:?} {done}/{total}");
        }
        *last = Some((stage, tenth));
    }

    fn should_abort(&self) -> bool {
        false
    }

    /// A long shot's windows, one line each.
    fn window(&self, index: u32, count: u32) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "genfx: window {} of {count}", index + 1);
    }

    /// Notices (a rounded length, a cut prompt, one pass or two) go to
    /// stderr: the command line has no log file of its own.
    fn notice(&self, message: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "genfx: note: {message}");
    }
}

/// Bilinear resample to the working size (pixel centres aligned).
fn resample(p: &Picture, width: u32, height: u32) -> Frame {
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    let sx = p.width as f32 / width as f32;
    let sy = p.height as f32 / height as f32;
    for y in 0..height {
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (p.height - 1) as f32);
        let (y0, ty) = (fy.floor() as u32, fy.fract());
        let y1 = (y0 + 1).min(p.height - 1);
        for x in 0..width {
            let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (p.width - 1) as f32);
            let (x0, tx) = (fx.floor() as u32, fx.fract());
            let x1 = (x0 + 1).min(p.width - 1);
            let (a, b, c, d) = (
                p.pixel(x0, y0),
                p.pixel(x1, y0),
                p.pixel(x0, y1),
                p.pixel(x1, y1),
            );
            for ch in 0..3 {
                let top = a[ch] + (b[ch] - a[ch]) * tx;
                let bottom = c[ch] + (d[ch] - c[ch]) * tx;
                rgb.push(top + (bottom - top) * ty);
            }
        }
    }
    Frame { width, height, rgb }
}

fn clip_from(dir: &str, width: u32, height: u32) -> Result<Clip, Failure> {
    let source = FolderSource::open(Path::new(dir), 0)?;
    let (first, last) = source.range();
    let mut frames = Vec::new();
    for f in first..=last {
        if let Some(p) = source.frame(f)? {
            frames.push(resample(&p, width, height));
        }
    }
    Ok(Clip { frames })
}

/// The `n` frames of `clip` next to the seam: its last ones when the new
/// frames follow it, its first ones when they come before it.
fn near_seam(mut clip: Clip, n: usize, new_frames_follow: bool) -> Clip {
    let n = n.min(clip.frames.len());
    if new_frames_follow {
        clip.frames.drain(..clip.frames.len() - n);
    } else {
        clip.frames.truncate(n);
    }
    clip
}

/// Writes each frame to its file as it arrives.
struct FrameWriter<'a> {
    out: &'a Path,
    format: crate::files::Format,
    /// Signs each frame's Content Credentials.
    signer: &'a credentials::ManifestSigner,
}

impl FrameSink for FrameWriter<'_> {
    fn frames_ready(&self, first: usize, frames: &[Frame]) -> Result<(), EngineError> {
        for (i, frame) in frames.iter().enumerate() {
            let at = first + i;
            let path = frame_path(self.out, at as i32, self.format);
            files::write_signed(&path, &picture_of(frame), Some(self.signer)).map_err(|e| {
                EngineError::Failed(format!("cannot write {}: {e:?}", path.display()))
            })?;
            println!("frame {at} -> {}", path.display());
        }
        Ok(())
    }
}

fn picture_of(frame: &Frame) -> Picture {
    let mut p = Picture::new(frame.width, frame.height);
    for (i, px) in frame.rgb.chunks_exact(3).enumerate() {
        p.rgba[i * 4..i * 4 + 4].copy_from_slice(&[px[0], px[1], px[2], 1.0]);
    }
    p
}

fn quality(args: &Args) -> Result<Quality, Failure> {
    if let Some(steps) = args.one("steps") {
        let n: u32 = steps
            .parse()
            .map_err(|_| usage(format!("--steps: '{steps}' is not a count")))?;
        return Ok(Quality::Steps(n));
    }
    match args.one("quality").unwrap_or("standard") {
        "draft" => Ok(Quality::Draft),
        "standard" => Ok(Quality::Standard),
        "high" => Ok(Quality::High),
        q => Err(usage(format!("--quality: '{q}' (draft, standard or high)"))),
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    args.check(&[
        "model",
        "text-encoder",
        "prompt",
        "negative",
        "seed",
        "frames",
        "width",
        "height",
        "fps",
        "steps",
        "quality",
        "guidance",
        "strength",
        "extend-forward",
        "extend-backward",
        "fill",
        "out",
        "format",
        "context",
        "cache-max-gb",
        "window",
        "overlap",
        "drift",
    ])
    .map_err(usage)?;
    if !args.positional.is_empty() {
        return Err(usage("generate takes no positional arguments"));
    }
    let model = PathBuf::from(args.one("model").ok_or(usage(
        "generate needs --model PATH (an LTX-Video checkpoint or model folder)",
    ))?);
    let prompt = args
        .one("prompt")
        .ok_or(usage("generate needs --prompt TEXT"))?;
    let out = PathBuf::from(args.one("out").ok_or(usage("generate needs --out DIR"))?);
    let format = output_format(&args)?;
    let width: u32 = args.parsed("width", 704).map_err(usage)?;
    let height: u32 = args.parsed("height", 480).map_err(usage)?;
    if width == 0 || height == 0 {
        return Err(usage("--width and --height must be positive"));
    }
    let jobs = ["extend-forward", "extend-backward", "fill"]
        .iter()
        .filter(|k| args.flag(k))
        .count();
    if jobs > 1 {
        return Err(usage(
            "give at most one of --extend-forward, --extend-backward, --fill",
        ));
    }
    let context: usize = args.parsed("context", 9).map_err(usage)?;
    if context == 0 {
        return Err(usage("--context must be at least 1"));
    }
    let seam = |dir: &str, follow| -> Result<Clip, Failure> {
        Ok(near_seam(clip_from(dir, width, height)?, context, follow))
    };
    let job = if let Some(dir) = args.one("extend-forward") {
        Job::ExtendForward {
            context: seam(dir, true)?,
        }
    } else if let Some(dir) = args.one("extend-backward") {
        Job::ExtendBackward {
            context: seam(dir, false)?,
        }
    } else if let [before, after] = args.all("fill") {
        Job::Fill {
            before: seam(before, true)?,
            after: seam(after, false)?,
        }
    } else {
        Job::Generate { reference: None }
    };
    let request = ShotRequest {
        model,
        text_encoder: args.one("text-encoder").map(PathBuf::from),
        prompt: prompt.to_string(),
        negative_prompt: args.one("negative").unwrap_or("").to_string(),
        seed: args.parsed("seed", 0).map_err(usage)?,
        quality: quality(&args)?,
        guidance: args.parsed("guidance", 3.0).map_err(usage)?,
        width,
        height,
        num_frames: args.parsed("frames", 25).map_err(usage)?,
        frame_rate: args.parsed("fps", 24.0).map_err(usage)?,
        strength: args.parsed("strength", 1.0).map_err(usage)?,
        job,
        windows: WindowSettings {
            length: args
                .one("window")
                .map(|v| v.parse())
                .transpose()
                .map_err(|_| usage("--window: give a frame count (8k+1, e.g. 121)"))?,
            overlap: args
                .one("overlap")
                .map(|v| v.parse())
                .transpose()
                .map_err(|_| usage("--overlap: give a frame count (8k+1, e.g. 17)"))?,
            drift: args
                .one("drift")
                .map(|v| v.parse())
                .transpose()
                .map_err(|_| usage("--drift: give a strength from 0 to 1"))?,
        },
    };
    if let Some(gb) = args.one("cache-max-gb") {
        let limit =
            disk_cache::parse_limit_gb(gb).map_err(|e| usage(format!("--cache-max-gb: {e}")))?;
        disk_cache::set_cache_limit(limit);
    }
    // Before the long part, so a key that cannot be made or read fails
    // the run at once.
    let signer = credentials::signer_for(&request.model).map_err(Failure::Failed)?;
    let observer = ProgressPrinter {
        terminal: std::io::stderr().is_terminal(),
        last: Mutex::new(None),
    };
    std::fs::create_dir_all(&out)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", out.display())))?;
    files::sweep_leftovers(&out);
    // Frames are written as the engine finishes them (a long shot window
    // by window), so memory does not grow with the shot's length.
    let writer = FrameWriter {
        out: &out,
        format,
        signer: &signer,
    };
    engine::default_engine()
        .generate_into(&request, &observer, &writer, None)
        .map_err(|e| Failure::Failed(format!("the engine could not make the shot: {e}")))?;
    if let Some(kib) = peak_resident_kib() {
        eprintln!("genfx: peak memory {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

/// This process's peak resident memory in KiB (`VmHWM`), where the system
/// tells it (Linux): a long shot's memory should not grow with its length,
/// and this line lets a user (and the long-shot CLI test) see that.
fn peak_resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> Clip {
        Clip {
            frames: (0..n)
                .map(|i| Frame::new(1, 1, vec![i as f32; 3]).unwrap())
                .collect(),
        }
    }

    fn firsts(c: &Clip) -> Vec<f32> {
        c.frames.iter().map(|f| f.rgb[0]).collect()
    }

    #[test]
    fn context_is_taken_next_to_the_seam() {
        assert_eq!(firsts(&near_seam(numbered(5), 2, true)), vec![3.0, 4.0]);
        assert_eq!(firsts(&near_seam(numbered(5), 2, false)), vec![0.0, 1.0]);
        assert_eq!(firsts(&near_seam(numbered(3), 9, true)).len(), 3);
    }
}
