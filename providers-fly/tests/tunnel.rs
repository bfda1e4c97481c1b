//! Tunnels end to end: a stand-in `flyctl` (`preview_testkit::fake_flyctl`) forwards a local
//! port to a real PostgreSQL server this test starts with `initdb`/`pg_ctl`, so the readiness
//! check has to run a real query through it.
//!
//! The PostgreSQL test needs the server binaries, found (or installed on Debian/Ubuntu) by
//! `preview_testkit::postgres`; without them it fails with what to do, unless skipped by name
//! (`-- --skip postgres`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use preview_core::http::ClientSettings;
use preview_core::{
    CpuKind, Credentials, DatabaseHost, DatabaseSpec, Error, MachineSize, Protocol, RestartPolicy,
    ServiceSpec, TlsMode, Value,
};
use preview_testkit::postgres::{Auth, Postgres, free_port, temp_dir};
use providers_fly::FlyDatabases;

/// A `flyctl` that runs the stand-in with a log of its argv.
fn stand_in(dir: &Path, extra: &str) -> (PathBuf, PathBuf) {
    let log = dir.join("flyctl-argv.log");
    let script = dir.join("flyctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{extra}\nFAKE_FLYCTL_LOG='{}' exec '{}' \"$@\"\n",
            log.display(),
            preview_testkit::fake_flyctl().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn tunnel_host(flyctl: &Path, timeout: Duration) -> FlyDatabases {
    FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(naming())
        // Tunnels make no API call.
        .base_url("http://127.0.0.1:9")
        .flyctl_path(flyctl)
        .tunnel_timeout(timeout)
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

fn pg_spec(remote_port: u16, password: &str) -> DatabaseSpec {
    DatabaseSpec {
        region: "iad".into(),
        size: MachineSize {
            cpu_kind: CpuKind::Shared,
            cpus: 1,
            memory_mb: 256,
        },
        restart: RestartPolicy::Always,
        autostop: preview_core::AutoStop::Off,
        containers: vec![],
        services: vec![ServiceSpec {
            name: "run".into(),
            internal_port: remote_port,
            port: 5433,
            tls: TlsMode::PgTls,
            protocol: Protocol::Postgres,
            credentials: Some(Credentials {
                user: "appuser".into(),
                password: Value::Secret(password.to_string().into()),
                database: Some("postgres".into()),
            }),
            health_path: None,
        }],
        public_host: "pr-50-agents.fly.dev".into(),
        ready_timeout: Duration::from_secs(30),
    }
}

async fn query_through(port: u16, password: &str) -> Result<i32, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user("appuser")
        .password(password)
        .dbname("postgres");
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(conn);
    let row = client.query_one("SELECT 2 + 2", &[]).await?;
    driver.abort();
    Ok(row.get(0))
}

// ---------------------------------------------------------------------------------------------

const PG_PASS: &str = "p@ss w/rd:SENTINEL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_to_a_real_postgres_is_ready_only_after_a_real_query() {
    let pg = Postgres::start(Auth::Password(PG_PASS), &[]);
    let dir = temp_dir("flyctl");
    let (flyctl, log) = stand_in(&dir, "");
    let host = tunnel_host(&flyctl, Duration::from_secs(20));
    let n = name(50);

    let tunnels = host
        .open_tunnels(&n, &pg_spec(pg.port(), PG_PASS))
        .await
        .unwrap();
    let t = tunnels.get("run").unwrap().clone();
    assert_eq!(t.host, "127.0.0.1");
    assert_eq!(query_through(t.port, PG_PASS).await.unwrap(), 4);

    // argv is `proxy LOCAL:REMOTE -a APP`; the token only travelled in the environment.
    let argv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        argv.trim(),
        format!("proxy {}:{} -a pr-50-agents", t.port, pg.port())
    );
    assert!(!argv.contains(TOKEN) && !argv.contains(PG_PASS));

    // Dropping the tunnels stops the proxy.
    drop(tunnels);
    let mut closed = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", t.port))
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        closed,
        "the proxy still listens after the tunnels were dropped"
    );

    // The probe authenticates and queries: with a wrong password the tunnel is never ready,
    // although the proxy and the server both listen.
    // (Long enough for the stand-in to start on a busy machine, so the last probe reached the
    // server.)
    let host = tunnel_host(&flyctl, Duration::from_secs(3));
    let err = host
        .open_tunnels(&n, &pg_spec(pg.port(), "wrong-password"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-password"), "{err}");

    // A listening proxy in front of a dead server is not ready either.
    pg.stop();
    let err = host
        .open_tunnels(&n, &pg_spec(pg.port(), PG_PASS))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_proxy_with_nothing_behind_it_is_not_ready() {
    let dir = temp_dir("flyctl");
    let (flyctl, _) = stand_in(&dir, "");
    let host = tunnel_host(&flyctl, Duration::from_millis(600));
    let dead = free_port();
    let mut spec = pg_spec(dead, PG_PASS);
    // Every probe kind, each in front of nothing.
    for protocol in [
        Protocol::Postgres,
        Protocol::Grpc,
        Protocol::Http,
        Protocol::Tcp,
    ] {
        spec.services[0].protocol = protocol;
        let err = host.open_tunnels(&name(51), &spec).await.unwrap_err();
        assert!(
            matches!(err, Error::Timeout { .. }),
            "{protocol:?}: {err:?}"
        );
        assert!(err.to_string().contains("did not answer"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_proxy_that_exits_is_a_clear_error() {
    let dir = temp_dir("flyctl");
    let (flyctl, _) = stand_in(&dir, "echo 'Error: no access token' >&2; exit 3");
    let host = tunnel_host(&flyctl, Duration::from_secs(5));
    let err = host
        .open_tunnels(&name(52), &pg_spec(free_port(), PG_PASS))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    assert!(err.to_string().contains("exited"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_missing_flyctl_says_how_to_install_it() {
    let host = tunnel_host(Path::new("/nonexistent/flyctl"), Duration::from_secs(1));
    let err = host
        .open_tunnels(&name(53), &pg_spec(5432, PG_PASS))
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err:?}");
    assert!(
        err.to_string().contains(providers_fly::FLYCTL_INSTALL_URL),
        "{err}"
    );
}

async fn grpc_server(status: u8) -> wiremock::MockServer {
    use wiremock::matchers::{header, method, path};
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/grpc.health.v1.Health/Check"))
        .and(header("content-type", "application/grpc"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("content-type", "application/grpc")
                .insert_header("grpc-status", "0")
                .set_body_bytes(vec![0u8, 0, 0, 0, 2, 0x08, status]),
        )
        .mount(&server)
        .await;
    wiremock::Mock::given(method("GET"))
        .and(path("/healthz"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_services_are_probed_through_the_tunnel() {
    let dir = temp_dir("flyctl");
    let (flyctl, _) = stand_in(&dir, "");
    let serving = grpc_server(1).await;
    let port = serving.address().port();
    let mut spec = pg_spec(port, PG_PASS);
    spec.services[0].name = "spicedb".into();
    spec.services[0].protocol = Protocol::Grpc;
    spec.services[0].credentials = None;
    let mut http = spec.services[0].clone();
    http.name = "spicedb-http".into();
    http.protocol = Protocol::Http;
    http.health_path = Some("/healthz".into());
    spec.services.push(http);
    let host = tunnel_host(&flyctl, Duration::from_secs(10));
    let tunnels = host.open_tunnels(&name(54), &spec).await.unwrap();
    assert_eq!(tunnels.list().len(), 2);
    assert_ne!(tunnels.list()[0].port, tunnels.list()[1].port);
    drop(tunnels);

    // A gRPC server that answers NOT_SERVING is not ready.
    let not_serving = grpc_server(2).await;
    spec.services.truncate(1);
    spec.services[0].internal_port = not_serving.address().port();
    let host = tunnel_host(&flyctl, Duration::from_secs(3));
    let err = host.open_tunnels(&name(54), &spec).await.unwrap_err();
    assert!(err.to_string().contains("health status 2"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_dies_at_once_is_restarted_on_another_port() {
    // The first flyctl exits before listening (as when its local port was taken in the meantime);
    // the second one works. The tunnel comes up on the second one's port.
    let dir = temp_dir("flyctl");
    let marker = dir.join("first-run-done");
    let (flyctl, log) = stand_in(
        &dir,
        &format!(
            "if [ ! -e '{m}' ]; then touch '{m}'; echo 'cannot listen' >&2; exit 2; fi",
            m = marker.display()
        ),
    );
    let server = grpc_server(1).await;
    let mut spec = pg_spec(server.address().port(), PG_PASS);
    spec.services[0].protocol = Protocol::Http;
    spec.services[0].credentials = None;
    spec.services[0].health_path = Some("/healthz".into());
    let host = tunnel_host(&flyctl, Duration::from_secs(10));
    let tunnels = host.open_tunnels(&name(55), &spec).await.unwrap();
    assert!(marker.exists(), "the first proxy ran and died");
    let runs = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        runs.lines().count(),
        1,
        "only the restarted proxy got to log: {runs}"
    );
    let port = tunnels.list()[0].port;
    assert!(runs.contains(&format!("proxy {port}:")), "{runs} vs {port}");
    drop(tunnels);
    let _ = std::fs::remove_dir_all(&dir);
}
