//! `[database]` rendered: the database spec.

use std::collections::BTreeMap;

use super::scope::credentials;
use super::{Fields, Mode};
use crate::config::Config;
use crate::error::Result;
use crate::host::{ContainerSpec, DatabaseSpec, ServiceSpec};
use crate::template::Scope;

/// The database spec, rendered against `scope` (which must hold secret values).
///
/// # Errors
/// [`Error::Config`](crate::Error::Config) if a secret value is missing from the scope.
pub fn database_spec(config: &Config, scope: &Scope) -> Result<DatabaseSpec> {
    let mode = Mode::Deploy;
    database_in(Fields {
        config,
        scope,
        mode,
    })
}

pub(super) fn database_in(f: Fields<'_>) -> Result<DatabaseSpec> {
    let (config, db) = (f.config, &f.config.database);
    let mut containers = Vec::new();
    for c in &db.containers {
        let mut env = BTreeMap::new();
        for (k, v) in &c.env {
            env.insert(k.clone(), f.value(v)?);
        }
        containers.push(ContainerSpec {
            name: c.name.clone(),
            image: c.image.clone(),
            cmd: c.cmd.clone(),
            entrypoint: c.entrypoint.clone(),
            env,
            healthchecks: c.healthchecks.clone(),
            depends_on: c.depends_on.clone(),
        });
    }
    let mut services = Vec::new();
    for s in &db.services {
        services.push(ServiceSpec {
            name: s.name.clone(),
            internal_port: s.internal_port,
            port: s.port,
            tls: s.tls,
            protocol: s.protocol,
            credentials: credentials(config, s, f.scope, f.mode == Mode::Deploy)?,
            health_path: s.health_path.clone(),
        });
    }
    Ok(DatabaseSpec {
        region: db.region.clone(),
        size: db.size.clone(),
        restart: db.restart,
        autostop: db.autostop,
        containers,
        services,
        public_host: f.text(&db.public_host)?,
        ready_timeout: db.ready_timeout,
    })
}
