//! The layer rules of `src/` (see `src/lib.rs` and `ARCHITECTURE.md`), checked by what each
//! folder's files import: `http` is pure, `app` knows no I/O and no Python, `io` knows no
//! Python, and only `python` touches `pyo3`.

use std::fs;
use std::path::{Path, PathBuf};

/// Each layer, and the paths its files must never name.
const RULES: &[(&str, &[&str])] = &[
    (
        "http",
        &["tokio", "pyo3", "crate::app", "crate::io", "crate::python"],
    ),
    (
        "app",
        &[
            "pyo3",
            "crate::io",
            "crate::python",
            "tokio::net",
            "tokio::io",
        ],
    ),
    ("io", &["pyo3", "crate::python"]),
];

fn rust_files(folder: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(folder).expect("the layer folder exists") {
        let path = entry.expect("a readable folder entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// The lines of `source` that are code, not comments (a rule named in a doc comment is fine).
fn code_lines(source: &str) -> impl Iterator<Item = (usize, &str)> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
}

/// Whether `line` names `path` as a path (not as part of a longer identifier).
fn names(line: &str, path: &str) -> bool {
    line.match_indices(path).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + path.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        boundary(before) && boundary(after)
    })
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (layer, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "no files in src/{layer}");
        for file in files {
            let source = fs::read_to_string(&file).expect("a readable source file");
            for (number, line) in code_lines(&source) {
                for path in *forbidden {
                    if names(line, path) {
                        violations.push(format!(
                            "{}:{}: the {layer} layer names `{path}`: {}",
                            file.display(),
                            number + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer rules broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn only_the_python_layer_and_lib_rs_live_outside_the_pure_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut top = Vec::new();
    for entry in fs::read_dir(&src).expect("src exists") {
        let path = entry.expect("a readable entry").path();
        top.push(
            path.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    }
    top.sort();
    assert_eq!(top, ["app", "http", "io", "lib.rs", "python"]);
}

#[test]
fn the_check_sees_a_forbidden_import() {
    // The detector itself: it must catch what it is for, and ignore longer names.
    assert!(names("use pyo3::prelude::*;", "pyo3"));
    assert!(names("    crate::python::server::x()", "crate::python"));
    assert!(!names("use crate::pythonic;", "crate::python"));
    assert!(!names("let tokio_like = 1;", "tokio"));
}
