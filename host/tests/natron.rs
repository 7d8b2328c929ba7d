//! The bundle inside the real Natron, headless: runs when `NATRON_RENDERER`
//! names a `NatronRenderer` executable, and says why it is skipped otherwise.
//!
//! Two facts of NatronRenderer 2.5 shape the project and the verdict:
//! - A Write node's `formatType` defaults to the project format (option 1 of
//!   openfx-io's GenericWriter: 0 Input Format, 1 Project Format, 2 Fixed
//!   Format), so the first frame came out 1920x1080 with the picture in a
//!   corner. The project sets it to the input's format (0).
//! - NatronRenderer sometimes aborts at exit (status 134, SIGABRT in its own
//!   cache destructor) after every frame is written. The run is judged by
//!   the frames it wrote: a bad exit status fails the test only when frames
//!   are missing or wrong.

mod common;

use genfx_host::Picture;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The first and last frame rendered.
const FRAMES: (u32, u32) = (1, 3);

/// A Natron Python project: a Read of synthetic frames through GenFX Extend
/// into a Write, rendered for frames 1..3 (inside the source: pass-through).
fn project(source: &str, output: &str) -> String {
    format!(
        r#"
import NatronEngine
app = NatronEngine.natron.getActiveInstance() if hasattr(NatronEngine.natron, "getActiveInstance") else app1
read = app.createNode("fr.inria.openfx.ReadPNG")
read.getParam("filename").set("{source}")
extend = app.createNode("org.genfx.Extend")
if extend is None:
    raise RuntimeError("Natron did not load org.genfx.Extend from OFX_PLUGIN_PATH")
extend.connectInput(0, read)
write = app.createNode("fr.inria.openfx.WritePNG")
write.getParam("filename").set("{output}")
write.connectInput(0, extend)
# Write the input's format (0), not the project's default 1920x1080 (1).
write.getParam("formatType").set(0)
# Frame range 2 is "Manual": firstFrame..lastFrame.
write.getParam("frameRange").set(2)
write.getParam("firstFrame").set({first})
write.getParam("lastFrame").set({last})
"#,
        first = FRAMES.0,
        last = FRAMES.1,
    )
}

/// Whether a NatronRenderer run did its job: every expected frame exists,
/// has the source's size and matches it at the writer's 8-bit precision.
/// The exit status only matters for the message when frames are wrong.
fn judge(
    status: Option<ExitStatus>,
    expected: &[(u32, Picture)],
    written: &dyn Fn(u32) -> Result<Picture, String>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (f, want) in expected {
        match written(*f) {
            Err(e) => problems.push(format!("frame {f} was not written: {e}")),
            Ok(got) if (got.width, got.height) != (want.width, want.height) => {
                problems.push(format!(
                    "frame {f} is {}x{}, the input is {}x{} (Write node's formatType?)",
                    got.width, got.height, want.width, want.height
                ))
            }
            Ok(got) => {
                // Natron's PNG writer may quantise to 8 bits.
                if let Some((i, (x, y))) = want
                    .rgba
                    .iter()
                    .zip(&got.rgba)
                    .enumerate()
                    .find(|(_, (x, y))| (*x - *y).abs() > 1.0 / 255.0 + 1e-6)
                {
                    problems.push(format!("frame {f}: value {i} is {y}, expected {x}"));
                }
            }
        }
    }
    if problems.is_empty() {
        if let Some(s) = status.filter(|s| !s.success()) {
            eprintln!("NatronRenderer exited with {s} after writing every frame; accepted");
        }
        return Ok(());
    }
    let how = status.map_or("did not finish".to_string(), |s| format!("exited with {s}"));
    Err(format!(
        "NatronRenderer {how}:\n  {}",
        problems.join("\n  ")
    ))
}

fn read_frame(dir: &Path, f: u32) -> Result<Picture, String> {
    genfx_host::files::read(&dir.join(format!("out.{f:04}.png"))).map_err(|e| e.to_string())
}

#[test]
fn natron_renders_the_bundle() {
    let Some(renderer) = std::env::var_os("NATRON_RENDERER").map(PathBuf::from) else {
        eprintln!(
            "skipped: set NATRON_RENDERER to a NatronRenderer executable to run GenFX inside Natron"
        );
        return;
    };
    if !renderer.is_file() {
        panic!("NATRON_RENDERER={} is not a file", renderer.display());
    }
    let bundle = common::bundle_path();
    let plugins = bundle.parent().expect("bundle folder").to_path_buf();
    let dir = std::env::temp_dir().join(format!("genfx-natron-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (input, output) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    let mut expected = Vec::new();
    for f in FRAMES.0..=FRAMES.1 {
        let p = common::picture(64, 48, f, 5);
        let path = input.join(format!("src.{f:04}.png"));
        genfx_host::files::write(&path, &p).unwrap();
        // What the writer can give back: the 16-bit PNG as read.
        expected.push((f, genfx_host::files::read(&path).unwrap()));
    }
    let script = dir.join("genfx_extend.py");
    std::fs::write(
        &script,
        project(
            &input.join("src.####.png").display().to_string(),
            &output.join("out.####.png").display().to_string(),
        ),
    )
    .unwrap();
    let run = Command::new(&renderer)
        .arg("-w")
        .arg("Write1")
        .arg(format!("{}-{}", FRAMES.0, FRAMES.1))
        .arg(&script)
        .env("OFX_PLUGIN_PATH", &plugins)
        .output()
        .expect("start NatronRenderer");
    let verdict = judge(Some(run.status), &expected, &|f| read_frame(&output, f));
    if let Err(e) = verdict {
        panic!(
            "{e}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The verdict without Natron: what NatronRenderer 2.5 was seen to do.
#[cfg(unix)]
#[test]
fn a_natron_run_is_judged_by_its_frames_not_its_exit_status() {
    use std::os::unix::process::ExitStatusExt;
    let frames: Vec<(u32, Picture)> = (1..=3).map(|f| (f, common::picture(8, 6, f, 5))).collect();
    let by_number = |f: u32| frames.iter().find(|(n, _)| *n == f).unwrap().1.clone();
    // SIGABRT at exit (shell status 134) after writing every frame: passed.
    // (A raw wait status of 6 is "killed by signal 6", SIGABRT.)
    let abort = ExitStatus::from_raw(6);
    assert!(!abort.success());
    let aborted = Some(abort);
    assert!(judge(aborted, &frames, &|f| Ok(by_number(f))).is_ok());
    // The same exit with a frame missing: failed, naming the frame.
    let missing = judge(aborted, &frames, &|f| {
        if f == 2 {
            Err("no such file".into())
        } else {
            Ok(by_number(f))
        }
    });
    assert!(missing.unwrap_err().contains("frame 2 was not written"));
    // A clean exit with the first frame at the project format: failed.
    let ok = Some(ExitStatus::from_raw(0));
    let project_sized = judge(ok, &frames, &|f| {
        let mut p = by_number(f);
        if f == 1 {
            p = Picture::new(1920, 1080);
        }
        Ok(p)
    });
    assert!(project_sized.unwrap_err().contains("1920x1080"));
    // Wrong pixels: failed.
    let wrong = judge(ok, &frames, &|f| {
        let mut p = by_number(f);
        p.rgba[5] += 0.1;
        Ok(p)
    });
    assert!(wrong.is_err());
    // The generated project writes the input's format.
    let script = project("in.####.png", "out.####.png");
    assert!(script.contains(r#"write.getParam("formatType").set(0)"#));
}
