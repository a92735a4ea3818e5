//! The layers of ARCHITECTURE.md, held: no module imports from a layer above its own, and the
//! app and the command line do not import each other.

use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first (ARCHITECTURE.md's table).
const LAYERS: &[&[&str]] = &[
    &["config", "history", "threads", "fsio"],
    &["data"],
    &["model"],
    &["train"],
    &["score", "eval", "baseline"],
    &["pipeline"],
    &["worker", "runfile", "sweep", "fleet", "tune", "corpus"],
    &["bench", "cli", "ui"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules that `text` names as `crate::NAME`.
fn crate_imports(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            text[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(own) = layer_of(&top) else {
            assert!(
                ["lib", "main"].contains(&top.as_str()),
                "{} is in no layer of ARCHITECTURE.md",
                relative.display()
            );
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for module in crate_imports(&text) {
            let theirs = layer_of(&module).unwrap_or_else(|| {
                panic!("{}: unknown module crate::{module}", relative.display())
            });
            let app_and_cli = matches!(
                (top.as_str(), module.as_str()),
                ("ui", "cli") | ("cli", "ui")
            );
            if theirs > own || app_and_cli {
                upward.push(format!("{} -> crate::{module}", relative.display()));
            }
            checked += 1;
        }
    }
    assert!(
        checked > 100,
        "only {checked} imports found: is the scan broken?"
    );
    assert!(upward.is_empty(), "imports against the layers: {upward:#?}");
}
