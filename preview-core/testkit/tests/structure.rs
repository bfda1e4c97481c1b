//! The workspace's shape, checked: the limits the re-layout set, so the next feature cannot quietly
//! undo them.
//!
//! - no function in a crate's `src/` (outside `#[cfg(test)]` code and the test kit) is longer than
//!   [`MAX_FN_LINES`] lines, and no `src/` file is longer than [`MAX_FILE_LINES`];
//! - the `use crate::…` graph between the top-level modules of each crate has no cycle;
//! - there is one HTTP send-and-retry loop in the product code, and the three providers call it;
//! - the published crates' normal dependencies contain neither `wiremock` nor `jsonschema`, and no
//!   product crate has a binary only tests use;
//! - the three provider crates use the same file names for the same roles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::visit::Visit;

const MAX_FN_LINES: usize = 120;
const MAX_FILE_LINES: usize = 700;

/// The product crates: everything published (the test kit and the examples are not).
const PRODUCT: [&str; 5] = [
    "preview-core",
    "providers-fly",
    "providers-vercel",
    "providers-github",
    "preview-cli",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src_files(krate: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join(krate).join("src"), &mut files);
    assert!(!files.is_empty(), "{krate}/src has no Rust files");
    files
}

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta.require_list().is_ok_and(|l| {
                l.tokens
                    .to_string()
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|t| t == "test")
            })
    })
}

/// Every function (free, method, trait default) longer than the limit, outside test code.
struct LongFunctions<'a> {
    file: &'a str,
    found: Vec<String>,
}

impl LongFunctions<'_> {
    fn check(&mut self, name: &syn::Ident, span: proc_macro2::Span) {
        let lines = span.end().line - span.start().line + 1;
        if lines > MAX_FN_LINES {
            self.found.push(format!(
                "{}:{}: fn {name} is {lines} lines",
                self.file,
                span.start().line
            ));
        }
    }
}

impl<'ast> Visit<'ast> for LongFunctions<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if is_cfg_test(&f.attrs) {
            return;
        }
        self.check(&f.sig.ident, f.span());
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if is_cfg_test(&f.attrs) {
            return;
        }
        self.check(&f.sig.ident, f.span());
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if f.default.is_some() {
            self.check(&f.sig.ident, f.span());
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

#[test]
fn no_long_functions_or_files_in_product_code() {
    let root = root();
    let mut found = Vec::new();
    for krate in PRODUCT {
        for path in src_files(krate) {
            let rel = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // A file's `#[cfg(test)] mod tests` at its end does not count towards its length.
            let product_lines = text
                .lines()
                .take_while(|l| l.trim() != "#[cfg(test)]")
                .count();
            if product_lines > MAX_FILE_LINES {
                found.push(format!("{rel}: {product_lines} lines before its tests"));
            }
            let mut visitor = LongFunctions {
                file: &rel,
                found: Vec::new(),
            };
            visitor.visit_file(&parse(&path));
            found.extend(visitor.found);
        }
    }
    assert!(
        found.is_empty(),
        "over the limits ({MAX_FN_LINES} lines a function, {MAX_FILE_LINES} a file):\n{}",
        found.join("\n")
    );
}

/// The top-level module a file of `src/` belongs to: `config/apps.rs` → `config`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// `use crate::a::b` and `crate::a::b` paths anywhere in a file: the `a`s.
struct CrateRefs(BTreeSet<String>);

impl<'ast> Visit<'ast> for CrateRefs {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_use_path(&mut self, p: &'ast syn::UsePath) {
        if p.ident == "crate" {
            match &*p.tree {
                syn::UseTree::Path(next) => {
                    self.0.insert(next.ident.to_string());
                }
                syn::UseTree::Name(next) => {
                    self.0.insert(next.ident.to_string());
                }
                syn::UseTree::Group(group) => {
                    for tree in &group.items {
                        match tree {
                            syn::UseTree::Path(next) => {
                                self.0.insert(next.ident.to_string());
                            }
                            syn::UseTree::Name(next) => {
                                self.0.insert(next.ident.to_string());
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        syn::visit::visit_use_path(self, p);
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        let mut segments = p.segments.iter();
        if let (Some(first), Some(second)) = (segments.next(), segments.next())
            && first.ident == "crate"
        {
            self.0.insert(second.ident.to_string());
        }
        syn::visit::visit_path(self, p);
    }
}

fn module_graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join(krate).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in src_files(krate) {
        let from = top_module(&src, &file);
        if matches!(from.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        let mut refs = CrateRefs(BTreeSet::new());
        refs.visit_file(&parse(&file));
        let modules: BTreeSet<String> = std::fs::read_dir(&src)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .collect();
        let entry = graph.entry(from.clone()).or_default();
        for to in refs.0 {
            // Only edges to other modules; a name re-exported at the root is not a module.
            if to != from && modules.contains(&to) {
                entry.insert(to);
            }
        }
    }
    graph
}

/// A cycle in `graph`, as the list of modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_of_each_crate_is_acyclic() {
    let mut cycles = Vec::new();
    for krate in PRODUCT {
        let graph = module_graph(krate);
        assert!(
            graph.len() > 1,
            "{krate}: only {} modules seen",
            graph.len()
        );
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{krate}: {}", cycle.join(" → ")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

/// The cycle finder must find what it is for, or the test above proves nothing.
#[test]
fn the_cycle_finder_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", &["b"][..]),
        ("b", &["c"][..]),
        ("c", &["a"][..]),
        ("d", &[][..]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph).map(|c| c.join(" → ")).as_deref(),
        Some("a → b → c → a")
    );
    let acyclic: BTreeMap<String, BTreeSet<String>> = [("a", &["b"][..]), ("b", &[][..])]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn the_providers_share_one_layout() {
    let names = |krate: &str| -> BTreeSet<String> {
        std::fs::read_dir(root().join(krate).join("src"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    };
    let common = [
        "lib.rs",
        "builder.rs",
        "core.rs",
        "wire.rs",
        "errors.rs",
        "host.rs",
    ];
    for krate in ["providers-fly", "providers-vercel", "providers-github"] {
        let have = names(krate);
        let missing: Vec<_> = common.iter().filter(|f| !have.contains(**f)).collect();
        assert!(
            missing.is_empty(),
            "{krate}/src lacks {missing:?} (has {have:?})"
        );
    }
}

/// `.send()` on a request, in product code outside tests: where requests leave the process.
#[test]
fn one_http_send_loop_in_product_code() {
    let root = root();
    let mut sends = Vec::new();
    for krate in PRODUCT {
        for path in src_files(krate) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let product = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in product.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if code.contains(".send()") {
                    sends.push(format!(
                        "{}:{}",
                        path.strip_prefix(&root).unwrap_or(&path).display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert_eq!(
        sends.len(),
        1,
        "every request should go through the one sender in preview_core::http; `.send()` at:\n{}",
        sends.join("\n")
    );
    assert!(sends[0].starts_with("preview-core/src/http"), "{sends:?}");
}

fn cargo(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cargo {args:?}: {e}"));
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn published_crates_depend_on_no_test_machinery_and_ship_no_test_binary() {
    for krate in PRODUCT {
        let tree = cargo(&[
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--all-features",
            "--prefix",
            "none",
            "-p",
            krate,
        ]);
        for banned in ["wiremock ", "jsonschema "] {
            assert!(
                !tree.lines().any(|l| l.starts_with(banned)),
                "{krate} depends on {banned}(normal dependencies, all features):\n{tree}"
            );
        }
    }
    let metadata: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--offline",
        "--no-deps",
        "--format-version",
        "1",
    ]))
    .expect("cargo metadata prints JSON");
    let mut bins = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or("");
        if !PRODUCT.contains(&name) {
            continue;
        }
        for target in package["targets"].as_array().into_iter().flatten() {
            if target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
            {
                bins.push(format!("{name}: {}", target["name"].as_str().unwrap_or("")));
            }
        }
    }
    assert_eq!(bins, ["preview-cli: preview"], "product binaries");
}
