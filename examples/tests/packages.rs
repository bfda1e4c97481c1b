//! What each published crate ships (`cargo package --list`): its sources, `build.rs`, the licence
//! files and the README; never a test, a bench, a snapshot, a fixture of the test suites or a
//! test-only binary. (The stateful fakes of the three APIs live in the unpublished test kit,
//! `preview-core/testkit`.)

use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const PUBLISHED: [&str; 5] = [
    "preview-core",
    "providers-fly",
    "providers-vercel",
    "providers-github",
    "preview-cli",
];

fn package_list(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let out = Command::new(cargo)
        .args([
            "package",
            "--list",
            "--allow-dirty",
            "--offline",
            "-p",
            package,
        ])
        .current_dir(ROOT)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo package --list -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn published_packages_hold_only_sources_licences_and_readme() {
    let meta = [
        ".cargo_vcs_info.json",
        "Cargo.lock",
        "Cargo.toml",
        "Cargo.toml.orig",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ];
    for package in PUBLISHED {
        let files = package_list(package);
        for licence in ["LICENSE-MIT", "LICENSE-APACHE", "README.md"] {
            assert!(
                files.iter().any(|f| f == licence),
                "{package}: no {licence}"
            );
        }
        assert!(
            files.iter().any(|f| f == "src/lib.rs"),
            "{package}: {files:?}"
        );
        for file in &files {
            let allowed = meta.contains(&file.as_str())
                || (package == "preview-cli" && file == "build.rs")
                || file.starts_with("src/");
            assert!(allowed, "{package} would ship {file}");
            for test_only in [
                "/bin/",
                "fake-flyctl",
                "snapshots/",
                ".snap",
                "tests/",
                "benches/",
            ] {
                assert!(
                    !file.contains(test_only),
                    "{package} would ship test-only {file}"
                );
            }
        }
    }
}
