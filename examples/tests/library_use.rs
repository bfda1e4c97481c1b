//! The library-use example builds and runs end to end.

#[test]
fn the_library_example_deploys_redeploys_and_tears_down() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/inkeep-agents/preview.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_preview-examples"))
        .arg(config)
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("deployed pr-42-agents"), "{stdout}");
    assert!(
        stdout.contains("re-deployed with 0 resources changed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("left behind: 0 databases, 0 env vars, 0 domains"),
        "{stdout}"
    );
    assert!(stdout.contains("phase hooks"), "{stdout}");
}
