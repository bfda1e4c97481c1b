//! `[lifetime]`: how long a preview lives (expiry by inactivity), when it sleeps, and how many
//! may exist at once.

use std::time::Duration;

use serde::Deserialize;

use super::loader::Loader;
use super::raw::S;
use crate::error::Result;

/// The TOML shape of `[lifetime]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLifetime {
    ttl: Option<S>,
    sleep_after: Option<S>,
    sleep: Option<S>,
    keep_label: Option<S>,
    max_environments: Option<toml::Spanned<u32>>,
    when_full: Option<S>,
}

/// How an inactive preview's database Machine sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SleepMode {
    /// Suspend when Fly allows it (at most 2 GB of memory), else stop.
    Auto,
    /// Always stop (in-memory data is lost; waking re-runs the hooks and the seed).
    Stop,
    /// Suspend (memory kept; waking resumes). Refused at load for more than 2 GB of memory.
    Suspend,
}

/// What a full cap does to a new preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Tear down the least recently active preview to make room.
    Evict,
    /// Refuse the new preview.
    Refuse,
}

/// The lifetime policy. Every part is off unless set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifetimeDef {
    /// Tear a preview down after this long without a push, deploy or command.
    pub ttl: Option<Duration>,
    /// Put the database Machine of a preview to sleep after this long without activity.
    pub sleep_after: Option<Duration>,
    /// How it sleeps.
    pub sleep: SleepMode,
    /// A PR carrying this label never expires.
    pub keep_label: String,
    /// At most this many previews at once.
    pub max_environments: Option<u32>,
    /// What happens to a new preview when that many exist.
    pub when_full: WhenFull,
}

impl Default for LifetimeDef {
    fn default() -> Self {
        Self {
            ttl: None,
            sleep_after: None,
            sleep: SleepMode::Auto,
            keep_label: "preview:keep".into(),
            max_environments: None,
            when_full: WhenFull::Evict,
        }
    }
}

/// The most memory Fly suspends (a snapshot of more is refused).
pub const SUSPEND_MAX_MEMORY_MB: u32 = 2048;

/// The policy; `memory_mb` is the database Machine's, which decides whether it may suspend.
pub(super) fn lifetime(l: &Loader<'_>, raw: &RawLifetime, memory_mb: u32) -> Result<LifetimeDef> {
    let d = LifetimeDef::default();
    let ttl = raw
        .ttl
        .as_ref()
        .map(|s| l.duration(s, "lifetime.ttl"))
        .transpose()?;
    let sleep_after = raw
        .sleep_after
        .as_ref()
        .map(|s| l.duration(s, "lifetime.sleep_after"))
        .transpose()?;
    for (v, s, key) in [
        (ttl, &raw.ttl, "lifetime.ttl"),
        (sleep_after, &raw.sleep_after, "lifetime.sleep_after"),
    ] {
        if let (Some(v), Some(s)) = (v, s) {
            if v < Duration::from_secs(60) {
                return Err(l.err(
                    &s.span(),
                    key,
                    "must be at least 1m (e.g. \"168h\", \"30m\")",
                ));
            }
        }
    }
    if let (Some(t), Some(s), Some(span)) = (ttl, sleep_after, raw.sleep_after.as_ref()) {
        if s >= t {
            return Err(l.err(
                &span.span(),
                "lifetime.sleep_after",
                "must be shorter than lifetime.ttl (a preview sleeps before it expires)",
            ));
        }
    }
    let sleep = match raw.sleep.as_ref() {
        None => d.sleep,
        Some(s) => match s.get_ref().as_str() {
            "auto" => SleepMode::Auto,
            "stop" => SleepMode::Stop,
            "suspend" if memory_mb <= SUSPEND_MAX_MEMORY_MB => SleepMode::Suspend,
            "suspend" => {
                return Err(l.err(
                    &s.span(),
                    "lifetime.sleep",
                    format!("Fly suspends Machines of at most {SUSPEND_MAX_MEMORY_MB} MB and database.size.memory_mb is {memory_mb}: use \"stop\" or \"auto\""),
                ));
            }
            other => {
                return Err(l.err(
                    &s.span(),
                    "lifetime.sleep",
                    format!(
                        "{other:?} is not a sleep mode (valid: \"auto\", \"stop\", \"suspend\")"
                    ),
                ));
            }
        },
    };
    let keep_label = match raw.keep_label.as_ref() {
        None => d.keep_label,
        Some(s) => {
            let v = s.get_ref();
            if v.is_empty() || v.len() > 50 || v.chars().any(char::is_control) {
                return Err(l.err(
                    &s.span(),
                    "lifetime.keep_label",
                    "must be a GitHub label name: 1-50 characters, no control characters",
                ));
            }
            v.clone()
        }
    };
    let max_environments = match &raw.max_environments {
        Some(m) if *m.get_ref() == 0 => {
            return Err(l.err(&m.span(), "lifetime.max_environments", "must be at least 1"));
        }
        m => m.as_ref().map(|m| *m.get_ref()),
    };
    let when_full = match raw.when_full.as_ref() {
        None => d.when_full,
        Some(s) => match s.get_ref().as_str() {
            "evict" => WhenFull::Evict,
            "refuse" => WhenFull::Refuse,
            other => {
                return Err(l.err(
                    &s.span(),
                    "lifetime.when_full",
                    format!("{other:?} is not a policy (valid: \"evict\", \"refuse\")"),
                ));
            }
        },
    };
    Ok(LifetimeDef {
        ttl,
        sleep_after,
        sleep,
        keep_label,
        max_environments,
        when_full,
    })
}

impl LifetimeDef {
    /// Whether the reconcile pass has anything to decide: expiry, sleep or a cap.
    pub fn is_active(&self) -> bool {
        self.ttl.is_some() || self.sleep_after.is_some() || self.max_environments.is_some()
    }

    /// Whether a Machine of `memory_mb` suspends (rather than stops) when it sleeps.
    pub fn suspends(&self, memory_mb: u32) -> bool {
        match self.sleep {
            SleepMode::Stop => false,
            SleepMode::Suspend => true,
            SleepMode::Auto => memory_mb <= SUSPEND_MAX_MEMORY_MB,
        }
    }
}
