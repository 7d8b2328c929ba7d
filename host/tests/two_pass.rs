//! The 0.9.8 distilled two-pass recipe (8 steps at reduced size, the latent
//! upsampler, 3 refinement steps) through the real plugin and through
//! `genfx generate`: a distilled copy of the tiny model with the fixture's
//! latent upsampler renders nine frames both ways and the log says two
//! passes ran. The numbers themselves are held to diffusers by
//! tests/two_pass_parity.rs.

mod common;

#[path = "../../tests/two_pass_common/mod.rs"]
mod two_pass_common;

use common::*;
use std::path::Path;
use std::process::Command;

fn genfx(log: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genfx"));
    command
        .env("GENFX_CACHE_DIR", "off")
        .env("GENFX_DEVICE", "cpu")
        .env("GENFX_LOG", log);
    command
}

fn pngs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn the_plugin_and_genfx_generate_run_two_passes_with_an_upsampler() {
    let model = two_pass_common::distilled_model("host", true);
    let root = model.parent().unwrap().join("host-out");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();

    let cli = genfx(&root.join("cli.log"))
        .arg("generate")
        .arg("--model")
        .arg(&model)
        .args(["--prompt", "a kite over a beach", "--frames", "9"])
        .args(["--width", "96", "--height", "64", "--quality", "standard"])
        .arg("--out")
        .arg(root.join("cli"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&cli.stderr);
    assert!(cli.status.success(), "{said}");
    assert_eq!(pngs(&root.join("cli")), 9);
    assert!(said.contains("genfx: note: two passes"), "{said}");

    let log = root.join("plugin.log");
    let mut render = genfx(&log);
    render
        .arg("render")
        .arg(bundle_path())
        .args(["--plugin", "org.genfx.Generate", "--context", "generator"])
        .args(["--frames", "0-8", "--size", "96x64"])
        .arg("--out")
        .arg(root.join("plugin"));
    for (k, v) in [
        ("prompt", "a kite over a beach"),
        ("model", model.to_str().unwrap()),
        ("length", "9"),
        ("resolution", "96"),
        ("cacheFolder", "off"),
    ] {
        render.arg("--set").arg(format!("{k}={v}"));
    }
    let plugin = render.output().unwrap();
    assert!(
        plugin.status.success(),
        "{}",
        String::from_utf8_lossy(&plugin.stderr)
    );
    assert_eq!(pngs(&root.join("plugin")), 9);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("two passes"), "{said}");
    let _ = std::fs::remove_dir_all(&root);
}
