//! `examples/minimal`: the smallest adoption (one PostgreSQL container on Fly, one Vercel app)
//! loads and plans, as its README's first step shows, with no account or token.

use std::process::{Command, Output};

const MINIMAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/minimal/preview.toml"
);

fn preview(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preview"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_minimal_example_plans_pr_42_without_any_account() {
    let out = preview(&["plan", "--config", MINIMAL, "--pr", "42"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "environment pr-42-shop",
        "app        pr-42-shop",
        "containers: postgres",
        "image: postgres:17",
        "size: shared 1 vcpu, 512 mb",
        "public: pr-42-shop.fly.dev:5432",
        "env_var     web/DATABASE_URL",
        "postgresql://app:<secret:db_password>@pr-42-shop.fly.dev:5432/app?sslmode=require",
        "domain      pr-42.preview.example.com",
        "project: $VERCEL_PROJECT_ID",
        "url: https://pr-42.preview.example.com",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}

#[test]
fn the_minimal_example_is_one_database_container_one_app_and_no_hooks() {
    let out = preview(&["plan", "--config", MINIMAL, "--pr", "42", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("exactly one JSON document");
    assert_eq!(v["name"], "pr-42-shop");
    let kinds = |section: &str, kind: &str| -> Vec<String> {
        v[section]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == kind)
            .filter_map(|r| r["id"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(kinds("database", "container"), ["pr-42-shop/postgres"]);
    assert_eq!(kinds("apps", "env_var"), ["web/DATABASE_URL"]);
    assert_eq!(kinds("apps", "domain"), ["pr-42.preview.example.com"]);
    assert_eq!(v["hooks"].as_array().map(Vec::len), Some(0));
    // The database URL goes to Vercel as a sensitive variable.
    let var = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "env_var")
        .unwrap();
    assert!(var.to_string().contains("sensitive"), "{var}");
}
