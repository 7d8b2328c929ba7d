//! A host that misbehaves: every case gets a status (and a message where a
//! person should know), and this process — the host — lives on.

mod common;

use common::*;
use genfx_host::abi::stat;
use genfx_host::image::Depth;
use genfx_host::source::FrameSource;
use std::sync::Arc;

fn is_failure(status: Option<i32>) -> bool {
    matches!(status, Some(s) if s != stat::OK && s != stat::REPLY_DEFAULT)
}

#[test]
fn null_arguments_to_every_action_get_a_status() {
    let bundle = natron();
    let instance = extend(&bundle, GENERAL, clip(3, 8, 6, 10));
    instance.misbehave(|m| m.null_args = true);
    // The host falls back to its defaults where the plugin could not answer.
    let _ = instance.clip_preferences();
    let _ = instance.time_domain();
    let _ = instance.region_of_definition(0.0);
    let _ = instance.frames_needed(0.0);
    let _ = instance.is_identity(0.0);
    let err = instance
        .render(0.0)
        .expect_err("render without arguments cannot succeed");
    assert!(is_failure(err.status()), "{err}");
    instance.misbehave(|m| m.null_args = false);
    still_healthy(&bundle);
}

#[test]
fn missing_render_properties_get_a_status() {
    let bundle = natron();
    let instance = extend(&bundle, GENERAL, clip(3, 8, 6, 11));
    instance.clip_preferences().unwrap();
    for missing in ["OfxPropTime", "OfxImageEffectPropRenderWindow"] {
        instance.misbehave(|m| m.drop_in_args = vec![missing.into()]);
        let err = instance.render(1.0).expect_err(missing);
        assert!(is_failure(err.status()), "{missing}: {err}");
    }
    still_healthy(&bundle);
}

#[test]
fn render_before_clip_preferences_and_sequence() {
    let bundle = natron();
    let source = clip(3, 8, 6, 12);
    let instance = extend(&bundle, GENERAL, source.clone());
    // Straight from CreateInstance to Render, as some hosts do for a preview.
    match instance.render(1.0) {
        Ok(p) => assert!(
            p == *source.frame(1).unwrap().unwrap(),
            "a real frame, changed"
        ),
        Err(e) => assert!(is_failure(e.status()), "{e}"),
    }
    still_healthy(&bundle);
}

#[test]
fn render_outside_the_time_domain_is_empty_not_an_error() {
    let bundle = natron();
    let instance = extend(&bundle, GENERAL, clip(3, 8, 6, 13));
    instance.clip_preferences().unwrap();
    let (first, last) = instance.time_domain().unwrap();
    for t in [first - 50.0, last + 1000.0] {
        let p = instance
            .render(t)
            .expect("outside the domain the plugin clears");
        assert!(p.rgba.iter().all(|v| *v == 0.0), "frame {t} is not empty");
    }
    let err = instance.render(f64::NAN);
    assert!(err.is_err(), "a NaN time cannot render");
}

#[test]
fn a_source_clip_without_images_fails_with_a_message() {
    let bundle = natron();
    let instance = extend(&bundle, GENERAL, clip(3, 8, 6, 14));
    instance.clip_preferences().unwrap();
    instance.misbehave(|m| m.no_source_images = true);
    // Render itself: on the identity path the host would copy the frame.
    let err = instance.render(1.0).expect_err("no input image");
    assert_eq!(err.status(), Some(stat::FAILED), "{err}");
    let said = instance.persistent_message().expect("the user is told");
    assert!(said.text.contains("Source"), "{}", said.text);
    instance.misbehave(|m| m.no_source_images = false);
    // Once images come again the message goes away.
    instance.render(1.0).expect("render again");
    assert!(instance.persistent_message().is_none());
}

#[test]
fn images_of_another_depth_are_converted_or_refused() {
    let bundle = natron();
    let source = clip(2, 8, 6, 15);
    let instance = extend(&bundle, GENERAL, source.clone());
    instance.clip_preferences().unwrap();
    for depth in [Depth::Byte, Depth::Short] {
        instance.misbehave(|m| m.source_depth = Some(depth));
        match instance.render(0.0) {
            Ok(p) => {
                let want = source.frame(0).unwrap().unwrap();
                let step = if depth == Depth::Byte {
                    1.0 / 255.0
                } else {
                    1.0 / 65535.0
                };
                for (a, b) in p.rgba.iter().zip(&want.rgba) {
                    assert!((a - b).abs() <= step, "{depth:?}: {a} vs {b}");
                }
            }
            Err(e) => {
                assert!(is_failure(e.status()), "{e}");
                assert!(!e.messages().is_empty(), "refused without telling: {e}");
            }
        }
    }
}

#[test]
fn negative_row_bytes_are_honoured() {
    let bundle = natron();
    let source = clip(2, 9, 5, 16);
    let instance = extend(&bundle, GENERAL, source.clone());
    instance.clip_preferences().unwrap();
    instance.misbehave(|m| m.negative_row_bytes = true);
    for f in 0..2 {
        let p = instance
            .render(f as f64)
            .expect("render with negative row bytes");
        assert!(p == *source.frame(f).unwrap().unwrap(), "frame {f}");
    }
}

#[test]
fn an_abort_in_the_middle_ends_the_frame_with_a_status() {
    let bundle = natron();
    let instance = extend(&bundle, GENERAL, clip(3, 8, 6, 17));
    instance.clip_preferences().unwrap();
    instance.begin_sequence((0.0, 5.0)).unwrap();
    instance.render(0.0).expect("a real frame before the abort");
    instance.abort(true);
    let err = instance
        .render(4.0)
        .expect_err("an aborted generated frame");
    assert!(is_failure(err.status()), "{err}");
    instance.abort(false);
    instance.misbehave(|m| m.abort_after_polls = Some(0));
    let err = instance
        .render(4.0)
        .expect_err("aborted from the first poll");
    assert!(is_failure(err.status()), "{err}");
    instance.end_sequence((0.0, 5.0)).unwrap();
    still_healthy(&bundle);
}

#[test]
fn empty_huge_and_invalid_utf8_prompts() {
    let bundle = natron();
    let source = clip(2, 8, 6, 18);
    let huge = "a slow pan over hills ".repeat(100 * 1024 / 22);
    let prompts: [&[u8]; 3] = [b"", huge.as_bytes(), &[0xff, 0xfe, b'a', 0xc3, 0x28]];
    for prompt in prompts {
        let instance = extend(&bundle, GENERAL, source.clone());
        instance.set_param_bytes("prompt", prompt).unwrap();
        instance.clip_preferences().unwrap();
        // Real frames pass through whatever the prompt.
        let p = instance.render_frame(0.0).expect("real frame");
        assert!(p == *source.frame(0).unwrap().unwrap());
        // A generated frame fails with a message (no model here), never a crash.
        let err = instance.render_frame(2.0).expect_err("generated frame");
        assert!(is_failure(err.status()), "{err}");
        assert!(
            !err.messages().is_empty(),
            "prompt of {} bytes: no message",
            prompt.len()
        );
        instance.destroy().unwrap();
    }
}

#[test]
fn two_instances_render_at_once_from_different_threads() {
    let bundle = natron();
    let (a, b) = (clip(6, 16, 12, 19), clip(6, 16, 12, 20));
    let ia = extend(&bundle, GENERAL, a.clone());
    let ib = extend(&bundle, GENERAL, b.clone());
    ia.clip_preferences().unwrap();
    ib.clip_preferences().unwrap();
    std::thread::scope(|s| {
        for (instance, source) in [(&ia, &a), (&ib, &b)] {
            s.spawn(move || {
                for round in 0..4 {
                    for f in 0..6 {
                        let p = instance.render(f as f64).expect("concurrent render");
                        assert!(
                            p == *source.frame(f).unwrap().unwrap(),
                            "round {round} frame {f}"
                        );
                    }
                }
            });
        }
    });
}

#[test]
fn an_instance_destroyed_while_another_renders() {
    let bundle = natron();
    let source = clip(6, 16, 12, 21);
    let renderer = extend(&bundle, GENERAL, source.clone());
    renderer.clip_preferences().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..5 {
                for f in 0..6 {
                    let p = renderer.render(f as f64).expect("render while others die");
                    assert!(p == *source.frame(f).unwrap().unwrap());
                }
            }
        });
        s.spawn(|| {
            for i in 0..5 {
                let doomed = extend(&bundle, GENERAL, clip(2, 16, 12, 30 + i));
                doomed.clip_preferences().unwrap();
                doomed.render_frame(0.0).unwrap();
                doomed.destroy().expect("destroy");
                // The host refuses actions on a destroyed instance itself.
                assert!(doomed.render(0.0).is_err());
            }
        });
    });
    drop(renderer);
    still_healthy(&bundle);
}

#[test]
fn instances_of_every_plugin_and_context_survive_a_render_with_nothing_connected() {
    let bundle = natron();
    let listing = genfx_host::describe::list(&bundle).unwrap();
    for plugin in &listing {
        for context in &plugin.contexts {
            let instance = genfx_host::Instance::create(
                &bundle,
                genfx_host::InstanceSpec {
                    plugin: plugin.id.clone(),
                    context: context.context.clone(),
                    project: genfx_host::Project {
                        width: 16.0,
                        height: 8.0,
                        fps: 24.0,
                        duration: 9.0,
                    },
                    sources: Default::default(),
                    values: vec![],
                },
            )
            .unwrap_or_else(|e| panic!("{} {}: {e}", plugin.id, context.context));
            let _ = instance.clip_preferences();
            let _ = instance.time_domain();
            // Unconnected inputs or no model: a status, and a message if failed.
            if let Err(e) = instance.render_frame(0.0) {
                assert!(is_failure(e.status()) || e.status().is_none(), "{e}");
            }
            instance.destroy().unwrap();
        }
    }
    still_healthy(&bundle);
    let _ = Arc::strong_count(&bundle);
}
