//! Every seed (`fuzz/corpus/NAME/`) and every input fuzzing has found
//! (`fuzz/regressions/NAME/`, kept when the parser was fixed) run through
//! their target: none may panic. What each fix returns instead is asserted
//! by the parser's own tests.

use std::path::Path;

use genfx_fuzz::{scratch, targets};

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn seeds_and_past_findings_run_clean_through_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for name in targets::NAMES {
        let target = targets::by_name(name).expect("every name has a target");
        let seeds = inputs(&root.join("corpus").join(name));
        assert!(!seeds.is_empty(), "fuzz/corpus/{name} has no seeds");
        for input in seeds
            .iter()
            .chain(&inputs(&root.join("regressions").join(name)))
        {
            eprintln!("{name}: {}", input.display());
            target(&std::fs::read(input).expect("readable input"));
            seen += 1;
        }
    }
    scratch::remove();
    assert!(seen > targets::NAMES.len());
}
