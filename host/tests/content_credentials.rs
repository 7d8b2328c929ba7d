//! Content Credentials on what `genfx generate` and `genfx render` write:
//! read back and verified by the `c2pa` crate itself, broken by a changed
//! pixel (PNG) or byte (EXR sidecar), the installation's key made once and
//! reused, a configured key used instead, `genfx detect` reporting it all,
//! and the plugin's cache keeping a provenance record per shot. Every run
//! gets its own configuration folder: nothing touches the real home.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use c2pa::{Reader, ValidationState};
use common::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("genfx-c2pa-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn genfx(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genfx"));
    command
        .env("GENFX_CONFIG_DIR", config)
        .env("GENFX_CACHE_DIR", "off")
        .env("GENFX_DEVICE", "cpu")
        .env_remove("GENFX_C2PA_CERT")
        .env_remove("GENFX_C2PA_KEY")
        .env_remove("GENFX_C2PA_ALG")
        .env_remove("GENFX_C2PA_TRUST_ANCHORS");
    command
}

/// `genfx generate` with the tiny model: two 64x64 frames into `out`.
fn generate(command: &mut Command, out: &Path, format: &str) -> Output {
    let run = command
        .arg("generate")
        .arg("--model")
        .arg(fixtures().join("pipeline/model"))
        .args(["--prompt", "a lighthouse in fog", "--frames", "2"])
        .args(["--width", "64", "--height", "64", "--steps", "2"])
        .args(["--format", format])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    run
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn detect(config: &Path, input: &Path, env: &[(&str, &Path)]) -> Vec<serde_json::Value> {
    let mut command = genfx(config);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.arg("detect").arg(input).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .filter(|l: &serde_json::Value| l.get("file").is_some())
        .collect()
}

fn line_for<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["file"].as_str().is_some_and(|f| f.ends_with(name)))
        .unwrap_or_else(|| panic!("no line for {name}: {lines:?}"))
}

/// The c2pa crate's reading (and validation) of a file's embedded manifest.
fn read(path: impl AsRef<Path>) -> Reader {
    Reader::from_context(c2pa::Context::new())
        .with_file(path.as_ref())
        .unwrap()
}

/// The active manifest's JSON, as the c2pa crate reports it.
fn active(reader: &Reader) -> serde_json::Value {
    let report: serde_json::Value = serde_json::from_str(&reader.json()).unwrap();
    let label = report["active_manifest"].as_str().unwrap().to_string();
    report["manifests"][label].clone()
}

fn assert_genfx_claims(manifest: &serde_json::Value) {
    assert_eq!(
        manifest["claim_generator_info"][0]["name"], "GenFX",
        "{manifest}"
    );
    assert_eq!(
        manifest["claim_generator_info"][0]["version"],
        env!("CARGO_PKG_VERSION")
    );
    let assertions = manifest["assertions"].as_array().unwrap();
    let actions = assertions
        .iter()
        .find(|a| a["label"].as_str().unwrap().starts_with("c2pa.actions"))
        .expect("an actions assertion");
    let created = &actions["data"]["actions"][0];
    assert_eq!(created["action"], "c2pa.created");
    assert_eq!(
        created["digitalSourceType"],
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    );
    let model = assertions
        .iter()
        .find(|a| a["label"] == "org.genfx.model")
        .expect("the model assertion");
    assert_eq!(model["data"]["name"], "model");
    assert_eq!(model["data"]["identity"].as_str().unwrap().len(), 64);
}

/// The serial number of the signing certificate, to tell signers apart.
fn signer_serial(reader: &Reader) -> String {
    active(reader)["signature_info"]["cert_serial_number"]
        .as_str()
        .expect("a certificate serial")
        .to_string()
}

/// The PNG's chunks as (kind, data), in order.
fn png_chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = png[at + 4..at + 8].try_into().unwrap();
        chunks.push((kind, png[at + 8..at + 8 + len].to_vec()));
        at += 12 + len;
    }
    chunks
}

/// Changes one pixel of a signed PNG and keeps everything else, its
/// manifest chunk included: the pixel data (IDAT) is encoded afresh and
/// put where the old one was, with valid CRCs, so the result is a
/// well-formed PNG that only differs in its picture.
fn change_png_pixels(path: &Path) {
    let original = std::fs::read(path).unwrap();
    let mut r = png::Decoder::new(std::io::Cursor::new(&original))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut pixels).unwrap();
    pixels[0] ^= 0x80;
    let mut encoded = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut encoded, info.width, info.height);
        enc.set_color(info.color_type);
        enc.set_depth(info.bit_depth);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&pixels).unwrap();
        w.finish().unwrap();
    }
    let idat: Vec<u8> = png_chunks(&encoded)
        .into_iter()
        .filter(|(k, _)| k == b"IDAT")
        .flat_map(|(_, d)| d)
        .collect();
    let mut out = original[..8].to_vec();
    let mut idat_written = false;
    for (kind, data) in png_chunks(&original) {
        let data = if &kind == b"IDAT" {
            if idat_written {
                continue;
            }
            idat_written = true;
            idat.clone()
        } else {
            data
        };
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(&data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    std::fs::write(path, out).unwrap();
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn generate_signs_png_and_a_changed_pixel_fails_verification() {
    let root = scratch("png");
    let (config, out) = (root.join("config"), root.join("shot"));
    let run = generate(&mut genfx(&config), &out, "png");
    assert!(
        stderr(&run).contains("made this installation's Content Credentials key"),
        "{}",
        stderr(&run)
    );
    let key_file = config.join("c2pa/signer.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }

    // The c2pa crate reads the manifest back: intact and well signed, and
    // (a self-signed installation key) trusted by nobody.
    let frame = out.join("frame_00000.png");
    let reader = read(&frame);
    assert_eq!(
        reader.validation_state(),
        ValidationState::Valid,
        "{:?}",
        reader.validation_status()
    );
    assert_genfx_claims(&active(&reader));
    assert!(reader
        .validation_status()
        .unwrap_or_default()
        .iter()
        .any(|s| s.code() == "signingCredential.untrusted"));

    // Other pixels, same manifest: the data hash no longer matches.
    let changed = out.join("frame_00001.png");
    let before = genfx_host::files::read(&changed).unwrap();
    change_png_pixels(&changed);
    assert_ne!(genfx_host::files::read(&changed).unwrap(), before);
    let reader = read(&changed);
    assert_eq!(reader.validation_state(), ValidationState::Invalid);
    assert!(
        reader
            .validation_status()
            .unwrap_or_default()
            .iter()
            .any(|s| s.code() == "assertion.dataHash.mismatch"),
        "{:?}",
        reader.validation_status()
    );

    // `genfx detect` says the same, and "absent" for a frame with none.
    genfx_host::files::write(&out.join("plain.png"), &before).unwrap();
    let lines = detect(&config, &out, &[]);
    let good = line_for(&lines, "frame_00000.png");
    assert_eq!(good["c2pa"], "valid", "{good}");
    assert_eq!(good["c2pa_action"], "c2pa.created");
    assert_eq!(good["c2pa_source_type"], "trainedAlgorithmicMedia");
    assert_eq!(
        good["c2pa_generator"],
        format!("GenFX {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(good["c2pa_model"], "model");
    assert_eq!(good["c2pa_signer_trusted"], false);
    assert!(good["c2pa_signer"]
        .as_str()
        .unwrap()
        .contains("GenFX local signer"));
    let bad = line_for(&lines, "frame_00001.png");
    assert!(
        bad["c2pa"].as_str().unwrap().starts_with("invalid: ")
            && bad["c2pa"].as_str().unwrap().contains("dataHash"),
        "{bad}"
    );
    assert_eq!(line_for(&lines, "plain.png")["c2pa"], "absent");

    let human = genfx(&config)
        .args(["detect", "--human"])
        .arg(&frame)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&human.stdout);
    assert!(
        said.contains("Content Credentials: valid") && said.contains("no trust list vouches"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn exr_gets_a_sidecar_that_fails_once_the_exr_changes() {
    let root = scratch("exr");
    let (config, out) = (root.join("config"), root.join("shot"));
    generate(&mut genfx(&config), &out, "exr");
    let exr = out.join("frame_00000.exr");
    let sidecar = out.join("frame_00000.c2pa");
    let store = std::fs::read(&sidecar).expect("a sidecar manifest");
    let verify = |exr: &Path| {
        Reader::from_context(c2pa::Context::new())
            .with_manifest_data_and_stream(&store, "image/x-exr", std::fs::File::open(exr).unwrap())
            .unwrap()
    };
    let reader = verify(&exr);
    assert_eq!(
        reader.validation_state(),
        ValidationState::Valid,
        "{:?}",
        reader.validation_status()
    );
    assert_genfx_claims(&active(&reader));
    assert_eq!(
        line_for(&detect(&config, &out, &[]), "frame_00000.exr")["c2pa"],
        "valid"
    );

    // One pixel value's lowest bit, near the end of the file.
    let mut bytes = std::fs::read(&exr).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 1;
    std::fs::write(&exr, &bytes).unwrap();
    assert_eq!(verify(&exr).validation_state(), ValidationState::Invalid);
    let line = detect(&config, &out, &[]);
    let line = line_for(&line, "frame_00000.exr");
    assert!(
        line["c2pa"].as_str().unwrap().starts_with("invalid: "),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_installation_key_is_made_once_and_reused() {
    let root = scratch("reuse");
    let config = root.join("config");
    let first = generate(&mut genfx(&config), &root.join("a"), "png");
    assert!(stderr(&first).contains("made this installation's"));
    let key = std::fs::read(config.join("c2pa/signer.pem")).unwrap();
    let second = generate(&mut genfx(&config), &root.join("b"), "png");
    assert!(
        !stderr(&second).contains("made this installation's"),
        "{}",
        stderr(&second)
    );
    assert_eq!(std::fs::read(config.join("c2pa/signer.pem")).unwrap(), key);
    let serial = |dir: &str| signer_serial(&read(root.join(dir).join("frame_00000.png")));
    assert_eq!(serial("a"), serial("b"));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_configured_key_signs_and_its_ca_can_be_trusted() {
    let root = scratch("configured");
    // A chain of its own, made the way GenFX makes one, split into the
    // two files a user configures.
    let own = genfx_host::credentials::keys::local(&root.join("elsewhere")).unwrap();
    let (cert, key) = (root.join("chain.pem"), root.join("key.pem"));
    std::fs::write(&cert, &own.cert_chain_pem).unwrap();
    std::fs::write(&key, &own.key_pem).unwrap();
    let ca = own
        .cert_chain_pem
        .rfind("-----BEGIN CERTIFICATE-----")
        .map(|at| own.cert_chain_pem[at..].to_string())
        .unwrap();
    let anchors = root.join("anchors.pem");
    std::fs::write(&anchors, ca).unwrap();

    let config = root.join("config");
    let out = root.join("shot");
    let run = generate(
        genfx(&config)
            .env("GENFX_C2PA_CERT", &cert)
            .env("GENFX_C2PA_KEY", &key),
        &out,
        "png",
    );
    assert!(!stderr(&run).contains("made this installation's"));
    assert!(
        !config.join("c2pa/signer.pem").exists(),
        "no key of its own was made"
    );
    let reader = read(out.join("frame_00000.png"));
    assert_eq!(reader.validation_state(), ValidationState::Valid);
    let expected = {
        let other = read(out.join("frame_00001.png"));
        signer_serial(&other)
    };
    assert_eq!(signer_serial(&reader), expected);
    // Not the installation key: a fresh config folder's key differs.
    let fresh = root.join("fresh");
    generate(&mut genfx(&root.join("config2")), &fresh, "png");
    assert_ne!(
        signer_serial(&read(fresh.join("frame_00000.png"))),
        signer_serial(&reader)
    );

    // A studio that lists the CA as a trust anchor sees a trusted signer.
    let lines = detect(&config, &out, &[("GENFX_C2PA_TRUST_ANCHORS", &anchors)]);
    let line = line_for(&lines, "frame_00000.png");
    assert_eq!(line["c2pa"], "valid", "{line}");
    assert_eq!(line["c2pa_signer_trusted"], true, "{line}");

    // Half a configuration is refused, naming both settings.
    let half = genfx(&config)
        .env("GENFX_C2PA_CERT", &cert)
        .args(["generate", "--model"])
        .arg(fixtures().join("pipeline/model"))
        .args(["--prompt", "x", "--out"])
        .arg(root.join("half"))
        .output()
        .unwrap();
    assert_eq!(half.status.code(), Some(1));
    assert!(
        stderr(&half).contains("GENFX_C2PA_CERT") && stderr(&half).contains("GENFX_C2PA_KEY"),
        "{}",
        stderr(&half)
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// `genfx render` of the Generate effect with its Cache folder set: the
/// frames carry manifests, and the cache entry a provenance record with the
/// prompt's hash, never the prompt.
#[test]
fn render_signs_frames_and_the_plugin_cache_keeps_a_record() {
    let root = scratch("render");
    let (config, cache, out) = (root.join("config"), root.join("cache"), root.join("out"));
    let prompt = "a kite over dunes at dusk";
    let mut command = genfx(&config);
    command
        .arg("render")
        .arg(bundle_path())
        .args(["--plugin", GENERATE, "--context", "generator"])
        .args(["--frames", "0-1", "--size", "64x32"])
        .arg("--out")
        .arg(&out);
    let model = fixtures().join("pipeline/model");
    for (k, v) in [
        ("prompt", prompt),
        ("model", model.to_str().unwrap()),
        ("length", "2"),
        ("resolution", "64"),
        ("seed", "7"),
        ("cacheFolder", cache.to_str().unwrap()),
    ] {
        command.arg("--set").arg(format!("{k}={v}"));
    }
    let run = command.output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    for f in 0..2 {
        let reader = read(out.join(format!("frame_{f:05}.png")));
        assert_eq!(reader.validation_state(), ValidationState::Valid);
        assert_genfx_claims(&active(&reader));
    }

    let records: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".provenance.json"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let entry = records[0]
        .to_string_lossy()
        .replace(".provenance.json", ".genfxshot");
    assert!(
        Path::new(&entry).is_file(),
        "the record sits beside its entry"
    );
    let text = std::fs::read_to_string(&records[0]).unwrap();
    assert!(
        !text.contains("kite"),
        "the prompt itself is not kept: {text}"
    );
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(prompt.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(record["prompt_sha256"], hash);
    assert_eq!(record["seed"], 7);
    assert_eq!(record["model"], "model");
    assert_eq!(record["model_identity"].as_str().unwrap().len(), 64);
    assert_eq!(record["genfx_version"], env!("CARGO_PKG_VERSION"));
    assert!(record["created"].as_str().unwrap().ends_with('Z'));
    let _ = std::fs::remove_dir_all(&root);
}
