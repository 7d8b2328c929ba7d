//! Reading and writing pictures: 16-bit PNG and float EXR, with Content
//! Credentials when asked (see [`crate::credentials`]).

use crate::credentials::verify::sidecar_path;
use crate::credentials::ManifestSigner;
use crate::image::Picture;
use crate::HostError;
use genfx::pipeline::temp_files;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
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

/// Writes `picture` to `path` whole or not at all: into a temporary file of
/// ours next to it, flushed to the disk, then renamed. A process killed
/// mid-write never leaves a torn or empty frame under the final name (which
/// a farm checking only for the file would accept); the next run's
/// [`sweep_leftovers`] removes the temporary file.
pub fn write(path: &Path, picture: &Picture) -> Result<(), HostError> {
    write_signed(path, picture, None)
}

/// [`write`], with a C2PA manifest from `signer` when given one: embedded
/// in a PNG; for an EXR in a sidecar `.c2pa` beside it, written before the
/// frame is renamed into place. An EXR written unsigned loses any sidecar
/// of an earlier frame under its name, which no longer describes it.
pub fn write_signed(
    path: &Path,
    picture: &Picture,
    signer: Option<&ManifestSigner>,
) -> Result<(), HostError> {
    let format = Format::of_path(path).ok_or_else(|| io_error(path, "not a .png or .exr file"))?;
    let temp = temp_files::temp_path(path);
    let written = match format {
        Format::Png => write_png(&temp, picture),
        Format::Exr => write_exr(&temp, picture),
    }
    .and_then(|()| match signer {
        Some(signer) => credit(path, &temp, format, signer),
        None => uncredit(path, format),
    })
    .and_then(|()| {
        File::options()
            .write(true)
            .open(&temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(path, e))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    temp_files::commit(&temp, path).map_err(|e| io_error(path, e))
}

/// Adds the manifest for the frame bound for `path`, now in `temp`.
fn credit(
    path: &Path,
    temp: &Path,
    format: Format,
    signer: &ManifestSigner,
) -> Result<(), HostError> {
    let title = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(temp).map_err(|e| io_error(path, e))?;
    match format {
        Format::Png => {
            let signed = signer
                .sign_png(&title, &bytes)
                .map_err(|e| io_error(path, e))?;
            std::fs::write(temp, signed).map_err(|e| io_error(path, e))
        }
        Format::Exr => {
            let store = signer
                .sidecar(&title, "image/x-exr", &bytes)
                .map_err(|e| io_error(path, e))?;
            let sidecar = sidecar_path(path);
            temp_files::write_atomically(&sidecar, |f| f.write_all(&store))
                .map_err(|e| io_error(&sidecar, e))
        }
    }
}

fn uncredit(path: &Path, format: Format) -> Result<(), HostError> {
    if format == Format::Exr {
        let sidecar = sidecar_path(path);
        match std::fs::remove_file(&sidecar) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(&sidecar, e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes the temporary frames killed runs of GenFX left in `dir` (only
/// ours: see `genfx::pipeline::temp_files`).
pub fn sweep_leftovers(dir: &Path) {
    let removed = temp_files::sweep(dir);
    if removed > 0 {
        eprintln!(
            "genfx: removed {removed} unfinished frame files of an interrupted run from {}",
            dir.display()
        );
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

    #[test]
    fn frames_are_written_whole_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("genfx-files-whole-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // What a run killed while writing leaves: its temporary frame (a
        // dead process of this machine), never an empty frame.0000.png.
        let leftover = dir.join(format!(
            ".genfx-frame.0000.png.{}.99999999.0.tmp",
            temp_files::host_name()
        ));
        std::fs::write(&leftover, b"").unwrap();
        let foreign = dir.join(".other.png.tmp");
        std::fs::write(&foreign, b"").unwrap();
        sweep_leftovers(&dir);
        if Path::new("/proc/self").exists() {
            assert!(!leftover.exists());
        }
        assert!(foreign.exists(), "a file GenFX did not write was removed");
        std::fs::remove_file(&foreign).unwrap();
        let _ = std::fs::remove_file(&leftover);
        // A failed write (a picture with no pixels cannot be encoded) leaves
        // neither the frame nor a temporary file.
        let target = dir.join("frame.0001.png");
        assert!(write(&target, &Picture::new(0, 0)).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        write(&target, &sample()).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["frame.0001.png"]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
