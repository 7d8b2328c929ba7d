//! The `genfx` command line.

mod args;
mod generate;
mod list;
mod render;

pub use args::Args;

pub const USAGE: &str = "\
usage:
  genfx list BUNDLE [--json] [--host natron|resolve]
      Each plugin's id, label, grouping, contexts, clips and parameters.

  genfx render BUNDLE --plugin ID --context CONTEXT --frames A-B --out DIR
               [--set NAME=VALUE ...] [--source [CLIP=]DIR ...] [--source-first N]
               [--format png|exr] [--host natron|resolve] [--size WxH] [--fps F]
      Renders frames A..B through the plugin, headless. Input clips read image
      folders (the Nth file in name order is frame N + --source-first, default 0);
      any frame the plugin asks for is answered. PNG output is 16-bit.

  genfx generate --model PATH --prompt TEXT --out DIR [--negative TEXT] [--seed N]
               [--frames N] [--width W] [--height H] [--fps F] [--steps N | --quality Q]
               [--guidance G] [--strength S] [--format png|exr] [--context N]
               [--extend-forward DIR | --extend-backward DIR | --fill BEFORE_DIR AFTER_DIR]
      Runs a GenFX job directly on the engine, without an OpenFX host. --model is
      an LTX-Video checkpoint (.safetensors, T5 text_encoder/ and tokenizer/
      beside it), a diffusers model folder or a Hugging Face repository name.
      --frames
      counts new frames only; --context (default 9) is how many real frames
      next to the seam condition an extend or fill.

Exit status: 0 on success, 1 when the plugin or engine failed, 2 on bad usage.";

/// Runs the command line; returns the exit status.
pub fn main(argv: Vec<String>) -> i32 {
    let Some((command, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let args = match Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("genfx: {e}\n\n{USAGE}");
            return 2;
        }
    };
    let result = match command.as_str() {
        "list" => list::run(args),
        "render" => render::run(args),
        "generate" => generate::run(args),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return 0;
        }
        other => Err(Failure::Usage(format!("unknown command '{other}'"))),
    };
    match result {
        Ok(()) => 0,
        Err(Failure::Usage(e)) => {
            eprintln!("genfx: {e}\n\n{USAGE}");
            2
        }
        Err(Failure::Failed(e)) => {
            eprintln!("genfx: error: {e}");
            1
        }
    }
}

/// How a command failed.
pub enum Failure {
    Usage(String),
    Failed(String),
}

impl From<crate::HostError> for Failure {
    fn from(e: crate::HostError) -> Self {
        match e {
            crate::HostError::Usage(m) => Failure::Usage(m),
            other => Failure::Failed(other.to_string()),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}
