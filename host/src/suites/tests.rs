//! The suites called the way a C plugin calls them, through the function
//! pointers `fetchSuite` hands out (the variadic ones go through the C shims).

use super::fetch_suite;
use crate::abi::*;
use crate::objects::{Effect, HostShared, EFFECTS};
use crate::props::{PropertySet, Value};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::null_mut;
use std::sync::Arc;

fn suite<T>(name: &CStr, version: c_int) -> &'static T {
    // SAFETY: a C-string suite name; the host returns 'static suites.
    let p = unsafe { fetch_suite(null_mut(), name.as_ptr(), version) } as *const T;
    assert!(!p.is_null(), "suite {name:?} v{version}");
    // SAFETY: non-null pointer to a static suite of type T.
    unsafe { &*p }
}

fn descriptor() -> Arc<Effect> {
    let shared = Arc::new(HostShared { resolve: false });
    Effect::new(PropertySet::new("test"), shared, false)
}

#[test]
fn unknown_suite_is_null() {
    // SAFETY: C-string name.
    let p = unsafe { fetch_suite(null_mut(), c"NoSuchSuite".as_ptr(), 1) };
    assert!(p.is_null());
}

#[test]
fn property_suite_statuses() {
    let props: &OfxPropertySuiteV1 = suite(kOfxPropertySuite, 1);
    let set = PropertySet::new("t");
    set.define("Ints", Value::Int(vec![1, 2]));
    set.define("Name", Value::str("x"));
    let h = set.handle() as OfxPropertySetHandle;
    let mut i: c_int = 0;
    let mut n: c_int = 0;
    let mut s: *mut c_char = null_mut();
    // SAFETY: valid handles and out-pointers, plus deliberately bad ones the
    // host must refuse without dereferencing.
    unsafe {
        assert_eq!(
            props.propGetInt.unwrap()(h, c"Ints".as_ptr(), 1, &mut i),
            stat::OK
        );
        assert_eq!(i, 2);
        assert_eq!(
            props.propGetInt.unwrap()(h, c"Ints".as_ptr(), 2, &mut i),
            stat::ERR_BAD_INDEX
        );
        assert_eq!(
            props.propGetInt.unwrap()(h, c"Nope".as_ptr(), 0, &mut i),
            stat::ERR_UNKNOWN
        );
        assert_eq!(
            props.propGetInt.unwrap()(h, std::ptr::null(), 0, &mut i),
            stat::ERR_UNKNOWN
        );
        assert_eq!(
            props.propGetInt.unwrap()(null_mut(), c"Ints".as_ptr(), 0, &mut i),
            stat::ERR_BAD_HANDLE
        );
        let bogus = 0x1234usize as OfxPropertySetHandle;
        assert_eq!(
            props.propGetInt.unwrap()(bogus, c"Ints".as_ptr(), 0, &mut i),
            stat::ERR_BAD_HANDLE
        );
        assert_eq!(
            props.propGetDouble.unwrap()(h, c"Ints".as_ptr(), 0, null_mut()),
            stat::ERR_VALUE
        );
        assert_eq!(
            props.propSetString.unwrap()(h, c"Ints".as_ptr(), 0, c"a".as_ptr()),
            stat::ERR_VALUE
        );
        assert_eq!(
            props.propSetString.unwrap()(h, c"Name".as_ptr(), 0, c"hello".as_ptr()),
            stat::OK
        );
        assert_eq!(
            props.propGetString.unwrap()(h, c"Name".as_ptr(), 0, &mut s),
            stat::OK
        );
        assert_eq!(CStr::from_ptr(s), c"hello");
        let values = [5, 6, 7];
        assert_eq!(
            props.propSetIntN.unwrap()(h, c"Ints".as_ptr(), 3, values.as_ptr()),
            stat::OK
        );
        assert_eq!(
            props.propGetDimension.unwrap()(h, c"Ints".as_ptr(), &mut n),
            stat::OK
        );
        assert_eq!(n, 3);
        assert_eq!(props.propReset.unwrap()(h, c"Ints".as_ptr()), stat::OK);
        assert_eq!(
            props.propGetDimension.unwrap()(h, c"Ints".as_ptr(), &mut n),
            stat::OK
        );
        assert_eq!(n, 2);
    }
}

#[test]
fn variadic_parameter_values_round_trip() {
    let effects: &OfxImageEffectSuiteV1 = suite(kOfxImageEffectSuite, 1);
    let params: &OfxParameterSuiteV1 = suite(kOfxParameterSuite, 1);
    let effect = descriptor();
    let eh = effect.handle() as OfxImageEffectHandle;
    let mut set: OfxParamSetHandle = null_mut();
    let mut props: OfxPropertySetHandle = null_mut();
    // SAFETY: handles from the host itself; out-pointers to locals; the
    // variadic calls pass the value types the parameter types take.
    unsafe {
        assert_eq!(effects.getParamSet.unwrap()(eh, &mut set), stat::OK);
        let define = params.paramDefine.unwrap();
        assert_eq!(
            define(
                set,
                kOfxParamTypeDouble2D.as_ptr(),
                c"Size".as_ptr(),
                &mut props
            ),
            stat::OK
        );
        assert_eq!(
            define(
                set,
                kOfxParamTypeString.as_ptr(),
                c"Prompt".as_ptr(),
                &mut props
            ),
            stat::OK
        );
        assert_eq!(
            define(
                set,
                kOfxParamTypeInteger.as_ptr(),
                c"Seed".as_ptr(),
                &mut props
            ),
            stat::OK
        );
        assert_eq!(
            define(
                set,
                kOfxParamTypeInteger.as_ptr(),
                c"Seed".as_ptr(),
                &mut props
            ),
            stat::ERR_EXISTS
        );
        assert_eq!(
            define(set, c"NotAType".as_ptr(), c"X".as_ptr(), &mut props),
            stat::ERR_UNKNOWN
        );

        let mut size: OfxParamHandle = null_mut();
        let mut prompt: OfxParamHandle = null_mut();
        let mut seed: OfxParamHandle = null_mut();
        let get_handle = params.paramGetHandle.unwrap();
        assert_eq!(
            get_handle(set, c"Size".as_ptr(), &mut size, null_mut()),
            stat::OK
        );
        assert_eq!(
            get_handle(set, c"Prompt".as_ptr(), &mut prompt, null_mut()),
            stat::OK
        );
        assert_eq!(
            get_handle(set, c"Seed".as_ptr(), &mut seed, null_mut()),
            stat::OK
        );
        for p in [size, prompt, seed] {
            *crate::objects::PARAMS.get(p as usize).unwrap().value.lock() = crate::objects::PARAMS
                .get(p as usize)
                .unwrap()
                .default_value();
        }

        assert_eq!(
            params.paramSetValue.unwrap()(size, 1.5f64, -2.25f64),
            stat::OK
        );
        assert_eq!(params.paramSetValue.unwrap()(seed, 42 as c_int), stat::OK);
        assert_eq!(
            params.paramSetValue.unwrap()(prompt, c"a red fox".as_ptr()),
            stat::OK
        );
        assert_eq!(
            params.paramSetValue.unwrap()(prompt, std::ptr::null::<c_char>()),
            stat::ERR_VALUE
        );

        let (mut x, mut y) = (0.0f64, 0.0f64);
        assert_eq!(
            params.paramGetValue.unwrap()(size, &mut x as *mut f64, &mut y as *mut f64),
            stat::OK
        );
        assert_eq!((x, y), (1.5, -2.25));
        let mut s: c_int = 0;
        assert_eq!(
            params.paramGetValueAtTime.unwrap()(seed, 3.0, &mut s as *mut c_int),
            stat::OK
        );
        assert_eq!(s, 42);
        let mut text: *const c_char = std::ptr::null();
        assert_eq!(
            params.paramGetValue.unwrap()(prompt, &mut text as *mut *const c_char),
            stat::OK
        );
        assert_eq!(CStr::from_ptr(text), c"a red fox");
        let mut integral = 0.0f64;
        assert_eq!(
            params.paramGetIntegral.unwrap()(seed, 0.0, 2.0, &mut integral as *mut f64),
            stat::OK
        );
        assert_eq!(integral, 84.0);
        assert_eq!(
            params.paramGetValue.unwrap()(null_mut(), &mut x as *mut f64),
            stat::ERR_BAD_HANDLE
        );
        assert_eq!(
            params.paramGetValue.unwrap()(size, null_mut::<f64>(), null_mut::<f64>()),
            stat::ERR_VALUE
        );
    }
}

#[test]
fn messages_are_formatted_and_recorded() {
    let v2: &OfxMessageSuiteV2 = suite(kOfxMessageSuite, 2);
    let effect = descriptor();
    let h = effect.handle() as *mut c_void;
    // SAFETY: printf-style calls whose arguments match their formats.
    unsafe {
        let st = v2.message.unwrap()(
            h,
            kOfxMessageError.as_ptr(),
            c"id".as_ptr(),
            c"%s has %d frames".as_ptr(),
            c"clip".as_ptr(),
            7 as c_int,
        );
        assert_eq!(st, stat::OK);
        let st = v2.setPersistentMessage.unwrap()(
            h,
            kOfxMessageError.as_ptr(),
            c"id".as_ptr(),
            c"no model: %s".as_ptr(),
            c"x".as_ptr(),
        );
        assert_eq!(st, stat::OK);
        assert_eq!(
            effect.persistent.lock().as_ref().map(|m| m.text.clone()),
            Some("no model: x".into())
        );
        assert_eq!(v2.clearPersistentMessage.unwrap()(h), stat::OK);
        let st = v2.message.unwrap()(
            h,
            kOfxMessageError.as_ptr(),
            c"id".as_ptr(),
            std::ptr::null::<c_char>(),
        );
        assert_eq!(st, stat::ERR_VALUE);
    }
    let messages = effect.messages.lock().clone();
    assert_eq!(messages[0].text, "clip has 7 frames");
    assert!(effect.persistent.lock().is_none());
    assert!(EFFECTS.get(effect.handle()).is_some());
}

extern "C" fn count_up(index: u32, max: u32, arg: *mut c_void) {
    // SAFETY: the test passes an array of `max` atomics.
    let slots = unsafe {
        std::slice::from_raw_parts(arg as *const std::sync::atomic::AtomicU32, max as usize)
    };
    slots[index as usize].fetch_add(index + 1, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn multithread_runs_every_index_and_mutexes_nest() {
    let mt: &OfxMultiThreadSuiteV1 = suite(kOfxMultiThreadSuite, 1);
    let slots: Vec<std::sync::atomic::AtomicU32> = (0..4).map(|_| Default::default()).collect();
    // SAFETY: the thread function reads `slots` as documented in count_up.
    unsafe {
        assert_eq!(
            mt.multiThread.unwrap()(Some(count_up), 4, slots.as_ptr() as *mut c_void),
            stat::OK
        );
        let mut m: OfxMutexHandle = null_mut();
        assert_eq!(mt.mutexCreate.unwrap()(&mut m, 0), stat::OK);
        assert_eq!(mt.mutexLock.unwrap()(m), stat::OK);
        assert_eq!(mt.mutexLock.unwrap()(m), stat::OK);
        assert_eq!(mt.mutexUnLock.unwrap()(m), stat::OK);
        assert_eq!(mt.mutexUnLock.unwrap()(m), stat::OK);
        assert_eq!(mt.mutexDestroy.unwrap()(m), stat::OK);
        assert_eq!(mt.mutexLock.unwrap()(m), stat::ERR_BAD_HANDLE);
    }
    let got: Vec<u32> = slots
        .iter()
        .map(|s| s.load(std::sync::atomic::Ordering::SeqCst))
        .collect();
    assert_eq!(got, [1, 2, 3, 4]);
}
