//! `fake_flyctl()` builds the stand-in and hands back a path that runs: the tunnel and end-to-end
//! tests depend on it, and it is the only way they get the binary.

use std::process::Command;

#[test]
fn fake_flyctl_is_built_once_and_runs() {
    let path = preview_testkit::fake_flyctl();
    assert!(path.is_absolute() && path.is_file(), "{}", path.display());
    assert_eq!(
        path.file_stem().and_then(|s| s.to_str()),
        Some("fake-flyctl")
    );
    // Same path on every call: one build per test process.
    assert_eq!(preview_testkit::fake_flyctl(), path);
    // It is the stand-in: it refuses to start without a token, as the tunnel tests expect.
    let out = Command::new(path)
        .args(["proxy", "1:2", "-a", "app"])
        .env_remove("FLY_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FLY_API_TOKEN is not set"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
