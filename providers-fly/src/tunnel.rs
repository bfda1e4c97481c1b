//! Local tunnels to each service through `flyctl proxy`, for hooks run on the runner.
//!
//! The proxy binds a local port whether or not anything answers behind it, so readiness is decided
//! by talking to the *remote* service through it: Postgres runs a real `SELECT 1`, gRPC calls the
//! standard `grpc.health.v1.Health/Check`, HTTP needs any status, plain TCP needs a connection the
//! far side does not close at once.

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use preview_core::http::{Answer, Client, Provider, Request};
use preview_core::{
    DatabaseSpec, Error, PreviewName, Protocol, Result, ServiceSpec, Tunnel, Tunnels,
};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue, TE};
use secrecy::ExposeSecret;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::FlyDatabases;

/// Where flyctl comes from, for the error when it is missing.
pub const FLYCTL_INSTALL_URL: &str = "https://fly.io/docs/flyctl/install/";

/// Time one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Owns the proxy processes; dropping it stops them.
struct Guard(Mutex<Vec<Child>>);

impl Drop for Guard {
    fn drop(&mut self) {
        let children = match self.0.get_mut() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        for c in children.iter_mut() {
            // The whole group: FLYCTL may be a wrapper that started the real flyctl.
            drop(preview_core::effects::KillGroupOnDrop(c.id()));
            // kill_on_drop would do it too; say it explicitly so the intent is local.
            let _ = c.start_kill();
        }
    }
}

/// How often a proxy that exits before answering is restarted on another local port.
const MAX_RESPAWNS: u32 = 3;

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::failed("tunnel", format!("no free local port: {e}")))
}

fn spawn(host: &FlyDatabases, app: &str, local: u16, remote: u16) -> Result<Child> {
    let mut cmd = Command::new(&host.flyctl);
    // argv carries no secret: the token goes through the environment only.
    cmd.arg("proxy")
        .arg(format!("{local}:{remote}"))
        .arg("-a")
        .arg(app)
        .env("FLY_API_TOKEN", host.token.expose_secret())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    // Its own process group, so the Guard kills what it started too.
    #[cfg(unix)]
    cmd.process_group(0);
    cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::config(format!(
                "fly: cannot run {:?} (not found): install flyctl ({FLYCTL_INSTALL_URL}) or set FLYCTL to its path",
                host.flyctl
            ))
        } else {
            Error::failed(
                format!("tunnel to app {app}"),
                format!("cannot start {:?}: {e}", host.flyctl),
            )
        }
    })
}

/// Checks that `flyctl` can be started (found on `PATH`, or at the path `FLYCTL` names), before
/// anything is created: a deploy with hooks needs it once the database is up.
pub(crate) fn check_flyctl(host: &FlyDatabases) -> Result<()> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let path = std::env::var_os("PATH");
    preview_core::effects::find_program(&host.flyctl, &cwd, path.as_deref())
        .map(|_| ())
        .map_err(|why| {
            Error::config(format!(
                "fly: the tunnels the hooks need are opened with flyctl, which cannot be started: {why}; install flyctl ({FLYCTL_INSTALL_URL}) or set FLYCTL to its path"
            ))
        })
}

/// Opens one `flyctl proxy` per service and waits until each service answers through it.
pub(crate) async fn open(
    host: &FlyDatabases,
    name: &PreviewName,
    spec: &DatabaseSpec,
) -> Result<Tunnels> {
    let app = name.as_str();
    let guard = Guard(Mutex::new(Vec::new()));
    let mut tunnels = Vec::new();
    for s in &spec.services {
        let port = free_port()?;
        let child = spawn(host, app, port, s.internal_port)?;
        guard
            .0
            .lock()
            .map_err(|_| Error::failed("tunnel", "process list poisoned"))?
            .push(child);
        tunnels.push(Tunnel {
            service: s.name.clone(),
            host: "127.0.0.1".into(),
            port,
        });
    }
    let start = Instant::now();
    let deadline = start + host.tunnel_timeout;
    for (i, (s, t)) in spec.services.iter().zip(tunnels.iter_mut()).enumerate() {
        let what = format!("tunnel to service {} of app {app}", s.name);
        let mut last = String::from("not probed yet");
        let mut respawns = 0;
        loop {
            let exited = {
                let mut children = guard
                    .0
                    .lock()
                    .map_err(|_| Error::failed("tunnel", "process list poisoned"))?;
                children
                    .get_mut(i)
                    .and_then(|c| c.try_wait().ok().flatten())
            };
            if let Some(status) = exited {
                // The free port can be taken by another process between our probe-bind and
                // flyctl's own bind, and flyctl then exits at once: retry on a fresh port.
                if respawns < MAX_RESPAWNS {
                    respawns += 1;
                    let port = free_port()?;
                    let child = spawn(host, app, port, s.internal_port)?;
                    let mut children = guard
                        .0
                        .lock()
                        .map_err(|_| Error::failed("tunnel", "process list poisoned"))?;
                    if let Some(slot) = children.get_mut(i) {
                        *slot = child;
                    }
                    t.port = port;
                    tracing::warn!(service = %s.name, %status, port, "flyctl proxy exited early; retrying on another local port");
                    continue;
                }
                return Err(Error::failed(
                    what,
                    format!(
                        "flyctl proxy exited ({status}) before the service answered; last probe: {last}"
                    ),
                ));
            }
            match tokio::time::timeout(PROBE_TIMEOUT, probe(s, t.port)).await {
                Ok(Ok(())) => break,
                Ok(Err(why)) => last = why,
                Err(_) => last = format!("no answer within {}s", PROBE_TIMEOUT.as_secs()),
            }
            if Instant::now() + host.poll_interval >= deadline {
                return Err(Error::Timeout {
                    what,
                    waited: start.elapsed(),
                    detail: format!("the service did not answer through the tunnel: {last}"),
                });
            }
            tokio::time::sleep(host.poll_interval).await;
        }
        tracing::info!(service = %s.name, port = t.port, "tunnel ready");
    }
    Ok(Tunnels::new(tunnels, guard))
}

/// One readiness probe of the remote service, through the local port.
async fn probe(s: &ServiceSpec, port: u16) -> std::result::Result<(), String> {
    match s.protocol {
        Protocol::Postgres => probe_postgres(s, port).await,
        Protocol::Grpc => probe_grpc(port).await,
        Protocol::Http => probe_http(port, s.health_path.as_deref().unwrap_or("/")).await,
        Protocol::Tcp => probe_tcp(port).await,
    }
}

async fn probe_postgres(s: &ServiceSpec, port: u16) -> std::result::Result<(), String> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .ssl_mode(tokio_postgres::config::SslMode::Disable)
        .connect_timeout(PROBE_TIMEOUT);
    match &s.credentials {
        Some(c) => {
            cfg.user(&c.user).password(c.password.expose());
            if let Some(db) = &c.database {
                cfg.dbname(db);
            }
        }
        None => {
            cfg.user("postgres");
        }
    }
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("postgres: {}", pg_error(&e)))?;
    let driver = tokio::spawn(conn);
    let result = client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| format!("postgres: SELECT 1 failed: {}", pg_error(&e)))
        .and_then(|rows| {
            let one = rows.iter().any(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0) == Some("1"),
                _ => false,
            });
            if one {
                Ok(())
            } else {
                Err("postgres: SELECT 1 returned no row".to_string())
            }
        });
    drop(client);
    driver.abort();
    result
}

/// The server's own message (`password authentication failed for user …`) when there is one,
/// else the error and its causes.
fn pg_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// Probes are sent once through the shared sender (no retry: the caller polls), and every
/// status is an answer the probe judges itself.
const PROBE: Provider = Provider {
    name: crate::PROVIDER,
    request_id_header: "",
    errors: probe_error,
};

/// Never called (probes take every status as an answer); the status, should it be.
fn probe_error(a: &Answer, what: &str) -> Error {
    Error::failed(what, format!("HTTP {}", a.status().as_u16()))
}

/// Sends one probe request over `http` to the local end of a tunnel.
async fn probe_send(
    http: reqwest::Client,
    method: Method,
    url: &str,
    prepare: impl FnOnce(Request<'_>) -> Request<'_>,
) -> std::result::Result<Answer, String> {
    let url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let client = Client::from_reqwest(PROBE, http, preview_core::RetryConfig::none());
    let req = prepare(client.request(method, url).answers_all());
    req.send_retry().await.map_err(|e| e.to_string())
}

/// The standard gRPC health check over HTTP/2 without TLS (the proxy bypasses the edge).
async fn probe_grpc(port: u16) -> std::result::Result<(), String> {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| format!("grpc: {}", e.without_url()))?;
    // A gRPC message: 1 byte "not compressed", 4 bytes length, then HealthCheckRequest{} (empty).
    let url = format!("http://127.0.0.1:{port}/grpc.health.v1.Health/Check");
    let resp = probe_send(client, Method::POST, &url, |r| {
        r.header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
            .header(TE, HeaderValue::from_static("trailers"))
            .body(vec![0u8, 0, 0, 0, 0])
    })
    .await
    .map_err(|e| format!("grpc: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("grpc: HTTP {}", resp.status().as_u16()));
    }
    if let Some(code) = resp.headers().get("grpc-status") {
        if code.as_bytes() != b"0" {
            return Err(format!(
                "grpc: status {}",
                String::from_utf8_lossy(code.as_bytes())
            ));
        }
    }
    grpc_serving(resp.body())
}

/// Decodes a framed `HealthCheckResponse` and requires `status = SERVING (1)`.
fn grpc_serving(body: &[u8]) -> std::result::Result<(), String> {
    if body.len() < 5 {
        return Err("grpc: empty health answer".into());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let msg = body
        .get(5..5 + len)
        .ok_or_else(|| "grpc: truncated health answer".to_string())?;
    // Field 1 (status), varint: tag byte 0x08. An absent field means UNKNOWN (0).
    let status = match msg {
        [0x08, v, ..] => *v,
        _ => 0,
    };
    if status == 1 {
        Ok(())
    } else {
        Err(format!("grpc: health status {status} (1 = SERVING)"))
    }
}

async fn probe_http(port: u16, path: &str) -> std::result::Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| format!("http: {}", e.without_url()))?;
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let url = format!("http://127.0.0.1:{port}{path}");
    probe_send(client, Method::GET, &url, |r| r)
        .await
        .map(|_| ())
        .map_err(|e| format!("http: {e}"))
}

async fn probe_tcp(port: u16) -> std::result::Result<(), String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("tcp: {e}"))?;
    let mut buf = [0u8; 1];
    // A proxy with nothing behind it accepts, then closes: that is not an answer.
    match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
        Ok(Ok(0)) => Err("tcp: the far side closed the connection".into()),
        Ok(Err(e)) => Err(format!("tcp: {e}")),
        Ok(Ok(_)) | Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::grpc_serving;

    #[test]
    fn grpc_health_answers_are_decoded() {
        assert!(grpc_serving(&[0, 0, 0, 0, 2, 0x08, 0x01]).is_ok());
        assert!(grpc_serving(&[0, 0, 0, 0, 2, 0x08, 0x02]).is_err());
        assert!(grpc_serving(&[0, 0, 0, 0, 0]).is_err());
        assert!(grpc_serving(&[0, 0, 0, 0, 9, 0x08]).is_err());
    }
}
