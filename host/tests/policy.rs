//! The studio prompt policy (`GENFX_PROMPT_POLICY`) through `genfx generate`
//! and through the real plugin: a refused prompt fails with the rule named,
//! an allowed one renders.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn genfx(policy: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genfx"));
    command
        .env("GENFX_CACHE_DIR", "off")
        .env("GENFX_DEVICE", "cpu")
        .env("GENFX_PROMPT_POLICY", policy);
    command
}

fn generate(policy: &Path, prompt: &str, out: &Path) -> std::process::Output {
    genfx(policy)
        .arg("generate")
        .arg("--model")
        .arg(root().join("tests/fixtures/pipeline/model"))
        .args(["--prompt", prompt, "--frames", "9", "--steps", "2"])
        .args(["--width", "64", "--height", "32"])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn a_refused_prompt_names_the_rule_and_an_allowed_one_renders() {
    let dir = std::env::temp_dir().join(format!("genfx-policy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let policy = root().join("tools/prompt-policy.example.json");

    let refused = generate(
        &policy,
        "a portrait of Jane  Example at dawn",
        &dir.join("a"),
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("refused by the studio's"), "{err}");
    assert!(err.contains("deny_names[0] \"Jane Example\""), "{err}");
    assert!(err.contains("prompt-policy.example.json"), "{err}");
    assert!(!dir.join("a").exists() || std::fs::read_dir(dir.join("a")).unwrap().count() == 0);

    let allowed = generate(&policy, "a gorgeous sunset over the sea", &dir.join("b"));
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );

    // a policy that cannot be read stops jobs rather than letting them through
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{").unwrap();
    let stopped = generate(&broken, "a boat", &dir.join("c"));
    assert_eq!(stopped.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("prompt policy"));
    let _ = std::fs::remove_dir_all(&dir);
}
