//! The conformance suite: one async check per behaviour of each trait. Any implementation can run
//! it — the in-memory hosts do, and so do the provider crates against stateful fakes of their APIs
//! (and, by hand, against real accounts: every check uses a fresh name and cleans up).
//!
//! ```ignore
//! preview_core::database_host_conformance!(my_host().await);
//! preview_core::app_host_conformance!(my_app_host().await);
//! preview_core::source_host_conformance!(my_source().await); // evaluates to (host, open PR number)
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::host::{
    AppHost, AppRef, AppSpec, CheckKind, Commit, ContainerSpec, CpuKind, DatabaseHost,
    DatabaseSpec, Deleted, EnvVar, HealthCheck, Link, MachineSize, Outcome, Protocol, Report,
    ReportKind, ReportState, RestartPolicy, ServiceSpec, SourceHost, TlsMode,
};
use crate::name::{Naming, PrNumber, PreviewName};
use crate::template::Value;

/// A fresh environment name (random PR number in a range real repositories rarely reach), so
/// checks never collide with each other or with real environments.
pub fn unique_name() -> PreviewName {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let n = 1_000_000_000 + u64::from(u32::from_le_bytes(b) % 1_000_000_000);
    let naming =
        Naming::new("pvtest", "").unwrap_or_else(|e| panic!("static naming is valid: {e}"));
    naming.name(PrNumber::new(n).unwrap_or_else(|e| panic!("in range: {e}")))
}

/// A small database spec (one Postgres container, one `pg_tls` service) for `name`.
pub fn sample_database_spec(name: &PreviewName) -> DatabaseSpec {
    DatabaseSpec {
        region: "iad".into(),
        size: MachineSize {
            cpu_kind: CpuKind::Shared,
            cpus: 1,
            memory_mb: 512,
        },
        restart: RestartPolicy::Always,
        autostop: crate::host::AutoStop::Off,
        containers: vec![ContainerSpec {
            name: "postgres".into(),
            image: "postgres:18".into(),
            cmd: vec![],
            entrypoint: vec![],
            env: BTreeMap::from([
                ("POSTGRES_USER".into(), Value::Plain("app".into())),
                (
                    "POSTGRES_PASSWORD".into(),
                    Value::Secret("conformance-password-0123456789".into()),
                ),
            ]),
            healthchecks: vec![HealthCheck {
                name: "pg-ready".into(),
                kind: CheckKind::Exec {
                    command: vec!["pg_isready".into()],
                },
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(3),
                grace_period: Duration::from_secs(10),
                success_threshold: 1,
                failure_threshold: 5,
            }],
            depends_on: BTreeMap::new(),
        }],
        services: vec![ServiceSpec {
            name: "db".into(),
            internal_port: 5432,
            port: 5432,
            tls: TlsMode::PgTls,
            protocol: Protocol::Postgres,
            credentials: None,
            health_path: None,
        }],
        public_host: format!("{name}.fly.dev"),
        ready_timeout: Duration::from_secs(300),
    }
}

/// A small app spec for `name` on `project`.
pub fn sample_app_spec(name: &PreviewName, project: &str, domain_base: &str) -> AppSpec {
    AppSpec {
        target: AppRef {
            app: "api".into(),
            project: project.into(),
            domain: Some(format!("{name}-api.{domain_base}")),
        },
        branch: format!("conformance/{name}"),
        env: vec![
            EnvVar {
                key: "PREVIEW_CONFORMANCE".into(),
                value: Value::Plain("1".into()),
                sensitive: false,
            },
            EnvVar {
                key: "PREVIEW_SECRET".into(),
                value: Value::Secret("conformance-secret-0123456789".into()),
                sensitive: false,
            },
        ],
        adopt_existing: false,
        deploy_timeout: Duration::from_secs(1800),
        fingerprint_key: None,
    }
}

fn outcomes(changes: &[crate::host::ResourceChange]) -> Vec<Outcome> {
    changes.iter().map(|c| c.outcome).collect()
}

// ---- DatabaseHost ----------------------------------------------------------------------------

/// A missing environment reads as `None`.
pub async fn check_database_get_missing(host: &dyn DatabaseHost) {
    let name = unique_name();
    assert_eq!(host.get_database(&name).await.expect("get_database"), None);
}

/// Apply creates, and get then finds it; applying again changes nothing.
pub async fn check_database_apply_is_idempotent(host: &dyn DatabaseHost) {
    let name = unique_name();
    let spec = sample_database_spec(&name);
    let first = host
        .apply_database(&name, &spec)
        .await
        .expect("first apply");
    assert!(
        outcomes(&first.changes).contains(&Outcome::Created),
        "first apply creates: {:?}",
        first.changes
    );
    assert_eq!(first.database.name, name);
    let got = host
        .get_database(&name)
        .await
        .expect("get")
        .expect("exists after apply");
    assert_eq!(got.name, name);
    let second = host
        .apply_database(&name, &spec)
        .await
        .expect("second apply");
    assert!(
        second
            .changes
            .iter()
            .all(|c| c.outcome == Outcome::Unchanged),
        "second apply changes nothing: {:?}",
        second.changes
    );
    host.delete_database(&name).await.expect("cleanup");
}

/// Applying a changed spec updates in place (never a second instance).
pub async fn check_database_apply_changed_updates(host: &dyn DatabaseHost) {
    let name = unique_name();
    let mut spec = sample_database_spec(&name);
    host.apply_database(&name, &spec).await.expect("apply");
    spec.containers[0].image = "postgres:17".into();
    let updated = host
        .apply_database(&name, &spec)
        .await
        .expect("apply changed");
    assert!(
        outcomes(&updated.changes).contains(&Outcome::Updated),
        "{:?}",
        updated.changes
    );
    assert!(
        !outcomes(&updated.changes).contains(&Outcome::Created),
        "{:?}",
        updated.changes
    );
    host.delete_database(&name).await.expect("cleanup");
}

/// Delete removes; deleting again is `AlreadyGone`.
pub async fn check_database_delete_twice(host: &dyn DatabaseHost) {
    let name = unique_name();
    host.apply_database(&name, &sample_database_spec(&name))
        .await
        .expect("apply");
    assert_eq!(
        host.delete_database(&name).await.expect("delete"),
        Deleted::Removed
    );
    assert_eq!(host.get_database(&name).await.expect("get"), None);
    assert_eq!(
        host.delete_database(&name).await.expect("delete again"),
        Deleted::AlreadyGone
    );
}

/// List shows an owned environment while it exists, and not after.
pub async fn check_database_list_owned(host: &dyn DatabaseHost) {
    let name = unique_name();
    host.apply_database(&name, &sample_database_spec(&name))
        .await
        .expect("apply");
    let listed = host.list_databases().await.expect("list");
    assert!(listed.iter().any(|o| o.name == name.as_str()), "{listed:?}");
    host.delete_database(&name).await.expect("delete");
    let listed = host.list_databases().await.expect("list");
    assert!(
        !listed.iter().any(|o| o.name == name.as_str()),
        "{listed:?}"
    );
}

// ---- AppHost ---------------------------------------------------------------------------------

/// Apply writes vars and the domain; a second apply changes nothing.
pub async fn check_app_apply_is_idempotent(host: &dyn AppHost, project: &str, domain_base: &str) {
    let name = unique_name();
    let spec = sample_app_spec(&name, project, domain_base);
    let first = host.apply_app(&name, &spec).await.expect("apply");
    assert!(
        first
            .iter()
            .filter(|c| c.outcome == Outcome::Created)
            .count()
            >= 3,
        "{first:?}"
    );
    let second = host.apply_app(&name, &spec).await.expect("apply again");
    assert!(
        second.iter().all(|c| c.outcome == Outcome::Unchanged),
        "{second:?}"
    );
    let status = host
        .get_app(&name, &spec.target)
        .await
        .expect("get")
        .expect("exists");
    assert!(
        status.env_keys.contains(&"PREVIEW_CONFORMANCE".to_string()),
        "{status:?}"
    );
    host.delete_app(&name, &spec.target).await.expect("cleanup");
}

/// A changed value is updated.
pub async fn check_app_changed_value_updates(host: &dyn AppHost, project: &str, domain_base: &str) {
    let name = unique_name();
    let mut spec = sample_app_spec(&name, project, domain_base);
    host.apply_app(&name, &spec).await.expect("apply");
    spec.env[0].value = Value::Plain("2".into());
    let changes = host.apply_app(&name, &spec).await.expect("apply changed");
    assert!(
        outcomes(&changes).contains(&Outcome::Updated),
        "{changes:?}"
    );
    host.delete_app(&name, &spec.target).await.expect("cleanup");
}

/// Deploying the same commit twice reuses the deployment; new env vars need a new one.
pub async fn check_app_deploy_is_idempotent(
    host: &dyn AppHost,
    project: &str,
    domain_base: &str,
    commit: &Commit,
) {
    let name = unique_name();
    let mut spec = sample_app_spec(&name, project, domain_base);
    spec.branch = commit.branch.clone();
    host.apply_app(&name, &spec).await.expect("apply");
    let (d1, o1) = host.deploy_app(&name, &spec, commit).await.expect("deploy");
    assert_eq!(o1, Outcome::Created);
    assert_eq!(d1.sha, commit.sha);
    assert!(d1.url.starts_with("https://"), "{d1:?}");
    let (d2, o2) = host
        .deploy_app(&name, &spec, commit)
        .await
        .expect("deploy again");
    assert_eq!(o2, Outcome::Unchanged);
    assert_eq!(d1.id, d2.id);
    spec.env[0].value = Value::Plain("changed".into());
    host.apply_app(&name, &spec).await.expect("apply changed");
    let (d3, o3) = host
        .deploy_app(&name, &spec, commit)
        .await
        .expect("deploy after env change");
    assert_eq!(
        o3,
        Outcome::Created,
        "env vars apply only to the next deployment"
    );
    assert_ne!(d3.id, d1.id);
    host.delete_app(&name, &spec.target).await.expect("cleanup");
}

/// Delete removes our vars and domain; deleting again reports everything already gone.
pub async fn check_app_delete_twice(host: &dyn AppHost, project: &str, domain_base: &str) {
    let name = unique_name();
    let spec = sample_app_spec(&name, project, domain_base);
    host.apply_app(&name, &spec).await.expect("apply");
    let removed = host.delete_app(&name, &spec.target).await.expect("delete");
    assert!(
        outcomes(&removed).contains(&Outcome::Removed),
        "{removed:?}"
    );
    assert_eq!(host.get_app(&name, &spec.target).await.expect("get"), None);
    let again = host
        .delete_app(&name, &spec.target)
        .await
        .expect("delete again");
    assert!(
        again.iter().all(|c| c.outcome == Outcome::AlreadyGone),
        "{again:?}"
    );
}

/// List finds environments that own something on the project, and forgets them once deleted.
pub async fn check_app_list_owned(host: &dyn AppHost, project: &str, domain_base: &str) {
    let name = unique_name();
    let spec = sample_app_spec(&name, project, domain_base);
    host.apply_app(&name, &spec).await.expect("apply");
    let listed = host.list_apps(&[project.to_string()]).await.expect("list");
    assert!(listed.iter().any(|o| o.name == name.as_str()), "{listed:?}");
    host.delete_app(&name, &spec.target).await.expect("delete");
    let listed = host.list_apps(&[project.to_string()]).await.expect("list");
    assert!(
        !listed.iter().any(|o| o.name == name.as_str()),
        "{listed:?}"
    );
}

// ---- SourceHost ------------------------------------------------------------------------------

/// A PR that does not exist reads as `None`.
pub async fn check_source_missing_pr(host: &dyn SourceHost) {
    let pr = PrNumber::new(u64::from(PrNumber::MAX) - 7).expect("in range");
    assert_eq!(host.get_pull_request(pr).await.expect("get"), None);
}

/// An existing open PR reads back with its number and state.
pub async fn check_source_open_pr(host: &dyn SourceHost, pr: PrNumber) {
    let got = host
        .get_pull_request(pr)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.number, pr);
    assert_eq!(got.state, crate::host::PrState::Open);
    let open = host.list_open_pull_requests().await.expect("list");
    assert!(open.iter().any(|p| p.number == pr), "{open:?}");
}

/// A report is created once, unchanged when republished, updated on change, and read back.
pub async fn check_source_report_lifecycle(host: &dyn SourceHost, pr: PrNumber) {
    let naming = Naming::new("pvtest", "").expect("valid");
    let name = naming.name(pr);
    let mut report = Report {
        name: name.clone(),
        pr,
        branch: Some("feature/`x`".into()),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        state: ReportState::Deploying,
        run_url: None,
        started_at: None,
        phases: vec![],
        lifetime: None,
    };
    let first = host.publish_report(&report).await.expect("publish");
    assert!(
        matches!(first, Outcome::Created | Outcome::Updated),
        "{first:?}"
    );
    assert_eq!(
        host.publish_report(&report).await.expect("republish"),
        Outcome::Unchanged
    );
    let s = host
        .get_report(&name, pr)
        .await
        .expect("get")
        .expect("published");
    assert_eq!(s.kind, ReportKind::Deploying);
    report.state = ReportState::Ready {
        links: vec![Link {
            label: "App".into(),
            url: "https://example.com".into(),
        }],
    };
    assert_eq!(
        host.publish_report(&report).await.expect("update"),
        Outcome::Updated
    );
    let s = host
        .get_report(&name, pr)
        .await
        .expect("get")
        .expect("published");
    assert_eq!(s.kind, ReportKind::Ready);
    assert_eq!(s.commit, report.commit);
    assert_eq!(
        s.digest,
        Some(report.digest()),
        "get_report gives back the digest of the report last published"
    );
    report.state = ReportState::TornDown;
    host.publish_report(&report).await.expect("torn down");
}

/// A label is added once: the PR then carries it, and adding it again (in another case too)
/// changes nothing. On a real account the label stays on the PR (the trait removes none).
pub async fn check_source_add_label_is_idempotent(host: &dyn SourceHost, pr: PrNumber) {
    let label = format!("pvtest-keep-{}", std::process::id());
    assert_eq!(
        host.add_label(pr, &label).await.expect("add"),
        Outcome::Updated
    );
    let got = host
        .get_pull_request(pr)
        .await
        .expect("get")
        .expect("exists");
    assert!(crate::host::has_label(&got.labels, &label), "{got:?}");
    assert_eq!(
        host.add_label(pr, &label).await.expect("again"),
        Outcome::Unchanged
    );
    assert_eq!(
        host.add_label(pr, &label.to_uppercase())
            .await
            .expect("another case"),
        Outcome::Unchanged
    );
    let missing = PrNumber::new(u64::from(PrNumber::MAX) - 7).expect("in range");
    assert!(matches!(
        host.add_label(missing, &label).await,
        Err(crate::Error::NotFound { .. })
    ));
}

/// A report never replaces one of a run that started later: an older run's report is `Skipped`
/// and the newer one stays; a run that started later still replaces it.
pub async fn check_source_report_never_goes_back(host: &dyn SourceHost, pr: PrNumber) {
    let naming = Naming::new("pvorder", "").expect("valid");
    let name = naming.name(pr);
    let at = |s: i64| jiff::Timestamp::from_second(1_763_800_000 + s).expect("in range");
    let report = |state: ReportState, started: i64| Report {
        name: name.clone(),
        pr,
        branch: Some("feature/x".into()),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        state,
        run_url: None,
        started_at: Some(at(started)),
        phases: vec![],
        lifetime: None,
    };
    let torn_down = report(ReportState::TornDown, 20);
    host.publish_report(&torn_down).await.expect("publish");
    // A deploy that started before that teardown fails late: its report must not win.
    let older = report(
        ReportState::Failed {
            phase: "database".into(),
            error: "the app went away".into(),
        },
        10,
    );
    assert_eq!(
        host.publish_report(&older).await.expect("older"),
        Outcome::Skipped
    );
    let s = host
        .get_report(&name, pr)
        .await
        .expect("get")
        .expect("published");
    assert_eq!(s.kind, ReportKind::TornDown);
    assert_eq!(s.started_at, Some(at(20)));
    assert!(s.is_newer_than(Some(at(10))));
    // A run that started later (the PR was reopened) replaces it.
    let newer = report(ReportState::Deploying, 30);
    assert_eq!(
        host.publish_report(&newer).await.expect("newer"),
        Outcome::Updated
    );
    let s = host
        .get_report(&name, pr)
        .await
        .expect("get")
        .expect("published");
    assert_eq!(s.kind, ReportKind::Deploying);
    assert_eq!(s.started_at, Some(at(30)));
    host.publish_report(&report(ReportState::TornDown, 40))
        .await
        .expect("clean up");
}

/// Runs every [`DatabaseHost`] check as its own test. `$make` is an expression (it may `.await`)
/// evaluated once per test.
#[macro_export]
macro_rules! database_host_conformance {
    ($make:expr) => {
        mod database_host_conformance {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn get_missing() {
                let h = $make;
                $crate::testing::conformance::check_database_get_missing(&h).await;
            }
            #[tokio::test]
            async fn apply_is_idempotent() {
                let h = $make;
                $crate::testing::conformance::check_database_apply_is_idempotent(&h).await;
            }
            #[tokio::test]
            async fn apply_changed_updates() {
                let h = $make;
                $crate::testing::conformance::check_database_apply_changed_updates(&h).await;
            }
            #[tokio::test]
            async fn delete_twice() {
                let h = $make;
                $crate::testing::conformance::check_database_delete_twice(&h).await;
            }
            #[tokio::test]
            async fn list_owned() {
                let h = $make;
                $crate::testing::conformance::check_database_list_owned(&h).await;
            }
        }
    };
}

/// Runs every [`AppHost`] check. `$make` evaluates to `(host, project, domain_base, commit)`.
#[macro_export]
macro_rules! app_host_conformance {
    ($make:expr) => {
        mod app_host_conformance {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn apply_is_idempotent() {
                let (h, p, d, _c) = $make;
                $crate::testing::conformance::check_app_apply_is_idempotent(&h, &p, &d).await;
            }
            #[tokio::test]
            async fn changed_value_updates() {
                let (h, p, d, _c) = $make;
                $crate::testing::conformance::check_app_changed_value_updates(&h, &p, &d).await;
            }
            #[tokio::test]
            async fn deploy_is_idempotent() {
                let (h, p, d, c) = $make;
                $crate::testing::conformance::check_app_deploy_is_idempotent(&h, &p, &d, &c).await;
            }
            #[tokio::test]
            async fn delete_twice() {
                let (h, p, d, _c) = $make;
                $crate::testing::conformance::check_app_delete_twice(&h, &p, &d).await;
            }
            #[tokio::test]
            async fn list_owned() {
                let (h, p, d, _c) = $make;
                $crate::testing::conformance::check_app_list_owned(&h, &p, &d).await;
            }
        }
    };
}

/// Runs every [`SourceHost`] check. `$make` evaluates to `(host, open_pr_number)`.
#[macro_export]
macro_rules! source_host_conformance {
    ($make:expr) => {
        mod source_host_conformance {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn missing_pr() {
                let (h, _pr) = $make;
                $crate::testing::conformance::check_source_missing_pr(&h).await;
            }
            #[tokio::test]
            async fn open_pr() {
                let (h, pr) = $make;
                $crate::testing::conformance::check_source_open_pr(&h, pr).await;
            }
            #[tokio::test]
            async fn report_lifecycle() {
                let (h, pr) = $make;
                $crate::testing::conformance::check_source_report_lifecycle(&h, pr).await;
            }
            #[tokio::test]
            async fn report_never_goes_back() {
                let (h, pr) = $make;
                $crate::testing::conformance::check_source_report_never_goes_back(&h, pr).await;
            }
            #[tokio::test]
            async fn add_label_is_idempotent() {
                let (h, pr) = $make;
                $crate::testing::conformance::check_source_add_label_is_idempotent(&h, pr).await;
            }
        }
    };
}
