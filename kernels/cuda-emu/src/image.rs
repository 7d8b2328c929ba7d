//! What a module image holds, as far as the emulator needs it: the kernel
//! names, the architecture a cubin was built for, and the oldest driver that
//! loads it.
//!
//! PTX is text: `.version X.Y`, `.target sm_XY`, and one `.entry NAME(` per
//! kernel. A cubin is an ELF file: kernels are the global function symbols,
//! each in its own `.text.NAME` section; the architecture is in `e_flags`
//! (bits 8..16 hold `major*10 + minor`), and the `.note.nv.tkinfo` note names
//! the toolkit ("Cuda compilation tools, release 13.5").

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub entries: Vec<String>,
    /// `Some((major, minor))` for a cubin: it runs only on that major
    /// architecture, at that minor or above.
    pub cubin_arch: Option<(i32, i32)>,
    /// `Some((major, minor))` for PTX: the oldest architecture it targets.
    pub ptx_target: Option<(i32, i32)>,
    /// The oldest `cuDriverGetVersion` that loads the image.
    pub min_driver: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Neither PTX nor an ELF cubin, or a malformed one.
    Invalid(String),
}

/// Parses the image at `data` as `cuModuleLoadData` receives it (no length:
/// PTX is NUL-terminated, an ELF file's headers give its extent).
///
/// # Safety
/// `data` must point to a NUL-terminated PTX string or a complete ELF image.
pub unsafe fn parse_raw(data: *const u8) -> Result<Image, ImageError> {
    if data.is_null() {
        return Err(ImageError::Invalid("null image".into()));
    }
    // SAFETY: the caller guarantees at least an ELF identification or a
    // NUL-terminated string; both are at least 4 bytes or end earlier at NUL.
    let magic = unsafe { std::slice::from_raw_parts(data, 4) };
    if magic == b"\x7fELF" {
        // SAFETY: an ELF64 header is 64 bytes.
        let header = unsafe { std::slice::from_raw_parts(data, 64) };
        let len = elf_extent(header)?;
        // SAFETY: the caller guarantees the whole image, which the header's
        // section table bounds.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        parse_elf(bytes)
    } else {
        // SAFETY: the caller guarantees a NUL-terminated string.
        let text = unsafe { std::ffi::CStr::from_ptr(data.cast()) };
        parse_ptx(&text.to_string_lossy())
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ImageError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| ImageError::Invalid("truncated ELF".into()))
}
fn u32_at(b: &[u8], at: usize) -> Result<u32, ImageError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| ImageError::Invalid("truncated ELF".into()))
}
fn u64_at(b: &[u8], at: usize) -> Result<u64, ImageError> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or_else(|| ImageError::Invalid("truncated ELF".into()))
}

/// Bytes from the start of the file to the end of its section header table,
/// which nvcc and NVRTC place last.
fn elf_extent(header: &[u8]) -> Result<usize, ImageError> {
    if header[4] != 2 || header[5] != 1 {
        return Err(ImageError::Invalid(
            "not a 64-bit little-endian ELF cubin".into(),
        ));
    }
    let shoff = u64_at(header, 0x28)? as usize;
    let shentsize = u16_at(header, 0x3a)? as usize;
    let shnum = u16_at(header, 0x3c)? as usize;
    Ok(shoff + shentsize * shnum)
}

struct Section {
    name: u32,
    kind: u32,
    offset: usize,
    size: usize,
    link: u32,
}

fn sections(b: &[u8]) -> Result<Vec<Section>, ImageError> {
    let shoff = u64_at(b, 0x28)? as usize;
    let shentsize = u16_at(b, 0x3a)? as usize;
    let shnum = u16_at(b, 0x3c)? as usize;
    (0..shnum)
        .map(|i| {
            let at = shoff + i * shentsize;
            Ok(Section {
                name: u32_at(b, at)?,
                kind: u32_at(b, at + 4)?,
                offset: u64_at(b, at + 0x18)? as usize,
                size: u64_at(b, at + 0x20)? as usize,
                link: u32_at(b, at + 0x28)?,
            })
        })
        .collect()
}

fn c_str(b: &[u8], at: usize) -> String {
    let tail = b.get(at..).unwrap_or(&[]);
    let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

pub fn parse_elf(b: &[u8]) -> Result<Image, ImageError> {
    const SHT_SYMTAB: u32 = 2;
    const STT_FUNC: u8 = 2;
    const STB_GLOBAL: u8 = 1;
    let secs = sections(b)?;
    let shstrndx = u16_at(b, 0x3e)? as usize;
    let shstr = secs
        .get(shstrndx)
        .ok_or_else(|| ImageError::Invalid("no section name table".into()))?;
    let section_name = |s: &Section| c_str(b, shstr.offset + s.name as usize);
    let mut entries = Vec::new();
    for symtab in secs.iter().filter(|s| s.kind == SHT_SYMTAB) {
        let strtab = secs
            .get(symtab.link as usize)
            .ok_or_else(|| ImageError::Invalid("symbol table without strings".into()))?;
        for i in 0..symtab.size / 24 {
            let at = symtab.offset + i * 24;
            let name = u32_at(b, at)? as usize;
            let info = *b
                .get(at + 4)
                .ok_or_else(|| ImageError::Invalid("truncated symbol".into()))?;
            let shndx = u16_at(b, at + 6)? as usize;
            if info & 0xf != STT_FUNC || info >> 4 != STB_GLOBAL {
                continue;
            }
            let sym = c_str(b, strtab.offset + name);
            // a kernel lives in `.text.NAME`; device functions do not
            let is_kernel = secs
                .get(shndx)
                .is_some_and(|s| section_name(s) == format!(".text.{sym}"));
            if is_kernel {
                entries.push(sym);
            }
        }
    }
    let flags = u32_at(b, 0x30)?;
    let sm = ((flags >> 8) & 0xff) as i32;
    let toolkit = find_release(b);
    Ok(Image {
        entries,
        cubin_arch: Some((sm / 10, sm % 10)),
        ptx_target: None,
        // SASS keeps minor-version compatibility: a 13.x cubin loads on any
        // 13.y driver, not on a 12.x one.
        min_driver: toolkit.map_or(0, |(major, _)| major * 1000),
    })
}

/// The toolkit release named in the cubin's notes, e.g. (13, 5).
fn find_release(b: &[u8]) -> Option<(i32, i32)> {
    const KEY: &[u8] = b"compilation tools, release ";
    let at = b.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let text = c_str(b, at);
    let version = text.split(',').next()?;
    let (major, minor) = version.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

pub fn parse_ptx(text: &str) -> Result<Image, ImageError> {
    let mut entries = Vec::new();
    let mut isa = None;
    let mut target = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix(".version") {
            let (major, minor) = v
                .trim()
                .split_once('.')
                .ok_or_else(|| ImageError::Invalid(format!("bad PTX version line {line:?}")))?;
            isa = Some((
                major.trim().parse::<i32>().unwrap_or(0),
                minor.trim().parse::<i32>().unwrap_or(0),
            ));
        } else if let Some(t) = line.strip_prefix(".target") {
            let sm = t
                .split([',', ' '])
                .find_map(|w| w.trim().strip_prefix("sm_"))
                .map(|s| s.trim_end_matches(|c: char| c.is_ascii_alphabetic()))
                .and_then(|s| s.parse::<i32>().ok());
            target = sm.map(|n| (n / 10, n % 10));
        } else if let Some(at) = line.find(".entry ") {
            let rest = &line[at + ".entry ".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
                .collect();
            if !name.is_empty() {
                entries.push(name);
            }
        }
    }
    let (major, minor) =
        isa.ok_or_else(|| ImageError::Invalid("neither an ELF cubin nor PTX text".into()))?;
    Ok(Image {
        entries,
        cubin_arch: None,
        ptx_target: target,
        min_driver: ptx_min_driver(major, minor),
    })
}

/// The CUDA release that introduced PTX ISA `major.minor`: ISA 7.x came with
/// CUDA 11.x, 8.x with 12.x, 9.x with 13.x (ISA 8.4 with 12.4, ...). A
/// driver older than that cannot JIT the PTX.
fn ptx_min_driver(major: i32, minor: i32) -> i32 {
    if major >= 7 {
        (major + 4) * 1000 + minor * 10
    } else {
        10000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptx_entries_version_and_target() {
        let ptx = "//\n.version 9.0\n.target sm_90a\n.address_size 64\n\n\
                   .visible .entry foo_bf16(\n\t.param .u64 a\n)\n{\n}\n\
                   .entry bar(.param .u32 n)\n{\n}\n.func helper()\n";
        let img = parse_ptx(ptx).unwrap();
        assert_eq!(img.entries, ["foo_bf16", "bar"]);
        assert_eq!(img.ptx_target, Some((9, 0)));
        assert_eq!(img.min_driver, 13000);
        assert_eq!(parse_ptx(".version 8.4\n").unwrap().min_driver, 12040);
        assert!(parse_ptx("hello").is_err());
    }
}
