//! `preview.toml` loading: the flagship example loads, and every kind of mistake is reported with
//! the file, the line and the key.

use std::path::Path;

use preview_core::config::{Config, SecretDef};
use preview_core::{Error, SecretKind};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);

fn example_text() -> String {
    std::fs::read_to_string(EXAMPLE).expect("the example exists")
}

fn parse(text: &str) -> Result<Config, Error> {
    Config::parse(text, "preview.toml", Path::new("."))
}

/// Replaces `from` (which must occur exactly once) in the example and returns the error.
fn error_after(from: &str, to: &str) -> String {
    let text = example_text();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur once in the example"
    );
    let err = parse(&text.replacen(from, to, 1)).expect_err("the edit must be rejected");
    assert!(err.is_config(), "{err:?}");
    err.to_string()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle present")
        + 1
}

#[test]
fn the_flagship_example_loads() {
    let c = Config::load(EXAMPLE).unwrap();
    assert_eq!(c.naming.prefix(), "pr");
    assert_eq!(c.database.containers.len(), 3);
    assert_eq!(c.database.services.len(), 4);
    assert_eq!(c.database.size.memory_mb, 4096);
    assert_eq!(c.apps.len(), 2);
    assert_eq!(
        c.hooks.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
        ["migrate", "auth-init"]
    );
    assert!(matches!(
        c.secrets["spicedb_key"],
        SecretDef::Generated {
            kind: SecretKind::Key,
            bytes: 32,
            ..
        }
    ));
    assert!(
        matches!(&c.secrets["openai_api_key"], SecretDef::FromEnv { var } if var == "OPENAI_API_KEY")
    );
}

#[test]
fn an_unknown_key_names_file_line_and_key() {
    let text = example_text();
    let line = line_of(&text, "ready_timeout = \"8m\"");
    let msg = error_after(
        "ready_timeout = \"8m\"",
        "ready_timeout = \"8m\"\nreddy = true",
    );
    assert!(
        msg.starts_with(&format!("preview.toml:{}:", line + 1)),
        "{msg}"
    );
    assert!(msg.contains("unknown field `reddy`"), "{msg}");
    assert!(msg.contains("key `reddy`"), "{msg}");
}

#[test]
fn a_wrong_type_names_file_line_and_key() {
    let text = example_text();
    let line = line_of(&text, "memory_mb = 4096");
    let msg = error_after("memory_mb = 4096", "memory_mb = \"4GB\"");
    assert!(msg.starts_with(&format!("preview.toml:{line}:")), "{msg}");
    assert!(msg.contains("memory_mb"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn a_template_naming_an_undefined_value_is_rejected() {
    let text = example_text();
    let line = line_of(&text, "SPICEDB_ENDPOINT = \"${services.spicedb.address}\"");
    let msg = error_after(
        "SPICEDB_ENDPOINT = \"${services.spicedb.address}\"",
        "SPICEDB_ENDPOINT = \"${services.spicedbb.address}\"",
    );
    assert!(
        msg.starts_with(&format!(
            "preview.toml:{line}: apps.api.env.SPICEDB_ENDPOINT:"
        )),
        "{msg}"
    );
    assert!(
        msg.contains("`${services.spicedbb.address}` is not defined"),
        "{msg}"
    );
    assert!(
        msg.contains("defined services: manage, run, spicedb, spicedb-http"),
        "suggests what exists: {msg}"
    );
    let msg = error_after(
        "\"${tunnels.spicedb.address}\"",
        "\"${tunnels.spicedb.addr}\"",
    );
    assert!(
        msg.contains("defined: tunnels.spicedb.address, tunnels.spicedb.host"),
        "{msg}"
    );
    let msg = error_after(
        "\"Bearer ${secrets.bypass_secret}\"",
        "\"Bearer ${secrets.bypass}\"",
    );
    assert!(
        msg.contains("seed.requests[0].headers.Authorization"),
        "{msg}"
    );
}

#[test]
fn invalid_names_are_rejected() {
    let msg = error_after("prefix = \"pr\"", "prefix = \"PR_\"");
    assert!(msg.contains("naming"), "{msg}");
    assert!(msg.starts_with("preview.toml:"), "{msg}");
    let msg = error_after("name = \"auth-init\"", "name = \"Auth Init\"");
    assert!(msg.contains("hooks[1].name"), "{msg}");
    let msg = error_after(
        "domain = \"pr-${pr.number}-ui.preview.inkeep.com\"",
        "domain = \"pr-${pr.number}-ui.preview_inkeep.com\"",
    );
    assert!(msg.contains("apps.ui.domain"), "{msg}");
    assert!(msg.contains("only a-z, 0-9"), "{msg}");
    let msg = error_after(
        "suffix = \"agents\"",
        &format!("suffix = \"{}\"", "a".repeat(55)),
    );
    assert!(msg.contains("limit is 63"), "{msg}");
}

#[test]
fn branch_names_and_secrets_can_never_become_names() {
    let msg = error_after(
        "domain = \"pr-${pr.number}-ui.preview.inkeep.com\"",
        "domain = \"${pr.branch}.preview.inkeep.com\"",
    );
    assert!(msg.contains("cannot be used here"), "{msg}");
    assert!(msg.contains("untrusted"), "{msg}");
    let msg = error_after(
        "label = \"API readiness\"\nurl = \"${apps.api.url}/ready\"",
        "label = \"API readiness\"\nurl = \"${apps.api.url}/ready?k=${secrets.bypass_secret}\"",
    );
    assert!(msg.contains("report.links[2].url"), "{msg}");
    assert!(msg.contains("must not contain a secret"), "{msg}");
    let msg = error_after(
        "run = [\"pnpm\", \"db:migrate\"]",
        "run = [\"pnpm\", \"${tunnels.manage.url}\"]",
    );
    assert!(msg.contains("process arguments"), "{msg}");
    let msg = error_after(
        "INKEEP_AGENTS_MANAGE_DATABASE_URL = \"${services.manage.url}\"",
        "INKEEP_AGENTS_MANAGE_DATABASE_URL = \"${tunnels.manage.url}\"",
    );
    assert!(msg.contains("tunnels exist only"), "{msg}");
}

#[test]
fn other_mistakes_are_explained() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "interval = \"10s\"",
            "interval = \"10 seconds\"",
            "invalid duration",
        ),
        (
            "run = [\"pnpm\", \"db:migrate\"]",
            "run = [\"pnpm db:migrate\"]",
            "looks like a shell string",
        ),
        ("tls = \"none\"", "tls = \"tls\"", "gRPC needs `none`"),
        (
            "[secrets.spicedb_key]\nkind = \"key\"",
            "[secrets.spicedb_key]\nkind = \"key\"\nbytes = 16",
            "out of range",
        ),
        (
            "sensitive = [\"BETTER_AUTH_SECRET\", ",
            "sensitive = [\"NOPE\", ",
            "is not a key of apps.api.env",
        ),
        ("version = 1", "version = 2", "unsupported version"),
        (
            "provider = \"fly\"",
            "provider = \"flyio\"",
            "unknown provider",
        ),
    ];
    for (from, to, expect) in cases {
        let msg = error_after(from, to);
        assert!(msg.contains(expect), "{from:?} -> {to:?}: {msg}");
        assert!(msg.starts_with("preview.toml:"), "{msg}");
    }
}

#[test]
fn a_missing_file_is_a_config_error_naming_it() {
    let err = Config::load("/nonexistent/preview.toml").unwrap_err();
    assert!(err.is_config());
    assert!(
        err.to_string().contains("/nonexistent/preview.toml"),
        "{err}"
    );
}

#[test]
fn malformed_toml_names_the_line() {
    let err = parse("version = 1\n[naming\nprefix = \"pr\"\n").unwrap_err();
    assert!(err.to_string().starts_with("preview.toml:2:"), "{err}");
}

#[test]
fn absolute_or_empty_paths_are_refused_at_load_naming_the_field() {
    let text = example_text();
    let body = line_of(&text, "body_file = ");
    let workdir = line_of(&text, "workdir = \"..\"");
    for (from, to, at) in [
        (
            "body_file = \"seed/activities-planner.json\"",
            "body_file = \"/proc/self/environ\"",
            format!(
                "preview.toml:{body}: seed.requests[0].body_file: \"/proc/self/environ\" is an absolute path"
            ),
        ),
        (
            "body_file = \"seed/activities-planner.json\"",
            "body_file = \"\"",
            format!("preview.toml:{body}: seed.requests[0].body_file: is empty"),
        ),
    ] {
        let msg = error_after(from, to);
        assert!(msg.starts_with(&at), "{msg}");
    }
    let edited = text.replacen("workdir = \"..\"", "workdir = \"/etc\"", 1);
    let msg = parse(&edited).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "preview.toml:{workdir}: hooks[0].workdir: \"/etc\" is an absolute path"
        )),
        "{msg}"
    );
}

#[test]
fn files_are_read_once_confined_to_the_repository() {
    let mut c = Config::load(EXAMPLE).unwrap();
    let env = |_: &str| None;
    let repo = c.repository(&env).unwrap();
    // The example lives in this checkout: its top level holds `.git`.
    let top = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap();
    assert_eq!(repo.root(), top);
    c.read_files(repo).unwrap();
    let files = c.files.as_ref().unwrap();
    let expected =
        std::fs::read(top.join("examples/inkeep-agents/seed/activities-planner.json")).unwrap();
    assert_eq!(files.bodies[0].as_deref(), Some(&expected));
    assert_eq!(files.workdirs, vec![top.join("examples"); 2]);

    // A `..` escape is refused when the files are read, naming the line and the field.
    let text = example_text().replacen(
        "body_file = \"seed/activities-planner.json\"",
        "body_file = \"../../../../../../../../../../etc/passwd\"",
        1,
    );
    let line = line_of(&text, "body_file = ");
    let base = Path::new(EXAMPLE).parent().unwrap();
    let mut c = Config::parse(&text, "preview.toml", base).unwrap();
    let repo = c.repository(&env).unwrap();
    let err = c.read_files(repo).unwrap_err();
    assert!(err.is_config());
    assert!(
        err.to_string().starts_with(&format!(
            "preview.toml:{line}: seed.requests[0].body_file: \"../../../../../../../../../../etc/passwd\" leaves the repository"
        )),
        "{err}"
    );
}

#[test]
fn autostop_is_off_by_default_and_checked_against_the_machine_and_its_services() {
    use preview_core::AutoStop;
    assert_eq!(
        Config::load(EXAMPLE).unwrap().database.autostop,
        AutoStop::Off
    );
    let text = example_text();
    let with = |mode: &str, memory: &str| {
        parse(
            &text
                .replacen(
                    "restart = \"always\"",
                    &format!("restart = \"always\"\nautostop = \"{mode}\""),
                    1,
                )
                .replacen("memory_mb = 4096", &format!("memory_mb = {memory}"), 1),
        )
    };
    assert_eq!(
        with("stop", "4096").unwrap().database.autostop,
        AutoStop::Stop
    );
    assert_eq!(
        with("suspend", "2048").unwrap().database.autostop,
        AutoStop::Suspend
    );
    // Beyond 2 GB Fly would silently stop instead, losing the data the choice meant to keep.
    let msg = with("suspend", "4096").unwrap_err().to_string();
    let line = line_of(&with_line(&text), "autostop =");
    assert!(msg.starts_with(&format!("preview.toml:{line}:")), "{msg}");
    assert!(msg.contains("database.autostop"), "{msg}");
    assert!(msg.contains("2048 MB") && msg.contains("\"stop\""), "{msg}");
    let msg = with("sometimes", "4096").unwrap_err().to_string();
    assert!(msg.contains("autostop") && msg.contains("suspend"), "{msg}");
}

fn with_line(text: &str) -> String {
    text.replacen(
        "restart = \"always\"",
        "restart = \"always\"\nautostop = \"suspend\"",
        1,
    )
}
