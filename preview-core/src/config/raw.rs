//! The TOML shape of `preview.toml`, as serde reads it: data only, with the spans error messages
//! name. Validation turns it into the public definitions (the section modules).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::host::{AutoStop, CpuKind, DependsOn, Protocol, RestartPolicy, TlsMode};
use crate::secret::SecretKind;

pub(super) type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) version: Option<Spanned<u32>>,
    pub(super) naming: RawNaming,
    #[serde(default)]
    pub(super) secrets: BTreeMap<String, Spanned<RawSecret>>,
    pub(super) database: RawDatabase,
    #[serde(default)]
    pub(super) apps: BTreeMap<String, Spanned<RawApp>>,
    #[serde(default)]
    pub(super) hooks: Vec<RawHook>,
    pub(super) seed: Option<RawSeed>,
    #[serde(default)]
    pub(super) report: RawReport,
    #[serde(default)]
    pub(super) sweep: RawSweep,
    #[serde(default)]
    pub(super) triggers: RawTriggers,
    #[serde(default)]
    pub(super) lifetime: super::lifetime::RawLifetime,
    #[serde(default)]
    pub(super) cost: super::cost::RawCost,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNaming {
    pub(super) prefix: S,
    #[serde(default)]
    pub(super) suffix: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    pub(super) kind: Option<SecretKind>,
    pub(super) bytes: Option<Spanned<usize>>,
    #[serde(default)]
    pub(super) rotation: u32,
    pub(super) from_env: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) provider: S,
    pub(super) org: Option<S>,
    pub(super) region: S,
    pub(super) public_host: Option<S>,
    pub(super) ready_timeout: Option<S>,
    #[serde(default = "default_restart")]
    pub(super) restart: RestartPolicy,
    pub(super) autostop: Option<Spanned<AutoStop>>,
    pub(super) size: RawSize,
    pub(super) containers: Vec<RawContainer>,
    #[serde(default)]
    pub(super) services: BTreeMap<String, Spanned<RawService>>,
}

fn default_restart() -> RestartPolicy {
    RestartPolicy::Always
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSize {
    pub(super) cpu_kind: CpuKind,
    pub(super) cpus: Spanned<u32>,
    pub(super) memory_mb: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContainer {
    pub(super) name: S,
    pub(super) image: S,
    #[serde(default)]
    pub(super) cmd: Vec<String>,
    #[serde(default)]
    pub(super) entrypoint: Vec<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, S>,
    #[serde(default)]
    pub(super) healthchecks: Vec<RawCheck>,
    #[serde(default)]
    pub(super) depends_on: BTreeMap<String, DependsOn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub(super) name: S,
    pub(super) exec: Option<Vec<String>>,
    pub(super) http_port: Option<u16>,
    pub(super) http_path: Option<String>,
    pub(super) tcp_port: Option<u16>,
    pub(super) interval: S,
    pub(super) timeout: S,
    pub(super) grace_period: Option<S>,
    #[serde(default = "one")]
    pub(super) success_threshold: u32,
    #[serde(default = "three")]
    pub(super) failure_threshold: u32,
}

fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) internal_port: u16,
    pub(super) port: u16,
    pub(super) tls: TlsMode,
    pub(super) protocol: Protocol,
    pub(super) user: Option<String>,
    pub(super) password: Option<S>,
    pub(super) database: Option<String>,
    pub(super) health_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) provider: S,
    pub(super) project: Option<S>,
    pub(super) project_from_env: Option<S>,
    pub(super) domain: Option<S>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, S>,
    #[serde(default)]
    pub(super) sensitive: Vec<S>,
    #[serde(default)]
    pub(super) adopt_existing: bool,
    pub(super) deploy_timeout: Option<S>,
    pub(super) protection_bypass: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    pub(super) name: S,
    pub(super) run: Spanned<Vec<S>>,
    pub(super) timeout: Option<S>,
    pub(super) workdir: Option<S>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, S>,
    #[serde(default)]
    pub(super) inherit_env: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSeed {
    pub(super) ready_url: S,
    pub(super) ready_timeout: Option<S>,
    #[serde(default)]
    pub(super) requests: Vec<RawRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequest {
    pub(super) name: S,
    pub(super) method: S,
    pub(super) url: S,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, S>,
    pub(super) body_file: Option<S>,
    #[serde(default = "ok_statuses")]
    pub(super) expect_status: Vec<u16>,
}

fn ok_statuses() -> Vec<u16> {
    vec![200, 201, 204]
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    #[serde(default = "yes")]
    pub(super) comment: bool,
    pub(super) environment: Option<S>,
    #[serde(default)]
    pub(super) links: Vec<RawLink>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub(super) label: String,
    pub(super) url: S,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSweep {
    pub(super) grace_period: Option<S>,
    #[serde(default)]
    pub(super) delete_missing: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTriggers {
    #[serde(default = "yes")]
    pub(super) drafts: bool,
    pub(super) label: Option<S>,
    pub(super) paths: Option<Spanned<Vec<S>>>,
    #[serde(default = "yes")]
    pub(super) commands: bool,
    pub(super) command_permission: Option<S>,
}

impl Default for RawTriggers {
    fn default() -> Self {
        Self {
            drafts: true,
            label: None,
            paths: None,
            commands: true,
            command_permission: None,
        }
    }
}
