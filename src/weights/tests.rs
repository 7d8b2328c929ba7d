//! Loading good files, and a typed error for every kind of bad one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::backend::CpuStorage;

/// A fresh empty folder under the system temp dir.
fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "genfx-weights-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (name, safetensors dtype, shape, raw little-endian bytes)
type Entry<'a> = (&'a str, &'a str, Vec<usize>, Vec<u8>);

/// Serialises entries by hand so tests can also write lying headers.
fn safetensors_bytes(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut header = Vec::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in entries {
        header.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{},{}]}}",
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend_from_slice(bytes);
    }
    let json = format!("{{{}}}", header.join(","));
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&data);
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write(path: &Path, entries: &[Entry<'_>]) {
    std::fs::write(path, safetensors_bytes(entries)).unwrap();
}

fn sample(dir: &Path) -> PathBuf {
    let path = dir.join("model.safetensors");
    let bf: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let f16: Vec<u8> = [0.25f32, 8.0, -1.0]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    write(
        &path,
        &[
            (
                "a.weight",
                "F32",
                vec![2, 3],
                f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            ),
            ("a.bias", "BF16", vec![2], bf),
            ("b", "F16", vec![3], f16),
            ("steps", "I64", vec![1], 7i64.to_le_bytes().to_vec()),
        ],
    );
    path
}

#[test]
fn loads_and_converts_dtypes() {
    let dir = scratch("ok");
    let files = Arc::new(WeightFiles::open_file(&sample(&dir)).unwrap());
    let vb = VarBuilder::new(files.clone(), DType::F32, &Device::cpu());
    let w = vb.pp("a").get(&[2, 3], "weight").unwrap();
    assert_eq!(w.to_vec_f32().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        vb.pp("a").get(&[2], "bias").unwrap().to_vec_f32().unwrap(),
        [1.5, -2.0]
    );
    let half_vb = VarBuilder::new(files.clone(), DType::F16, &Device::cpu());
    let b = half_vb.get(&[3], "b").unwrap();
    assert_eq!(b.dtype(), DType::F16);
    assert_eq!(b.to_vec_f32().unwrap(), [0.25, 8.0, -1.0]);
    let bf = VarBuilder::new(files.clone(), DType::BF16, &Device::cpu())
        .get(&[2, 3], "a.weight")
        .unwrap();
    assert_eq!(bf.dtype(), DType::BF16);
    // f16 to bf16 without an f32 tensor between: 0.25, 8 and -1 are exact
    // in both, and bf16 to f16 likewise.
    let cross = VarBuilder::new(files.clone(), DType::BF16, &Device::cpu())
        .get(&[3], "b")
        .unwrap();
    assert_eq!(cross.dtype(), DType::BF16);
    assert_eq!(cross.to_vec_f32().unwrap(), [0.25, 8.0, -1.0]);
    let cross = VarBuilder::new(files.clone(), DType::F16, &Device::cpu())
        .get(&[2], "a.bias")
        .unwrap();
    assert_eq!(cross.dtype(), DType::F16);
    assert_eq!(cross.to_vec_f32().unwrap(), [1.5, -2.0]);
    assert!(vb.get_opt(&[1], "absent").unwrap().is_none());
    // `steps` was never asked for (and `b` only as f16): one leftover.
    assert_eq!(files.unused(), ["steps"]);
    match files.check_all_used() {
        Err(WeightError::UnexpectedTensors {
            count, examples, ..
        }) => {
            assert_eq!(count, 1);
            assert_eq!(examples, ["steps"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_name_shape_and_dtype_are_named() {
    let dir = scratch("bad-tensor");
    let path = sample(&dir);
    let vb = VarBuilder::new(
        Arc::new(WeightFiles::open_file(&path).unwrap()),
        DType::F32,
        &Device::cpu(),
    );
    match vb.pp("a").get(&[2], "gamma") {
        Err(WeightError::MissingTensor { name, location }) => {
            assert_eq!(name, "a.gamma");
            assert!(location.contains("model.safetensors"));
        }
        other => panic!("{other:?}"),
    }
    match vb.get(&[3, 2], "a.weight") {
        Err(WeightError::WrongShape {
            name,
            expected,
            got,
            path: p,
        }) => {
            assert_eq!(
                (name.as_str(), expected, got),
                ("a.weight", vec![3, 2], vec![2, 3])
            );
            assert_eq!(p, path);
        }
        other => panic!("{other:?}"),
    }
    let err = vb.get(&[1], "steps").unwrap_err();
    assert!(
        matches!(&err, WeightError::WrongDType { name, .. } if name == "steps"),
        "{err:?}"
    );
    assert!(err.to_string().contains("model.safetensors"));
}

fn corrupt_reason(bytes: &[u8]) -> String {
    let dir = scratch("corrupt");
    let path = dir.join("bad.safetensors");
    std::fs::write(&path, bytes).unwrap();
    match WeightFiles::open_file(&path) {
        Err(WeightError::Corrupt { path: p, reason }) => {
            assert_eq!(p, path);
            reason
        }
        Err(other) => panic!("expected Corrupt, got {other:?}"),
        Ok(_) => panic!("bad file accepted"),
    }
}

#[test]
fn bad_files_are_typed_errors() {
    let good = safetensors_bytes(&[("x", "F32", vec![4], f32_bytes(&[1.0; 4]))]);
    // Empty, and shorter than the length prefix.
    corrupt_reason(&[]);
    corrupt_reason(&good[..5]);
    // Truncated data.
    corrupt_reason(&good[..good.len() - 3]);
    // Trailing garbage is also a size mismatch.
    let mut long = good.clone();
    long.extend_from_slice(&[0; 4]);
    corrupt_reason(&long);
    // Header length pointing past the end of the file.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(1u64 << 20).to_le_bytes());
    corrupt_reason(&huge);
    // Header that is not JSON.
    let mut garbage = 4u64.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"\xff{x}");
    corrupt_reason(&garbage);
    // Header lying about sizes: shape says 8 floats, offsets hold 4.
    corrupt_reason(&safetensors_bytes(&[(
        "x",
        "F32",
        vec![8],
        f32_bytes(&[1.0; 4]),
    )]));
    // Overlapping offsets.
    let json = r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut overlap = (json.len() as u64).to_le_bytes().to_vec();
    overlap.extend_from_slice(json.as_bytes());
    overlap.extend_from_slice(&[0; 8]);
    corrupt_reason(&overlap);
    // A missing file is an I/O error naming it.
    let missing = scratch("missing").join("nope.safetensors");
    assert!(
        matches!(WeightFiles::open_file(&missing), Err(WeightError::Io { path, .. }) if path == missing)
    );
}

fn write_index(dir: &Path, map: &[(&str, &str)]) -> PathBuf {
    let entries: Vec<String> = map
        .iter()
        .map(|(t, f)| format!("\"{t}\":\"{f}\""))
        .collect();
    let path = dir.join("diffusion_pytorch_model.safetensors.index.json");
    std::fs::write(
        &path,
        format!(
            "{{\"metadata\":{{\"total_size\":0}},\"weight_map\":{{{}}}}}",
            entries.join(",")
        ),
    )
    .unwrap();
    path
}

#[test]
fn sharded_weights() {
    let dir = scratch("shards");
    write(
        &dir.join("s1.safetensors"),
        &[("p.a", "F32", vec![2], f32_bytes(&[1.0, 2.0]))],
    );
    write(
        &dir.join("s2.safetensors"),
        &[("p.b", "F32", vec![1], f32_bytes(&[3.0]))],
    );
    write_index(
        &dir,
        &[("p.a", "s1.safetensors"), ("p.b", "s2.safetensors")],
    );
    let files = Arc::new(WeightFiles::open_dir(&dir).unwrap());
    assert_eq!(files.names(), ["p.a", "p.b"]);
    let vb = VarBuilder::new(files.clone(), DType::F32, &Device::cpu()).pp("p");
    assert_eq!(vb.get(&[1], "b").unwrap().to_vec_f32().unwrap(), [3.0]);
    assert_eq!(vb.get(&[2], "a").unwrap().to_vec_f32().unwrap(), [1.0, 2.0]);
    files.check_all_used().unwrap();

    // The index names a shard that is not there.
    let index = write_index(
        &dir,
        &[("p.a", "s1.safetensors"), ("p.c", "s3.safetensors")],
    );
    match WeightFiles::open_index(&index) {
        Err(WeightError::MissingShard { shard, .. }) => assert!(shard.ends_with("s3.safetensors")),
        other => panic!("{:?}", other.err()),
    }
    // The index places a tensor in a shard that lacks it.
    write_index(&dir, &[("p.a", "s2.safetensors")]);
    match WeightFiles::open_dir(&dir) {
        Err(WeightError::MissingTensor { name, location }) => {
            assert_eq!(name, "p.a");
            assert!(location.contains("s2.safetensors"));
        }
        other => panic!("{:?}", other.err()),
    }
    // Shard names may not climb out of the folder.
    write_index(&dir, &[("p.a", "../s1.safetensors")]);
    assert!(matches!(
        WeightFiles::open_dir(&dir),
        Err(WeightError::BadIndex { .. })
    ));
    std::fs::write(&index, "{\"weight_map\": [1, 2]}").unwrap();
    assert!(matches!(
        WeightFiles::open_dir(&dir),
        Err(WeightError::BadIndex { .. })
    ));
    // Two single files and no index: ambiguous.
    std::fs::remove_file(&index).unwrap();
    assert!(matches!(
        WeightFiles::open_dir(&dir),
        Err(WeightError::NoWeights { .. })
    ));
    assert!(matches!(
        WeightFiles::open_dir(&scratch("empty")),
        Err(WeightError::NoWeights { .. })
    ));
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TinyConfig {
    width: usize,
    eps: f32,
}

#[test]
fn configs() {
    let dir = scratch("config");
    let path = dir.join("config.json");
    std::fs::write(&path, r#"{"width": 4, "eps": 1e-6}"#).unwrap();
    let c: TinyConfig = read_config(&path).unwrap();
    assert_eq!(c.width, 4);
    std::fs::write(&path, r#"{"width": 4, "eps": 1e-6, "depth": 2}"#).unwrap();
    let err = read_config::<TinyConfig>(&path).unwrap_err();
    assert!(
        matches!(&err, WeightError::Config { reason, .. } if reason.contains("depth")),
        "{err}"
    );
    std::fs::write(&path, r#"{"width": 4}"#).unwrap();
    let err = read_config::<TinyConfig>(&path).unwrap_err();
    assert!(err.to_string().contains("eps") && err.to_string().contains("config.json"));
    assert!(matches!(
        read_config::<TinyConfig>(&dir.join("none.json")),
        Err(WeightError::Io { .. })
    ));
}

#[test]
fn the_cpu_keeps_stored_weights_in_place() {
    let dir = scratch("in-place");
    let files = Arc::new(WeightFiles::open_file(&sample(&dir)).unwrap());
    let cpu = Device::cpu();
    let vb = VarBuilder::new(files.clone(), DType::F32, &cpu);
    // A bf16 weight asked for in f32 stays bf16, read from the map.
    let bias = vb.pp("a").get(&[2], "bias").unwrap();
    assert_eq!(bias.dtype(), DType::BF16);
    let host = cpu.backend().download(bias.storage()).unwrap();
    assert!(matches!(host, CpuStorage::Mapped(_)), "{host:?}");
    assert_eq!(bias.to_vec_f32().unwrap(), [1.5, -2.0]);
    // So does an f32 one (the header of this file leaves it aligned).
    let w = vb.pp("a").get(&[2, 3], "weight").unwrap();
    let host = cpu.backend().download(w.storage()).unwrap();
    let aligned = matches!(host, CpuStorage::Mapped(_));
    assert_eq!(aligned, (8 + header_len(&dir)) % 4 == 0);
    // Asked for in another 16-bit type, it is converted into memory.
    let as_f16 = VarBuilder::new(files, DType::F16, &cpu);
    let bias = as_f16.pp("a").get(&[2], "bias").unwrap();
    assert_eq!(bias.dtype(), DType::F16);
    let host = cpu.backend().download(bias.storage()).unwrap();
    assert!(matches!(host, CpuStorage::F16(_)));
}

fn header_len(dir: &Path) -> usize {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}
