//! The bundle inside the real Natron, headless: runs when `NATRON_RENDERER`
//! names a `NatronRenderer` executable, and says why it is skipped otherwise.

mod common;

use std::path::PathBuf;
use std::process::Command;

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
write.getParam("frameRange").set(2)
write.getParam("firstFrame").set(1)
write.getParam("lastFrame").set(3)
"#
    )
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
    let (input, output) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    for f in 1..=3 {
        let p = common::picture(64, 48, f, 5);
        genfx_host::files::write(&input.join(format!("src.{f:04}.png")), &p).unwrap();
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
        .arg("1-3")
        .arg(&script)
        .env("OFX_PLUGIN_PATH", &plugins)
        .output()
        .expect("start NatronRenderer");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "NatronRenderer failed:\n{log}");
    for f in 1..=3 {
        let a = genfx_host::files::read(&input.join(format!("src.{f:04}.png"))).unwrap();
        let b = genfx_host::files::read(&output.join(format!("out.{f:04}.png")))
            .unwrap_or_else(|e| panic!("Natron wrote no frame {f}: {e}\n{log}"));
        // Natron's PNG writer may quantise to 8 bits; compare at that precision.
        for (x, y) in a.rgba.iter().zip(&b.rgba) {
            assert!((x - y).abs() <= 1.0 / 255.0 + 1e-6, "frame {f}: {x} vs {y}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
