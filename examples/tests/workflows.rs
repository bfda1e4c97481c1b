//! The shipped GitHub workflows keep the rules that make them safe: the right triggers, one
//! concurrency group per PR, least-privilege permissions, third-party actions pinned to full SHAs,
//! and no untrusted expression inside `run:`.

use yaml_rust2::{Yaml, YamlLoader};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/inkeep-agents/.github/workflows"
);

fn load(name: &str) -> Yaml {
    let text = std::fs::read_to_string(format!("{DIR}/{name}")).expect("workflow exists");
    let mut docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn strs(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn jobs(w: &Yaml) -> Vec<(String, Yaml)> {
    w["jobs"]
        .as_hash()
        .expect("jobs")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.clone()))
        .collect()
}

/// Rules every job of every workflow keeps.
fn check_common(file: &str, w: &Yaml) {
    // Nothing granted at the top level.
    assert!(
        w["permissions"].as_hash().is_some_and(|h| h.is_empty()),
        "{file}: top-level permissions must be {{}}"
    );
    assert!(
        w["on"]["pull_request_target"].is_badvalue(),
        "{file}: no pull_request_target"
    );
    for (name, job) in jobs(w) {
        let perms = job["permissions"]
            .as_hash()
            .unwrap_or_else(|| panic!("{file}/{name}: job permissions"));
        for (k, v) in perms {
            let k = k.as_str().unwrap_or_default();
            assert!(
                ["contents", "pull-requests", "deployments"].contains(&k),
                "{file}/{name}: unexpected permission {k}"
            );
            if k == "contents" {
                assert_eq!(
                    v.as_str(),
                    Some("read"),
                    "{file}/{name}: contents must be read-only"
                );
            }
        }
        assert!(
            job["timeout-minutes"]
                .as_i64()
                .is_some_and(|t| (10..=60).contains(&t)),
            "{file}/{name}: timeout-minutes"
        );
        let steps = job["steps"]
            .as_vec()
            .unwrap_or_else(|| panic!("{file}/{name}: steps"));
        for step in steps {
            if let Some(uses) = step["uses"].as_str() {
                if uses.starts_with("./") {
                    continue;
                }
                let (_, rev) = uses
                    .split_once('@')
                    .unwrap_or_else(|| panic!("{file}/{name}: {uses} is not pinned"));
                assert!(
                    rev.len() == 40
                        && rev
                            .chars()
                            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                    "{file}/{name}: {uses} must be pinned to a full commit SHA"
                );
            }
            if let Some(run) = step["run"].as_str() {
                for bad in ["${{", "github.event", "head_ref"] {
                    assert!(
                        !run.contains(bad),
                        "{file}/{name}: `{bad}` inside run: {run}"
                    );
                }
                assert!(
                    !run.contains("set -x"),
                    "{file}/{name}: tracing would print secrets"
                );
            }
        }
    }
}

#[test]
fn preview_workflow_triggers_on_pr_events_with_a_group_per_pr() {
    let w = load("preview.yml");
    check_common("preview.yml", &w);
    assert_eq!(
        strs(&w["on"]["pull_request"]["types"]),
        ["opened", "synchronize", "reopened", "closed"]
    );
    let jobs = jobs(&w);
    assert_eq!(
        jobs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["deploy", "teardown"]
    );
    for (name, job) in &jobs {
        let group = job["concurrency"]["group"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: concurrency group"));
        assert!(
            group.contains("github.event.pull_request.number"),
            "{name}: {group}"
        );
        assert!(!group.contains("head_ref"), "{name}: {group}");
        let cancel = job["concurrency"]["cancel-in-progress"].as_bool();
        let steps = job["steps"].as_vec().unwrap();
        let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
        match name.as_str() {
            "deploy" => {
                assert_eq!(cancel, Some(true), "a new push supersedes a running deploy");
                assert!(job["if"].as_str().unwrap().contains("closed"));
                assert!(
                    job["if"]
                        .as_str()
                        .unwrap()
                        .contains("head.repo.full_name == github.repository"),
                    "forks are skipped"
                );
                assert!(
                    runs.iter().any(|r| r.starts_with("preview deploy")),
                    "{runs:?}"
                );
            }
            _ => {
                assert_eq!(cancel, Some(false), "teardown is never cancelled");
                assert!(job["if"].as_str().unwrap().contains("== 'closed'"));
                assert!(
                    runs.iter().any(|r| r.starts_with("preview teardown")),
                    "{runs:?}"
                );
            }
        }
    }
}

#[test]
fn sweep_workflow_runs_on_a_schedule_and_by_hand_with_a_dry_run_input() {
    let w = load("preview-sweep.yml");
    check_common("preview-sweep.yml", &w);
    assert!(w["on"]["schedule"][0]["cron"].as_str().is_some());
    let input = &w["on"]["workflow_dispatch"]["inputs"]["dry-run"];
    assert_eq!(input["type"].as_str(), Some("boolean"));
    assert_eq!(input["default"].as_bool(), Some(true));
    let (_, job) = &jobs(&w)[0];
    assert_eq!(
        job["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false)
    );
    let run = job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        run.contains("preview sweep") && run.contains("--dry-run"),
        "{run}"
    );
}
