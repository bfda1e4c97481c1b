//! The shipped GitHub workflows keep the rules that make them safe: the right triggers, one
//! concurrency group per PR, least-privilege permissions, third-party actions pinned to full SHAs,
//! and no untrusted expression inside `run:`. None builds `preview`: the examples install it with
//! the repository's own action, pinned to a commit that has it; only the release workflow
//! compiles it, with the actions dist-workspace.toml pins.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/inkeep-agents/.github/workflows"
);
const MINIMAL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/minimal/.github/workflows");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The repository's own action, as the examples reference it.
const ACTION: &str = "preview-envs/preview@";

fn load(name: &str) -> Yaml {
    load_path(&Path::new(DIR).join(name))
}

fn load_path(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).expect("workflow exists");
    let mut docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

/// Every workflow in the repository: its own (`.github/workflows`) and every example's.
fn all_workflows() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == "node_modules" || name == ".git" {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .parent()
                .is_some_and(|p| p.ends_with(".github/workflows"))
                && path.extension().is_some_and(|e| e == "yml" || e == "yaml")
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(".github"), &mut out);
    walk(Path::new(env!("CARGO_MANIFEST_DIR")), &mut out);
    out.sort();
    out
}

/// The repository root, without `..`, so paths under it compare as they should.
fn root() -> PathBuf {
    Path::new(ROOT)
        .canonicalize()
        .expect("the repository root exists")
}

fn example_workflows() -> Vec<PathBuf> {
    all_workflows()
        .into_iter()
        .filter(|p| p.starts_with(env!("CARGO_MANIFEST_DIR")))
        .collect()
}

fn steps(w: &Yaml) -> Vec<Yaml> {
    jobs(w)
        .into_iter()
        .flat_map(|(_, job)| job["steps"].as_vec().cloned().unwrap_or_default())
        .collect()
}

fn is_full_sha(rev: &str) -> bool {
    rev.len() == 40
        && rev
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
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
                // The repository's own actions (`./…`, or GitHub's `$/…`).
                if uses.starts_with("./") || uses.starts_with("$/") {
                    continue;
                }
                let (_, rev) = uses
                    .split_once('@')
                    .unwrap_or_else(|| panic!("{file}/{name}: {uses} is not pinned"));
                assert!(
                    is_full_sha(rev),
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

/// The events `preview handle` acts on.
const PR_EVENTS: [&str; 8] = [
    "opened",
    "synchronize",
    "reopened",
    "closed",
    "labeled",
    "unlabeled",
    "ready_for_review",
    "converted_to_draft",
];

/// One job for every event (issue 16): decide with GITHUB_TOKEN alone, check out the verified
/// head only when the decision says so, act with the secrets in that one step.
fn check_one_handle_job(file: &str, w: &Yaml) {
    check_common(file, w);
    assert_eq!(strs(&w["on"]["pull_request"]["types"]), PR_EVENTS, "{file}");
    assert_eq!(
        strs(&w["on"]["issue_comment"]["types"]),
        ["created"],
        "{file}"
    );
    let jobs = jobs(w);
    assert_eq!(jobs.len(), 1, "{file}: one job");
    let (name, job) = &jobs[0];
    let group = job["concurrency"]["group"].as_str().unwrap();
    for per_pr in [
        "github.event.pull_request.number",
        "github.event.issue.number",
    ] {
        assert!(group.contains(per_pr), "{file}/{name}: {group}");
    }
    assert!(!group.contains("head_ref"), "{file}/{name}: {group}");
    assert_eq!(
        job["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false),
        "{file}/{name}: a teardown or a command is never cancelled halfway"
    );
    let guard = job["if"].as_str().unwrap();
    assert!(
        guard.contains("github.event.issue.pull_request"),
        "{file}: comments on PRs only"
    );
    assert!(job["env"].is_badvalue(), "{file}: no secret at job level");
    let steps = job["steps"].as_vec().unwrap();
    let index = |pred: &dyn Fn(&Yaml) -> bool| {
        steps
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("{file}: step missing"))
    };
    let run_starts =
        |s: &Yaml, prefix: &str| s["run"].as_str().is_some_and(|r| r.starts_with(prefix));
    let decide = index(&|s| run_starts(s, "preview handle --decide-only"));
    let act = index(&|s| {
        run_starts(s, "preview handle --config")
            && s["run"]
                .as_str()
                .unwrap()
                .contains("--sha \"$PREVIEW_SHA\"")
    });
    let checkout = index(&|s| {
        s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("actions/checkout@"))
            && s["with"]["ref"].as_str() == Some("${{ steps.decide.outputs.sha }}")
    });
    assert!(
        decide < checkout && checkout < act,
        "{file}: decide, then check out, then act"
    );
    assert_eq!(steps[decide]["id"].as_str(), Some("decide"));
    assert!(
        steps[decide]["run"]
            .as_str()
            .unwrap()
            .contains("|| test \"$?\" -eq 3"),
        "{file}: a skip is not a failure"
    );
    let decide_env: Vec<&str> = steps[decide]["env"]
        .as_hash()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    assert_eq!(
        decide_env,
        ["GITHUB_TOKEN"],
        "{file}: the decision reads no other secret"
    );
    assert_eq!(
        steps[checkout]["if"].as_str(),
        Some("steps.decide.outputs.checkout == 'true'")
    );
    assert_eq!(
        steps[checkout]["with"]["persist-credentials"].as_bool(),
        Some(false)
    );
    assert_eq!(
        steps[act]["if"].as_str(),
        Some("steps.decide.outputs.action != 'skip'")
    );
    assert_eq!(
        steps[act]["env"]["PREVIEW_SHA"].as_str(),
        Some("${{ steps.decide.outputs.sha }}")
    );
    assert!(
        !steps[act]["env"]["PREVIEW_MASTER_SECRET"].is_badvalue(),
        "{file}: deploy derives secrets"
    );
    for (i, s) in steps.iter().enumerate() {
        let secrets = s["env"].as_hash().map_or(0, |h| {
            h.values()
                .filter(|v| v.as_str().is_some_and(|v| v.contains("secrets.")))
                .count()
        });
        if i != act && i != decide {
            assert_eq!(secrets, 0, "{file}: step {i} gets no secret");
        }
    }
}

#[test]
fn preview_workflow_handles_every_event_in_one_job_with_a_group_per_pr() {
    check_one_handle_job("preview.yml", &load("preview.yml"));
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

#[test]
fn no_workflow_builds_preview_only_the_release_workflow_does() {
    let all = all_workflows();
    assert!(all.len() >= 6, "{all:?}");
    let release = root().join(".github/workflows/release.yml");
    assert!(all.contains(&release), "{all:?}");
    for path in all.iter().filter(|p| **p != release) {
        for step in steps(&load_path(path)) {
            let run = step["run"].as_str().unwrap_or_default();
            for bad in [
                "cargo install",
                "cargo build",
                "cargo run",
                "rustup",
                "cargo-dist",
            ] {
                assert!(
                    !run.contains(bad),
                    "{}: `{bad}` in a step: {run}",
                    path.display()
                );
            }
        }
    }
}

/// Every job of an example that runs preview installs it with the repository's action first.
#[test]
fn examples_install_preview_with_the_action_before_running_it() {
    let examples = example_workflows();
    assert!(examples.len() >= 3, "{examples:?}");
    for path in &examples {
        for (name, job) in jobs(&load_path(path)) {
            let mut installed = false;
            let mut runs_preview = false;
            for step in job["steps"].as_vec().unwrap() {
                if step["uses"].as_str().is_some_and(|u| u.starts_with(ACTION)) {
                    installed = true;
                    runs_preview |= !step["with"]["command"].is_badvalue();
                }
                if let Some(run) = step["run"].as_str() {
                    if run.lines().any(|l| l.trim_start().starts_with("preview ")) {
                        assert!(
                            installed,
                            "{}/{name}: runs preview before the action installs it",
                            path.display()
                        );
                        runs_preview = true;
                    }
                }
            }
            assert!(
                runs_preview,
                "{}/{name}: runs no preview command",
                path.display()
            );
        }
    }
}

/// The action is pinned like any third-party action, to one commit for all examples, and (where
/// this clone has the history) to a commit that has `action.yml`.
#[test]
#[allow(clippy::print_stderr)] // says which check a clone without history could not make
fn examples_pin_the_action_to_one_commit_that_has_it() {
    let mut revs = std::collections::BTreeSet::new();
    for path in example_workflows() {
        for step in steps(&load_path(&path)) {
            if let Some(rev) = step["uses"].as_str().and_then(|u| u.strip_prefix(ACTION)) {
                assert!(is_full_sha(rev), "{}: {ACTION}{rev}", path.display());
                revs.insert(rev.to_string());
            }
        }
    }
    assert_eq!(
        revs.len(),
        1,
        "one pinned commit for every example: {revs:?}"
    );
    let rev = revs.pop_first().unwrap();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(ROOT)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--is-shallow-repository"]).as_deref() {
        Some("false") => assert!(
            git(&["cat-file", "-e", &format!("{rev}:action.yml")]).is_some(),
            "{rev} is not a commit of this repository with action.yml"
        ),
        // A shallow clone or an export without git cannot tell; the format was checked above.
        other => eprintln!("history not available ({other:?}): {rev} checked for format only"),
    }
}

#[test]
fn minimal_workflow_handles_every_event_through_the_action_s_binary() {
    let w = load_path(&Path::new(MINIMAL_DIR).join("preview.yml"));
    check_one_handle_job("minimal/preview.yml", &w);
}

/// release.yml is dist's; every action it uses is one dist-workspace.toml pins, and the
/// repository's other workflows pin theirs too.
#[test]
fn the_repository_workflows_pin_every_action() {
    let dist = std::fs::read_to_string(Path::new(ROOT).join("dist-workspace.toml")).unwrap();
    let section = dist
        .split("[dist.github-action-commits]")
        .nth(1)
        .expect("dist-workspace.toml pins the actions");
    let pinned: Vec<String> = section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| {
            let (name, sha) = l.split_once(" = ")?;
            Some(format!(
                "{}@{}",
                name.trim_matches('"'),
                sha.trim_matches('"')
            ))
        })
        .collect();
    assert_eq!(pinned.len(), 4, "{pinned:?}");
    let own = root().join(".github/workflows");
    for path in all_workflows().iter().filter(|p| p.starts_with(&own)) {
        let w = load_path(path);
        let mut uses: Vec<String> = steps(&w)
            .iter()
            .filter_map(|s| s["uses"].as_str().map(String::from))
            .collect();
        // Reusable workflows called by jobs.
        uses.extend(
            jobs(&w)
                .iter()
                .filter_map(|(_, j)| j["uses"].as_str().map(String::from)),
        );
        assert!(!uses.is_empty(), "{}", path.display());
        for u in uses {
            if u.starts_with("./") || u.starts_with("$/") {
                continue;
            }
            if path.ends_with("release.yml") {
                assert!(
                    pinned.contains(&u),
                    "{}: {u} is not pinned in dist-workspace.toml",
                    path.display()
                );
            } else {
                let rev = u.split_once('@').map(|(_, r)| r).unwrap_or_default();
                assert!(is_full_sha(rev), "{}: {u}", path.display());
            }
        }
        assert!(
            w["permissions"].as_hash().is_some_and(|h| h.is_empty())
                || path.ends_with("release.yml"),
            "{}: top-level permissions must be {{}}",
            path.display()
        );
    }
}
