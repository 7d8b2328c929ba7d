//! `cargo xtask test`: formatting, lints, every test, a short fuzz run.

use crate::fuzz;
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
    // Not the libFuzzer binary (`genfx-fuzz/libfuzzer`): compiling
    // libFuzzer's C++ for the lint alone costs CI a minute; the binary is a
    // thin shell over the linted targets library.
    clippy.args(["clippy", "--workspace", "--all-targets"]);
    clippy.args(["--", "-D", "warnings"]);
    exec(clippy)?;

    let mut test = cargo();
    test.args(["test", "--workspace"]).args(extra).envs(env);
    exec(test)?;

    // A short coverage-guided run of every parser's fuzz target from its
    // seeds (the inputs fuzzing found before already ran as tests above).
    fuzz::smoke(fuzz::SMOKE_SECONDS)
}
