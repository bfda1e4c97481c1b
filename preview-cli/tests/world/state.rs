//! The state of one environment in the e2e world: snapshots of the three fakes, what is left of
//! the environment, and whether it is complete (used by tests/kill.rs and tests/races.rs).

use preview_core::testing::Gate;
use preview_core::{PrState, PullRequest};
use preview_testkit::fakes::fly::FlySnapshot;
use preview_testkit::fakes::github::GitHubSnapshot;
use preview_testkit::fakes::vercel::VercelSnapshot;

use super::{World, pr};

/// The PR these helpers look at.
pub(crate) const PR: u64 = 42;
/// Its Fly app.
pub(crate) const APP: &str = "pr-42-agents";

/// The state of the three fakes.
pub(crate) struct Snapshot {
    fly: FlySnapshot,
    vercel: VercelSnapshot,
    github: GitHubSnapshot,
}

/// Everything the three fakes remember.
pub(crate) fn snapshot(w: &World) -> Snapshot {
    Snapshot {
        fly: w.fly.snapshot(),
        vercel: w.vercel.snapshot(),
        github: w.github.snapshot(),
    }
}

/// Puts back what [`snapshot`] kept.
pub(crate) fn restore(w: &World, s: &Snapshot) {
    w.fly.restore(&s.fly);
    w.vercel.restore(&s.vercel);
    w.github.restore(&s.github);
}

/// One [`Gate`] shared by the three fakes.
pub(crate) fn gated(w: &World) -> Gate {
    let gate = Gate::new();
    w.fly.set_gate(gate.clone());
    w.vercel.set_gate(gate.clone());
    w.github.set_gate(gate.clone());
    gate
}

/// PR 42 at `sha`, in `state`.
pub(crate) fn head(sha: &str, state: PrState) -> PullRequest {
    PullRequest {
        head_sha: sha.to_string(),
        state,
        ..pr(PR, PrState::Open)
    }
}

/// Vercel env vars that carry our marker, as `project/key@branch`.
pub(crate) fn marked_vars(w: &World) -> Vec<String> {
    ["prj_api", "prj_ui"]
        .iter()
        .flat_map(|p| {
            w.vercel
                .envs(p)
                .into_iter()
                .filter(|e| {
                    e.comment
                        .as_deref()
                        .is_some_and(|c| c.starts_with("managed-by:preview"))
                })
                .map(move |e| format!("{p}/{}@{}", e.key, e.git_branch.unwrap_or_default()))
        })
        .collect()
}

/// Everything of the environment that is still there, one line each; empty when nothing is.
pub(crate) fn leftovers(w: &World) -> Vec<String> {
    let mut left: Vec<String> = w
        .fly
        .apps()
        .iter()
        .map(|a| format!("fly app {a}"))
        .collect();
    left.extend(
        marked_vars(w)
            .into_iter()
            .map(|v| format!("vercel var {v}")),
    );
    left.extend(
        w.domains()
            .into_iter()
            .map(|d| format!("vercel domain {d}")),
    );
    left.extend(
        w.vercel
            .deployments()
            .into_iter()
            .filter(|d| matches!(d.state.as_str(), "QUEUED" | "BUILDING" | "INITIALIZING"))
            .map(|d| format!("vercel deployment {} in progress", d.id)),
    );
    left.extend(
        w.github
            .deployments()
            .into_iter()
            .filter(|d| d.statuses.last().map(|s| s.state.as_str()) != Some("inactive"))
            .map(|d| format!("github deployment {} ({}) active", d.id, d.sha)),
    );
    if w.fly.leases_held() > 0 {
        left.push(format!("{} fly lease(s)", w.fly.leases_held()));
    }
    left
}

/// The environment is complete at `sha`, with the Machine at `memory_mb`, and nothing twice; a
/// lease may still be held only by a `preview` run (one that was killed), for at most
/// `lease_ttl_secs` more.
pub(crate) fn assert_complete(
    w: &World,
    vars: &[String],
    sha: &str,
    memory_mb: u64,
    lease_ttl_secs: u64,
    what: &str,
) {
    assert_eq!(w.fly.apps(), [APP], "{what}");
    let machines = w.fly.machines(APP);
    assert_eq!(machines.len(), 1, "{what}: machines {machines:#?}");
    assert_eq!(
        machines[0]["config"]["guest"]["memory_mb"], memory_mb,
        "{what}"
    );
    assert!(
        w.fly.secret_names(APP).contains(&"PREVIEW_ENV".to_string()),
        "{what}: no marker"
    );
    let kinds: Vec<&str> = w
        .fly
        .ips(APP)
        .iter()
        .map(|i| {
            if i["ip"].as_str().is_some_and(|ip| ip.contains('.')) {
                "v4"
            } else {
                "v6"
            }
        })
        .collect();
    assert_eq!(kinds, ["v4", "v6"], "{what}: IPs {:?}", w.fly.ips(APP));
    // A run killed while holding a lease leaves it to run out within its (short) TTL; the
    // deploy that converged after it needed none, and holds none itself.
    for (owner, description, left) in w.fly.lease_details(APP) {
        assert!(
            description.starts_with("preview apply ") && left <= lease_ttl_secs,
            "{what}: a lease is held by {owner} ({description}) for {left}s more"
        );
    }
    let mut got = marked_vars(w);
    got.sort();
    assert_eq!(got, vars, "{what}: env vars");
    let mut domains = w.domains();
    domains.sort();
    assert_eq!(
        domains,
        [
            "pr-42-api.preview.inkeep.com",
            "pr-42-ui.preview.inkeep.com"
        ],
        "{what}"
    );
    let comments = w.github.comments(PR as u32);
    assert_eq!(comments.len(), 1, "{what}: comments {comments:#?}");
    assert!(
        comments[0].body.contains("state=ready") && comments[0].body.contains(sha),
        "{what}: {}",
        comments[0].body
    );
    // One GitHub deployment of the head commit, and it succeeded (an earlier commit's may
    // keep its status: our deployments are transient, which GitHub's auto_inactive skips).
    let at_head: Vec<_> = w
        .github
        .deployments()
        .into_iter()
        .filter(|d| d.sha == sha)
        .collect();
    assert_eq!(at_head.len(), 1, "{what}: {:#?}", w.github.deployments());
    assert_eq!(
        at_head[0].statuses.last().map(|s| s.state.as_str()),
        Some("success"),
        "{what}: {at_head:#?}"
    );
}
