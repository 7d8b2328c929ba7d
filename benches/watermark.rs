//! `cargo xtask bench watermark`: how well the GenFX mark
//! (src/provenance/watermark.rs) survives what happens to frames after the
//! host writes them, next to the DWT-DCT watermark of the
//! `invisible-watermark` package (Stable Diffusion XL's) measured on the same
//! pictures in the same run.
//!
//! Clips of `--frames` frames (default 48: 2 s at 24 fps) of natural-looking
//! procedural pictures with a slow pan (`genfx::provenance::test_pictures`)
//! are marked, stored as 8-bit, attacked — 8-bit PNG as is, JPEG quality
//! 90/75/50, resize to 50 %, crop 10 % (5 % off each side), brightness
//! ±10 %, and H.264 at CRF 23 and 28 through ffmpeg when it is on the PATH —
//! and detected per frame and per clip (frames pooled). Bit accuracy is over
//! the 64 payload bits of single frames. Unmarked pictures (`--unmarked`,
//! default 1 000) give the false positives: how many are called marked, and
//! how the sync statistic `z` is spread (it should be standard normal:
//! about 0.1 % above 3.09).
//!
//! The baseline half (tools/bench/watermark_dwtdct.py) needs the Python of
//! the other benches with `invisible-watermark` and OpenCV; without it the
//! table says n/a. Ends with one JSON line.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use genfx::provenance::test_pictures;
use genfx::provenance::watermark::{self, Detector, DEFAULT_KEY};

const NAME: &str = "watermark";
/// The payload every clip carries: tag, version, a shot key.
const SHOT: u64 = 0x1ABC_DEF0_1234;

/// An 8-bit RGB frame.
#[derive(Clone)]
struct Rgb8 {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Rgb8 {
    fn from_f32(w: usize, h: usize, v: &[f32]) -> Self {
        let px = v
            .iter()
            .map(|x| (x.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        Self { w, h, px }
    }

    fn to_f32(&self) -> Vec<f32> {
        self.px.iter().map(|&b| f32::from(b) / 255.0).collect()
    }
}

fn arg<T: std::str::FromStr>(args: &[String], key: &str, default: T) -> T {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn jpeg(f: &Rgb8, quality: u8) -> Rgb8 {
    let mut buf = Vec::new();
    jpeg_encoder::Encoder::new(&mut buf, quality)
        .encode(&f.px, f.w as u16, f.h as u16, jpeg_encoder::ColorType::Rgb)
        .expect("JPEG encode");
    let mut dec = jpeg_decoder::Decoder::new(std::io::Cursor::new(buf));
    let px = dec.decode().expect("JPEG decode");
    Rgb8 { w: f.w, h: f.h, px }
}

fn half(f: &Rgb8) -> Rgb8 {
    let (w, h) = (f.w / 2, f.h / 2);
    let mut px = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let at = |xx: usize, yy: usize| u32::from(f.px[(yy * f.w + xx) * 3 + c]);
                let sum = at(2 * x, 2 * y)
                    + at(2 * x + 1, 2 * y)
                    + at(2 * x, 2 * y + 1)
                    + at(2 * x + 1, 2 * y + 1);
                px[(y * w + x) * 3 + c] = ((sum + 2) / 4) as u8;
            }
        }
    }
    Rgb8 { w, h, px }
}

fn crop(f: &Rgb8) -> Rgb8 {
    let (dx, dy) = (f.w / 20, f.h / 20);
    let (w, h) = (f.w - 2 * dx, f.h - 2 * dy);
    let mut px = Vec::with_capacity(w * h * 3);
    for y in dy..dy + h {
        px.extend_from_slice(&f.px[(y * f.w + dx) * 3..(y * f.w + dx + w) * 3]);
    }
    Rgb8 { w, h, px }
}

fn bright(f: &Rgb8, gain: f32) -> Rgb8 {
    Rgb8 {
        px: f
            .px
            .iter()
            .map(|&b| (f32::from(b) * gain).round().clamp(0.0, 255.0) as u8)
            .collect(),
        ..f.clone()
    }
}

fn ffmpeg_on_path() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A clip through libx264 at `crf` and back.
fn h264(clip: &[Rgb8], crf: u32, dir: &Path) -> Result<Vec<Rgb8>, String> {
    let (w, h) = (clip[0].w, clip[0].h);
    let path = dir.join(format!("clip-crf{crf}.mp4"));
    let mut enc = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-s", &format!("{w}x{h}"), "-r", "24", "-i", "pipe:0"])
        .args([
            "-c:v",
            "libx264",
            "-crf",
            &crf.to_string(),
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    {
        use std::io::Write;
        let mut stdin = enc.stdin.take().expect("piped stdin");
        for f in clip {
            stdin.write_all(&f.px).map_err(|e| e.to_string())?;
        }
    }
    if !enc.wait().map_err(|e| e.to_string())?.success() {
        return Err("ffmpeg could not encode H.264".into());
    }
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .output()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    Ok(out
        .stdout
        .chunks_exact(w * h * 3)
        .map(|px| Rgb8 {
            w,
            h,
            px: px.to_vec(),
        })
        .collect())
}

#[derive(Default)]
struct Tally {
    frames: usize,
    frame_hits: usize,
    clips: usize,
    clip_hits: usize,
    bits_right: u64,
}

impl Tally {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "frame_detect": self.frame_hits as f64 / self.frames.max(1) as f64,
            "clip_detect": self.clip_hits as f64 / self.clips.max(1) as f64,
            "bit_accuracy": self.bits_right as f64 / (64 * self.frames.max(1)) as f64,
        })
    }
}

fn judge(tally: &mut Tally, clip: &[Rgb8], payload: u64) {
    let mut pooled = Detector::new(DEFAULT_KEY);
    for f in clip {
        let v = f.to_f32();
        let mut one = Detector::new(DEFAULT_KEY);
        one.add_frame(&v, 3, f.w, f.h).expect("a whole frame");
        let d = one.result();
        tally.frames += 1;
        tally.frame_hits += usize::from(d.marked && d.payload == Some(payload));
        tally.bits_right += u64::from(64 - (d.decoded ^ payload).count_ones());
        pooled
            .add_frame(&v, 3, f.w, f.h)
            .expect("one shape per clip");
    }
    let d = pooled.result();
    tally.clips += 1;
    tally.clip_hits += usize::from(d.marked && d.payload == Some(payload));
}

fn write_png(path: &Path, f: &Rgb8) {
    let file = std::fs::File::create(path).expect("a PNG file");
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), f.w as u32, f.h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&f.px))
        .expect("PNG write");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clips = arg(&args, "--clips", 6usize);
    let frames = arg(&args, "--frames", 48usize);
    let (w, h) = (
        arg(&args, "--width", 768usize),
        arg(&args, "--height", 512usize),
    );
    let unmarked = arg(&args, "--unmarked", 1000usize);
    let payload = watermark::payload_for(SHOT);
    let ffmpeg = ffmpeg_on_path();
    let work = std::env::temp_dir().join(format!("genfx-bench-watermark-{}", std::process::id()));
    let clean_dir = work.join("clips");
    std::fs::create_dir_all(&clean_dir).expect("a scratch folder");
    println!(
        "{NAME}: {clips} clips of {frames} frames at {w}x{h}, {unmarked} unmarked pictures; \
         H.264 {}",
        if ffmpeg {
            "through ffmpeg"
        } else {
            "skipped (no ffmpeg on the PATH)"
        }
    );

    let mut psnr = Vec::new();
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for c in 0..clips {
        let dir = clean_dir.join(format!("{c:02}"));
        std::fs::create_dir_all(&dir).expect("a clip folder");
        let mut marked = Vec::with_capacity(frames);
        for t in 0..frames {
            let clean = test_pictures::panning(w, h, 1000 + c as u64, 2 * t);
            let clean8 = Rgb8::from_f32(w, h, &clean);
            write_png(&dir.join(format!("{t:04}.png")), &clean8);
            let mut v = clean8.to_f32();
            watermark::embed(&mut v, 3, w, h, DEFAULT_KEY, payload);
            let m = Rgb8::from_f32(w, h, &v);
            psnr.push(watermark::psnr(&clean8.to_f32(), &m.to_f32()));
            marked.push(m);
        }
        type Attack = fn(&Rgb8) -> Rgb8;
        let attacks: [(&str, Attack); 8] = [
            ("png8", |f| f.clone()),
            ("jpeg90", |f| jpeg(f, 90)),
            ("jpeg75", |f| jpeg(f, 75)),
            ("jpeg50", |f| jpeg(f, 50)),
            ("resize50", half),
            ("crop10", crop),
            ("bright+10", |f| bright(f, 1.1)),
            ("bright-10", |f| bright(f, 0.9)),
        ];
        for (name, attack) in attacks {
            let attacked: Vec<Rgb8> = marked.iter().map(attack).collect();
            judge(tallies.entry(name).or_default(), &attacked, payload);
        }
        if ffmpeg {
            for (name, crf) in [("h264_crf23", 23), ("h264_crf28", 28)] {
                match h264(&marked, crf, &work) {
                    Ok(clip) if !clip.is_empty() => {
                        judge(tallies.entry(name).or_default(), &clip, payload)
                    }
                    Ok(_) => println!("{NAME}: {name}: ffmpeg returned no frames"),
                    Err(e) => println!("{NAME}: {name}: {e}"),
                }
            }
        }
    }

    // False positives: unmarked pictures, each alone.
    let (fw, fh) = (384usize, 256usize);
    let mut called = 0usize;
    let mut above = 0usize;
    let mut max_z = f64::MIN;
    for i in 0..unmarked {
        let p = Rgb8::from_f32(fw, fh, &test_pictures::natural(fw, fh, 50_000 + i as u64));
        let mut det = Detector::new(DEFAULT_KEY);
        det.add_frame(&p.to_f32(), 3, fw, fh)
            .expect("a whole frame");
        let d = det.result();
        called += usize::from(d.marked);
        above += usize::from(d.z > 3.09);
        max_z = max_z.max(d.z);
    }

    let baseline = {
        let mut a = vec![clean_dir.display().to_string()];
        if ffmpeg {
            a.push("--ffmpeg".into());
        }
        common::run_torch("watermark_dwtdct.py", &a, false)
    };
    let _ = std::fs::remove_dir_all(&work);
    let psnr_db = common::median(psnr);

    println!(
        "\n{:<12} {:>14} {:>14} {:>10}   | DWT-DCT {:>8} {:>8} {:>8}",
        "attack", "frame detect", "2 s clip", "bits", "frame", "clip", "bits"
    );
    let base_attacks = baseline
        .as_ref()
        .ok()
        .and_then(|b| b.get("attacks").cloned());
    for (name, t) in &tallies {
        let j = t.json();
        let b = base_attacks.as_ref().and_then(|a| a.get(*name));
        let f = |v: Option<&serde_json::Value>, k: &str| {
            v.and_then(|v| v[k].as_f64())
                .map_or("n/a".to_string(), |x| format!("{:.1} %", 100.0 * x))
        };
        println!(
            "{name:<12} {:>14} {:>14} {:>10}   |         {:>8} {:>8} {:>8}",
            f(Some(&j), "frame_detect"),
            f(Some(&j), "clip_detect"),
            f(Some(&j), "bit_accuracy"),
            f(b, "frame_detect"),
            f(b, "clip_detect"),
            f(b, "bit_accuracy"),
        );
    }
    println!(
        "PSNR of the mark: median {psnr_db:.2} dB (DWT-DCT: {})",
        baseline
            .as_ref()
            .ok()
            .and_then(|b| b["psnr_db"].as_f64())
            .map_or("n/a".into(), |p| format!("{p:.2} dB"))
    );
    println!(
        "unmarked pictures: {called} of {unmarked} called marked; z > 3.09 for {above} \
         (about {:.1} expected); largest z {max_z:.2}",
        unmarked as f64 * watermark::normal_tail(3.09)
    );
    if let Err(e) = &baseline {
        println!("DWT-DCT baseline not measured: {e}");
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": NAME,
            "clips": clips,
            "clip_frames": frames,
            "width": w,
            "height": h,
            "psnr_db": psnr_db,
            "ours": tallies.iter().map(|(k, t)| (k.to_string(), t.json())).collect::<serde_json::Map<_, _>>(),
            "dwtdct": baseline.as_ref().ok(),
            "dwtdct_error": baseline.as_ref().err(),
            "false_positives": {
                "images": unmarked,
                "called_marked": called,
                "z_above_3_09": above,
                "max_z": max_z,
            },
            "h264": ffmpeg,
        })
    );
}
