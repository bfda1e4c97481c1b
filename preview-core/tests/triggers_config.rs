//! `[triggers]` in `preview.toml` (issue 16): defaults, and every mistake reported with the file,
//! the line, the key, what is wrong and what would be valid.

use std::path::Path;

use preview_core::config::Config;
use preview_core::host::Permission;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);

fn with_triggers(section: &str) -> (String, Result<Config, preview_core::Error>) {
    let mut text = std::fs::read_to_string(EXAMPLE).unwrap();
    text.push_str("\n[triggers]\n");
    text.push_str(section);
    let parsed = Config::parse(&text, "preview.toml", Path::new("."));
    (text, parsed)
}

#[test]
fn defaults_keep_todays_behaviour() {
    let (_, config) = with_triggers("");
    let t = config.unwrap().triggers;
    assert!(t.drafts && t.commands);
    assert_eq!((t.label, t.paths.is_none()), (None, true));
    assert_eq!(t.command_permission, Permission::Write);
}

#[test]
fn every_setting_is_read() {
    let (_, config) = with_triggers(
        "drafts = false\nlabel = \"preview\"\npaths = [\"apps/**\", \"packages/db/**\"]\ncommands = false\ncommand_permission = \"maintain\"\n",
    );
    let t = config.unwrap().triggers;
    assert!(!t.drafts && !t.commands);
    assert_eq!(t.label.as_deref(), Some("preview"));
    assert!(t.has_label(&["Preview".into()]));
    let paths = t.paths.unwrap();
    assert_eq!(paths.patterns(), ["apps/**", "packages/db/**"]);
    assert!(paths.matches("packages/db/schema.sql") && !paths.matches("packages/ui/x"));
    assert_eq!(t.command_permission, Permission::Maintain);
}

#[test]
fn mistakes_name_the_file_line_key_and_what_is_valid() {
    for (section, key, says) in [
        ("label = \"\"\n", "triggers.label", "is empty"),
        ("label = \" preview\"\n", "triggers.label", "whitespace"),
        (
            &format!("label = \"{}\"\n", "x".repeat(51)),
            "triggers.label",
            "at most 50",
        ),
        ("paths = []\n", "triggers.paths", "list at least one glob"),
        (
            "paths = [\"apps/**\", \"/abs/**\"]\n",
            "triggers.paths[1]",
            "without one",
        ),
        (
            "paths = [\"apps/[\"]\n",
            "triggers.paths[0]",
            "not a valid glob",
        ),
        ("paths = [\"!apps/**\"]\n", "triggers.paths[0]", "negated"),
        (
            "command_permission = \"owner\"\n",
            "triggers.command_permission",
            "read, triage, write, maintain, admin",
        ),
        (
            "command_permission = \"none\"\n",
            "triggers.command_permission",
            "read, triage, write, maintain, admin",
        ),
    ] {
        let (text, parsed) = with_triggers(section);
        let err = parsed.expect_err(section).to_string();
        let line = text.lines().count();
        assert!(
            err.starts_with(&format!("preview.toml:{line}: {key}: ")),
            "{section}: {err}"
        );
        assert!(err.contains(says), "{section}: {err}");
    }
    let (_, parsed) = with_triggers("draft = false\n");
    let err = parsed.unwrap_err().to_string();
    assert!(
        err.contains("unknown field `draft`") && err.contains("drafts"),
        "{err}"
    );
    let (_, parsed) = with_triggers("drafts = \"no\"\n");
    assert!(parsed.unwrap_err().to_string().contains("drafts"));
}
