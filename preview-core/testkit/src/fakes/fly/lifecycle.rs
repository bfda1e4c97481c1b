//! The fake's side of a preview's lifetime: metadata keys, stop and suspend (start is beside
//! the other Machine calls), the events a Machine's answers carry, every Machine of the
//! organisation in pages, and a restart behind the client's back.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::{FakeApp, FakeFly, FakeLease, State, error, now_iso};

/// Fly suspends Machines of at most this much memory.
const SUSPEND_MAX_MB: u64 = 2048;

/// A new event for Machine `id`, newest first as the API lists them, with a timestamp (ms) after
/// every earlier one.
pub(super) fn push_event(a: &mut FakeApp, id: &str, kind: &str, status: &str, source: &str) {
    let events = a.events.entry(id.to_string()).or_default();
    let last = events
        .first()
        .and_then(|e| e["timestamp"].as_i64())
        .unwrap_or(0);
    let ts = jiff::Timestamp::now().as_millisecond().max(last + 1);
    events.insert(
        0,
        json!({"id": format!("ev-{kind}-{ts}"), "type": kind, "status": status, "source": source, "timestamp": ts}),
    );
    events.truncate(20);
}

/// A Machine as `GET …/machines/{id}` answers it: with its latest events.
pub(super) fn with_events(a: &FakeApp, m: &Json) -> Json {
    let mut m = m.clone();
    let id = m["id"].as_str().unwrap_or_default().to_string();
    m["events"] = Json::Array(a.events.get(&id).cloned().unwrap_or_default());
    m
}

/// `POST …/stop` and `POST …/suspend`.
pub(super) fn sleep(
    s: &mut State,
    app: &str,
    id: &str,
    action: &str,
    nonce: Option<&String>,
) -> (u16, Json) {
    s.with_app(app, |a, _| {
        a.prune_leases();
        if let Some(l) = a.leases.get(id).filter(|l| Some(&l.nonce) != nonce) {
            return error(409, &l.held_by(id));
        }
        let Some(m) = a.machines.iter_mut().find(|m| m["id"] == id) else {
            return error(404, "machine not found");
        };
        if action == "suspend" {
            let mb = m["config"]["guest"]["memory_mb"].as_u64().unwrap_or(256);
            if mb > SUSPEND_MAX_MB {
                return error(
                    400,
                    &format!(
                        "machines with more than {SUSPEND_MAX_MB}MB of memory cannot be suspended"
                    ),
                );
            }
        }
        match m["state"].as_str() {
            Some("started") => {}
            Some(other) => {
                return error(
                    400,
                    &format!("unable to {action} machine from current state: '{other}'"),
                );
            }
            None => return error(400, "unknown state"),
        }
        let state = if action == "suspend" {
            "suspended"
        } else {
            "stopped"
        };
        m["state"] = json!(state);
        m["updated_at"] = json!(now_iso());
        push_event(a, id, action, state, "user");
        (200, Json::Null)
    })
}

/// `POST|DELETE …/metadata/{key}`.
pub(super) fn metadata(
    s: &mut State,
    method: &str,
    app: &str,
    id: &str,
    key: &str,
    body: &Json,
) -> (u16, Json) {
    s.with_machine(app, id, |_: &mut BTreeMap<String, FakeLease>, m, _| {
        if !m["config"]["metadata"].is_object() {
            m["config"]["metadata"] = json!({});
        }
        let meta = &mut m["config"]["metadata"];
        if method == "DELETE" {
            return match meta.as_object_mut().and_then(|o| o.remove(key)) {
                Some(_) => (204, Json::Null),
                None => error(404, "metadata key not found"),
            };
        }
        let Some(value) = body.get("value").and_then(Json::as_str) else {
            return error(400, "value is required");
        };
        meta[key] = json!(value);
        (204, Json::Null)
    })
}

/// `GET /v1/orgs/{org}/machines`: every Machine of the organisation's apps, a page at a time
/// (`limit`, at most 1000, and an opaque `cursor`), config reduced to guest, image and metadata.
/// The cursor is a position by key (after this app and Machine), not an offset, as the API's
/// `last_machine_id` suggests: Machines deleted while a caller pages do not make it skip others.
pub(super) fn org_machines(s: &State, org: &str, query: &BTreeMap<String, String>) -> (u16, Json) {
    if org != s.org {
        return error(403, "unauthorized: not a member of this organization");
    }
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(1000)
        .clamp(1, 1000);
    // Keys sort by app, then Machine id; the cursor is the last key of the previous page.
    let after: Option<(String, String)> = query
        .get("cursor")
        .and_then(|c| c.split_once('/'))
        .map(|(a, m)| (a.to_string(), m.to_string()));
    let mut all: Vec<(&String, &Json)> = s
        .apps
        .iter()
        .filter(|(_, a)| a.org == s.org)
        .flat_map(|(name, a)| a.machines.iter().map(move |m| (name, m)))
        .collect();
    let key = |(name, m): &(&String, &Json)| {
        (
            (*name).clone(),
            m["id"].as_str().unwrap_or_default().to_string(),
        )
    };
    all.sort_by_key(key);
    let mut page = Vec::new();
    let mut more = false;
    let mut last = None;
    for item in all
        .iter()
        .filter(|i| after.as_ref().is_none_or(|a| key(i) > *a))
    {
        let (name, m) = item;
        if page.len() == limit {
            more = true;
            break;
        }
        last = Some(key(item));
        page.push(omit_empty(json!({
            "app_name": name,
            "id": m["id"],
            "name": m["name"],
            "state": m["state"],
            "region": m["region"],
            "private_ip": m["private_ip"],
            "version": m["version"],
            "created_at": m["created_at"],
            "updated_at": m["updated_at"],
            "config": {
                "guest": m["config"]["guest"],
                "image": m["config"]["image"].as_str().unwrap_or_default(),
                "metadata": m["config"]["metadata"],
            },
        })));
    }
    let mut out = json!({"machines": page});
    if let Some((app, id)) = last.filter(|_| more) {
        out["next_cursor"] = json!(format!("{app}/{id}"));
    }
    (200, out)
}

impl FakeFly {
    /// Sets a metadata key on every Machine of `app` directly (a test's "this preview was last
    /// active a week ago"); not a request.
    pub fn set_metadata(&self, app: &str, key: &str, value: &str) {
        let mut s = self.lock();
        if let Some(a) = s.apps.get_mut(app) {
            for m in &mut a.machines {
                if !m["config"]["metadata"].is_object() {
                    m["config"]["metadata"] = json!({});
                }
                m["config"]["metadata"][key] = json!(value);
            }
        }
    }

    /// Restarts the Machine(s) of `app` behind the client's back (host maintenance, an OOM
    /// kill under `restart = always`): an `exit` then a `start` event, memory gone.
    pub fn restart_machines(&self, app: &str) {
        let mut s = self.lock();
        if let Some(a) = s.apps.get_mut(app) {
            let ids: Vec<String> = a
                .machines
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect();
            for id in ids {
                push_event(a, &id, "exit", "stopped", "flyd");
                push_event(a, &id, "start", "started", "flyd");
            }
        }
    }
}

/// Drops the keys a Machine does not have (the API's Go encoder omits empty fields), at any depth.
fn omit_empty(mut v: Json) -> Json {
    if let Json::Object(o) = &mut v {
        o.retain(|_, x| !x.is_null());
        for x in o.values_mut() {
            *x = omit_empty(x.take());
        }
    }
    v
}
