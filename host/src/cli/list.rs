//! `genfx list`.

use super::{usage, Args, Failure};
use crate::describe;
use crate::{Bundle, HostKind};
use std::path::Path;

pub fn host_kind(args: &Args) -> Result<HostKind, Failure> {
    match args.one("host") {
        None => Ok(HostKind::Natron),
        Some(h) => HostKind::parse(h)
            .ok_or_else(|| usage(format!("--host: unknown host '{h}' (natron or resolve)"))),
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    args.check(&["json", "host"]).map_err(usage)?;
    let [bundle] = &args.positional[..] else {
        return Err(usage("list takes one BUNDLE"));
    };
    let bundle = Bundle::open(Path::new(bundle), host_kind(&args)?)?;
    let listing = describe::list(&bundle)?;
    if args.flag("json") {
        let json = describe::to_json(&listing);
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else {
        print!("{}", describe::to_text(&listing));
    }
    Ok(())
}
