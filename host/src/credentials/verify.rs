//! Reading and verifying the Content Credentials of a file: embedded in it,
//! or in a sidecar `.c2pa` beside it (how GenFX credits EXR).
//!
//! "valid" means the C2PA SDK found the manifest well formed, its signature
//! good and every hash matching the file's bytes; whether anybody vouches
//! for the signer is a separate answer ([`Details::trusted`]): the SDK
//! knows no trust list unless one is given (`GENFX_C2PA_TRUST_ANCHORS`, a
//! PEM file of CA certificates a studio trusts), so a self-signed GenFX
//! installation's manifests are valid and untrusted.

use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use ::c2pa::{Context, Reader, Settings, ValidationState};
use serde_json::Value;

use super::sign::MODEL_LABEL;

/// PEM file of trust anchors for verification.
pub const TRUST_ENV: &str = "GENFX_C2PA_TRUST_ANCHORS";
/// The validation code for a signer no trust anchor vouches for.
const UNTRUSTED: &str = "signingCredential.untrusted";

/// What a file's Content Credentials say.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No manifest, embedded or beside the file.
    Absent,
    /// Well formed, signature and hashes good.
    Valid(Details),
    /// There is a manifest and it fails: the file was changed after
    /// signing, or the manifest is damaged or badly signed.
    Invalid {
        reason: String,
        details: Option<Details>,
    },
}

/// The active manifest's main claims.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Details {
    /// "GenFX 0.1.0": the claim generator.
    pub generator: Option<String>,
    /// The first action, e.g. `c2pa.created`.
    pub action: Option<String>,
    /// Its IPTC digital source type (the term, not the URL).
    pub source_type: Option<String>,
    /// `org.genfx.model`'s name.
    pub model: Option<String>,
    /// The signing certificate's common name and organisation.
    pub signer: Option<String>,
    /// Whether the signer chains to a trust anchor.
    pub trusted: bool,
    /// Where the manifest was: "embedded" or the sidecar's path.
    pub location: String,
}

impl Verdict {
    /// The one-word-plus-reason form of the JSON report.
    pub fn summary(&self) -> String {
        match self {
            Verdict::Absent => "absent".into(),
            Verdict::Valid(_) => "valid".into(),
            Verdict::Invalid { reason, .. } => format!("invalid: {reason}"),
        }
    }

    pub fn details(&self) -> Option<&Details> {
        match self {
            Verdict::Absent => None,
            Verdict::Valid(d) => Some(d),
            Verdict::Invalid { details, .. } => details.as_ref(),
        }
    }
}

/// The sidecar manifest of `path`: the same name with `.c2pa`.
pub fn sidecar_path(path: &Path) -> PathBuf {
    path.with_extension("c2pa")
}

fn context() -> Result<Context, String> {
    let mut settings = Settings::default();
    if let Some(file) = std::env::var_os(TRUST_ENV).filter(|v| !v.is_empty()) {
        let pem = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "{TRUST_ENV}: cannot read {}: {e}",
                Path::new(&file).display()
            )
        })?;
        settings.trust.user_anchors = Some(pem);
    }
    Context::new()
        .with_settings(settings)
        .map_err(|e| format!("C2PA settings: {e}"))
}

fn is_absent(e: &::c2pa::Error) -> bool {
    matches!(
        e,
        ::c2pa::Error::JumbfNotFound | ::c2pa::Error::ProvenanceMissing
    )
}

/// Verifies the Content Credentials of the file at `path`: embedded ones
/// where its format holds them, else a sidecar beside it.
pub fn verify(path: &Path) -> Verdict {
    let format = ::c2pa::format_from_path(path).unwrap_or_default();
    let embeddable = Reader::supported_mime_types().contains(&format);
    let sidecar = sidecar_path(path);
    let has_sidecar = sidecar != path && sidecar.is_file();
    if embeddable {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return invalid(format!("cannot read {}: {e}", path.display())),
        };
        let context = match context() {
            Ok(c) => c,
            Err(e) => return invalid(e),
        };
        match Reader::from_context(context).with_stream(&format, Cursor::new(bytes)) {
            Ok(reader) => return judge(&reader, "embedded".into()),
            Err(e) if is_absent(&e) && has_sidecar => {}
            Err(e) if is_absent(&e) => return Verdict::Absent,
            Err(e) => return invalid(e.to_string()),
        }
    } else if !has_sidecar {
        return Verdict::Absent;
    }
    let store = match std::fs::read(&sidecar) {
        Ok(b) => b,
        Err(e) => return invalid(format!("cannot read {}: {e}", sidecar.display())),
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return invalid(format!("cannot read {}: {e}", path.display())),
    };
    let read = context().and_then(|c| {
        Reader::from_context(c)
            .with_manifest_data_and_stream(&store, &format, file)
            .map_err(|e| e.to_string())
    });
    match read {
        Ok(reader) => judge(&reader, sidecar.display().to_string()),
        Err(e) => invalid(format!("{}: {e}", sidecar.display())),
    }
}

/// The verdict on a manifest the SDK read and validated.
fn judge(reader: &Reader, location: String) -> Verdict {
    let mut details = details_of(reader, location);
    let failures: Vec<String> = reader
        .validation_status()
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.passed())
        .filter(|s| s.code() != UNTRUSTED)
        .map(|s| match s.explanation() {
            Some(why) => format!("{} ({why})", s.code()),
            None => s.code().to_string(),
        })
        .collect();
    let state = reader.validation_state();
    details.trusted = state == ValidationState::Trusted;
    match state {
        ValidationState::Invalid => Verdict::Invalid {
            reason: if failures.is_empty() {
                "the manifest does not validate".into()
            } else {
                failures.join("; ")
            },
            details: Some(details),
        },
        ValidationState::Valid | ValidationState::Trusted => Verdict::Valid(details),
    }
}

fn invalid(reason: String) -> Verdict {
    Verdict::Invalid {
        reason,
        details: None,
    }
}

/// Reads the claims out of the reader's JSON report, which names them the
/// same way across SDK versions.
fn details_of(reader: &Reader, location: String) -> Details {
    let report: Value = serde_json::from_str(&reader.json()).unwrap_or(Value::Null);
    let active = report["active_manifest"].as_str().unwrap_or_default();
    let m = &report["manifests"][active];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let generator = m["claim_generator_info"].get(0).map(|g| {
        format!(
            "{} {}",
            g["name"].as_str().unwrap_or("?"),
            g["version"].as_str().unwrap_or("")
        )
        .trim()
        .to_string()
    });
    let assertions = m["assertions"].as_array().cloned().unwrap_or_default();
    let find = |prefix: &str| {
        assertions
            .iter()
            .find(|a| a["label"].as_str().is_some_and(|l| l.starts_with(prefix)))
    };
    let first_action = find("c2pa.actions").map(|a| a["data"]["actions"][0].clone());
    let signer = {
        let s = &m["signature_info"];
        match (text(&s["common_name"]), text(&s["issuer"])) {
            (Some(cn), Some(org)) => Some(format!("{cn} ({org})")),
            (cn, org) => cn.or(org),
        }
    };
    Details {
        generator,
        action: first_action.as_ref().and_then(|a| text(&a["action"])),
        source_type: first_action.as_ref().and_then(|a| {
            a["digitalSourceType"]
                .as_str()
                .map(|u| u.rsplit('/').next().unwrap_or(u).to_string())
        }),
        model: find(MODEL_LABEL).and_then(|a| text(&a["data"]["name"])),
        signer,
        trusted: false,
        location,
    }
}
