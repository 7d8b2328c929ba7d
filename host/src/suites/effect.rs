//! `OfxImageEffectSuiteV1`: descriptors, clips, images, abort, image memory.

use super::{guard, name_arg, write_out};
use crate::abi::{OfxName, *};
use crate::defaults;
use crate::image::{Buffer, Components, Depth};
use crate::objects::{Clip, Effect, Image, CLIPS, EFFECTS, HELD_IMAGES};
use crate::props::{PropertySet, Value};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub static SUITE: OfxImageEffectSuiteV1 = OfxImageEffectSuiteV1 {
    getPropertySet: Some(get_property_set),
    getParamSet: Some(get_param_set),
    clipDefine: Some(clip_define),
    clipGetHandle: Some(clip_get_handle),
    clipGetPropertySet: Some(clip_get_property_set),
    clipGetImage: Some(clip_get_image),
    clipReleaseImage: Some(clip_release_image),
    clipGetRegionOfDefinition: Some(clip_get_region_of_definition),
    abort: Some(abort),
    imageMemoryAlloc: Some(image_memory_alloc),
    imageMemoryFree: Some(image_memory_free),
    imageMemoryLock: Some(image_memory_lock),
    imageMemoryUnlock: Some(image_memory_unlock),
};

fn effect(handle: OfxImageEffectHandle) -> Result<Arc<Effect>, OfxStatus> {
    EFFECTS.get(handle as usize).ok_or(stat::ERR_BAD_HANDLE)
}

fn clip(handle: OfxImageClipHandle) -> Result<Arc<Clip>, OfxStatus> {
    CLIPS.get(handle as usize).ok_or(stat::ERR_BAD_HANDLE)
}

unsafe extern "C" fn get_property_set(
    handle: OfxImageEffectHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    guard(|| match effect(handle) {
        // SAFETY: `out` is null (refused) or a place for a handle.
        Ok(e) => unsafe { write_out(out, e.props.handle() as OfxPropertySetHandle) },
        Err(s) => s,
    })
}

unsafe extern "C" fn get_param_set(
    handle: OfxImageEffectHandle,
    out: *mut OfxParamSetHandle,
) -> OfxStatus {
    guard(|| match effect(handle) {
        // SAFETY: `out` is null (refused) or a place for a handle.
        Ok(e) => unsafe { write_out(out, e.params.handle() as OfxParamSetHandle) },
        Err(s) => s,
    })
}

unsafe extern "C" fn clip_define(
    handle: OfxImageEffectHandle,
    name: *const c_char,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    guard(|| {
        let e = match effect(handle) {
            Ok(e) => e,
            Err(s) => return s,
        };
        if e.is_instance {
            return stat::ERR_UNSUPPORTED;
        }
        // SAFETY: C string from the plugin.
        let Some(name) = (unsafe { name_arg(name) }) else {
            return stat::ERR_VALUE;
        };
        let existing = e.clip(name);
        let c = existing.unwrap_or_else(|| {
            let c = Clip::new(name, defaults::clip_descriptor(name), &e);
            e.clips.lock().push(c.clone());
            c
        });
        // SAFETY: `out` is null (refused) or a place for a handle.
        unsafe { write_out(out, c.props.handle() as OfxPropertySetHandle) }
    })
}

unsafe extern "C" fn clip_get_handle(
    handle: OfxImageEffectHandle,
    name: *const c_char,
    out: *mut OfxImageClipHandle,
    props: *mut OfxPropertySetHandle,
) -> OfxStatus {
    guard(|| {
        let e = match effect(handle) {
            Ok(e) => e,
            Err(s) => return s,
        };
        // SAFETY: C string from the plugin.
        let Some(name) = (unsafe { name_arg(name) }) else {
            return stat::ERR_UNKNOWN;
        };
        let Some(c) = e.clip(name) else {
            return stat::ERR_UNKNOWN;
        };
        if !props.is_null() {
            // SAFETY: non-null place for a handle.
            unsafe { props.write(c.props.handle() as OfxPropertySetHandle) };
        }
        // SAFETY: `out` is null (refused) or a place for a handle.
        unsafe { write_out(out, c.handle() as OfxImageClipHandle) }
    })
}

unsafe extern "C" fn clip_get_property_set(
    handle: OfxImageClipHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    guard(|| match clip(handle) {
        // SAFETY: `out` is null (refused) or a place for a handle.
        Ok(c) => unsafe { write_out(out, c.props.handle() as OfxPropertySetHandle) },
        Err(s) => s,
    })
}

static NEXT_IMAGE_ID: AtomicU64 = AtomicU64::new(1);

fn n(c: &std::ffi::CStr) -> &str {
    c.name()
}

/// Wraps `buffer` as an image the plugin can hold.
fn image_of(clip: &Clip, buffer: Arc<Buffer>, premult: &str) -> Arc<Image> {
    let p = PropertySet::new(format!("image of {}", clip.name));
    let (w, h) = (buffer.width as i32, buffer.height as i32);
    p.define(n(kOfxPropType), Value::str(n(kOfxTypeImage)));
    p.define(
        n(kOfxImageEffectPropPixelDepth),
        Value::str(buffer.depth.name()),
    );
    p.define(
        n(kOfxImageEffectPropComponents),
        Value::str(buffer.components.name()),
    );
    p.define(n(kOfxImageEffectPropPreMultiplication), Value::str(premult));
    p.define(
        n(kOfxImageEffectPropRenderScale),
        Value::Double(vec![1.0, 1.0]),
    );
    p.define(n(kOfxImagePropPixelAspectRatio), Value::Double(vec![1.0]));
    p.define(
        n(kOfxImagePropData),
        Value::Pointer(vec![buffer.data_ptr() as usize]),
    );
    p.define(n(kOfxImagePropBounds), Value::Int(vec![0, 0, w, h]));
    p.define(
        n(kOfxImagePropRegionOfDefinition),
        Value::Int(vec![0, 0, w, h]),
    );
    p.define(
        n(kOfxImagePropRowBytes),
        Value::Int(vec![buffer.row_bytes as i32]),
    );
    p.define(n(kOfxImagePropField), Value::str(n(kOfxImageFieldNone)));
    let id = NEXT_IMAGE_ID.fetch_add(1, Ordering::Relaxed);
    p.define(
        n(kOfxImagePropUniqueIdentifier),
        Value::str(&format!("genfx-host-{id}")),
    );
    let image = Arc::new(Image { props: p, buffer });
    HELD_IMAGES
        .lock()
        .insert(image.props.handle(), image.clone());
    image
}

/// The image of `clip` at `time`: the render target for the output clip,
/// a source frame for an input. Any time inside the source is answered.
pub fn clip_image(clip: &Arc<Clip>, time: f64) -> Result<Arc<Image>, OfxStatus> {
    let effect = clip.effect.upgrade().ok_or(stat::ERR_BAD_HANDLE)?;
    if !effect.is_instance || !time.is_finite() {
        return Err(stat::FAILED);
    }
    let premult = clip
        .props
        .string(n(kOfxImageEffectPropPreMultiplication), 0)
        .unwrap_or_else(|| n(kOfxImagePreMultiplied).to_string());
    if clip.is_output() {
        let buffer = clip.outputs.lock().get(&time.to_bits()).cloned();
        return buffer
            .map(|b| image_of(clip, b, &premult))
            .ok_or(stat::FAILED);
    }
    let misbehave = effect.misbehave.lock().clone();
    if misbehave.no_source_images {
        return Err(stat::FAILED);
    }
    let source = clip.source.lock().clone().ok_or(stat::FAILED)?;
    let frame = time.round();
    if frame < i32::MIN as f64 || frame > i32::MAX as f64 {
        return Err(stat::FAILED);
    }
    let picture = match source.frame(frame as i32) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(stat::FAILED),
        Err(e) => {
            log::warn!("source frame {frame} of clip {}: {e}", clip.name);
            return Err(stat::FAILED);
        }
    };
    let depth = misbehave.source_depth.unwrap_or_else(|| {
        clip.props
            .string(n(kOfxImageEffectPropPixelDepth), 0)
            .and_then(|d| Depth::from_name(&d))
            .unwrap_or(Depth::Float)
    });
    let components = clip
        .props
        .string(n(kOfxImageEffectPropComponents), 0)
        .and_then(|c| Components::from_name(&c))
        .unwrap_or(Components::Rgba);
    let mut buffer = Buffer::new(
        picture.width,
        picture.height,
        depth,
        components,
        misbehave.negative_row_bytes,
    );
    buffer.fill_from(&picture);
    Ok(image_of(clip, Arc::new(buffer), &premult))
}

unsafe extern "C" fn clip_get_image(
    handle: OfxImageClipHandle,
    time: OfxTime,
    _region: *const OfxRectD,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    guard(|| {
        if out.is_null() {
            return stat::ERR_BAD_HANDLE;
        }
        let result = clip(handle).and_then(|c| clip_image(&c, time));
        let (handle, st) = match result {
            Ok(image) => (image.props.handle() as OfxPropertySetHandle, stat::OK),
            Err(s) => (std::ptr::null_mut(), s),
        };
        // SAFETY: non-null place for a handle, per the API.
        unsafe { out.write(handle) };
        st
    })
}

unsafe extern "C" fn clip_release_image(handle: OfxPropertySetHandle) -> OfxStatus {
    guard(|| match HELD_IMAGES.lock().remove(&(handle as usize)) {
        Some(_) => stat::OK,
        None => stat::ERR_BAD_HANDLE,
    })
}

unsafe extern "C" fn clip_get_region_of_definition(
    handle: OfxImageClipHandle,
    _time: OfxTime,
    out: *mut OfxRectD,
) -> OfxStatus {
    guard(|| {
        let c = match clip(handle) {
            Ok(c) => c,
            Err(s) => return s,
        };
        let Some(effect) = c.effect.upgrade() else {
            return stat::ERR_BAD_HANDLE;
        };
        let size = match c.source.lock().as_ref() {
            Some(source) => {
                let (w, h) = source.size();
                [w as f64, h as f64]
            }
            None => {
                let project = effect
                    .props
                    .doubles(n(kOfxImageEffectPropProjectSize))
                    .unwrap_or_default();
                [
                    project.first().copied().unwrap_or(0.0),
                    project.get(1).copied().unwrap_or(0.0),
                ]
            }
        };
        let rect = OfxRectD {
            x1: 0.0,
            y1: 0.0,
            x2: size[0],
            y2: size[1],
        };
        // SAFETY: `out` is null (refused) or a place for a rectangle.
        unsafe { write_out(out, rect) }
    })
}

unsafe extern "C" fn abort(handle: OfxImageEffectHandle) -> c_int {
    std::panic::catch_unwind(|| match effect(handle) {
        Ok(e) => e.aborted() as c_int,
        // An unknown effect has nothing to finish.
        Err(_) => 1,
    })
    .unwrap_or(1)
}

/// A block of image memory and how many times it is locked.
type Block = (Box<[u128]>, u32);

/// Image memory blocks by handle.
static IMAGE_MEMORY: Mutex<BTreeMap<usize, Block>> = Mutex::new(BTreeMap::new());

unsafe extern "C" fn image_memory_alloc(
    _handle: OfxImageEffectHandle,
    bytes: usize,
    out: *mut OfxImageMemoryHandle,
) -> OfxStatus {
    guard(|| {
        if out.is_null() {
            return stat::ERR_BAD_HANDLE;
        }
        let words = bytes.div_ceil(16).max(1);
        let mut block = Vec::new();
        if block.try_reserve_exact(words).is_err() {
            return stat::ERR_MEMORY;
        }
        block.resize(words, 0u128);
        let block = block.into_boxed_slice();
        let handle = block.as_ptr() as usize;
        IMAGE_MEMORY.lock().insert(handle, (block, 0));
        // SAFETY: non-null place for a handle.
        unsafe { write_out(out, handle as OfxImageMemoryHandle) }
    })
}

unsafe extern "C" fn image_memory_free(handle: OfxImageMemoryHandle) -> OfxStatus {
    guard(|| match IMAGE_MEMORY.lock().remove(&(handle as usize)) {
        Some(_) => stat::OK,
        None => stat::ERR_BAD_HANDLE,
    })
}

unsafe extern "C" fn image_memory_lock(
    handle: OfxImageMemoryHandle,
    out: *mut *mut c_void,
) -> OfxStatus {
    guard(|| {
        let mut blocks = IMAGE_MEMORY.lock();
        let Some((block, locks)) = blocks.get_mut(&(handle as usize)) else {
            return stat::ERR_BAD_HANDLE;
        };
        *locks += 1;
        // SAFETY: `out` is null (refused) or a place for a pointer.
        unsafe { write_out(out, block.as_mut_ptr() as *mut c_void) }
    })
}

unsafe extern "C" fn image_memory_unlock(handle: OfxImageMemoryHandle) -> OfxStatus {
    guard(|| {
        let mut blocks = IMAGE_MEMORY.lock();
        match blocks.get_mut(&(handle as usize)) {
            Some((_, locks)) => {
                *locks = locks.saturating_sub(1);
                stat::OK
            }
            None => stat::ERR_BAD_HANDLE,
        }
    })
}
