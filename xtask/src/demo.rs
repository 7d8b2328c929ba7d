//! `cargo xtask demo`: the bundle, the host, and a shot through the real
//! plugin, headless.

use crate::bundle::{bundle, target_dir};
use crate::util::{cargo, exec};
use std::path::{Path, PathBuf};
use std::process::Command;

const FRAMES: usize = 9;
const WIDTH: u32 = 160;
const HEIGHT: u32 = 96;

/// Writes a few synthetic frames: a gradient with a square moving across.
fn write_source(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for f in 0..FRAMES {
        let mut data = Vec::with_capacity((WIDTH * HEIGHT * 8) as usize);
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let inside =
                    x >= 10 + f as u32 * 12 && x < 40 + f as u32 * 12 && (30..60).contains(&y);
                let r = if inside { 65535 } else { x * 65535 / WIDTH };
                let g = if inside { 52000 } else { y * 65535 / HEIGHT };
                let b = (f as u32 * 65535 / FRAMES as u32) as u16;
                for v in [r as u16, g as u16, b, 65535] {
                    data.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        let path = dir.join(format!("src_{f:04}.png"));
        let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Sixteen);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(&data).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn decode(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    buf.truncate(info.buffer_size());
    Ok(buf)
}

fn sorted(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Ok(files)
}

pub fn run() -> Result<(), String> {
    let bundle = bundle()?;
    let mut build = cargo();
    build.args(["build", "--release", "-p", "genfx-host", "--bin", "genfx"]);
    exec(build)?;
    let genfx = target_dir()
        .join("release")
        .join(format!("genfx{}", std::env::consts::EXE_SUFFIX));

    let demo = target_dir().join("demo");
    let source = demo.join("source");
    let passthrough = demo.join("passthrough");
    let generated = demo.join("generated");
    for dir in [&source, &passthrough, &generated] {
        let _ = std::fs::remove_dir_all(dir);
    }
    write_source(&source)?;

    println!("\n== The plugins in {} ==", bundle.display());
    let mut list = Command::new(&genfx);
    list.arg("list").arg(&bundle);
    exec(list)?;

    let last = FRAMES - 1;
    println!(
        "\n== Extend, General context: frames 0..{last} lie inside the source and pass through =="
    );
    let mut render = Command::new(&genfx);
    render
        .arg("render")
        .arg(&bundle)
        .args(["--plugin", "org.genfx.Extend", "--context", "general"])
        .args(["--frames", &format!("0-{last}")])
        .arg("--source")
        .arg(format!("Source={}", source.display()))
        .arg("--out")
        .arg(&passthrough);
    exec(render)?;
    let (inputs, outputs) = (sorted(&source)?, sorted(&passthrough)?);
    let mut same = inputs.len() == outputs.len();
    for (a, b) in inputs.iter().zip(&outputs) {
        same &= decode(a)? == decode(b)?;
    }
    if !same {
        return Err("the pass-through frames differ from the source frames".into());
    }
    println!("all {FRAMES} frames are identical to the source, bit for bit");

    // The tiny model is the pipeline's parity fixture: real LTX-Video
    // architecture, random weights. It proves the whole path runs; its
    // pictures are noise-like by construction.
    let model = crate::util::root().join("tests/fixtures/pipeline/model");
    let first = FRAMES;
    let last_generated = FRAMES + 8;
    println!(
        "\n== Extend, frames {first}..{last_generated}: generated after the source with the \
         tiny RANDOM-WEIGHT test model in {} ==",
        model.display()
    );
    let mut generate = Command::new(&genfx);
    generate
        .arg("render")
        .arg(&bundle)
        .args(["--plugin", "org.genfx.Extend", "--context", "general"])
        .args(["--frames", &format!("{first}-{last_generated}")])
        .arg("--source")
        .arg(format!("Source={}", source.display()))
        .args(["--set", "prompt=the red square keeps sliding right"])
        .arg("--set")
        .arg(format!("model={}", model.display()))
        .arg("--out")
        .arg(&generated);
    exec(generate)?;
    let written = sorted(&generated)?.len();
    if written != last_generated - first + 1 {
        return Err(format!(
            "expected {} generated frames in {}, found {written}",
            last_generated - first + 1,
            generated.display()
        ));
    }
    println!(
        "{written} generated frames written to {} (random weights: expect texture, not a picture; \
         point the 'model' parameter at downloaded LTX-Video weights for real shots, see README)",
        generated.display()
    );

    println!("\n== Without a model the plugin refuses with a message and fakes nothing ==");
    let mut refuse = Command::new(&genfx);
    refuse
        .arg("render")
        .arg(&bundle)
        .args(["--plugin", "org.genfx.Generate", "--context", "generator"])
        .args(["--frames", "0-0"])
        .args(["--set", "prompt=a lighthouse at dusk"])
        .arg("--out")
        .arg(demo.join("refused"));
    eprintln!("$ {refuse:?}");
    let status = refuse
        .status()
        .map_err(|e| format!("could not start genfx: {e}"))?;
    if status.success() {
        return Err("Generate without a model should have been refused".into());
    }
    println!("refused as expected (message above)");
    println!("\ndemo output: {}", demo.display());
    Ok(())
}
