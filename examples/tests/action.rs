//! The repository's GitHub Action (`action.yml`): its install step (`.github/action/install.sh`)
//! run for real against a local HTTP server standing in for the release download, its run step
//! (`.github/action/run.sh`) with a stand-in `preview`, and the wiring between them.
//!
//! The archives served here are built by the test in the layout dist publishes
//! (`preview-cli-<target>/preview` in `preview-cli-<target>.tar.gz`); the "binary" is a shell
//! script, which is all the install step needs to prove it installs and runs what it verified.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use sha2::{Digest, Sha256};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};
use yaml_rust2::{Yaml, YamlLoader};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const SUPPORTED: [(&str, &str, &str); 3] = [
    ("Linux", "X64", "x86_64-unknown-linux-musl"),
    ("Linux", "ARM64", "aarch64-unknown-linux-musl"),
    ("macOS", "ARM64", "aarch64-apple-darwin"),
];

fn install_script() -> PathBuf {
    Path::new(ROOT).join(".github/action/install.sh")
}

fn run_script() -> PathBuf {
    Path::new(ROOT).join(".github/action/run.sh")
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "preview-action-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A release archive as dist lays it out, whose `preview` prints `version_line`.
fn archive(target: &str, version_line: &str) -> Vec<u8> {
    let dir = temp_dir("archive");
    let top = format!("preview-cli-{target}");
    write_executable(
        &dir.join(&top).join("preview"),
        &format!("#!/bin/sh\necho '{version_line}'\n"),
    );
    std::fs::write(dir.join(&top).join("README.md"), "preview\n").unwrap();
    let out = std::process::Command::new("tar")
        .arg("-czf")
        .arg(dir.join("a.tar.gz"))
        .arg("-C")
        .arg(&dir)
        .arg(&top)
        .output()
        .expect("tar runs");
    assert!(out.status.success(), "{out:?}");
    let bytes = std::fs::read(dir.join("a.tar.gz")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

/// One run of the install script in a fresh runner-like sandbox.
struct Sandbox {
    dir: PathBuf,
    checksums: PathBuf,
}

impl Sandbox {
    fn new(checksums: &str) -> Self {
        let dir = temp_dir("runner");
        let path = dir.join("checksums.txt");
        std::fs::write(&path, checksums).unwrap();
        std::fs::create_dir_all(dir.join("runner-temp")).unwrap();
        Self {
            dir,
            checksums: path,
        }
    }

    fn runner_temp(&self) -> PathBuf {
        self.dir.join("runner-temp")
    }

    fn github_path(&self) -> String {
        std::fs::read_to_string(self.dir.join("github-path")).unwrap_or_default()
    }

    fn github_output(&self) -> String {
        std::fs::read_to_string(self.dir.join("github-output")).unwrap_or_default()
    }

    async fn install(&self, base_url: &str, os: &str, arch: &str, version: &str) -> Output {
        let mut command = tokio::process::Command::new("bash");
        command
            .arg(install_script())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GITHUB_ACTIONS", "true")
            .env("RUNNER_OS", os)
            .env("RUNNER_ARCH", arch)
            .env("RUNNER_TEMP", self.runner_temp())
            .env("GITHUB_PATH", self.dir.join("github-path"))
            .env("GITHUB_OUTPUT", self.dir.join("github-output"))
            .env("PREVIEW_DOWNLOAD_BASE_URL", base_url)
            .env("PREVIEW_CHECKSUMS_FILE", &self.checksums);
        if !version.is_empty() {
            command.env("PREVIEW_VERSION", version);
        }
        command.output().await.expect("bash runs")
    }

    /// Every file named `preview` left under the runner's temporary folder.
    fn binaries_left(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.file_name() == Some("preview".as_ref()) {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.runner_temp(), &mut found);
        found
    }

    /// Everything left under the runner's temporary folder.
    fn files_left(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.runner_temp(), &mut found);
        found
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Serves `archives` (path → bytes) and answers 404 to anything else.
async fn release_server(archives: &BTreeMap<String, Vec<u8>>) -> MockServer {
    let server = MockServer::start().await;
    for (path, bytes) in archives {
        Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path(path.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes.clone()))
            .mount(&server)
            .await;
    }
    Mock::given(any())
        .respond_with(ResponseTemplate::new(404).set_body_string("no such release asset"))
        .mount(&server)
        .await;
    server
}

async fn requested_paths(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect()
}

#[tokio::test]
async fn installs_the_verified_binary_for_each_supported_platform_and_puts_it_on_path() {
    for (os, arch, target) in SUPPORTED {
        let name = format!("preview-cli-{target}.tar.gz");
        let good = archive(target, "preview 0.1.0 (abc1234 2026-12-05)");
        let old = archive(target, "preview 0.0.9 (0000000 2026-11-01)");
        let server = release_server(&BTreeMap::from([
            (format!("/v0.1.0/{name}"), good.clone()),
            (format!("/v0.0.9/{name}"), old.clone()),
        ]))
        .await;
        // Newest last is not assumed: the default is the highest version listed.
        let sandbox = Sandbox::new(&format!(
            "# comment\n{} 0.1.0 {name}\n{} 0.0.9 {name}\n",
            sha256_hex(&good),
            sha256_hex(&old)
        ));
        let out = sandbox.install(&server.uri(), os, arch, "").await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{os} {arch}: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(
            requested_paths(&server).await,
            [format!("/v0.1.0/{name}")],
            "{os} {arch}"
        );

        // On PATH: the folder GITHUB_PATH names holds the binary, and `preview` runs from PATH.
        let github_path = sandbox.github_path();
        let dirs: Vec<&str> = github_path.lines().collect();
        assert_eq!(dirs.len(), 1, "{github_path}");
        let bin = Path::new(dirs[0]);
        assert!(bin.starts_with(sandbox.runner_temp()), "{}", bin.display());
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let version = std::process::Command::new("sh")
            .args(["-c", "preview --version"])
            .env("PATH", path)
            .output()
            .unwrap();
        assert_eq!(
            text(&version.stdout),
            "preview 0.1.0 (abc1234 2026-12-05)\n"
        );
        assert_eq!(
            sandbox.github_output(),
            format!(
                "version=0.1.0\npath={}\n",
                bin.join("preview").to_string_lossy()
            )
        );
        // Nothing else stays: no archive, no unpacked copy, only the verified binary.
        assert_eq!(sandbox.files_left(), [bin.join("preview")]);

        // An older listed version is installed when asked for, with a leading `v` or without.
        let sandbox_old = Sandbox::new(&std::fs::read_to_string(&sandbox.checksums).unwrap());
        let out = sandbox_old.install(&server.uri(), os, arch, "v0.0.9").await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("preview 0.0.9 (0000000 2026-11-01) installed"),
            "{}",
            text(&out.stdout)
        );
    }
}

#[tokio::test]
async fn refuses_an_archive_whose_checksum_differs_and_leaves_nothing_on_path() {
    let (os, arch, target) = SUPPORTED[0];
    let name = format!("preview-cli-{target}.tar.gz");
    let trusted = archive(target, "preview 0.1.0 (abc1234 2026-12-05)");
    // What the server hands out instead: a different binary claiming the same version.
    let tampered = archive(target, "preview 0.1.0 (abc1234 2026-12-05) ");
    assert_ne!(sha256_hex(&trusted), sha256_hex(&tampered));
    let server = release_server(&BTreeMap::from([(
        format!("/v0.1.0/{name}"),
        tampered.clone(),
    )]))
    .await;
    let sandbox = Sandbox::new(&format!("{} 0.1.0 {name}\n", sha256_hex(&trusted)));
    let out = sandbox.install(&server.uri(), os, arch, "0.1.0").await;

    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "checksum mismatch for {name} (preview 0.1.0): expected {} (from this action's checksums.txt), got {}; refusing to install it",
            sha256_hex(&trusted),
            sha256_hex(&tampered)
        )),
        "{stderr}"
    );
    // The runner shows it as an error annotation.
    assert!(
        text(&out.stdout).contains("::error title=preview install::checksum mismatch"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(sandbox.github_path(), "", "nothing was added to PATH");
    assert_eq!(sandbox.github_output(), "");
    assert_eq!(sandbox.binaries_left(), Vec::<PathBuf>::new());
    assert_eq!(sandbox.files_left(), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn refuses_an_unsupported_platform_listing_the_supported_ones() {
    let server = release_server(&BTreeMap::new()).await;
    let sandbox = Sandbox::new(&format!(
        "{} 0.1.0 preview-cli-x86_64-unknown-linux-musl.tar.gz\n",
        "0".repeat(64)
    ));
    for (os, arch) in [
        ("Windows", "X64"),
        ("macOS", "X64"),
        ("Linux", "ARM"),
        ("Linux", "riscv64"),
        ("FreeBSD", "amd64"),
    ] {
        let out = sandbox.install(&server.uri(), os, arch, "").await;
        assert_eq!(out.status.code(), Some(1), "{os} {arch}");
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr,
            format!(
                "preview install: error: preview has no release build for {os} {arch}; supported: \
                 x86_64-unknown-linux-musl (Linux X64), aarch64-unknown-linux-musl (Linux ARM64), \
                 aarch64-apple-darwin (macOS ARM64)\n"
            )
        );
    }
    assert_eq!(requested_paths(&server).await, Vec::<String>::new());
    assert_eq!(sandbox.github_path(), "");
    assert_eq!(sandbox.files_left(), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn refuses_versions_without_a_trusted_checksum_and_failed_downloads() {
    let (os, arch, target) = SUPPORTED[0];
    let name = format!("preview-cli-{target}.tar.gz");
    let server = release_server(&BTreeMap::new()).await;
    let listed = format!(
        "{} 0.1.0 {name}\n{} 0.1.0 preview-cli-aarch64-apple-darwin.tar.gz\n{} 0.2.0 preview-cli-aarch64-apple-darwin.tar.gz\n",
        "a".repeat(64),
        "b".repeat(64),
        "c".repeat(64)
    );
    let sandbox = Sandbox::new(&listed);
    let cases = [
        // Listed for another target only.
        (
            "0.2.0",
            format!("no trusted checksum for preview 0.2.0 ({name}) in"),
        ),
        (
            "9.9.9",
            format!("no trusted checksum for preview 9.9.9 ({name}) in"),
        ),
        (
            "../../evil",
            "version '../../evil' is not a release version like 0.1.0".to_string(),
        ),
        (
            "0.1.0; rm -rf /",
            "is not a release version like 0.1.0".to_string(),
        ),
    ];
    for (version, expected) in cases {
        let out = sandbox.install(&server.uri(), os, arch, version).await;
        assert_eq!(out.status.code(), Some(1), "{version}");
        assert!(
            text(&out.stderr).contains(&expected),
            "{}",
            text(&out.stderr)
        );
    }
    let out = sandbox.install(&server.uri(), os, arch, "9.9.9").await;
    assert!(
        text(&out.stderr).contains("versions it lists: 0.1.0 0.2.0"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(requested_paths(&server).await, Vec::<String>::new());

    // Listed but not downloadable (404): refused, nothing left.
    let out = sandbox.install(&server.uri(), os, arch, "0.1.0").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("cannot download {}/v0.1.0/{name}", server.uri())),
        "{}",
        text(&out.stderr)
    );

    // An empty list (before the first release) installs nothing.
    let empty = Sandbox::new("# no release yet\n");
    let out = empty.install(&server.uri(), os, arch, "").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("lists no release yet"),
        "{}",
        text(&out.stderr)
    );
    for s in [&sandbox, &empty] {
        assert_eq!(s.github_path(), "");
        assert_eq!(s.files_left(), Vec::<PathBuf>::new());
    }
}

#[test]
fn the_committed_checksums_are_well_formed() {
    let path = Path::new(ROOT).join(".github/action/checksums.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let archives: Vec<String> = SUPPORTED
        .iter()
        .map(|(_, _, t)| format!("preview-cli-{t}.tar.gz"))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{line}");
        let (sha, version, archive) = (fields[0], fields[1], fields[2]);
        assert!(
            sha.len() == 64
                && sha
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{line}"
        );
        let parts: Vec<&str> = version.split('-').next().unwrap().split('.').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
            "{line}"
        );
        assert!(archives.iter().any(|a| a == archive), "{line}");
        assert!(seen.insert((version, archive)), "duplicate: {line}");
    }
}

/// A stand-in `preview` for the run step: records its arguments, writes outputs like the CLI and
/// exits with `$FAKE_PREVIEW_EXIT`.
fn fake_preview(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    write_executable(
        &bin.join("preview"),
        "#!/bin/sh\n\
         for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$FAKE_PREVIEW_ARGS\"\n\
         printf 'environment=pr-42-web\\nweb_url=https://pr-42.preview.example.com\\nweb_deployment_url=https://web-abc.vercel.app\\nodd=a \"quoted\" \\\\ value\\n' >> \"$GITHUB_OUTPUT\"\n\
         exit \"${FAKE_PREVIEW_EXIT:-0}\"\n",
    );
    bin
}

async fn run_step(dir: &Path, command: &str, args: &str, exit: &str) -> Output {
    let bin = fake_preview(dir);
    tokio::process::Command::new("bash")
        .arg(run_script())
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("RUNNER_TEMP", dir)
        .env("GITHUB_OUTPUT", dir.join("step-output"))
        .env("FAKE_PREVIEW_ARGS", dir.join("args"))
        .env("FAKE_PREVIEW_EXIT", exit)
        .env("PREVIEW_COMMAND", command)
        .env("PREVIEW_CONFIG", ".github/preview.toml")
        .env("PREVIEW_ARGS", args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_run_step_runs_the_command_and_passes_every_output_on() {
    let dir = temp_dir("run");
    // Extra arguments are split on whitespace only: no globbing, no evaluation.
    let out = run_step(
        &dir,
        "deploy",
        "  --json  --repo a/b * $(touch pwned) ",
        "0",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("args")).unwrap(),
        "deploy\n--config\n.github/preview.toml\n--json\n--repo\na/b\n*\n$(touch\npwned)\n"
    );
    assert!(!dir.join("pwned").exists());
    let outputs = std::fs::read_to_string(dir.join("step-output")).unwrap();
    let mut lines = outputs.lines();
    assert_eq!(lines.next(), Some("environment=pr-42-web"));
    assert_eq!(
        lines.next(),
        Some("web_url=https://pr-42.preview.example.com")
    );
    assert_eq!(
        lines.next(),
        Some("web_deployment_url=https://web-abc.vercel.app")
    );
    assert_eq!(lines.next(), Some(r#"odd=a "quoted" \ value"#));
    let json = lines
        .next()
        .and_then(|l| l.strip_prefix("outputs_json="))
        .expect("outputs_json last");
    let json: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    assert_eq!(json["environment"], "pr-42-web");
    assert_eq!(json["web_url"], "https://pr-42.preview.example.com");
    assert_eq!(json["odd"], r#"a "quoted" \ value"#);
    assert_eq!(lines.next(), None);
    // preview's own output file is gone.
    assert!(
        std::fs::read_dir(&dir).unwrap().flatten().all(|e| !e
            .file_name()
            .to_string_lossy()
            .starts_with("preview-outputs")),
        "leftover output file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_run_step_keeps_failures_and_treats_skipped_as_success() {
    for (exit, expected, notice) in [("1", 1, false), ("2", 2, false), ("3", 0, true)] {
        let dir = temp_dir("run-exit");
        let out = run_step(&dir, "teardown", "", exit).await;
        assert_eq!(out.status.code(), Some(expected), "exit {exit}");
        assert_eq!(
            text(&out.stdout).contains("::notice title=preview::teardown skipped on purpose"),
            notice,
            "{}",
            text(&out.stdout)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // Only preview's commands: anything else fails before running anything.
    for command in ["", "rm", "deploy; id", "--help"] {
        let dir = temp_dir("run-bad");
        let out = run_step(&dir, command, "", "0").await;
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert!(
            text(&out.stdout).contains(&format!(
                "unknown command '{command}'; use one of: plan deploy teardown sweep status exec handle"
            )),
            "{}",
            text(&out.stdout)
        );
        assert!(!dir.join("args").exists(), "preview ran for {command:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

fn load_yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

#[test]
fn action_yml_wires_inputs_through_the_environment_and_exposes_the_cli_outputs() {
    let action = load_yaml(&Path::new(ROOT).join("action.yml"));
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let steps = action["runs"]["steps"].as_vec().unwrap();
    let ids: Vec<&str> = steps.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["install", "run"]);
    for step in steps {
        let run = step["run"].as_str().unwrap();
        // Inputs reach the scripts as environment variables only, never spliced into the shell.
        assert!(!run.contains("${{"), "{run}");
        assert!(run.starts_with("bash \"$GITHUB_ACTION_PATH/.github/action/"));
        assert_eq!(step["shell"].as_str(), Some("bash"));
    }
    // The job's environment cannot point the install at other checksums or another server.
    let install_env = &steps[0]["env"];
    assert_eq!(install_env["PREVIEW_CHECKSUMS_FILE"].as_str(), Some(""));
    assert_eq!(install_env["PREVIEW_DOWNLOAD_BASE_URL"].as_str(), Some(""));
    assert_eq!(steps[1]["if"].as_str(), Some("inputs.command != ''"));

    // No secret is ever an input.
    let inputs = action["inputs"].as_hash().unwrap();
    for (name, _) in inputs {
        let name = name.as_str().unwrap();
        assert!(
            !["token", "secret", "password", "key"]
                .iter()
                .any(|s| name.contains(s)),
            "{name}"
        );
    }
    // The outputs the CLI writes in Actions (preview-cli/src/output.rs) for the usual app names,
    // all of them as JSON, and what the install reports.
    let outputs = action["outputs"].as_hash().unwrap();
    for (name, step) in [
        ("environment", "run"),
        ("api_url", "run"),
        ("ui_url", "run"),
        ("api_deployment_url", "run"),
        ("ui_deployment_url", "run"),
        ("outputs_json", "run"),
        ("version", "install"),
        ("path", "install"),
    ] {
        let value = outputs
            .get(&Yaml::String(name.into()))
            .unwrap_or_else(|| panic!("output {name}"));
        assert_eq!(
            value["value"].as_str(),
            Some(format!("${{{{ steps.{step}.outputs.{name} }}}}").as_str())
        );
    }
}
