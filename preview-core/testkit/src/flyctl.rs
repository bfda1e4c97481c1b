//! The stand-in `flyctl proxy` (this crate's `fake-flyctl` binary), for the tests that open
//! tunnels: providers-fly's `tests/tunnel.rs` and the CLI's end-to-end world.
//!
//! Cargo hands a test `CARGO_BIN_EXE_<name>` only for the binaries of its own package, and a
//! test-only binary must not be a target of a published package (it would ship in its `.crate`
//! and, for the CLI, be installed by `cargo install`). So the binary lives here, in the crate that
//! is never published, and [`fake_flyctl`] builds it on first use with the `cargo` that runs the
//! tests, into the same target directory and profile, and returns the path Cargo reports for it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built `fake-flyctl` executable.
///
/// The first call in a test process runs `cargo build -p preview-testkit --bin fake-flyctl
/// --message-format=json` once (later calls return the same path); when nothing changed, that
/// build is a no-op of well under a second.
///
/// # Panics
///
/// When the build fails or Cargo reports no executable: the message has Cargo's output.
pub fn fake_flyctl() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build().unwrap_or_else(|e| panic!("cannot build fake-flyctl: {e}")))
}

fn build() -> Result<PathBuf, String> {
    // At run time Cargo tells its tests which `cargo` runs them; at compile time, which built them.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from(env!("CARGO")));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args([
            "--bin",
            "fake-flyctl",
            "--message-format=json-render-diagnostics",
        ]);
    if let Some((target_dir, profile)) = layout_of_this_test() {
        command.arg("--target-dir").arg(target_dir);
        command.args(["--profile", &profile]);
    }
    let out = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{:?} exited with {}:\n{stderr}",
            command, out.status
        ));
    }
    executable(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
        format!("{command:?} reported no `fake-flyctl` executable; its stderr:\n{stderr}")
    })
}

/// The target directory and profile this test binary was built into, when it sits where Cargo
/// puts tests (`TARGET/PROFILE/deps/NAME`, `TARGET` holding Cargo's `CACHEDIR.TAG`): building
/// there reuses what the test's own build compiled and takes Cargo's lock on that directory
/// instead of racing it. `None` elsewhere (another layout, a `--target` build): Cargo's default.
fn layout_of_this_test() -> Option<(PathBuf, String)> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let profile_dir = deps.parent()?;
    let target_dir = profile_dir.parent()?;
    if !target_dir.join("CACHEDIR.TAG").is_file() {
        return None;
    }
    // The `dev` profile's folder is `debug`; every other profile's is its name (`bench` shares
    // `release`'s, and builds what `release` builds).
    let profile = match profile_dir.file_name()?.to_str()? {
        "debug" => "dev".to_string(),
        name => name.to_string(),
    };
    Some((target_dir.to_path_buf(), profile))
}

/// The `executable` of the `fake-flyctl` artifact in Cargo's JSON messages.
fn executable(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "fake-flyctl")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_executable_among_cargos_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"tokio","kind":["lib"]},"executable":null}"#,
            "\n",
            "not json\n",
            r#"{"reason":"compiler-artifact","target":{"name":"fake-flyctl","kind":["bin"]},"executable":"/t/debug/fake-flyctl"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable(messages),
            Some(PathBuf::from("/t/debug/fake-flyctl"))
        );
        assert_eq!(
            executable(r#"{"reason":"build-finished","success":true}"#),
            None
        );
    }
}
