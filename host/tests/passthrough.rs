//! Extend passes real frames through untouched, bit for bit, and refuses to
//! fake a generated frame when no model is available.

mod common;

use common::*;
use genfx_host::abi::stat;
use genfx_host::source::FrameSource;
use std::process::Command;

#[test]
fn extend_general_reproduces_source_frames_bit_for_bit() {
    let bundle = natron();
    let source = clip(5, 24, 16, 1);
    let instance = extend(&bundle, GENERAL, source.clone());
    let prefs = instance.clip_preferences().expect("clip preferences");
    assert_eq!(prefs["Source"].depth, "OfxBitDepthFloat");
    let (first, last) = instance.time_domain().expect("time domain");
    // Forward extension: the domain starts at the source and reaches past it.
    assert_eq!(first, 0.0);
    assert!(
        last > 4.0,
        "time domain {first}..{last} does not reach past the source"
    );
    let mut rendered = Vec::new();
    instance
        .render_sequence(0, 4, |frame, picture| {
            rendered.push((frame, picture));
            Ok(())
        })
        .expect("render the source range");
    for (frame, picture) in rendered {
        let want = source.frame(frame).unwrap().unwrap();
        assert!(picture == *want, "frame {frame} differs from the source");
        // The plugin's own copy (Render, not the host's identity shortcut).
        let rendered = instance.render(frame as f64).expect("Render action");
        assert!(
            rendered == *want,
            "frame {frame}: Render changed the pixels"
        );
    }
    let needed = instance.frames_needed(2.0).expect("frames needed");
    assert_eq!(
        needed["Source"],
        [(2.0, 2.0)],
        "a real frame needs only itself"
    );
    instance.destroy().expect("destroy");
}

#[test]
fn extend_filter_passes_through_too() {
    let bundle = natron();
    let source = clip(3, 10, 7, 2);
    let instance = extend(&bundle, FILTER, source.clone());
    instance.clip_preferences().expect("clip preferences");
    for f in 0..3 {
        let want = source.frame(f).unwrap().unwrap();
        assert!(
            instance.render_frame(f as f64).expect("render") == *want,
            "frame {f}"
        );
        assert!(
            instance.render(f as f64).expect("Render") == *want,
            "frame {f}"
        );
    }
}

#[test]
fn a_generated_frame_without_a_model_fails_with_a_message() {
    let bundle = natron();
    let source = clip(3, 10, 7, 3);
    let instance = extend(&bundle, GENERAL, source);
    instance
        .set_param("prompt", "the camera keeps panning")
        .unwrap();
    instance.clip_preferences().unwrap();
    let err = instance.render_frame(3.0).expect_err("no model: no frame");
    assert_eq!(err.status(), Some(stat::FAILED), "{err}");
    let text = err.to_string().to_lowercase();
    assert!(text.contains("model"), "the failure says why: {err}");
    let shown = instance
        .persistent_message()
        .expect("a persistent message for the user");
    assert_eq!(shown.kind, "OfxMessageError");
    assert!(
        shown.text.to_lowercase().contains("model"),
        "{}",
        shown.text
    );
}

fn write_pngs(dir: &std::path::Path, frames: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..frames {
        let p = picture(12, 9, f, 4);
        genfx_host::files::write(&dir.join(format!("in_{f:03}.png")), &p).unwrap();
    }
}

#[test]
fn the_command_line_renders_png_bit_for_bit_and_reports_failures() {
    let root = std::env::temp_dir().join(format!("genfx-cli-{}", std::process::id()));
    let (input, output, failed) = (root.join("in"), root.join("out"), root.join("failed"));
    let _ = std::fs::remove_dir_all(&root);
    write_pngs(&input, 3);
    let genfx = |out: &std::path::Path, frames: &str| {
        Command::new(env!("CARGO_BIN_EXE_genfx"))
            .arg("render")
            .arg(bundle_path())
            .args([
                "--plugin",
                EXTEND,
                "--context",
                "general",
                "--frames",
                frames,
            ])
            .arg("--source")
            .arg(format!("Source={}", input.display()))
            .arg("--out")
            .arg(out)
            .env("GENFX_LOG", root.join("genfx.log"))
            .output()
            .expect("run genfx render")
    };
    let ok = genfx(&output, "0-2");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for f in 0..3 {
        let a = std::fs::read(input.join(format!("in_{f:03}.png"))).unwrap();
        let b = std::fs::read(output.join(format!("frame_{f:05}.png"))).unwrap();
        let decode = |bytes: Vec<u8>| {
            let mut r = png::Decoder::new(std::io::Cursor::new(bytes))
                .read_info()
                .unwrap();
            let mut buf = vec![0; r.output_buffer_size()];
            r.next_frame(&mut buf).unwrap();
            buf
        };
        assert_eq!(decode(a), decode(b), "frame {f}");
    }
    let bad = genfx(&failed, "3-3");
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("kOfxStatFailed"), "{stderr}");
    assert!(stderr.to_lowercase().contains("model"), "{stderr}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_command_line_explains_bad_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_genfx"))
        .arg("render")
        .arg(bundle_path())
        .args([
            "--plugin",
            EXTEND,
            "--context",
            "general",
            "--frames",
            "0-1",
            "--out",
            "/tmp/x",
        ])
        .args(["--set", "noSuchParam=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("noSuchParam"));
}
