//! Rendering a [`DatabaseSpec`] into the Machine config the Machines API takes (pure, no I/O).
//!
//! Secret env values never go into the config: each becomes an app secret, referenced from its
//! container with `secrets: [{env_var, name}]`, so the config the API echoes back holds no
//! plaintext secret.

use std::collections::BTreeMap;

use preview_core::{
    AutoStop, CheckKind, CpuKind, DatabaseSpec, DependsOn, PreviewName, RestartPolicy, TlsMode,
};
use serde_json::{Map, Value as Json, json};

/// Machine metadata key holding the environment name: the ownership marker of the Machine.
pub const META_ENV: &str = "preview_env";
/// Machine metadata key holding [`DatabaseSpec::fingerprint`] of the spec last applied.
pub const META_FINGERPRINT: &str = "preview_fingerprint";

/// The Fly app secret name a container's secret env var is stored under:
/// `{CONTAINER}_{KEY}`, upper-cased, anything but `[A-Z0-9_]` replaced by `_`.
pub fn secret_name(container: &str, key: &str) -> String {
    format!("{container}_{key}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The secret values a spec needs as app secrets, by secret name (values exposed: they are about
/// to leave the process in a request body).
pub(crate) fn secret_values(spec: &DatabaseSpec) -> BTreeMap<String, &str> {
    let mut out = BTreeMap::new();
    for c in &spec.containers {
        for (k, v) in &c.env {
            if v.is_secret() {
                out.insert(secret_name(&c.name, k), v.expose());
            }
        }
    }
    out
}

fn cpu_kind(k: CpuKind) -> &'static str {
    match k {
        CpuKind::Shared => "shared",
        CpuKind::Performance => "performance",
    }
}

fn restart(p: RestartPolicy) -> &'static str {
    match p {
        RestartPolicy::No => "no",
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
    }
}

/// `autostop` as sent; `None` (left out, as before the setting existed) when off.
fn autostop(a: AutoStop) -> Option<&'static str> {
    match a {
        AutoStop::Off => None,
        AutoStop::Stop => Some("stop"),
        AutoStop::Suspend => Some("suspend"),
    }
}

fn condition(d: DependsOn) -> &'static str {
    match d {
        DependsOn::Started => "started",
        DependsOn::Healthy => "healthy",
        DependsOn::ExitedSuccessfully => "exited_successfully",
    }
}

fn handlers(tls: TlsMode) -> Vec<&'static str> {
    match tls {
        TlsMode::None => vec![],
        TlsMode::Tls => vec!["tls"],
        TlsMode::PgTls => vec!["pg_tls"],
    }
}

/// The Machine config (`fly.MachineConfig`) this host sends for `spec`: containers with their
/// images, commands, plain env, secret references, health checks and start order; the guest size;
/// the restart policy; the public TCP services with their handlers; and the ownership metadata
/// (`preview_env`, `preview_fingerprint`). It holds no secret value, so it is safe to print (e.g.
/// in a dry run).
pub fn machine_config(name: &PreviewName, spec: &DatabaseSpec) -> Json {
    let containers: Vec<Json> = spec
        .containers
        .iter()
        .map(|c| {
            let mut o = Map::new();
            o.insert("name".into(), json!(c.name));
            o.insert("image".into(), json!(c.image));
            if !c.cmd.is_empty() {
                o.insert("cmd".into(), json!(c.cmd));
            }
            if !c.entrypoint.is_empty() {
                o.insert("entrypoint".into(), json!(c.entrypoint));
            }
            let plain: BTreeMap<&str, &str> = c
                .env
                .iter()
                .filter(|(_, v)| !v.is_secret())
                .map(|(k, v)| (k.as_str(), v.expose()))
                .collect();
            if !plain.is_empty() {
                o.insert("env".into(), json!(plain));
            }
            let secrets: Vec<Json> = c
                .env
                .iter()
                .filter(|(_, v)| v.is_secret())
                .map(|(k, _)| json!({"env_var": k, "name": secret_name(&c.name, k)}))
                .collect();
            if !secrets.is_empty() {
                o.insert("secrets".into(), json!(secrets));
            }
            if !c.healthchecks.is_empty() {
                let checks: Vec<Json> = c
                    .healthchecks
                    .iter()
                    .map(|h| {
                        let mut o = Map::new();
                        o.insert("name".into(), json!(h.name));
                        match &h.kind {
                            CheckKind::Exec { command } => {
                                o.insert("exec".into(), json!({"command": command}));
                            }
                            CheckKind::Http { port, path } => {
                                o.insert("http".into(), json!({"port": port, "path": path}));
                            }
                            CheckKind::Tcp { port } => {
                                o.insert("tcp".into(), json!({"port": port}));
                            }
                        }
                        o.insert("interval".into(), json!(h.interval.as_secs()));
                        o.insert("timeout".into(), json!(h.timeout.as_secs()));
                        o.insert("grace_period".into(), json!(h.grace_period.as_secs()));
                        o.insert("success_threshold".into(), json!(h.success_threshold));
                        o.insert("failure_threshold".into(), json!(h.failure_threshold));
                        Json::Object(o)
                    })
                    .collect();
                o.insert("healthchecks".into(), json!(checks));
            }
            if !c.depends_on.is_empty() {
                let deps: Vec<Json> = c
                    .depends_on
                    .iter()
                    .map(|(n, d)| json!({"name": n, "condition": condition(*d)}))
                    .collect();
                o.insert("depends_on".into(), json!(deps));
            }
            Json::Object(o)
        })
        .collect();
    let services: Vec<Json> = spec
        .services
        .iter()
        .map(|s| {
            let mut o = json!({
                "protocol": "tcp",
                "internal_port": s.internal_port,
                "ports": [{"port": s.port, "handlers": handlers(s.tls)}],
            });
            if let Some(mode) = autostop(spec.autostop) {
                // The proxy stops the Machine when no connection uses it and starts it on the
                // next one; this is the environment's only Machine, so none stays running.
                o["autostop"] = json!(mode);
                o["autostart"] = json!(true);
                o["min_machines_running"] = json!(0);
            }
            o
        })
        .collect();
    json!({
        "guest": {
            "cpu_kind": cpu_kind(spec.size.cpu_kind),
            "cpus": spec.size.cpus,
            "memory_mb": spec.size.memory_mb,
        },
        "restart": {"policy": restart(spec.restart)},
        "metadata": {
            META_ENV: name.as_str(),
            META_FINGERPRINT: spec.fingerprint(),
        },
        "containers": containers,
        "services": services,
    })
}

/// Whether `actual` (a config the API echoed back) carries everything `desired` says: objects may
/// have extra keys (defaults the API fills in), arrays must match element by element.
pub(crate) fn covers(actual: &Json, desired: &Json) -> bool {
    match (actual, desired) {
        // The API's Go encoder omits empty lists and maps (`omitempty`): a missing key covers an
        // empty desired value.
        (Json::Object(a), Json::Object(d)) => d.iter().all(|(k, dv)| match a.get(k) {
            // The API answers `autostop` "off" and "stop" as the booleans of its old format.
            Some(Json::Bool(av)) if k == "autostop" => {
                dv == &json!(if *av { "stop" } else { "off" })
            }
            Some(av) => covers(av, dv),
            None => is_empty(dv),
        }),
        (Json::Array(a), Json::Array(d)) => {
            a.len() == d.len() && a.iter().zip(d).all(|(av, dv)| covers(av, dv))
        }
        (Json::Number(a), Json::Number(d)) => a.as_f64() == d.as_f64(),
        (a, d) => a == d,
    }
}

fn is_empty(v: &Json) -> bool {
    match v {
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
        Json::Null => true,
        _ => false,
    }
}

/// Metadata keys (beside `preview_env` and `preview_fingerprint`, which the config writes).
pub(crate) const META_ACTIVE_AT: &str = "preview_active_at";
pub(crate) const META_HOOKS: &str = "preview_hooks";
pub(crate) const META_ASLEEP_SINCE: &str = "preview_asleep_since";
pub(crate) const META_SLEPT: &str = "preview_slept_secs";

/// Events after which the Machine's memory and root file system are fresh: it was created,
/// replaced, exited (and restarted by its policy), stopped or restarted. A suspend and its
/// resume are not among them.
const LOSES_DATA: [&str; 5] = ["launch", "update", "exit", "stop", "restart"];

/// The Machine's boot: its version and the time of the latest event that lost its data. `None`
/// when the answer carries no events.
pub(crate) fn boot(m: &crate::wire::Machine) -> Option<String> {
    let latest = m
        .events
        .iter()
        .filter(|e| e.kind.as_deref().is_some_and(|k| LOSES_DATA.contains(&k)))
        .filter_map(|e| e.timestamp)
        .max()?;
    Some(format!("{}/{latest}", m.version().unwrap_or("-")))
}

/// The marks in a Machine's metadata (`metadata` is its `config.metadata` object).
pub(crate) fn marks(metadata: Option<&serde_json::Value>) -> preview_core::Marks {
    let get = |k: &str| metadata.and_then(|m| m.get(k)).and_then(|v| v.as_str());
    let time = |k: &str| get(k).and_then(|v| v.parse().ok());
    preview_core::Marks {
        active_at: time(META_ACTIVE_AT),
        hooks: get(META_HOOKS).map(str::to_string),
        asleep_since: time(META_ASLEEP_SINCE),
        slept_secs: get(META_SLEPT).and_then(|v| v.parse().ok()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_env_safe() {
        assert_eq!(
            secret_name("postgres", "POSTGRES_PASSWORD"),
            "POSTGRES_POSTGRES_PASSWORD"
        );
        assert_eq!(secret_name("spice-db", "a.b"), "SPICE_DB_A_B");
    }

    #[test]
    fn covers_tolerates_defaults_but_not_drift() {
        let desired = json!({"guest": {"cpus": 4}, "services": [{"ports": [{"port": 1}]}]});
        let echoed = json!({"guest": {"cpus": 4, "cpu_kind": "shared"}, "services": [{"ports": [{"port": 1, "force_https": false}]}], "init": {}});
        assert!(covers(&echoed, &desired));
        let drifted = json!({"guest": {"cpus": 2}, "services": [{"ports": [{"port": 1}]}]});
        assert!(!covers(&drifted, &desired));
        let extra = json!({"guest": {"cpus": 4}, "services": [{"ports": [{"port": 1}]}, {}]});
        assert!(!covers(&extra, &desired));
        // `handlers: []` (raw TCP) echoed back without the key is the same config.
        let raw = json!({"ports": [{"port": 1, "handlers": []}]});
        assert!(covers(&json!({"ports": [{"port": 1}]}), &raw));
        assert!(!covers(
            &json!({"ports": [{"port": 1, "handlers": ["tls"]}]}),
            &raw
        ));
    }

    #[test]
    fn autostop_echoed_in_the_old_boolean_format_is_the_same_config() {
        let svc = |v: Json| json!({"services": [{"autostop": v, "autostart": true}]});
        assert!(covers(&svc(json!(true)), &svc(json!("stop"))));
        assert!(covers(&svc(json!(false)), &svc(json!("off"))));
        assert!(covers(&svc(json!("suspend")), &svc(json!("suspend"))));
        assert!(!covers(&svc(json!(true)), &svc(json!("suspend"))));
        assert!(!covers(&svc(json!(false)), &svc(json!("stop"))));
        assert!(!covers(&svc(json!("stop")), &svc(json!("suspend"))));
    }
}
