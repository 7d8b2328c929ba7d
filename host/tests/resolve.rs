//! The host acting as DaVinci Resolve (its own process: a plugin keeps one
//! host): Create/DestroyInstance must answer OK, and the message suite V2 has
//! null persistent-message entries, so problems arrive as plain messages.

mod common;

use common::*;
use genfx_host::abi::stat;
use genfx_host::objects::ParamValue;
use genfx_host::source::FrameSource;
use genfx_host::{Bundle, HostKind, RenderKind};
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// Tests here share the one bundle; this one acts as a background
/// renderer, the next as Resolve's interactive pages.
static HOST_MODE: Mutex<()> = Mutex::new(());

#[test]
fn acting_as_resolve() {
    let _mode = HOST_MODE.lock();
    let bundle = Bundle::open(bundle_path(), HostKind::Resolve).expect("load as Resolve");
    assert_eq!(
        bundle.host_props.string("OfxPropName", 0).as_deref(),
        Some("DaVinciResolveLite")
    );
    let source = clip(3, 12, 8, 40);
    // Instance::create refuses anything but kOfxStatOK from CreateInstance here.
    let instance = extend(&bundle, FILTER, source.clone());
    instance.clip_preferences().unwrap();
    for f in 0..3 {
        assert!(instance.render(f as f64).unwrap() == *source.frame(f).unwrap().unwrap());
    }
    let err = instance.render(3.0).expect_err("no model");
    assert_eq!(err.status(), Some(stat::FAILED));
    assert!(
        instance.persistent_message().is_none(),
        "Resolve has no persistent messages"
    );
    let told = instance.messages();
    assert!(
        told.iter().any(|m| m.text.to_lowercase().contains("model")),
        "the user is told through a plain message: {told:?}"
    );
    instance.destroy().expect("DestroyInstance answers OK");
    // The same binary cannot be hosted as Natron in this process too.
    assert!(Bundle::open(bundle_path(), HostKind::Natron).is_err());
}

/// Resolve's pages are interactive: a generated frame of Extend holds the
/// seam frame until Generate, thumbnails too, without a message; Generate
/// without a model fails on the Status line and, with no persistent
/// messages in Resolve, in a plain message from the job's thread.
#[test]
fn resolve_pages_hold_the_seam_until_generate() {
    let _mode = HOST_MODE.lock();
    let bundle = Bundle::open(bundle_path(), HostKind::Resolve).expect("load as Resolve");
    bundle.set_background(false);
    let source = clip(3, 12, 8, 41);
    let instance = extend(&bundle, FILTER, source.clone());
    instance.clip_preferences().unwrap();
    let seam = source.frame(2).unwrap().unwrap();
    assert!(instance.render(3.0).unwrap() == *seam);
    let thumbnail = RenderKind {
        thumbnail: true,
        draft: false,
    };
    assert!(instance.render_as(4.0, thumbnail).unwrap() == *seam);
    assert!(instance.messages().is_empty(), "{:?}", instance.messages());
    assert!(instance.progress().is_empty(), "a job started");

    instance.press("generate", 3.0).expect("press Generate");
    let start = Instant::now();
    let failed = loop {
        if let ParamValue::Text(t) = instance.param_value("status").unwrap() {
            let t = t.to_string_lossy().into_owned();
            if t.starts_with("failed: ") {
                break t;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no failure");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(failed.contains("model"), "{failed}");
    assert!(instance.persistent_message().is_none());
    let told = instance.messages();
    assert!(
        told.iter().any(|m| m.text.contains("Set Model")),
        "{told:?}"
    );
    instance.destroy().expect("DestroyInstance answers OK");
    bundle.set_background(true);
}
