//! The key and certificate chain GenFX signs Content Credentials with.
//!
//! A user's own comes from `GENFX_C2PA_CERT` (PEM certificate chain, the
//! signing certificate first) and `GENFX_C2PA_KEY` (PEM PKCS#8 private
//! key), with `GENFX_C2PA_ALG` naming the algorithm when it is not ES256.
//! Without them GenFX uses the installation's own: `signer.pem` in
//! `<config folder>/c2pa/`, made on first use, holding a P-256 key and a
//! two-certificate chain (a signing certificate issued by a local CA that
//! exists only to issue it; the CA's key is thrown away once it has signed,
//! so nothing else can ever be issued under it). C2PA validators refuse a
//! self-signed signing certificate outright, hence the pair.
//!
//! Nobody trusts that CA: a manifest signed with it verifies as intact and
//! made by the holder of this file, and names nobody. The file is written
//! 0600 in a 0700 folder, whole or not at all; two processes making it at
//! once agree on the first one written.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ::c2pa::SigningAlg;
use p256::ecdsa::{signature::Signer as _, Signature, SigningKey};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use sha2::{Digest, Sha256};

/// The user's signing certificate chain (PEM).
pub const CERT_ENV: &str = "GENFX_C2PA_CERT";
/// The user's private key (PEM, PKCS#8).
pub const KEY_ENV: &str = "GENFX_C2PA_KEY";
/// The user's signing algorithm: es256 (default), es384, es512, ps256,
/// ps384, ps512 or ed25519.
pub const ALG_ENV: &str = "GENFX_C2PA_ALG";
/// Another configuration folder than the platform's.
pub const CONFIG_ENV: &str = "GENFX_CONFIG_DIR";
/// The installation's own key and chain, in `<config>/c2pa/`.
pub const SIGNER_FILE: &str = "signer.pem";

/// The organisation every certificate GenFX makes names: what a reader of
/// the manifest sees as the signer, saying plainly what it is.
pub const LOCAL_ORG: &str = "GenFX local installation (self-signed, not a verified identity)";

/// A key and its certificate chain, ready for `c2pa::create_signer`.
pub struct Credentials {
    pub cert_chain_pem: String,
    pub key_pem: String,
    pub alg: SigningAlg,
    pub source: Source,
}

/// Where the credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The user's, named by [`CERT_ENV`] and [`KEY_ENV`].
    Configured { cert: PathBuf, key: PathBuf },
    /// The installation's own file; `made` when this call created it.
    Local { file: PathBuf, made: bool },
}

/// GenFX's per-user configuration folder: `GENFX_CONFIG_DIR`, else
/// `%APPDATA%\GenFX`, `~/Library/Application Support/GenFX`, or
/// `$XDG_CONFIG_HOME/genfx` (`~/.config/genfx`).
pub fn config_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env(CONFIG_ENV) {
        return Some(dir);
    }
    if cfg!(target_os = "windows") {
        env("APPDATA").map(|d| d.join("GenFX"))
    } else if cfg!(target_os = "macos") {
        env("HOME").map(|d| d.join("Library/Application Support/GenFX"))
    } else {
        env("XDG_CONFIG_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".config")))
            .map(|d| d.join("genfx"))
    }
}

/// The credentials to sign with: the configured ones, else the
/// installation's own (made now if there are none yet).
pub fn load() -> Result<Credentials, String> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    match (var(CERT_ENV), var(KEY_ENV)) {
        (Some(cert), Some(key)) => configured(Path::new(&cert), Path::new(&key)),
        (Some(_), None) | (None, Some(_)) => Err(format!(
            "set both {CERT_ENV} (certificate chain, PEM) and {KEY_ENV} (private key, PEM), or neither to sign with this installation's own key"
        )),
        (None, None) => {
            let dir = config_dir().ok_or_else(|| {
                format!("no configuration folder to keep the signing key in: set {CONFIG_ENV}, or {CERT_ENV} and {KEY_ENV}")
            })?;
            local(&dir.join("c2pa"))
        }
    }
}

fn algorithm() -> Result<SigningAlg, String> {
    match std::env::var(ALG_ENV) {
        Ok(name) if !name.is_empty() => name.to_ascii_lowercase().parse().map_err(|_| {
            format!("{ALG_ENV}: '{name}' is not one of es256, es384, es512, ps256, ps384, ps512, ed25519")
        }),
        _ => Ok(SigningAlg::Es256),
    }
}

/// The user's own key and chain.
pub fn configured(cert: &Path, key: &Path) -> Result<Credentials, String> {
    let read = |p: &Path, what: &str, var: &str| {
        fs::read_to_string(p)
            .map_err(|e| format!("{var}: cannot read the {what} {}: {e}", p.display()))
    };
    let cert_chain_pem = read(cert, "certificate chain", CERT_ENV)?;
    let key_pem = read(key, "private key", KEY_ENV)?;
    if !cert_chain_pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "{CERT_ENV}: {} holds no PEM certificate",
            cert.display()
        ));
    }
    Ok(Credentials {
        cert_chain_pem,
        key_pem,
        alg: algorithm()?,
        source: Source::Configured {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        },
    })
}

/// The installation's own credentials in `dir`, made there if absent.
pub fn local(dir: &Path) -> Result<Credentials, String> {
    let file = dir.join(SIGNER_FILE);
    match fs::read_to_string(&file) {
        Ok(text) => return parse_local(&text, &file, false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "cannot read the signing key {}: {e}",
                file.display()
            ))
        }
    }
    let text = make_local()?;
    match publish(dir, &file, &text) {
        Ok(true) => parse_local(&text, &file, true),
        // Another process made one first: use theirs, so every file of
        // this installation names the same signer.
        Ok(false) => {
            let theirs = fs::read_to_string(&file)
                .map_err(|e| format!("cannot read the signing key {}: {e}", file.display()))?;
            parse_local(&theirs, &file, false)
        }
        Err(e) => Err(format!(
            "cannot keep a signing key in {}: {e} (set {CONFIG_ENV} to a writable folder, or {CERT_ENV} and {KEY_ENV} to your own)",
            dir.display()
        )),
    }
}

/// Splits `signer.pem` into its private key and certificates.
fn parse_local(text: &str, file: &Path, made: bool) -> Result<Credentials, String> {
    let block = |label: &str| -> Vec<String> {
        let (begin, end) = (
            format!("-----BEGIN {label}-----"),
            format!("-----END {label}-----"),
        );
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find(&begin) {
            let Some(len) = rest[at..].find(&end) else {
                break;
            };
            out.push(format!("{}\n", &rest[at..at + len + end.len()]));
            rest = &rest[at + len + end.len()..];
        }
        out
    };
    let keys = block("PRIVATE KEY");
    let certs = block("CERTIFICATE");
    if keys.len() != 1 || certs.is_empty() {
        return Err(format!(
            "{} should hold one PRIVATE KEY and its CERTIFICATE chain; remove it to have a new one made",
            file.display()
        ));
    }
    Ok(Credentials {
        cert_chain_pem: certs.concat(),
        key_pem: keys[0].clone(),
        alg: SigningAlg::Es256,
        source: Source::Local {
            file: file.to_path_buf(),
            made,
        },
    })
}

/// Writes `text` to `file` unless one is there already: into a 0600
/// temporary file, then hard-linked to the final name, which fails when
/// another process got there first. `Ok(false)`: theirs stands.
fn publish(dir: &Path, file: &Path, text: &str) -> io::Result<bool> {
    create_private_dir(dir)?;
    let temp = dir.join(format!(".{SIGNER_FILE}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = private_file(&temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    let linked = written.and_then(|()| match fs::hard_link(&temp, file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links: a rename, where the last of two
        // racing writers wins (both keys are valid; files signed with the
        // loser's still verify).
        Err(_) => fs::rename(&temp, file).map(|()| true),
    });
    let _ = fs::remove_file(&temp);
    linked
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// A P-256 key in the shape rcgen signs certificates with.
struct P256(SigningKey, Vec<u8>);

impl P256 {
    fn random() -> Result<Self, String> {
        loop {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| format!("no randomness for a signing key: {e}"))?;
            // Fails only for the 2^-128 of values at or above the group order.
            if let Ok(key) = SigningKey::from_slice(&secret) {
                let public = key
                    .verifying_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec();
                return Ok(Self(key, public));
            }
        }
    }

    /// The key identifier: the first 20 bytes of SHA-256 of the public key
    /// (RFC 7093, method 1).
    fn key_id(&self) -> Vec<u8> {
        Sha256::digest(&self.1)[..20].to_vec()
    }
}

impl PublicKeyData for P256 {
    fn der_bytes(&self) -> &[u8] {
        &self.1
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256 {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature: Signature = self.0.sign(msg);
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

fn serial() -> Result<SerialNumber, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a serial number: {e}"))?;
    bytes[0] &= 0x7f; // positive
    Ok(SerialNumber::from_slice(&bytes))
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn.push(DnType::OrganizationName, LOCAL_ORG);
    dn
}

/// A new key and chain as the text of `signer.pem`: the private key, the
/// signing certificate, the CA certificate.
fn make_local() -> Result<String, String> {
    let bad = |e: rcgen::Error| format!("cannot make a signing certificate: {e}");
    let now = time::OffsetDateTime::now_utc();
    // Valid for ten years: a manifest without a time stamp is checked
    // against the certificate's validity at reading time.
    let (not_before, not_after) = (
        now - time::Duration::days(1),
        now + time::Duration::days(3650),
    );

    let ca_key = P256::random()?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
    ca.distinguished_name = name("GenFX local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.key_identifier_method = KeyIdMethod::PreSpecified(ca_key.key_id());
    ca.serial_number = Some(serial()?);
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_cert = ca.self_signed(&ca_key).map_err(bad)?;

    // What C2PA's certificate profile asks of a signing certificate: v3,
    // not a CA, digitalSignature, an allowed extended key usage (here
    // id-kp-documentSigning) and never anyExtendedKeyUsage, and an
    // authority key identifier.
    let key = P256::random()?;
    let mut ee = CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
    ee.distinguished_name = name("GenFX local signer");
    ee.is_ca = IsCa::ExplicitNoCa;
    ee.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    ee.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![
        1, 3, 6, 1, 5, 5, 7, 3, 36,
    ])];
    ee.use_authority_key_identifier_extension = true;
    ee.key_identifier_method = KeyIdMethod::PreSpecified(key.key_id());
    ee.serial_number = Some(serial()?);
    (ee.not_before, ee.not_after) = (not_before, not_after);
    let issuer = Issuer::new(ca, ca_key);
    let ee_cert = ee.signed_by(&key, &issuer).map_err(bad)?;

    let key_pem = key
        .0
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the signing key: {e}"))?;
    Ok(format!(
        "{}{}{}",
        key_pem.as_str(),
        ee_cert.pem(),
        ca_cert.pem()
    ))
}
