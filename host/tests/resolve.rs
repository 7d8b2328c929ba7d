//! The host acting as DaVinci Resolve (its own process: a plugin keeps one
//! host): Create/DestroyInstance must answer OK, and the message suite V2 has
//! null persistent-message entries, so problems arrive as plain messages.

mod common;

use common::*;
use genfx_host::abi::stat;
use genfx_host::source::FrameSource;
use genfx_host::{Bundle, HostKind};

#[test]
fn acting_as_resolve() {
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
