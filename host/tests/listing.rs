//! `genfx list` on the real bundle shows the three plugins as designed.

mod common;

use common::*;
use genfx_host::describe::{self, ContextInfo, PluginListing};
use genfx_host::props::Value;

fn find<'a>(listing: &'a [PluginListing], id: &str) -> &'a PluginListing {
    listing
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("{id} is not listed"))
}

fn context<'a>(p: &'a PluginListing, name: &str) -> &'a ContextInfo {
    p.contexts
        .iter()
        .find(|c| describe::short_context(&c.context) == name)
        .unwrap_or_else(|| panic!("{} lacks context {name}", p.id))
}

fn inputs(c: &ContextInfo) -> Vec<(&str, bool, bool)> {
    c.clips
        .iter()
        .filter(|k| k.name != "Output")
        .map(|k| (k.name.as_str(), k.optional, k.temporal))
        .collect()
}

fn finite(v: &Option<Value>) -> bool {
    match v {
        Some(Value::Int(v)) => !v.is_empty(),
        Some(Value::Double(v)) => {
            !v.is_empty() && v.iter().all(|x| x.is_finite() && x.abs() < 1e12)
        }
        _ => false,
    }
}

#[test]
fn three_plugins_with_the_designed_contexts_clips_and_parameters() {
    let bundle = natron();
    let listing = describe::list(&bundle).expect("describe every plugin in every context");
    let mut ids: Vec<&str> = listing.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, [EXTEND, FILL, GENERATE]);

    let generate = find(&listing, GENERATE);
    let mut contexts: Vec<&str> = generate
        .contexts
        .iter()
        .map(|c| describe::short_context(&c.context))
        .collect();
    contexts.sort();
    assert_eq!(contexts, ["General", "Generator"]);
    assert_eq!(inputs(context(generate, "Generator")), []);
    let reference = inputs(context(generate, "General"));
    assert_eq!(reference.len(), 1);
    assert_eq!((reference[0].0, reference[0].1), ("Reference", true));

    let extend = find(&listing, EXTEND);
    for ctx in ["Filter", "General"] {
        assert_eq!(
            inputs(context(extend, ctx)),
            [("Source", false, true)],
            "Extend {ctx}"
        );
    }
    assert_eq!(extend.contexts.len(), 2);

    let fill = find(&listing, FILL);
    assert_eq!(fill.contexts.len(), 2);
    let mut transition = inputs(context(fill, "Transition"));
    transition.sort();
    assert_eq!(
        transition,
        [("SourceFrom", false, true), ("SourceTo", false, true)]
    );
    let mut general = inputs(context(fill, "General"));
    general.sort();
    assert_eq!(general, [("After", false, true), ("Before", false, true)]);

    for p in &listing {
        assert_eq!(p.grouping, "GenFX", "{}", p.id);
        assert!(
            p.pixel_depths.iter().any(|d| d == "OfxBitDepthFloat"),
            "{}",
            p.id
        );
        for c in &p.contexts {
            assert!(
                c.clips.iter().any(|k| k.name == "Output"),
                "{} {}",
                p.id,
                c.context
            );
            let names: Vec<&str> = c.params.iter().map(|q| q.name.as_str()).collect();
            for common in [
                "prompt",
                "negativePrompt",
                "seed",
                "model",
                "textEncoder",
                "guidance",
                "length",
            ] {
                assert!(
                    names.contains(&common),
                    "{} {} lacks {common}: {names:?}",
                    p.id,
                    c.context
                );
            }
            // Generate reads them for its Reference, the others at the seam.
            for extra in ["contextFrames", "strength"] {
                assert!(names.contains(&extra), "{} lacks {extra}", p.id);
            }
            for q in &c.params {
                // The spec's Transition parameter is driven by the host, not the user.
                if q.type_name.contains("Group")
                    || q.type_name.contains("PushButton")
                    || q.name == "Transition"
                {
                    continue;
                }
                assert!(!q.label.is_empty(), "{} has no label", q.name);
                assert!(!q.hint.is_empty(), "{} has no hint", q.name);
                assert!(q.page.is_some(), "{} is on no page", q.name);
                if q.type_name.ends_with("Integer") || q.type_name.ends_with("Double") {
                    // Resolve clamps numeric sliders to ±1 without a display range.
                    assert!(
                        finite(&q.display_min) && finite(&q.display_max),
                        "{} display range",
                        q.name
                    );
                    assert!(q.min.is_some() && q.max.is_some(), "{} range", q.name);
                }
            }
        }
    }
}

#[test]
fn the_command_line_lists_json() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_genfx"))
        .arg("list")
        .arg(bundle_path())
        .arg("--json")
        .env(
            "GENFX_LOG",
            std::env::temp_dir().join("genfx-list-test.log"),
        )
        .output()
        .expect("run genfx list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let plugins = json["plugins"].as_array().expect("plugins array");
    assert_eq!(plugins.len(), 3);
    let extend = plugins.iter().find(|p| p["id"] == EXTEND).expect("Extend");
    assert_eq!(extend["grouping"], "GenFX");
    let general = extend["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["context"] == "General")
        .expect("General");
    let source = general["clips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Source")
        .unwrap();
    assert_eq!(source["temporal"], true);
    let seed = general["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "seed")
        .unwrap();
    assert_eq!(seed["type"], "Integer");
    assert!(seed["display_max"].is_number());
}
