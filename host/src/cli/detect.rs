//! `genfx detect FILES|FOLDERS`: whether pictures and videos carry the
//! GenFX mark (src/provenance/watermark.rs), with the chance that an
//! unmarked picture would score as high and the payload.
//!
//! Each file's line also says whether it carries Content Credentials (a
//! C2PA manifest, embedded or in a sidecar `.c2pa`) and whether they
//! verify (`credentials::verify`); the exit status still speaks only of the
//! mark, which survives where metadata is stripped.
//!
//! Each file gets one JSON line; a folder's pictures of one size are also
//! pooled as one shot (a line with `"shot"`), as are a video's frames. EXR
//! holds linear light, so its values are encoded to sRGB (what the mark was
//! made in) before detection.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use genfx::provenance::watermark::{key_from_env, Detection, Detector};

use super::{usage, Args, Failure};
use crate::credentials::verify::{self, Details, Verdict};
use crate::image::Picture;

const PICTURES: &[&str] = &["png", "exr", "jpg", "jpeg"];
const VIDEOS: &[&str] = &["mp4", "mov", "mkv", "webm", "avi", "m4v", "mxf"];

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn srgb_encode(v: f32) -> f32 {
    let v = v.clamp(0.0, 1.0);
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

fn read_jpeg(path: &Path) -> Result<Picture, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut decoder = jpeg_decoder::Decoder::new(std::io::BufReader::new(file));
    let pixels = decoder
        .decode()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let info = decoder
        .info()
        .ok_or_else(|| format!("{}: no JPEG header", path.display()))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let mut picture = Picture::new(w, h);
    let n = (w * h) as usize;
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => return Err(format!("{}: {other:?} JPEGs are not read", path.display())),
    };
    for p in 0..n {
        for c in 0..3 {
            let v = pixels[p * channels + if channels == 1 { 0 } else { c }];
            picture.rgba[p * 4 + c] = f32::from(v) / 255.0;
        }
        picture.rgba[p * 4 + 3] = 1.0;
    }
    Ok(picture)
}

/// A picture file as interleaved RGBA in the mark's (sRGB-like) values.
fn read_picture(path: &Path) -> Result<Picture, String> {
    match extension(path).as_str() {
        "jpg" | "jpeg" => read_jpeg(path),
        "exr" => {
            let mut p = crate::files::read_exr(path).map_err(|e| e.to_string())?;
            for (i, v) in p.rgba.iter_mut().enumerate() {
                if i % 4 != 3 {
                    *v = srgb_encode(*v);
                }
            }
            Ok(p)
        }
        _ => crate::files::read_png(path).map_err(|e| e.to_string()),
    }
}

/// Whether `tool -version` runs.
fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every frame of a video through ffmpeg, added to a detector.
fn detect_video(path: &Path, key: u64) -> Result<Detection, String> {
    if !on_path("ffmpeg") || !on_path("ffprobe") {
        return Err(
            "reading video needs ffmpeg and ffprobe on the PATH; install ffmpeg or \
             export the frames as PNG and pass the folder"
                .into(),
        );
    }
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .map_err(|e| format!("ffprobe: {e}"))?;
    let text = String::from_utf8_lossy(&probe.stdout);
    let mut dims = text.trim().split(',').map(|v| v.trim().parse::<usize>());
    let (Some(Ok(w)), Some(Ok(h))) = (dims.next(), dims.next()) else {
        return Err(format!("ffprobe found no video stream ({})", text.trim()));
    };
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ffmpeg could not decode it: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut det = Detector::new(key);
    let frame_bytes = w * h * 3;
    for frame in out.stdout.chunks_exact(frame_bytes) {
        let rgb: Vec<f32> = frame.iter().map(|&b| f32::from(b) / 255.0).collect();
        det.add_frame(&rgb, 3, w, h)?;
    }
    if det.frames() == 0 {
        return Err("the video has no frames".into());
    }
    Ok(det.result())
}

fn hex(payload: Option<u64>) -> serde_json::Value {
    payload.map_or(serde_json::Value::Null, |p| format!("{p:016x}").into())
}

/// The manifest's fields of a file's JSON line.
fn c2pa_fields(line: &mut serde_json::Value, verdict: &Verdict) {
    let d = verdict.details();
    let field = |f: fn(&Details) -> Option<String>| -> serde_json::Value {
        d.and_then(f).map_or(serde_json::Value::Null, Into::into)
    };
    line["c2pa"] = verdict.summary().into();
    line["c2pa_action"] = field(|d| d.action.clone());
    line["c2pa_source_type"] = field(|d| d.source_type.clone());
    line["c2pa_generator"] = field(|d| d.generator.clone());
    line["c2pa_model"] = field(|d| d.model.clone());
    line["c2pa_signer"] = field(|d| d.signer.clone());
    line["c2pa_signer_trusted"] = d.map_or(serde_json::Value::Null, |d| d.trusted.into());
    line["c2pa_manifest"] = field(|d| Some(d.location.clone()));
}

/// The manifest in a sentence.
fn c2pa_prose(verdict: &Verdict) -> String {
    let claims = |d: &Details| {
        let mut parts = vec![];
        if let Some(a) = &d.action {
            parts.push(a.clone());
        }
        if let Some(t) = &d.source_type {
            parts.push(t.clone());
        }
        if let Some(g) = &d.generator {
            parts.push(format!("by {g}"));
        }
        if let Some(m) = &d.model {
            parts.push(format!("model {m}"));
        }
        let signer = d.signer.as_deref().unwrap_or("an unnamed signer");
        let trust = if d.trusted {
            "a signer your trust anchors vouch for"
        } else {
            "a signer no trust list vouches for, so it shows the file is unchanged since signing but not who signed it"
        };
        format!(
            "{} ({}), signed by {signer}: {trust}",
            parts.join(", "),
            d.location
        )
    };
    match verdict {
        Verdict::Absent => "Content Credentials: none".into(),
        Verdict::Valid(d) => format!("Content Credentials: valid, {}", claims(d)),
        Verdict::Invalid { reason, details } => format!(
            "Content Credentials: INVALID ({reason}){}",
            details
                .as_ref()
                .map_or(String::new(), |d| format!("; they claim {}", claims(d)))
        ),
    }
}

fn report(label: &str, name: &Path, d: &Detection, c2pa: Option<&Verdict>, human: bool) {
    if human {
        let verdict = if d.marked {
            "GenFX mark"
        } else {
            "no GenFX mark"
        };
        let payload = d
            .payload
            .map_or("no payload".into(), |p| format!("payload {p:016x}"));
        println!(
            "{}: {verdict} ({} frame{}, z = {:.2}, chance an unmarked {label} scores as high: {:.2e}, {payload}){}",
            name.display(),
            d.frames,
            if d.frames == 1 { "" } else { "s" },
            d.z,
            d.false_positive_rate,
            c2pa.map_or(String::new(), |v| format!(". {}", c2pa_prose(v)))
        );
    } else {
        let mut line = serde_json::json!({
            label: name.display().to_string(),
            "marked": d.marked,
            "false_positive_rate": d.false_positive_rate,
            "payload": hex(d.payload),
            "z": d.z,
            "frames": d.frames,
        });
        if let Some(v) = c2pa {
            c2pa_fields(&mut line, v);
        }
        println!("{line}");
    }
}

fn report_error(name: &Path, error: &str, c2pa: &Verdict, human: bool) {
    if human {
        println!(
            "{}: cannot check the mark: {error}. {}",
            name.display(),
            c2pa_prose(c2pa)
        );
    } else {
        let mut line = serde_json::json!({"file": name.display().to_string(), "marked": false,
            "false_positive_rate": null, "payload": null, "error": error});
        c2pa_fields(&mut line, c2pa);
        println!("{line}");
    }
}

/// The picture and video files of a folder, in name order.
fn folder_files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| usage(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = extension(p);
            p.is_file() && (PICTURES.contains(&ext.as_str()) || VIDEOS.contains(&ext.as_str()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Runs the command; `Err(Failed)` when some input is not marked.
pub fn run(args: Args) -> Result<(), Failure> {
    args.check(&["human", "key"]).map_err(usage)?;
    if args.positional.is_empty() {
        return Err(usage("detect needs files or folders"));
    }
    let key = match args.one("key") {
        Some(k) => u64::from_str_radix(k.trim_start_matches("0x"), 16)
            .map_err(|_| usage(format!("--key {k}: want 16 hex digits")))?,
        None => key_from_env(),
    };
    let human = args.flag("human");
    let mut unmarked = 0usize;
    for input in &args.positional {
        let path = PathBuf::from(input);
        let (files, folder) = if path.is_dir() {
            (folder_files(&path)?, true)
        } else if path.is_file() {
            (vec![path.clone()], false)
        } else {
            return Err(usage(format!("{input}: no such file or folder")));
        };
        let mut shot = Detector::new(key);
        let mut pooled = 0usize;
        for file in &files {
            let ext = extension(file);
            let result = if VIDEOS.contains(&ext.as_str()) {
                detect_video(file, key)
            } else if PICTURES.contains(&ext.as_str()) {
                read_picture(file).and_then(|p| {
                    let (w, h) = (p.width as usize, p.height as usize);
                    let mut det = Detector::new(key);
                    det.add_frame(&p.rgba, 4, w, h)?;
                    // pictures of the folder's first shape pool as its shot
                    if folder && shot.add_frame(&p.rgba, 4, w, h).is_ok() {
                        pooled += 1;
                    }
                    Ok(det.result())
                })
            } else {
                Err(format!(
                    "not a picture ({}) or video ({}) file",
                    PICTURES.join(", "),
                    VIDEOS.join(", ")
                ))
            };
            let c2pa = verify::verify(file);
            match result {
                Ok(d) => {
                    // a frame alone may be too weak; its shot decides
                    unmarked += usize::from(!d.marked && !folder);
                    report("file", file, &d, Some(&c2pa), human);
                }
                Err(e) => {
                    unmarked += 1;
                    report_error(file, &e, &c2pa, human);
                }
            }
        }
        if folder && pooled > 0 {
            let d = shot.result();
            unmarked += usize::from(!d.marked);
            report("shot", &path, &d, None, human);
        }
    }
    if unmarked > 0 {
        Err(Failure::Failed(format!(
            "{unmarked} input{} without the GenFX mark",
            if unmarked == 1 { "" } else { "s" }
        )))
    } else {
        Ok(())
    }
}
