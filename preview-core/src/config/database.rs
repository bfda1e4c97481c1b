//! `[database]`: the stack every environment gets (containers on one Machine, public services).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::Field;
use super::loader::Loader;
use super::raw::{RawCheck, RawContainer, RawDatabase, RawSize};
use super::vocabulary::{Ctx, Vocabulary};
use crate::error::{Error, Result};
use crate::host::{
    AutoStop, CheckKind, DependsOn, HealthCheck, MachineSize, Protocol, RestartPolicy, TlsMode,
};
use crate::template::Template;

/// A container, before rendering.
#[derive(Debug, Clone)]
pub struct ContainerDef {
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Command.
    pub cmd: Vec<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Env templates.
    pub env: BTreeMap<String, Field>,
    /// Health checks (no templates: they are passed as written).
    pub healthchecks: Vec<HealthCheck>,
    /// Start ordering.
    pub depends_on: BTreeMap<String, DependsOn>,
}

/// A public service, before rendering.
#[derive(Debug, Clone)]
pub struct ServiceDef {
    /// Name.
    pub name: String,
    /// Port inside the Machine.
    pub internal_port: u16,
    /// Public port.
    pub port: u16,
    /// TLS at the edge.
    pub tls: TlsMode,
    /// Protocol.
    pub protocol: Protocol,
    /// User for URLs.
    pub user: Option<String>,
    /// Password template.
    pub password: Option<Field>,
    /// Database name for URLs.
    pub database: Option<String>,
    /// HTTP readiness path.
    pub health_path: Option<String>,
}

/// The database stack, before rendering.
#[derive(Debug, Clone)]
pub struct DatabaseDef {
    /// Provider kind (`fly`).
    pub provider: String,
    /// Organisation, for providers that have one.
    pub org: Option<String>,
    /// Region.
    pub region: String,
    /// Public host template.
    pub public_host: Field,
    /// How long to wait until healthy.
    pub ready_timeout: Duration,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Stop or suspend when idle, start on the next connection.
    pub autostop: AutoStop,
    /// Size.
    pub size: MachineSize,
    /// Containers.
    pub containers: Vec<ContainerDef>,
    /// Services, by name.
    pub services: Vec<ServiceDef>,
}

/// The services' names, each with whether it has a password (which makes its URL a secret): what
/// the vocabulary needs before any template can be checked.
pub(super) fn service_names<'a>(
    l: &Loader<'_>,
    db: &'a RawDatabase,
) -> Result<Vec<(&'a str, bool)>> {
    let mut names = Vec::new();
    for (name, s) in &db.services {
        l.ident(name, &s.span(), &format!("database.services.{name}"))?;
        names.push((name.as_str(), s.get_ref().password.is_some()));
    }
    Ok(names)
}

/// The database stack, validated.
pub(super) fn database(
    l: &Loader<'_>,
    db: &RawDatabase,
    vocab: &Vocabulary,
) -> Result<DatabaseDef> {
    let services = services(l, db, vocab)?;
    let containers = containers(l, db, vocab)?;
    let size = size(l, &db.size)?;
    let provider = db.provider.get_ref().clone();
    let public_host = match &db.public_host {
        Some(h) => l.field(h, "database.public_host".into(), Ctx::Name, vocab)?,
        None if provider == "fly" => Field {
            template: Template::parse("${env.name}.fly.dev").map_err(Error::config)?,
            key: "database.public_host".into(),
            line: l.line_of(&db.provider.span()),
        },
        None => {
            return Err(l.err(
                &db.provider.span(),
                "database.public_host",
                format!("provider {provider:?} has no default public host: set `public_host`"),
            ));
        }
    };
    if !["fly", "memory"].contains(&provider.as_str()) {
        return Err(l.err(
            &db.provider.span(),
            "database.provider",
            format!("unknown provider {provider:?}: use \"fly\" (or \"memory\" for tests)"),
        ));
    }
    if provider == "fly" && db.org.is_none() {
        return Err(l.err(
            &db.provider.span(),
            "database.org",
            "the fly provider needs `org` (your Fly organisation slug)",
        ));
    }
    if !db.region.get_ref().chars().all(|c| c.is_ascii_lowercase())
        || db.region.get_ref().is_empty()
    {
        return Err(l.err(
            &db.region.span(),
            "database.region",
            "a region code such as \"iad\" is required",
        ));
    }
    Ok(DatabaseDef {
        provider,
        org: db.org.as_ref().map(|o| o.get_ref().clone()),
        region: db.region.get_ref().clone(),
        public_host,
        ready_timeout: l.duration_or(
            &db.ready_timeout,
            "database.ready_timeout",
            Duration::from_secs(480),
        )?,
        restart: db.restart,
        autostop: autostop(l, db, &size, &services)?,
        size,
        containers,
        services,
    })
}

fn services(l: &Loader<'_>, db: &RawDatabase, vocab: &Vocabulary) -> Result<Vec<ServiceDef>> {
    let mut services = Vec::new();
    for (name, raw_s) in &db.services {
        let sv = raw_s.get_ref();
        let key = format!("database.services.{name}");
        let mut svc = ServiceDef {
            name: name.clone(),
            internal_port: sv.internal_port,
            port: sv.port,
            tls: sv.tls,
            protocol: sv.protocol,
            user: sv.user.clone(),
            password: None,
            database: sv.database.clone(),
            health_path: sv.health_path.clone(),
        };
        if let Some(p) = &sv.password {
            svc.password = Some(l.field(p, format!("{key}.password"), Ctx::Password, vocab)?);
            if sv.user.is_none() {
                return Err(l.err(
                    &raw_s.span(),
                    &key,
                    "a service with a password needs a `user`",
                ));
            }
        }
        if sv.protocol == Protocol::Postgres && sv.tls == TlsMode::Tls {
            return Err(l.err(
                &raw_s.span(),
                &format!("{key}.tls"),
                "Postgres needs `pg_tls` (the edge speaks Postgres STARTTLS) or `none`, not `tls`",
            ));
        }
        if sv.protocol == Protocol::Grpc && sv.tls != TlsMode::None {
            return Err(l.err(
                &raw_s.span(),
                &format!("{key}.tls"),
                "gRPC needs `none` (raw pass-through): an edge TLS handler breaks its ALPN",
            ));
        }
        services.push(svc);
    }
    Ok(services)
}

fn containers(l: &Loader<'_>, db: &RawDatabase, vocab: &Vocabulary) -> Result<Vec<ContainerDef>> {
    let mut containers = Vec::new();
    let mut names = BTreeSet::new();
    for (i, c) in db.containers.iter().enumerate() {
        let key = format!("database.containers[{i}]");
        l.ident(c.name.get_ref(), &c.name.span(), &format!("{key}.name"))?;
        if !names.insert(c.name.get_ref().clone()) {
            return Err(l.err(
                &c.name.span(),
                &format!("{key}.name"),
                format!("container {:?} is defined twice", c.name.get_ref()),
            ));
        }
        containers.push(container(l, c, &key, vocab)?);
    }
    if containers.is_empty() {
        return Err(Error::config(format!(
            "{}: database.containers: at least one container is required",
            l.origin
        )));
    }
    for (i, c) in containers.iter().enumerate() {
        for dep in c.depends_on.keys() {
            if !names.contains(dep) {
                return Err(l.err(
                    &db.containers[i].name.span(),
                    &format!("database.containers[{i}].depends_on"),
                    format!("no container is named {dep:?}"),
                ));
            }
        }
    }
    Ok(containers)
}

fn container(
    l: &Loader<'_>,
    c: &RawContainer,
    key: &str,
    vocab: &Vocabulary,
) -> Result<ContainerDef> {
    if c.image.get_ref().trim().is_empty() || c.image.get_ref().contains(char::is_whitespace) {
        return Err(l.err(
            &c.image.span(),
            &format!("{key}.image"),
            "an image reference such as \"postgres:18\" is required",
        ));
    }
    let mut env = BTreeMap::new();
    for (k, v) in &c.env {
        let fk = format!("{key}.env.{k}");
        l.env_key(k, &v.span(), &fk)?;
        env.insert(k.clone(), l.field(v, fk, Ctx::Container, vocab)?);
    }
    let mut checks = Vec::new();
    for (j, h) in c.healthchecks.iter().enumerate() {
        checks.push(healthcheck(l, h, &format!("{key}.healthchecks[{j}]"))?);
    }
    Ok(ContainerDef {
        name: c.name.get_ref().clone(),
        image: c.image.get_ref().clone(),
        cmd: c.cmd.clone(),
        entrypoint: c.entrypoint.clone(),
        env,
        healthchecks: checks,
        depends_on: c.depends_on.clone(),
    })
}

fn healthcheck(l: &Loader<'_>, h: &RawCheck, hk: &str) -> Result<HealthCheck> {
    let kinds = [
        h.exec.is_some(),
        h.http_port.is_some(),
        h.tcp_port.is_some(),
    ];
    if kinds.iter().filter(|b| **b).count() != 1 {
        return Err(l.err(
            &h.name.span(),
            hk,
            "set exactly one of `exec`, `http_port` or `tcp_port`",
        ));
    }
    let kind = if let Some(cmd) = &h.exec {
        if cmd.is_empty() {
            return Err(l.err(
                &h.name.span(),
                &format!("{hk}.exec"),
                "the command is empty",
            ));
        }
        CheckKind::Exec {
            command: cmd.clone(),
        }
    } else if let Some(port) = h.http_port {
        CheckKind::Http {
            port,
            path: h.http_path.clone().unwrap_or_else(|| "/".into()),
        }
    } else {
        CheckKind::Tcp {
            port: h.tcp_port.unwrap_or_default(),
        }
    };
    Ok(HealthCheck {
        name: h.name.get_ref().clone(),
        kind,
        interval: l.duration(&h.interval, &format!("{hk}.interval"))?,
        timeout: l.duration(&h.timeout, &format!("{hk}.timeout"))?,
        grace_period: l.duration_or(
            &h.grace_period,
            &format!("{hk}.grace_period"),
            Duration::ZERO,
        )?,
        success_threshold: h.success_threshold,
        failure_threshold: h.failure_threshold,
    })
}

/// `autostop`: acts on services (the proxy stops what no connection uses), and a suspend keeps
/// memory only up to Fly's limit — beyond it Fly silently stops instead, losing the data the
/// setting was chosen to keep, so that is refused here.
fn autostop(
    l: &Loader<'_>,
    db: &RawDatabase,
    size: &MachineSize,
    services: &[ServiceDef],
) -> Result<AutoStop> {
    let Some(raw) = &db.autostop else {
        return Ok(AutoStop::Off);
    };
    let mode = *raw.get_ref();
    let max = super::lifetime::SUSPEND_MAX_MEMORY_MB;
    if mode != AutoStop::Off && services.is_empty() {
        return Err(l.err(
            &raw.span(),
            "database.autostop",
            "the proxy stops and starts a Machine through its services, and [database.services] is empty: add a service or use \"off\"",
        ));
    }
    if mode == AutoStop::Suspend && size.memory_mb > max {
        return Err(l.err(
            &raw.span(),
            "database.autostop",
            format!(
                "Fly suspends Machines of at most {max} MB and database.size.memory_mb is {}: use \"stop\" (the data is lost when idle) or \"off\"",
                size.memory_mb
            ),
        ));
    }
    Ok(mode)
}

fn size(l: &Loader<'_>, raw: &RawSize) -> Result<MachineSize> {
    let size = MachineSize {
        cpu_kind: raw.cpu_kind,
        cpus: *raw.cpus.get_ref(),
        memory_mb: *raw.memory_mb.get_ref(),
    };
    if !(1..=16).contains(&size.cpus) {
        return Err(l.err(&raw.cpus.span(), "database.size.cpus", "use 1 to 16"));
    }
    if size.memory_mb < 256 || size.memory_mb % 256 != 0 {
        return Err(l.err(
            &raw.memory_mb.span(),
            "database.size.memory_mb",
            "use a multiple of 256, at least 256",
        ));
    }
    Ok(size)
}
