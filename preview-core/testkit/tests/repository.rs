//! A fresh clone has nothing beside it: no build script, test, bench, example or CI script may
//! read a path outside the repository. This scans every file that could (Rust, TOML, shell,
//! Python, workflow YAML and the CI scripts) for relative paths that climb out of the repository
//! from the file's folder or from its crate's folder (where `CARGO_MANIFEST_DIR` points).

use std::path::{Component, Path, PathBuf};

fn workspace_root() -> PathBuf {
    // This crate is `preview-core/testkit`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

fn scanned(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    matches!(ext, "rs" | "toml" | "sh" | "py" | "yml" | "yaml")
        || path.parent().and_then(Path::file_name) == Some(".ci".as_ref())
        || name == "action.yml"
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".git" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else if scanned(&path) {
            out.push(path);
        }
    }
}

/// `base` joined with `rel`, normalised without touching the file system; `None` when it climbs
/// above `/`.
fn join_lexically(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for component in Path::new(rel).components() {
        match component {
            Component::ParentDir if !out.pop() => return None,
            Component::ParentDir => {}
            Component::Normal(part) => out.push(part),
            _ => {}
        }
    }
    Some(out)
}

/// Every `../…` path in `text`: from the first `../` to the end of the path-like run.
fn relative_paths(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("../") {
        let start = i + at;
        // Only where a path starts: not inside a longer `x../` token.
        let starts_path = start == 0
            || !matches!(bytes[start - 1], b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-/*".contains(c)))
            .map_or(text.len(), |n| start + n);
        if starts_path {
            found.push(&text[start..end]);
        }
        i = end.max(start + 3);
    }
    found
}

fn crate_dir(file: &Path, root: &Path) -> PathBuf {
    let mut dir = file.parent().unwrap_or(root).to_path_buf();
    while dir.starts_with(root) && dir != root {
        if dir.join("Cargo.toml").exists() {
            return dir;
        }
        dir.pop();
    }
    root.to_path_buf()
}

/// What a line that reads a relative path contains: the anchors Rust code resolves paths against,
/// the macros and calls that read, Cargo's and workflows' `path` keys, and shell's ways in.
const READS: [&str; 14] = [
    "CARGO_MANIFEST_DIR",
    "include_str!",
    "include_bytes!",
    "#[path",
    "path =",
    "path:",
    "read_to_string(",
    "File::open(",
    "fs::read(",
    "current_dir(",
    "cd ",
    "source ",
    ". ../",
    "working-directory",
];

#[test]
fn nothing_reads_a_path_outside_the_repository() {
    let root = workspace_root();
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(
        all.len() > 50,
        "scanned only {} files under {}",
        all.len(),
        root.display()
    );
    // This file spells out the patterns it looks for.
    let this = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/repository.rs");
    let mut escapes = Vec::new();
    for file in all.iter().filter(|f| **f != this) {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let bases = [
            file.parent().unwrap_or(&root).to_path_buf(),
            crate_dir(file, &root),
        ];
        for (n, line) in text.lines().enumerate() {
            // Hostile-input tests carry `../../etc/passwd` as data; a read names its anchor.
            if !READS.iter().any(|read| line.contains(read)) && !line.contains("shared") {
                continue;
            }
            for rel in relative_paths(line) {
                for base in &bases {
                    let inside = join_lexically(base, rel).is_some_and(|p| p.starts_with(&root));
                    if !inside {
                        escapes.push(format!(
                            "{}:{}: {rel} (from {})",
                            file.strip_prefix(&root).unwrap_or(file).display(),
                            n + 1,
                            base.strip_prefix(&root).unwrap_or(base).display()
                        ));
                        break;
                    }
                }
            }
            if line.contains("shared/specs") || line.contains("/work/") {
                escapes.push(format!(
                    "{}:{}: names a folder outside the repository",
                    file.strip_prefix(&root).unwrap_or(file).display(),
                    n + 1
                ));
            }
        }
    }
    assert!(
        escapes.is_empty(),
        "paths that leave the repository (a fresh clone has nothing beside it):\n{}",
        escapes.join("\n")
    );
}

/// The scanner itself: it must flag what it is for, or the test above proves nothing.
#[test]
fn the_scanner_finds_an_escape() {
    let root = Path::new("/repo");
    // A sibling of the checkout, as a test once read; spelled in parts so that this file itself
    // holds no such path.
    let outside = ["..", "..", "sibling-of-the-checkout", "specs"].join("/");
    let source = format!(r#"Path::new(env!("CARGO_MANIFEST_DIR")).join("{outside}")"#);
    let found = relative_paths(&source);
    assert_eq!(found, [outside.as_str()]);
    assert!(
        !join_lexically(Path::new("/repo/preview-core"), found[0])
            .is_some_and(|p| p.starts_with(root))
    );
    let inside = relative_paths(r#"join("../examples/inkeep-agents/preview.toml")"#);
    assert_eq!(inside, ["../examples/inkeep-agents/preview.toml"]);
    assert!(
        join_lexically(Path::new("/repo/preview-cli"), inside[0])
            .is_some_and(|p| p.starts_with(root))
    );
    assert!(relative_paths("a..b/c and x../y").is_empty());
    assert!(
        READS
            .iter()
            .any(|r| r#"Path::new(env!("CARGO_MANIFEST_DIR")).join("../../x")"#.contains(r))
    );
}
