//! Shared test helpers: the one place every request body the provider sends and every mock
//! response body is checked against the vendored `fly-machines.openapi.fixed.json` (`preview-core/testkit/specs`).
#![allow(dead_code, unreachable_pub)]

pub mod spec;

use std::collections::BTreeMap;
use std::time::Duration;

use preview_core::http::ClientSettings;
use preview_core::{
    CheckKind, ContainerSpec, CpuKind, Credentials, DatabaseSpec, HealthCheck, MachineSize, Naming,
    PrNumber, PreviewName, Protocol, RestartPolicy, ServiceSpec, TlsMode, Value,
};
use preview_testkit::fakes::fly::FakeFly;
use providers_fly::FlyDatabases;
use secrecy::SecretString;
use serde_json::Value as Json;
use wiremock::{MockServer, ResponseTemplate};

/// A token that must never show up anywhere.
pub const TOKEN: &str = "fo1_SENTINEL_TOKEN_d3adb33f";
pub const ORG: &str = "acme";
pub const PG_PASSWORD: &str = "SENTINEL-pg-password-0123456789ab";
pub const SPICEDB_KEY: &str = "SENTINEL-spicedb-key-0123456789ab";

pub fn naming() -> Naming {
    Naming::new("pr", "agents").expect("valid naming")
}

pub fn name(pr: u64) -> PreviewName {
    naming().name(PrNumber::new(pr).expect("valid pr"))
}

/// A host pointed at `uri`, with short polls so tests run fast on the real clock.
pub fn host(uri: &str) -> FlyDatabases {
    FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(naming())
        .base_url(uri)
        .poll_interval(Duration::from_millis(5))
        .delete_timeout(Duration::from_secs(5))
        .build()
        .expect("valid host")
}

/// A fake Machines API and a host pointed at it.
pub async fn fake() -> (MockServer, FakeFly, FlyDatabases) {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    let host = host(&server.uri());
    (server, fake, host)
}

fn secret(s: &str) -> Value {
    Value::Secret(SecretString::from(s.to_string()))
}

fn check(name: &str, cmd: &[&str], t: [u64; 3], ok: u32, fail: u32) -> HealthCheck {
    HealthCheck {
        name: name.into(),
        kind: CheckKind::Exec {
            command: cmd.iter().map(|s| s.to_string()).collect(),
        },
        interval: Duration::from_secs(t[0]),
        timeout: Duration::from_secs(t[1]),
        grace_period: Duration::from_secs(t[2]),
        success_threshold: ok,
        failure_threshold: fail,
    }
}

fn env(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn pg_credentials() -> Option<Credentials> {
    Some(Credentials {
        user: "appuser".into(),
        password: secret(PG_PASSWORD),
        database: Some("inkeep_agents".into()),
    })
}

/// The prototype's stack (seed-system.md §6.4/§6.5), built by hand.
pub fn prototype_spec(name: &PreviewName) -> DatabaseSpec {
    DatabaseSpec {
        region: "iad".into(),
        size: MachineSize {
            cpu_kind: CpuKind::Shared,
            cpus: 4,
            memory_mb: 4096,
        },
        restart: RestartPolicy::Always,
        autostop: preview_core::AutoStop::Off,
        containers: vec![
            ContainerSpec {
                name: "doltgres".into(),
                image: "dolthub/doltgresql:0.54.10".into(),
                cmd: vec![],
                entrypoint: vec![],
                env: env(&[
                    ("DOLTGRES_USER", "appuser".into()),
                    ("DOLTGRES_PASSWORD", secret(PG_PASSWORD)),
                    ("DOLTGRES_DB", "inkeep_agents".into()),
                ]),
                healthchecks: vec![check(
                    "doltgres-check",
                    &[
                        "sh",
                        "-c",
                        "PGPASSWORD=$DOLTGRES_PASSWORD psql -h localhost -U appuser -d inkeep_agents -c 'SELECT 1'",
                    ],
                    [10, 5, 30],
                    1,
                    5,
                )],
                depends_on: BTreeMap::new(),
            },
            ContainerSpec {
                name: "postgres".into(),
                image: "postgres:18".into(),
                cmd: vec![],
                entrypoint: vec![],
                env: env(&[
                    ("POSTGRES_USER", "appuser".into()),
                    ("POSTGRES_PASSWORD", secret(PG_PASSWORD)),
                    ("POSTGRES_DB", "inkeep_agents".into()),
                    ("PGPORT", "5433".into()),
                ]),
                healthchecks: vec![check(
                    "pg-ready",
                    &["sh", "-c", "pg_isready -U appuser -d inkeep_agents -p 5433"],
                    [5, 3, 15],
                    1,
                    10,
                )],
                depends_on: BTreeMap::new(),
            },
            ContainerSpec {
                name: "spicedb".into(),
                image: "authzed/spicedb:v1.49.1".into(),
                cmd: vec!["serve".into()],
                entrypoint: vec![],
                env: env(&[
                    ("SPICEDB_DATASTORE_ENGINE", "memory".into()),
                    ("SPICEDB_GRPC_PRESHARED_KEY", secret(SPICEDB_KEY)),
                    ("SPICEDB_HTTP_ENABLED", "true".into()),
                    ("SPICEDB_TELEMETRY_ENDPOINT", "".into()),
                    ("SPICEDB_METRICS_ENABLED", "false".into()),
                ]),
                healthchecks: vec![check(
                    "spicedb-grpc",
                    &["grpc_health_probe", "-addr=:50051"],
                    [5, 5, 10],
                    1,
                    5,
                )],
                depends_on: BTreeMap::new(),
            },
        ],
        services: vec![
            ServiceSpec {
                name: "manage".into(),
                internal_port: 5432,
                port: 5432,
                tls: TlsMode::PgTls,
                protocol: Protocol::Postgres,
                credentials: pg_credentials(),
                health_path: None,
            },
            ServiceSpec {
                name: "run".into(),
                internal_port: 5433,
                port: 5433,
                tls: TlsMode::PgTls,
                protocol: Protocol::Postgres,
                credentials: pg_credentials(),
                health_path: None,
            },
            ServiceSpec {
                name: "spicedb".into(),
                internal_port: 50051,
                port: 50051,
                tls: TlsMode::None,
                protocol: Protocol::Grpc,
                credentials: None,
                health_path: None,
            },
            ServiceSpec {
                name: "spicedb-http".into(),
                internal_port: 8443,
                port: 8443,
                tls: TlsMode::Tls,
                protocol: Protocol::Http,
                credentials: None,
                health_path: Some("/healthz".into()),
            },
        ],
        public_host: format!("{name}.fly.dev"),
        ready_timeout: Duration::from_secs(480),
    }
}

/// A mock response whose body has been checked against the response schema of `method path`.
pub fn respond(method: &str, path: &str, status: u16, body: Json) -> ResponseTemplate {
    if let Err(e) = spec::check_response(method, path, status, &body) {
        panic!("mock response for {method} {path} ({status}) breaks the spec: {e}");
    }
    let t = ResponseTemplate::new(status).insert_header("fly-request-id", "01MOCKREQ");
    if body.is_null() {
        t
    } else {
        t.set_body_json(body)
    }
}

/// Checks every request body `server` received against the request schemas.
pub async fn check_requests(server: &MockServer) {
    for r in server.received_requests().await.unwrap_or_default() {
        let body: Json = serde_json::from_slice(&r.body).unwrap_or(Json::Null);
        if let Err(e) = spec::check_request(r.method.as_str(), r.url.path(), &body) {
            panic!("request {} {} breaks the spec: {e}", r.method, r.url.path());
        }
    }
}

/// Checks every exchange of the fake: request bodies and its response bodies.
pub fn check_exchanges(fake: &FakeFly) {
    for x in fake.exchanges() {
        if let Err(e) = spec::check_request(&x.method, &x.path, &x.request) {
            panic!("request {} {} breaks the spec: {e}", x.method, x.path);
        }
        if let Err(e) = spec::check_response(&x.method, &x.path, x.status, &x.response) {
            panic!(
                "fake response to {} {} ({}) breaks the spec: {e}",
                x.method, x.path, x.status
            );
        }
    }
}

/// A host for tests on a paused tokio clock: no client timeouts (they would fire while the local
/// fake is still answering, see `FlyDatabasesBuilder::without_timeouts`), production poll pacing.
pub fn paused_host(uri: &str) -> FlyDatabases {
    FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(naming())
        .base_url(uri)
        .without_timeouts()
        .build()
        .expect("valid host")
}
