//! `genfx detect` on frames `genfx generate` wrote (the tiny model), on real
//! frames that never went through the engine, and on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn genfx() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genfx"));
    command
        .env("GENFX_CACHE_DIR", "off")
        .env("GENFX_DEVICE", "cpu")
        .env_remove("GENFX_WATERMARK_KEY");
    command
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn write_png(path: &Path, w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            data.extend(pixel(x, y));
        }
    }
    enc.write_header().unwrap().write_image_data(&data).unwrap();
}

#[test]
fn generated_frames_are_marked_and_real_ones_are_not() {
    let dir = tempdir("detect");
    let out = dir.join("shot");
    // 512x256: the tiny model's noisy pictures need the mark's cells at
    // 4 pixels to average out
    let run = genfx()
        .arg("generate")
        .arg("--model")
        .arg(fixtures().join("pipeline/model"))
        .args(["--prompt", "a kite over a beach", "--frames", "9"])
        .args(["--width", "512", "--height", "256", "--steps", "2"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let found = genfx().arg("detect").arg(&out).output().unwrap();
    let report = lines(&found);
    let shot = report
        .iter()
        .find(|l| l.get("shot").is_some())
        .expect("a pooled shot line");
    assert_eq!(shot["marked"], true, "{shot}");
    assert!(shot["false_positive_rate"].as_f64().unwrap() < 1e-6);
    assert_eq!(&shot["payload"].as_str().unwrap()[..4], "4746", "{shot}");
    assert_eq!(report.iter().filter(|l| l.get("file").is_some()).count(), 9);
    assert_eq!(found.status.code(), Some(0), "{report:?}");

    // real frames: smooth pictures that never went through the engine
    let real = dir.join("real");
    std::fs::create_dir_all(&real).unwrap();
    for f in 0..3u32 {
        write_png(&real.join(format!("{f:04}.png")), 320, 200, |x, y| {
            [(x * 255 / 320) as u8, (y * 255 / 200) as u8, (40 * f) as u8]
        });
    }
    let clean = genfx()
        .arg("detect")
        .arg(&real)
        .arg("--human")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&clean.stdout);
    assert_eq!(clean.status.code(), Some(1), "{text}");
    assert!(text.contains("no GenFX mark"), "{text}");
}

#[test]
fn bad_input_is_explained() {
    let none = genfx().arg("detect").output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    let missing = genfx()
        .args(["detect", "/nonexistent/shot"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file or folder"));
    let dir = tempdir("detect-bad");
    let broken = dir.join("broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    let out = genfx().arg("detect").arg(&broken).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = lines(&out);
    assert_eq!(report[0]["marked"], false);
    assert!(report[0]["error"].as_str().is_some(), "{report:?}");
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("genfx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
