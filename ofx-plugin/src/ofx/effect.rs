//! The effect handle, its clips and the images fetched from them.

use super::error::{check, OfxError, OfxResult};
use super::host::Host;
use super::param::ParamSet;
use super::props::{c_string, PropSet};
use crate::geometry::{RectD, RectI};
use crate::pixels::{Components, Depth, PixelLayout, Premult};
use ofx_sys as sys;
use std::ffi::{c_void, CStr};
use std::ptr;
use std::sync::Arc;

macro_rules! suite_fn {
    ($suite:expr, $name:ident) => {
        $suite.$name.ok_or(OfxError::Missing(concat!(
            "image effect suite ",
            stringify!($name)
        )))?
    };
}

/// An effect descriptor or instance handle, with the host that gave it.
#[derive(Clone)]
pub struct Effect {
    handle: sys::OfxImageEffectHandle,
    pub host: Arc<Host>,
}

// SAFETY: the handle is an opaque token valid on any host thread for the
// duration of the action it was passed to.
unsafe impl Send for Effect {}
// SAFETY: no Rust-side state besides the shared, immutable host.
unsafe impl Sync for Effect {}

impl Effect {
    pub fn new(handle: *const c_void, host: Arc<Host>) -> OfxResult<Self> {
        if handle.is_null() {
            return Err(OfxError::BadHandle("effect handle is null"));
        }
        Ok(Self {
            handle: handle as sys::OfxImageEffectHandle,
            host,
        })
    }

    /// The handle as the message and progress suites take it.
    pub fn as_void(&self) -> *mut c_void {
        self.handle as *mut c_void
    }

    pub fn props(&self) -> OfxResult<PropSet> {
        let f = suite_fn!(self.host.suites.effect, getPropertySet);
        let mut props: sys::OfxPropertySetHandle = ptr::null_mut();
        // SAFETY: non-null effect handle from the host, out pointer valid for
        // the call.
        check("getPropertySet", unsafe { f(self.handle, &mut props) })?;
        self.host
            .props_of(props)
            .ok_or(OfxError::BadHandle("effect property set"))
    }

    pub fn params(&self) -> OfxResult<ParamSet> {
        let f = suite_fn!(self.host.suites.effect, getParamSet);
        let mut set: sys::OfxParamSetHandle = ptr::null_mut();
        // SAFETY: as in `props`.
        check("getParamSet", unsafe { f(self.handle, &mut set) })?;
        ParamSet::new(set, self.host.suites.param, self.host.suites.property)
    }

    /// Declares a clip (describe-in-context time).
    pub fn define_clip(&self, name: &str) -> OfxResult<PropSet> {
        let f = suite_fn!(self.host.suites.effect, clipDefine);
        let cname = c_string(name)?;
        let mut props: sys::OfxPropertySetHandle = ptr::null_mut();
        // SAFETY: non-null handle, NUL-terminated name, out pointer valid.
        check("clipDefine", unsafe {
            f(self.handle, cname.as_ptr(), &mut props)
        })?;
        self.host
            .props_of(props)
            .ok_or(OfxError::BadHandle("clip descriptor properties"))
    }

    pub fn clip(&self, name: &str) -> OfxResult<Clip> {
        let f = suite_fn!(self.host.suites.effect, clipGetHandle);
        let cname = c_string(name)?;
        let mut clip: sys::OfxImageClipHandle = ptr::null_mut();
        let mut props: sys::OfxPropertySetHandle = ptr::null_mut();
        // SAFETY: non-null handle, NUL-terminated name, out pointers valid.
        check("clipGetHandle", unsafe {
            f(self.handle, cname.as_ptr(), &mut clip, &mut props)
        })?;
        if clip.is_null() {
            return Err(OfxError::BadHandle("clip handle"));
        }
        let props = self
            .host
            .props_of(props)
            .ok_or(OfxError::BadHandle("clip properties"))?;
        Ok(Clip {
            handle: clip,
            props,
            host: self.host.clone(),
            name: name.to_string(),
        })
    }

    /// Whether the host asks the current render to stop.
    pub fn abort_requested(&self) -> bool {
        match self.host.suites.effect.abort {
            // SAFETY: the host's abort function takes the instance handle.
            Some(f) => unsafe { f(self.handle) != 0 },
            None => false,
        }
    }
}

/// A clip of an instance.
pub struct Clip {
    handle: sys::OfxImageClipHandle,
    pub props: PropSet,
    host: Arc<Host>,
    pub name: String,
}

impl Clip {
    /// Unknown means connected: a host that does not say lets the image fetch
    /// decide.
    pub fn connected(&self) -> bool {
        self.props
            .get_int(sys::kOfxImageClipPropConnected, 0)
            .map(|v| v != 0)
            .unwrap_or(true)
    }

    /// The clip's frame range, when the host knows one that makes sense.
    pub fn frame_range(&self) -> Option<(f64, f64)> {
        let [a, b] = self
            .props
            .get_doubles::<2>(sys::kOfxImageEffectPropFrameRange)
            .ok()?;
        (a.is_finite() && b.is_finite() && b >= a).then_some((a, b))
    }

    pub fn frame_rate(&self) -> Option<f64> {
        let rate = self
            .props
            .get_double(sys::kOfxImageEffectPropFrameRate, 0)
            .ok()?;
        (rate.is_finite() && rate > 0.0).then_some(rate)
    }

    pub fn pixel_aspect(&self) -> f64 {
        let par = self
            .props
            .get_double(sys::kOfxImagePropPixelAspectRatio, 0)
            .unwrap_or(1.0);
        if par.is_finite() && par > 0.0 {
            par
        } else {
            1.0
        }
    }

    pub fn premultiplication(&self) -> Premult {
        self.props
            .get_bytes(sys::kOfxImageEffectPropPreMultiplication, 0)
            .ok()
            .and_then(|v| Premult::parse(&v))
            .unwrap_or(Premult::Premultiplied)
    }

    pub fn region_of_definition(&self, time: f64) -> OfxResult<RectD> {
        let f = suite_fn!(self.host.suites.effect, clipGetRegionOfDefinition);
        let mut rect = sys::OfxRectD::default();
        // SAFETY: non-null clip handle, out struct valid for the call.
        check("clipGetRegionOfDefinition", unsafe {
            f(self.handle, time, &mut rect)
        })?;
        Ok(RectD {
            x1: rect.x1,
            y1: rect.y1,
            x2: rect.x2,
            y2: rect.y2,
        })
    }

    /// The image at `time`, or `None` when the host has none there (an
    /// unconnected clip, a time outside the clip, a failed fetch).
    pub fn image(&self, time: f64) -> OfxResult<Option<Image>> {
        let get = suite_fn!(self.host.suites.effect, clipGetImage);
        let release = suite_fn!(self.host.suites.effect, clipReleaseImage);
        let mut handle: sys::OfxPropertySetHandle = ptr::null_mut();
        // SAFETY: non-null clip handle; a null region asks for the whole RoD,
        // which the API allows; the out pointer is valid for the call.
        let status = unsafe { get(self.handle, time, ptr::null(), &mut handle) };
        if status != sys::kOfxStatOK || handle.is_null() {
            log::debug!(
                "clip {} has no image at {time} (status {status})",
                self.name
            );
            return Ok(None);
        }
        let props = self
            .host
            .props_of(handle)
            .ok_or(OfxError::BadHandle("image"))?;
        // From here the image is owned; `Image`'s drop releases it even if
        // describing it fails.
        let mut image = Image {
            props,
            release,
            data: ptr::null_mut(),
            bounds: RectI::default(),
            row_bytes: 0,
            layout: PixelLayout {
                depth: Depth::Float,
                components: Components::Rgba,
            },
            premult: Premult::Premultiplied,
            pixel_aspect: 1.0,
        };
        image.describe()?;
        Ok(Some(image))
    }
}

/// An image fetched from a clip; released when dropped.
pub struct Image {
    props: PropSet,
    release: unsafe extern "C" fn(sys::OfxPropertySetHandle) -> sys::OfxStatus,
    data: *mut u8,
    pub bounds: RectI,
    /// Bytes from one row to the next; negative when rows go down in memory.
    pub row_bytes: isize,
    pub layout: PixelLayout,
    pub premult: Premult,
    pub pixel_aspect: f64,
}

// SAFETY: through `&Image` the pixels are only read (`row`); writing needs
// `&mut Image`. The host's buffer stays valid until release, wherever the
// release happens.
unsafe impl Sync for Image {}
// SAFETY: as above; releasing from another thread of the host is allowed.
unsafe impl Send for Image {}

impl Image {
    fn describe(&mut self) -> OfxResult<()> {
        let p = &self.props;
        let depth = p.get_bytes(sys::kOfxImageEffectPropPixelDepth, 0)?;
        let components = p.get_bytes(sys::kOfxImageEffectPropComponents, 0)?;
        let depth = Depth::parse(&depth).ok_or_else(|| {
            OfxError::ImageFormat(format!("pixel depth {:?}", String::from_utf8_lossy(&depth)))
        })?;
        let components = Components::parse(&components).ok_or_else(|| {
            OfxError::ImageFormat(format!(
                "components {:?}",
                String::from_utf8_lossy(&components)
            ))
        })?;
        self.layout = PixelLayout { depth, components };
        let b = p.get_ints::<4>(sys::kOfxImagePropBounds)?;
        self.bounds = RectI {
            x1: b[0],
            y1: b[1],
            x2: b[2],
            y2: b[3],
        };
        self.row_bytes = p.get_int(sys::kOfxImagePropRowBytes, 0)? as isize;
        self.data = p.get_pointer(sys::kOfxImagePropData, 0)? as *mut u8;
        self.premult = p
            .get_bytes(sys::kOfxImageEffectPropPreMultiplication, 0)
            .ok()
            .and_then(|v| Premult::parse(&v))
            .unwrap_or(Premult::Premultiplied);
        let par = p
            .get_double(sys::kOfxImagePropPixelAspectRatio, 0)
            .unwrap_or(1.0);
        self.pixel_aspect = if par.is_finite() && par > 0.0 {
            par
        } else {
            1.0
        };
        if self.bounds.x2 < self.bounds.x1 || self.bounds.y2 < self.bounds.y1 {
            return Err(OfxError::ImageFormat(format!(
                "inverted bounds {:?}",
                self.bounds
            )));
        }
        if !self.bounds.is_empty() {
            if self.data.is_null() {
                return Err(OfxError::ImageFormat("null pixel data".into()));
            }
            let row_len = self.row_len();
            if self.row_bytes.unsigned_abs() < row_len {
                return Err(OfxError::ImageFormat(format!(
                    "row bytes {} shorter than a row of {} pixels ({} bytes)",
                    self.row_bytes,
                    self.bounds.width(),
                    row_len
                )));
            }
        }
        Ok(())
    }

    fn row_len(&self) -> usize {
        self.bounds.width() * self.layout.bytes_per_pixel()
    }

    /// Pixel row `y` (in the image's pixel coordinates), or `None` outside
    /// the bounds.
    pub fn row(&self, y: i32) -> Option<&[u8]> {
        if y < self.bounds.y1 || y >= self.bounds.y2 {
            return None;
        }
        let offset = (y - self.bounds.y1) as isize * self.row_bytes;
        // SAFETY: the host promises `data` addresses every row of `bounds`
        // with stride `row_bytes` (checked to be at least one row long), so row
        // `y` starts `offset` bytes from `data` and holds `row_len` bytes; the
        // image stays alive (not released) while `self` is borrowed.
        Some(unsafe { std::slice::from_raw_parts(self.data.offset(offset), self.row_len()) })
    }

    /// Every row, bottom first, as disjoint mutable slices (for writing the
    /// output, possibly from several threads).
    pub fn rows_mut(&mut self) -> Vec<&mut [u8]> {
        let len = self.row_len();
        (0..self.bounds.height())
            .map(|i| {
                let offset = i as isize * self.row_bytes;
                // SAFETY: as in `row`; rows are `|row_bytes| >= len` apart so
                // the slices never overlap, and `&mut self` makes them unique.
                unsafe { std::slice::from_raw_parts_mut(self.data.offset(offset), len) }
            })
            .collect()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: the handle came from clipGetImage and is released once.
        let status = unsafe { (self.release)(self.props.raw()) };
        if status != sys::kOfxStatOK {
            log::warn!("clipReleaseImage answered {status}");
        }
    }
}

/// Reads a string property as raw bytes for comparison with a `CStr`.
pub fn is(value: &[u8], expected: &CStr) -> bool {
    value == expected.to_bytes()
}

/// What the plug-in keeps behind `kOfxPropInstanceData`: a tag to recognise
/// its own pointer, and shared state.
#[repr(C)]
struct Tagged<T> {
    tag: u64,
    value: Arc<T>,
}

const INSTANCE_TAG: u64 = 0x4765_6e46_5849_6e73; // "GenFXIns"

impl Effect {
    /// Stores instance state (CreateInstance).
    pub fn set_instance_data<T: Send + Sync>(&self, value: Arc<T>) -> OfxResult<()> {
        let boxed = Box::into_raw(Box::new(Tagged {
            tag: INSTANCE_TAG,
            value,
        }));
        if let Err(e) =
            self.props()?
                .set_pointer(sys::kOfxPropInstanceData, 0, boxed as *mut c_void)
        {
            // SAFETY: the box was leaked just above and never handed out.
            drop(unsafe { Box::from_raw(boxed) });
            return Err(e);
        }
        Ok(())
    }

    fn tagged<T>(&self) -> OfxResult<*mut Tagged<T>> {
        let p = self.props()?.get_pointer(sys::kOfxPropInstanceData, 0)? as *mut Tagged<T>;
        if p.is_null() {
            return Err(OfxError::BadHandle(
                "instance has no GenFX state (CreateInstance not called?)",
            ));
        }
        // SAFETY: a non-null instance-data pointer is one we stored in
        // `set_instance_data` (the host never writes it); the tag check
        // guards against a host mixing up instances of other plug-ins.
        if unsafe { (*p).tag } != INSTANCE_TAG {
            return Err(OfxError::BadHandle("instance data is not GenFX's"));
        }
        Ok(p)
    }

    /// The instance state, shared with any action running concurrently.
    pub fn instance_data<T>(&self) -> OfxResult<Arc<T>> {
        let p = self.tagged::<T>()?;
        // SAFETY: `p` points to a live `Tagged<T>` (see `tagged`); we only
        // clone the Arc, so concurrent actions each hold their own reference.
        Ok(unsafe { (*p).value.clone() })
    }

    /// Removes and frees the instance state (DestroyInstance). Actions still
    /// running keep their own `Arc` until they end.
    pub fn take_instance_data<T>(&self) -> OfxResult<Option<Arc<T>>> {
        let p = match self.tagged::<T>() {
            Ok(p) => p,
            Err(OfxError::BadHandle(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.props()?
            .set_pointer(sys::kOfxPropInstanceData, 0, ptr::null_mut())?;
        // SAFETY: `p` came from `Box::into_raw` in `set_instance_data` and the
        // property no longer refers to it, so this is the only owner.
        let mut boxed = unsafe { Box::from_raw(p) };
        boxed.tag = 0;
        Ok(Some(boxed.value.clone()))
    }
}
