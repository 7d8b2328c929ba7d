//! `cargo xtask test`: formatting, lints, every test.

use crate::setup;
use crate::util::{cargo, exec};

pub fn run(extra: &[String]) -> Result<(), String> {
    let mut env = setup::prepare()?;
    env.extend(setup::emulated_device()?);
    // Tests that run `genfx generate`/`render` without a configuration
    // folder of their own would make a Content Credentials key in the real
    // one; they get a scratch folder under target/ instead.
    if std::env::var_os("GENFX_CONFIG_DIR").is_none() {
        let config = crate::bundle::target_dir().join("test-config");
        env.push(("GENFX_CONFIG_DIR".into(), config.display().to_string()));
    }

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    exec(fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    exec(clippy)?;

    let mut test = cargo();
    test.args(["test", "--workspace"]).args(extra).envs(env);
    exec(test)
}
