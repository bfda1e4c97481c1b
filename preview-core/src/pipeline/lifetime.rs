//! How long a preview lives: the hooks' mark (data-loss detection and the unchanged re-deploy
//! that skips tunnels and hooks), activity, expiry, sleep, the cap, and the cost estimate on the
//! report. Decisions are pure functions with table tests.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::host::{Database, Lifetime, MachineSize, Mark};

/// What the hooks of a deploy do, decided from the Machine's boot and the hooks' mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HooksPlan {
    /// They already succeeded for this commit, config and boot: no tunnel, no hook.
    Skip,
    /// They run. `data_lost`: the Machine booted again since they last succeeded (a restart,
    /// a crash, a stop), so its in-memory data is gone and the seed runs again too.
    Run {
        /// The Machine lost its data since the hooks last succeeded.
        data_lost: bool,
    },
}

/// What the hooks depend on besides the commit, as one key: the database spec (secrets
/// included, hashed) and the hooks as configured. The commit is the report's: hooks are skipped
/// only where the PR already shows this commit ready, so a new commit needs no new mark (and no
/// write).
pub fn hooks_key(config: &Config, database_fingerprint: &str) -> String {
    let mut h = Sha256::new();
    for part in [database_fingerprint, &format!("{:?}", config.hooks)] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The mark recorded once the hooks succeed: their key on this boot.
pub fn hooks_mark(key: &str, boot: &str) -> String {
    format!("{key}@{boot}")
}

/// Decides whether the hooks run. Pure. They are skipped only when the PR shows this commit
/// ready (`shown`), and the database carries their mark for this key on its current boot. A
/// host that cannot tell the boot always runs them (as before data-loss detection); a mark
/// from another boot means the data is gone.
pub fn decide_hooks(db: &Database, key: &str, shown: bool) -> HooksPlan {
    let Some(boot) = db.boot.as_deref() else {
        return HooksPlan::Run { data_lost: false };
    };
    match db.marks.hooks.as_deref().and_then(|m| m.rsplit_once('@')) {
        Some((_, b)) if b != boot => HooksPlan::Run { data_lost: true },
        Some((k, _)) if k == key && shown => HooksPlan::Skip,
        _ => HooksPlan::Run { data_lost: false },
    }
}

/// Whether a published report shows `sha` deployed: ready, or asleep, at that commit.
pub(super) fn shows_commit(s: &crate::host::ReportSummary, sha: &str) -> bool {
    matches!(
        s.kind,
        crate::host::ReportKind::Ready | crate::host::ReportKind::Sleeping
    ) && s.commit.as_deref() == Some(sha)
}

/// Whether a deploy at `now` records its activity: only when expiry or sleep count from it, and
/// only when the recorded one is older than a twentieth of the shorter period (so a re-run right
/// after makes no mutating call).
pub fn activity_due(config: &Config, recorded: Option<Timestamp>, now: Timestamp) -> bool {
    let Some(period) = shortest_period(config) else {
        return false;
    };
    recorded.is_none_or(|t| secs_between(t, now) >= (period.as_secs() / 20) as i64)
}

fn shortest_period(config: &Config) -> Option<Duration> {
    match (config.lifetime.ttl, config.lifetime.sleep_after) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn secs_between(a: Timestamp, b: Timestamp) -> i64 {
    b.as_second() - a.as_second()
}

fn plus(t: Timestamp, d: Duration) -> Option<Timestamp> {
    t.checked_add(jiff::SignedDuration::from_secs(d.as_secs() as i64))
        .ok()
}

/// The size the estimate is made for: the configured one.
fn size(config: &Config) -> MachineSize {
    config.database.size.clone()
}

/// What the report says about lifetime and cost, for an environment whose database is `db`
/// (activity `active_at`), on a PR carrying `labels`. Pure.
pub fn lifetime_note(
    config: &Config,
    db: Option<&Database>,
    active_at: Timestamp,
    labels: &[String],
    now: Timestamp,
) -> Lifetime {
    let lt = &config.lifetime;
    let kept = crate::host::has_label(labels, &lt.keep_label);
    let cost = config.cost.show.then(|| {
        let size = size(config);
        let created = db.and_then(|d| d.created_at).unwrap_or(now);
        let marks = db.map(|d| d.marks.clone()).unwrap_or_default();
        let asleep_now = marks
            .asleep_since
            .map_or(0, |t| secs_between(t, now).max(0) as u64);
        crate::cost::estimate(
            &config.cost.table,
            &size,
            lt.suspends(size.memory_mb),
            secs_between(created, now).max(0) as u64,
            marks.slept_secs + asleep_now,
        )
    });
    Lifetime {
        expires_at: lt.ttl.filter(|_| !kept).and_then(|t| plus(active_at, t)),
        // Asleep already: it does not go to sleep again.
        sleeps_at: lt
            .sleep_after
            .filter(|_| db.is_none_or(|d| d.state == "started"))
            .and_then(|t| plus(active_at, t)),
        kept,
        keep_label: lt.keep_label.clone(),
        cost,
    }
}

/// How a removed (expired, evicted) preview comes back and how the next one is kept, for its
/// report: the `/preview` commands when they are on, else a push and the keep label.
pub(super) fn bring_back(config: &Config, pr: crate::name::PrNumber) -> String {
    use crate::command::Command;
    if config.triggers.commands {
        format!(
            "comment `{}`, push a commit or run `preview deploy --pr {pr}`; comment `{}` to keep a preview from expiry and eviction",
            Command::Deploy.usage(),
            Command::Keep.usage()
        )
    } else {
        format!(
            "push a commit or run `preview deploy --pr {pr}`; the label `{}` keeps a preview from expiry and eviction",
            config.lifetime.keep_label
        )
    }
}

/// The marks that wake a database that slept since `asleep_since`: awake, and its sleep added
/// to the total (for the cost estimate).
pub fn wake_marks(db: &Database, now: Timestamp) -> Vec<Mark> {
    match db.marks.asleep_since {
        None => vec![],
        Some(since) => vec![
            Mark::SleptSecs(db.marks.slept_secs + secs_between(since, now).max(0) as u64),
            Mark::AsleepSince(None),
        ],
    }
}

impl super::Preview {
    /// Opens the tunnels and runs the hooks unless they already succeeded for this commit,
    /// config and boot ([`decide_hooks`]); records their mark when they succeed, and the
    /// deploy's activity when it is due. Returns what was decided.
    pub(super) async fn hooks_and_marks(
        &self,
        r: &crate::render::Rendered,
        db: &Database,
        shown: bool,
        started: Timestamp,
    ) -> crate::Result<HooksPlan> {
        use crate::event::Event;
        let name = &r.name;
        let key = hooks_key(&self.config, &r.database.fingerprint());
        let plan = decide_hooks(db, &key, shown);
        if let HooksPlan::Run { data_lost } = plan {
            if data_lost {
                self.emit(Event::Warning {
                    message: format!(
                        "the database of {name} booted again since its hooks last ran (restarted, crashed or stopped): its data is gone, so the hooks and the seed run again"
                    ),
                });
            }
            self.run_hooks(r).await?;
            // Written only when it changes (a new boot, a new key): a new commit writes nothing.
            if let Some(boot) = db.boot.as_deref() {
                let mark = hooks_mark(&key, boot);
                if db.marks.hooks.as_deref() != Some(mark.as_str()) {
                    let mark = Mark::Hooks(mark);
                    self.retry("mark database", || self.database.mark_database(name, &mark))
                        .await?;
                }
            }
        }
        let mut marks = wake_marks(db, started);
        if activity_due(&self.config, db.marks.active_at, started) {
            marks.push(Mark::ActiveAt(started));
        }
        for m in &marks {
            self.retry("mark database", || self.database.mark_database(name, m))
                .await?;
        }
        Ok(plan)
    }

    /// Tunnels, then each hook in order (nothing when none is configured).
    async fn run_hooks(&self, r: &crate::render::Rendered) -> crate::Result<()> {
        use crate::event::{Event, Phase};

        if self.config.hooks.is_empty() {
            return Ok(());
        }
        let name = &r.name;
        {
            let tunnels = self
                .phase(
                    Phase::Tunnels,
                    self.retry("open tunnels", || {
                        self.database.open_tunnels(name, &r.database)
                    }),
                )
                .await?;
            self.phase(Phase::Hooks, async {
                let runs = crate::render::hooks(&self.config, r, &tunnels)?;
                for h in &runs {
                    let hook = h.name.clone();
                    let sink = |line: &str| {
                        self.events.emit(Event::HookOutput {
                            hook: hook.clone(),
                            line: line.to_string(),
                        })
                    };
                    self.hooks.run(h, &sink).await?;
                }
                Ok(())
            })
            .await?;
            drop(tunnels);
        }
        Ok(())
    }
}

impl super::Preview {
    /// The lifetime part of a report (`None` when there is nothing to say: no expiry, no sleep,
    /// no cost shown).
    pub(super) fn note(
        &self,
        db: Option<&Database>,
        labels: &[String],
        now: Timestamp,
    ) -> Option<Lifetime> {
        self.note_at(db, labels, now, now)
    }

    /// [`Preview::note`] counting expiry and sleep from the activity at `active_at`.
    pub(super) fn note_at(
        &self,
        db: Option<&Database>,
        labels: &[String],
        active_at: Timestamp,
        now: Timestamp,
    ) -> Option<Lifetime> {
        let lt = &self.config.lifetime;
        (self.config.cost.show || lt.ttl.is_some() || lt.sleep_after.is_some())
            .then(|| lifetime_note(&self.config, db, active_at, labels, now))
    }
}

impl super::Preview {
    /// The cost estimate of a `status` row: its age at the configured size (time asleep is not
    /// known from the inventory, so it counts as running: an upper bound).
    pub(super) fn status_cost(
        &self,
        created_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Option<crate::host::CostEstimate> {
        let size = size(&self.config);
        self.config.cost.show.then(|| {
            crate::cost::estimate(
                &self.config.cost.table,
                &size,
                self.config.lifetime.suspends(size.memory_mb),
                created_at.map_or(0, |t| secs_between(t, now).max(0) as u64),
                0,
            )
        })
    }
}
