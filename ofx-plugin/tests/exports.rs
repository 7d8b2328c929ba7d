//! The exported entry points, called directly as a host would, without any
//! host behind them: the plug-in table and the answers to a host that has not
//! set itself up. (Full host behaviour is tested through `genfx-host`.)

use genfx_ofx::{OfxGetNumberOfPlugins, OfxGetPlugin, OfxSetHost};
use ofx_sys as sys;
use std::ffi::CStr;
use std::ptr;

fn plugin(i: i32) -> &'static sys::OfxPlugin {
    let p = OfxGetPlugin(i);
    assert!(!p.is_null());
    // SAFETY: a non-null answer points into the plug-in's static table.
    unsafe { &*p }
}

fn text(p: *const std::ffi::c_char) -> String {
    // SAFETY: the table holds static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn three_image_effects_with_the_design_ids() {
    assert_eq!(OfxGetNumberOfPlugins(), 3);
    let ids: Vec<String> = (0..3).map(|i| text(plugin(i).pluginIdentifier)).collect();
    assert_eq!(
        ids,
        ["org.genfx.Generate", "org.genfx.Extend", "org.genfx.Fill"]
    );
    for i in 0..3 {
        let p = plugin(i);
        assert_eq!(text(p.pluginApi), "OfxImageEffectPluginAPI");
        assert_eq!(p.apiVersion, 1);
        assert!(p.setHost.is_some() && p.mainEntry.is_some());
    }
    assert!(OfxGetPlugin(3).is_null());
    assert!(OfxGetPlugin(-1).is_null());
}

#[test]
fn a_host_that_is_not_set_up_gets_statuses_not_crashes() {
    // SAFETY: null is a documented, tolerated argument.
    assert_eq!(unsafe { OfxSetHost(ptr::null()) }, sys::kOfxStatOK);
    let entry = plugin(1).mainEntry.unwrap();
    // SAFETY: calling the entry point as a host would, with null handles and
    // argument sets, which it must tolerate.
    unsafe {
        assert_eq!(
            entry(ptr::null(), ptr::null(), ptr::null_mut(), ptr::null_mut()),
            sys::kOfxStatErrBadHandle
        );
        // No host was ever given: Load cannot fetch suites.
        let load = entry(
            sys::kOfxActionLoad.as_ptr(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        assert_eq!(load, sys::kOfxStatErrMissingHostFeature);
        let render = entry(
            sys::kOfxImageEffectActionRender.as_ptr(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        assert_ne!(render, sys::kOfxStatOK);
        let unknown = entry(
            c"OfxActionNobodyKnows".as_ptr(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        assert_eq!(unknown, sys::kOfxStatReplyDefault);
        let unload = entry(
            sys::kOfxActionUnload.as_ptr(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        assert_eq!(unload, sys::kOfxStatOK);
    }
}
