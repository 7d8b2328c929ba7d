//! Reading and writing pictures: 16-bit PNG and float EXR.

use crate::image::Picture;
use crate::HostError;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

/// Output file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Exr,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Exr => "exr",
        }
    }

    pub fn of_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "png" => Some(Format::Png),
            "exr" => Some(Format::Exr),
            _ => None,
        }
    }
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> HostError {
    HostError::Image(format!("{}: {e}", path.display()))
}

pub fn read(path: &Path) -> Result<Picture, HostError> {
    match Format::of_path(path) {
        Some(Format::Png) => read_png(path),
        Some(Format::Exr) => read_exr(path),
        None => Err(io_error(path, "not a .png or .exr file")),
    }
}

pub fn write(path: &Path, picture: &Picture) -> Result<(), HostError> {
    match Format::of_path(path) {
        Some(Format::Png) => write_png(path, picture),
        Some(Format::Exr) => write_exr(path, picture),
        None => Err(io_error(path, "not a .png or .exr file")),
    }
}

/// Reads any 8/16-bit PNG as RGBA in [0, 1].
pub fn read_png(path: &Path) -> Result<Picture, HostError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    // Expand palettes and low bit depths, keep 16 bits as they are.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(|e| io_error(path, e))?;
    let mut data = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut data)
        .map_err(|e| io_error(path, e))?;
    let (width, height) = (info.width, info.height);
    let channels = info.color_type.samples();
    let wide = info.bit_depth == png::BitDepth::Sixteen;
    let sample = |i: usize| -> f32 {
        if wide {
            u16::from_be_bytes([data[2 * i], data[2 * i + 1]]) as f32 / 65535.0
        } else {
            data[i] as f32 / 255.0
        }
    };
    let mut picture = Picture::new(width, height);
    for p in 0..(width as usize * height as usize) {
        let base = p * channels;
        let px = match channels {
            1 => [sample(base), sample(base), sample(base), 1.0],
            2 => [sample(base), sample(base), sample(base), sample(base + 1)],
            3 => [sample(base), sample(base + 1), sample(base + 2), 1.0],
            _ => [
                sample(base),
                sample(base + 1),
                sample(base + 2),
                sample(base + 3),
            ],
        };
        picture.rgba[p * 4..p * 4 + 4].copy_from_slice(&px);
    }
    Ok(picture)
}

/// Writes RGBA as 16-bit PNG (values clamped to [0, 1]).
pub fn write_png(path: &Path, picture: &Picture) -> Result<(), HostError> {
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), picture.width, picture.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Sixteen);
    let mut writer = encoder.write_header().map_err(|e| io_error(path, e))?;
    let bytes: Vec<u8> = picture
        .rgba
        .iter()
        .flat_map(|v| ((v.clamp(0.0, 1.0) * 65535.0).round() as u16).to_be_bytes())
        .collect();
    writer
        .write_image_data(&bytes)
        .map_err(|e| io_error(path, e))?;
    writer.finish().map_err(|e| io_error(path, e))
}

pub fn read_exr(path: &Path) -> Result<Picture, HostError> {
    use exr::prelude::*;
    let image = read_first_rgba_layer_from_file(
        path,
        |resolution, _| Picture::new(resolution.width() as u32, resolution.height() as u32),
        |picture: &mut Picture, position, (r, g, b, a): (f32, f32, f32, f32)| {
            let i = (position.y() * picture.width as usize + position.x()) * 4;
            picture.rgba[i..i + 4].copy_from_slice(&[r, g, b, a]);
        },
    )
    .map_err(|e| io_error(path, e))?;
    Ok(image.layer_data.channel_data.pixels)
}

pub fn write_exr(path: &Path, picture: &Picture) -> Result<(), HostError> {
    let width = picture.width as usize;
    exr::prelude::write_rgba_file(path, width, picture.height as usize, |x, y| {
        let i = (y * width + x) * 4;
        (
            picture.rgba[i],
            picture.rgba[i + 1],
            picture.rgba[i + 2],
            picture.rgba[i + 3],
        )
    })
    .map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Picture {
        let mut p = Picture::new(3, 2);
        for (i, v) in p.rgba.iter_mut().enumerate() {
            *v = i as f32 / 23.0;
        }
        p
    }

    #[test]
    fn png_and_exr_round_trip() {
        let dir = std::env::temp_dir().join(format!("genfx-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = sample();
        write(&dir.join("a.exr"), &p).unwrap();
        assert_eq!(read(&dir.join("a.exr")).unwrap(), p);
        write(&dir.join("a.png"), &p).unwrap();
        let back = read(&dir.join("a.png")).unwrap();
        for (a, b) in back.rgba.iter().zip(&p.rgba) {
            assert!((a - b).abs() <= 0.5 / 65535.0);
        }
        // A second trip through PNG is exact: 16-bit values survive as is.
        write(&dir.join("b.png"), &back).unwrap();
        assert_eq!(read(&dir.join("b.png")).unwrap(), back);
        std::fs::remove_dir_all(&dir).ok();
    }
}
