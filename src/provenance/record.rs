//! The provenance record beside each cached shot: a small JSON file saying
//! which model made the shot, from which prompt (its SHA-256, never the
//! text: a cache folder may be shared or handed on), with which seed, by
//! which GenFX, when, and the payload its frames' watermark carries, so a
//! frame found later can be matched to its record.
//!
//! It sits beside the entry as `<key>.provenance.json`, written whole or
//! not at all (temporary file, flushed, renamed), and goes when the entry
//! is evicted or discarded.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::engine::{Job, ShotRequest};
use crate::pipeline::temp_files;

/// The record's format, first in every record.
pub const FORMAT: &str = "genfx-provenance-1";
/// What follows an entry's key in its record's file name.
pub const SUFFIX: &str = "provenance.json";

/// Where the record of the entry at `entry` lives.
pub fn path_for(entry: &Path) -> PathBuf {
    entry.with_extension(SUFFIX)
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn job_name(job: &Job) -> &'static str {
    match job {
        Job::Generate { .. } => "generate",
        Job::ExtendForward { .. } => "extend-forward",
        Job::ExtendBackward { .. } => "extend-backward",
        Job::Fill { .. } => "fill",
    }
}

/// `secs` since 1970 as RFC 3339 UTC (civil-from-days, H. Hinnant).
fn rfc3339(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The record of a shot made for `request` with the model whose identity
/// is `model_identity`.
pub fn record(model_identity: &str, request: &ShotRequest, now: SystemTime) -> serde_json::Value {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let model_name = request
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| request.model.display().to_string());
    json!({
        "format": FORMAT,
        "model": model_name,
        "model_identity": model_identity,
        "prompt_sha256": sha256_hex(&request.prompt),
        "negative_prompt_sha256": sha256_hex(&request.negative_prompt),
        "seed": request.seed,
        "job": job_name(&request.job),
        "frames": request.num_frames,
        "width": request.width,
        "height": request.height,
        "watermark_payload": format!("{:016x}", super::watermark::payload_for(super::shot_key(request))),
        "genfx_version": env!("CARGO_PKG_VERSION"),
        "created": rfc3339(secs),
        "created_unix": secs,
    })
}

/// Writes the record of the entry at `entry`, atomically.
pub fn write(entry: &Path, model_identity: &str, request: &ShotRequest) -> io::Result<PathBuf> {
    let path = path_for(entry);
    let text = serde_json::to_string_pretty(&record(model_identity, request, SystemTime::now()))
        .map_err(io::Error::other)?;
    temp_files::write_atomically(&path, |f| f.write_all(text.as_bytes()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_605_261), "2026-12-07T01:01:01Z");
    }

    #[test]
    fn the_record_has_the_prompt_hash_not_the_prompt() {
        let request = ShotRequest {
            model: PathBuf::from("/models/ltx-video-2b"),
            text_encoder: None,
            prompt: "a secret pitch: the heist at dawn".into(),
            negative_prompt: String::new(),
            seed: 42,
            quality: crate::engine::Quality::Draft,
            guidance: 3.0,
            width: 64,
            height: 64,
            num_frames: 9,
            frame_rate: 24.0,
            strength: 1.0,
            job: Job::Generate { reference: None },
        };
        let r = record("abc123", &request, UNIX_EPOCH);
        let text = r.to_string();
        assert!(!text.contains("heist"), "{text}");
        assert_eq!(
            r["prompt_sha256"],
            sha256_hex("a secret pitch: the heist at dawn")
        );
        assert_eq!(r["model"], "ltx-video-2b");
        assert_eq!(r["model_identity"], "abc123");
        assert_eq!(r["seed"], 42);
        assert_eq!(r["job"], "generate");
        assert_eq!(r["genfx_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(r["watermark_payload"].as_str().unwrap().len(), 16);
        let dir = std::env::temp_dir().join(format!("genfx-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let entry = dir.join(format!("{}.genfxshot", "ab".repeat(32)));
        let written = write(&entry, "abc123", &request).unwrap();
        assert_eq!(
            written,
            dir.join(format!("{}.provenance.json", "ab".repeat(32)))
        );
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
        assert_eq!(back["format"], FORMAT);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
