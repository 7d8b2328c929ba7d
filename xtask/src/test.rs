//! `cargo xtask test`: formatting, lints, every test.

use crate::setup;
use crate::util::{cargo, exec};

pub fn run(extra: &[String]) -> Result<(), String> {
    let mut env = setup::prepare()?;
    env.extend(setup::emulated_device()?);

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
