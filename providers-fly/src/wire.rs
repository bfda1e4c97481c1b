//! Private serde types of the Machines API (`fly-machines.openapi.fixed.json`). Only the fields we
//! send or read; unknown fields are ignored on the way in and never sent on the way out.
//!
//! The spec marks no response field required. Here a field is required (no `#[serde(default)]`)
//! when a decision rests on it: ownership (an app's organisation, the secrets list), identity (a
//! Machine's id and state), a lease's nonce. An answer without it is an error of the call that got
//! it, rather than a default that would mislead a later step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `ErrorResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) status: Option<String>,
}

/// `AppOrganizationInfo`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub(crate) struct Organization {
    #[serde(default)]
    pub(crate) slug: Option<String>,
}

/// `App` (`GET /v1/apps/{app}`: the organisation decides ownership).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct App {
    pub(crate) name: String,
    pub(crate) organization: Organization,
}

/// An app in `ListAppsResponse`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ListedApp {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) organization: Option<Organization>,
}

/// `CreateAppResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreatedApp {
    #[allow(dead_code)]
    pub(crate) id: String,
}

/// `ListAppsResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListApps {
    pub(crate) apps: Vec<ListedApp>,
    #[serde(default)]
    pub(crate) next_cursor: Option<String>,
}

/// `CreateAppRequest`.
#[derive(Debug, Serialize)]
pub(crate) struct CreateApp<'a> {
    pub(crate) name: &'a str,
    pub(crate) org_slug: &'a str,
    pub(crate) idempotency_key: String,
}

/// `AppSecrets`.
#[derive(Debug, Deserialize)]
pub(crate) struct AppSecrets {
    pub(crate) secrets: Vec<AppSecret>,
}

/// `AppSecret` (we never ask for values).
#[derive(Debug, Deserialize)]
pub(crate) struct AppSecret {
    pub(crate) name: String,
}

/// `AppSecretsUpdateRequest`. Holds secret values: never logged, never in `Debug`.
#[derive(Serialize)]
pub(crate) struct UpdateSecrets<'a> {
    pub(crate) values: BTreeMap<String, &'a str>,
}

/// `AppSecretsUpdateResp`.
#[derive(Debug, Deserialize)]
pub(crate) struct UpdateSecretsResp {
    #[serde(default)]
    pub(crate) version: Option<u64>,
}

/// `listIPAssignmentsResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct IpAssignments {
    pub(crate) ips: Vec<IpAssignment>,
}

/// `IPAssignment` (and `AssignIPResponse`).
#[derive(Debug, Deserialize)]
pub(crate) struct IpAssignment {
    #[serde(default)]
    pub(crate) ip: Option<String>,
    #[serde(default)]
    pub(crate) shared: bool,
    #[serde(default)]
    pub(crate) egress: bool,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
}

impl IpAssignment {
    /// A public, dedicated address (not shared, not egress, not the private `fdaa:` range): what
    /// `ensure_ips` assigns. `Some("v4")` or `Some("v6")`.
    pub(crate) fn public_kind(&self) -> Option<&'static str> {
        if self.shared || self.egress {
            return None;
        }
        let ip = self.ip.as_deref()?;
        if ip.contains('.') {
            Some("v4")
        } else if ip.contains(':') && !ip.to_ascii_lowercase().starts_with("fdaa") {
            Some("v6")
        } else {
            None
        }
    }
}

/// `Volume` (only whether there are any matters: we never make one).
#[derive(Debug, Deserialize)]
pub(crate) struct Volume {
    #[allow(dead_code)]
    pub(crate) id: String,
}

/// `assignIPRequest`.
#[derive(Debug, Serialize)]
pub(crate) struct AssignIp<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
}

/// `CreateMachineRequest` / `UpdateMachineRequest`.
#[derive(Debug, Serialize)]
pub(crate) struct MachineRequest<'a> {
    pub(crate) name: &'a str,
    pub(crate) region: &'a str,
    pub(crate) config: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) min_secrets_version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) current_version: Option<&'a str>,
}

/// `CheckStatus`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CheckStatus {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) status: String,
}

/// `Machine`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Machine {
    pub(crate) id: String,
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) version: Option<String>,
    #[serde(default)]
    pub(crate) instance_id: Option<String>,
    #[serde(default)]
    pub(crate) config: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) checks: Vec<CheckStatus>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    /// The latest events (the API gives the last few with the Machine).
    #[serde(default)]
    pub(crate) events: Vec<MachineEvent>,
}

impl Machine {
    /// The Machine's metadata entry `key`.
    pub(crate) fn metadata(&self, key: &str) -> Option<&str> {
        self.config.as_ref()?.get("metadata")?.get(key)?.as_str()
    }

    /// The version to pass as `current_version` (older answers only carry `instance_id`).
    pub(crate) fn version(&self) -> Option<&str> {
        self.version.as_deref().or(self.instance_id.as_deref())
    }
}

/// `CreateLeaseRequest`.
#[derive(Debug, Serialize)]
pub(crate) struct CreateLease<'a> {
    pub(crate) ttl: u64,
    pub(crate) description: &'a str,
}

/// `Lease`.
#[derive(Debug, Deserialize)]
pub(crate) struct Lease {
    /// Given to the holder; whether other callers see it is not documented.
    #[serde(default)]
    pub(crate) nonce: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) owner: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub(crate) expires_at: Option<i64>,
}

/// `WaitMachineResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct WaitResponse {
    pub(crate) ok: bool,
    #[serde(default)]
    pub(crate) state: Option<String>,
}

/// `MachineEvent`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MachineEvent {
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) source: Option<String>,
    #[serde(default)]
    pub(crate) timestamp: Option<i64>,
    /// Exit codes and OOM flags live here (`{"exit_event": {...}}`).
    #[serde(default)]
    pub(crate) request: Option<serde_json::Value>,
}

impl MachineEvent {
    /// One line for an error message. `request` is kept to its exit details, which carry no env.
    pub(crate) fn line(&self) -> String {
        let mut s = format!(
            "{} {} ({})",
            self.kind.as_deref().unwrap_or("?"),
            self.status.as_deref().unwrap_or("?"),
            self.source.as_deref().unwrap_or("?")
        );
        if let Some(ts) = self
            .timestamp
            .and_then(|t| jiff::Timestamp::from_millisecond(t).ok())
        {
            s = format!("{ts} {s}");
        }
        if let Some(exit) = self.request.as_ref().and_then(|r| r.get("exit_event")) {
            for key in ["exit_code", "oom_killed", "signal"] {
                if let Some(v) = exit.get(key) {
                    s.push_str(&format!(" {key}={v}"));
                }
            }
        }
        s
    }
}

/// `OrgMachinesResponse`: one page of every Machine of an organisation.
#[derive(Debug, Deserialize)]
pub(crate) struct OrgMachines {
    #[serde(default)]
    pub(crate) machines: Vec<OrgMachine>,
    #[serde(default)]
    pub(crate) next_cursor: Option<String>,
}

/// `OrgMachine` (config is `MachineOverviewConfig`: guest, image, metadata).
#[derive(Debug, Deserialize)]
pub(crate) struct OrgMachine {
    pub(crate) app_name: String,
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) state: Option<String>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default)]
    pub(crate) config: Option<serde_json::Value>,
}

/// `upsertMetadataKeyRequest`.
#[derive(Debug, Serialize)]
pub(crate) struct UpsertMetadata<'a> {
    pub(crate) value: &'a str,
}
