//! Pixels: the host's own RGBA float pictures, and the raw buffers handed to
//! the plugin in the depth and layout the clip asks for.

use crate::abi::{OfxName, *};

/// A picture as the host keeps it: RGBA f32, rows top to bottom.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<f32>,
}

impl Picture {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            rgba: vec![0.0; width as usize * height as usize * 4],
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [f32; 4] {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }
}

/// Bit depth of a buffer handed to the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    Byte,
    Short,
    Float,
}

impl Depth {
    pub fn from_name(name: &str) -> Option<Self> {
        if name == kOfxBitDepthByte.name() {
            Some(Depth::Byte)
        } else if name == kOfxBitDepthShort.name() {
            Some(Depth::Short)
        } else if name == kOfxBitDepthFloat.name() {
            Some(Depth::Float)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Depth::Byte => kOfxBitDepthByte.name(),
            Depth::Short => kOfxBitDepthShort.name(),
            Depth::Float => kOfxBitDepthFloat.name(),
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Depth::Byte => 1,
            Depth::Short => 2,
            Depth::Float => 4,
        }
    }
}

/// Channels of a buffer handed to the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Components {
    Rgba,
    Rgb,
    Alpha,
}

impl Components {
    pub fn from_name(name: &str) -> Option<Self> {
        if name == kOfxImageComponentRGBA.name() {
            Some(Components::Rgba)
        } else if name == kOfxImageComponentRGB.name() {
            Some(Components::Rgb)
        } else if name == kOfxImageComponentAlpha.name() {
            Some(Components::Alpha)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Components::Rgba => kOfxImageComponentRGBA.name(),
            Components::Rgb => kOfxImageComponentRGB.name(),
            Components::Alpha => kOfxImageComponentAlpha.name(),
        }
    }

    pub fn count(self) -> usize {
        match self {
            Components::Rgba => 4,
            Components::Rgb => 3,
            Components::Alpha => 1,
        }
    }
}

/// Pixel memory shared with the plugin through `kOfxImagePropData`.
///
/// Rows are stored top to bottom in memory; OpenFX counts rows bottom up, so
/// the plugin is given the last row's address and a negative stride when the
/// host lays rows out that way on purpose, and otherwise a bottom-up copy.
pub struct Buffer {
    pub width: u32,
    pub height: u32,
    pub depth: Depth,
    pub components: Components,
    /// Bytes between the starts of consecutive OpenFX rows (y and y+1).
    pub row_bytes: isize,
    /// Stored as words so float pixels are 4-byte aligned for the plugin.
    words: Box<[u32]>,
    len: usize,
    /// Offset of row y1 (the bottom row) in `bytes`.
    origin: usize,
    // The plugin writes through a raw pointer while the host holds `&self`.
    _not_sync: std::marker::PhantomData<std::cell::UnsafeCell<u8>>,
}

// SAFETY: the bytes are only written by the plugin during one Render call
// (or by the host before it hands the pointer out) and only read by the host
// after that call has returned; the host never touches the same buffer from
// two threads at once.
unsafe impl Send for Buffer {}
// SAFETY: see `Send`; shared references only read after the plugin is done.
unsafe impl Sync for Buffer {}

impl Buffer {
    /// A zeroed buffer; `bottom_up_negative` lays rows out top-down in memory
    /// and exposes a negative row stride.
    pub fn new(
        width: u32,
        height: u32,
        depth: Depth,
        components: Components,
        bottom_up_negative: bool,
    ) -> Self {
        let stride = width as usize * depth.bytes() * components.count();
        let len = stride * height as usize;
        let words = vec![0u32; len.div_ceil(4)].into_boxed_slice();
        let (row_bytes, origin) = if bottom_up_negative && height > 0 {
            (-(stride as isize), stride * (height as usize - 1))
        } else {
            (stride as isize, 0)
        };
        Self {
            width,
            height,
            depth,
            components,
            row_bytes,
            words,
            len,
            origin,
            _not_sync: std::marker::PhantomData,
        }
    }

    /// The address the plugin gets as `kOfxImagePropData`.
    pub fn data_ptr(&self) -> *mut u8 {
        // The box is never moved or resized after creation.
        (self.words.as_ptr() as *const u8).wrapping_add(self.origin) as *mut u8
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes, u8 has no
        // alignment needs, and the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, with the unique borrow of `self`.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, self.len) }
    }

    fn offset(&self, x: u32, y_up: u32) -> usize {
        let row = self.origin as isize + y_up as isize * self.row_bytes;
        row as usize + x as usize * self.depth.bytes() * self.components.count()
    }

    fn read_channel(&self, at: usize) -> f32 {
        let b = self.bytes();
        match self.depth {
            Depth::Byte => b[at] as f32 / 255.0,
            Depth::Short => u16::from_ne_bytes([b[at], b[at + 1]]) as f32 / 65535.0,
            Depth::Float => f32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]),
        }
    }

    fn write_channel(bytes: &mut [u8], at: usize, depth: Depth, v: f32) {
        match depth {
            Depth::Byte => bytes[at] = (v.clamp(0.0, 1.0) * 255.0).round() as u8,
            Depth::Short => bytes[at..at + 2]
                .copy_from_slice(&((v.clamp(0.0, 1.0) * 65535.0).round() as u16).to_ne_bytes()),
            Depth::Float => bytes[at..at + 4].copy_from_slice(&v.to_ne_bytes()),
        }
    }

    /// Fills the buffer from a picture of the same size.
    pub fn fill_from(&mut self, picture: &Picture) {
        let w = self.width.min(picture.width);
        let h = self.height.min(picture.height);
        let n = self.components.count();
        let size = self.depth.bytes();
        let depth = self.depth;
        let components = self.components;
        let offsets: Vec<usize> = (0..h)
            .flat_map(|y_up| (0..w).map(move |x| (x, y_up)))
            .map(|(x, y_up)| self.offset(x, y_up))
            .collect();
        let bytes = self.bytes_mut();
        let mut next = offsets.into_iter();
        for y_up in 0..h {
            let y_top = picture.height - 1 - y_up;
            for x in 0..w {
                let px = picture.pixel(x, y_top);
                let channels: &[f32] = match components {
                    Components::Rgba => &px,
                    Components::Rgb => &px[..3],
                    Components::Alpha => &px[3..],
                };
                let at = next.next().unwrap_or(0);
                for (c, v) in channels.iter().enumerate().take(n) {
                    Self::write_channel(bytes, at + c * size, depth, *v);
                }
            }
        }
    }

    /// Reads the buffer back as a picture (missing channels: colour 0, alpha 1).
    pub fn to_picture(&self) -> Picture {
        let mut picture = Picture::new(self.width, self.height);
        let size = self.depth.bytes();
        for y_up in 0..self.height {
            let y_top = self.height - 1 - y_up;
            for x in 0..self.width {
                let at = self.offset(x, y_up);
                let i = (y_top as usize * self.width as usize + x as usize) * 4;
                let px = &mut picture.rgba[i..i + 4];
                match self.components {
                    Components::Rgba => {
                        for (c, v) in px.iter_mut().enumerate() {
                            *v = self.read_channel(at + c * size);
                        }
                    }
                    Components::Rgb => {
                        for (c, v) in px.iter_mut().enumerate().take(3) {
                            *v = self.read_channel(at + c * size);
                        }
                        px[3] = 1.0;
                    }
                    Components::Alpha => {
                        px[3] = self.read_channel(at);
                    }
                }
            }
        }
        picture
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> Picture {
        let mut p = Picture::new(w, h);
        for (i, v) in p.rgba.iter_mut().enumerate() {
            *v = (i % 97) as f32 / 96.0;
        }
        p
    }

    #[test]
    fn float_round_trip_both_strides() {
        let p = ramp(5, 3);
        for negative in [false, true] {
            let mut b = Buffer::new(5, 3, Depth::Float, Components::Rgba, negative);
            b.fill_from(&p);
            assert_eq!(b.to_picture(), p);
        }
    }

    #[test]
    fn negative_stride_points_at_bottom_row() {
        let mut p = Picture::new(1, 2);
        p.rgba[..4].copy_from_slice(&[1.0, 1.0, 1.0, 1.0]); // top row
        let mut b = Buffer::new(1, 2, Depth::Float, Components::Rgba, true);
        b.fill_from(&p);
        assert!(b.row_bytes < 0);
        // SAFETY: the pointer addresses the bottom row inside the buffer.
        let bottom = unsafe { *(b.data_ptr() as *const f32) };
        assert_eq!(bottom, 0.0);
    }

    #[test]
    fn short_quantises_to_16_bits() {
        let mut p = Picture::new(1, 1);
        p.rgba.copy_from_slice(&[0.5, 0.0, 1.0, 1.0]);
        let mut b = Buffer::new(1, 1, Depth::Short, Components::Rgba, false);
        b.fill_from(&p);
        let back = b.to_picture();
        assert!((back.rgba[0] - 0.5).abs() < 1.0 / 65535.0);
        assert_eq!(back.rgba[2], 1.0);
    }
}
