//! Through the real plugin: a Model folder that cannot be used is said in
//! the host's message area the moment it is set (InstanceChanged), before
//! any render, and the render after it does not say it again; a shot the
//! memory guard refuses is said as the engine's other errors are.

mod common;

use common::*;
use genfx_host::{Instance, InstanceSpec, Project};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("tests/fixtures")
}

fn generator(model: &Path) -> Arc<Instance> {
    let values = [
        ("prompt", "a paper boat drifting on a pond"),
        ("model", model.to_str().expect("UTF-8 path")),
        ("length", "9"),
        ("resolution", "64"),
        ("cacheFolder", "off"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Instance::create(
        &natron(),
        InstanceSpec {
            plugin: GENERATE.into(),
            context: GENERAL.into(),
            project: Project {
                width: 64.0,
                height: 32.0,
                fps: 24.0,
                duration: 30.0,
            },
            sources: BTreeMap::new(),
            values,
        },
    )
    .expect("create a Generate instance")
}

#[test]
fn changing_the_model_checks_it_at_once() {
    let tiny = fixtures().join("pipeline/model");
    let g = generator(&tiny);
    g.clip_preferences().expect("clip preferences");
    assert!(g.persistent_message().is_none());

    let missing = fixtures().join("no-such-model");
    g.set_param("model", missing.to_str().unwrap()).unwrap();
    g.instance_changed("model", 0.0).expect("instance changed");
    let said = g
        .persistent_message()
        .expect("the problem is shown at once");
    println!("{}", said.text);
    assert!(said.kind.contains("Error"), "{said:?}");
    assert!(said.text.contains("does not exist"), "{}", said.text);
    assert!(said.text.contains("no-such-model"), "{}", said.text);

    // a folder that is not a model: what is missing, one line each
    let not_a_model = fixtures().join("pipeline");
    g.set_param("model", not_a_model.to_str().unwrap()).unwrap();
    g.instance_changed("model", 0.0).expect("instance changed");
    let said = g
        .persistent_message()
        .expect("the problem is shown at once");
    println!("{}", said.text);
    assert!(
        said.text.contains("is not a usable LTX-Video model"),
        "{}",
        said.text
    );
    assert!(said.text.contains("model_index.json"), "{}", said.text);

    // the render says nothing new: the same problem is already shown
    let told = g.messages().len();
    assert!(g.render(0.0).is_err(), "no model, no frame");
    assert_eq!(g.messages().len(), told, "{:?}", g.messages());
    assert_eq!(g.persistent_message().map(|m| m.text), Some(said.text));

    // a usable model clears the message as soon as it is set
    g.set_param("model", tiny.to_str().unwrap()).unwrap();
    g.instance_changed("model", 0.0).expect("instance changed");
    assert!(
        g.persistent_message().is_none(),
        "{:?}",
        g.persistent_message()
    );
    g.destroy().expect("destroy");
}

/// The only test of this binary that sets the memory guard's test-only
/// override: tests run in threads of one process, and the plugin reads it
/// there.
#[test]
fn a_shot_the_memory_guard_refuses_is_said_with_both_figures() {
    let g = generator(&fixtures().join("pipeline/model"));
    g.set_param("seed", "4242").unwrap();
    g.clip_preferences().expect("clip preferences");
    std::env::set_var("GENFX_MEMORY_AVAILABLE_BYTES", "100000000");
    let result = g.render(0.0);
    std::env::remove_var("GENFX_MEMORY_AVAILABLE_BYTES");
    assert!(result.is_err(), "refused");
    let said = g.persistent_message().expect("the refusal is shown");
    println!("{}", said.text);
    assert!(said.kind.contains("Error"), "{said:?}");
    for part in [
        "out of memory",
        "needs about",
        "MB is available",
        "lower the resolution",
    ] {
        assert!(said.text.contains(part), "{part}: {}", said.text);
    }
    g.destroy().expect("destroy");
    still_healthy(&natron());
}
