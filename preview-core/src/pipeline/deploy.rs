//! `deploy`: converge one PR's environment, phase by phase.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::Preview;
use super::lifetime::HooksPlan;
use crate::error::{Error, Result};
use crate::event::{Event, Phase, PhaseTiming};
use crate::host::{
    AppDeployment, AppliedDatabase, Commit, Outcome, PrState, PullRequest, Report, ReportKind,
    ReportState, ReportSummary, ResourceChange, Tunnels,
};
use crate::name::{PrNumber, PreviewName};
use crate::render::{self, Inputs, Rendered};

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeployStatus {
    /// The environment is ready.
    Ready,
    /// Nothing was done, and why (closed PR, fork).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The PR closed while deploying; what was made has been torn down.
    ClosedDuringDeploy,
}

/// What deploy did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// The environment.
    pub name: PreviewName,
    /// The PR.
    pub pr: PrNumber,
    /// How it ended.
    #[serde(flatten)]
    pub status: DeployStatus,
    /// The commit deployed.
    pub commit: Option<String>,
    /// Every resource touched or left alone.
    pub changes: Vec<ResourceChange>,
    /// App deployments, by app.
    pub deployments: BTreeMap<String, AppDeployment>,
    /// Links for people.
    pub links: Vec<crate::host::Link>,
    /// How long each phase took, in the order they finished (phases run side by side overlap).
    pub phases: Vec<PhaseTiming>,
}

impl DeployReport {
    /// Resources a mutating call was made for.
    pub fn mutated(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| {
                matches!(
                    c.outcome,
                    Outcome::Created | Outcome::Updated | Outcome::Removed
                )
            })
            .count()
    }
}

impl DeployReport {
    /// The PR closed while the deploy ran: what it made is gone (`changes` says what was removed).
    fn closed(
        pr: PrNumber,
        pull: &PullRequest,
        name: &PreviewName,
        changes: Vec<ResourceChange>,
    ) -> Self {
        DeployReport {
            name: name.clone(),
            pr,
            status: DeployStatus::ClosedDuringDeploy,
            commit: Some(pull.head_sha.clone()),
            changes,
            deployments: BTreeMap::new(),
            links: vec![],
            phases: vec![],
        }
    }
}

/// Whether any change made a mutating call.
fn mutating(changes: &[ResourceChange]) -> bool {
    changes.iter().any(|c| {
        matches!(
            c.outcome,
            Outcome::Created | Outcome::Updated | Outcome::Removed
        )
    })
}

/// What the "ready" report needs besides the run: the report the PR shows when nothing changed
/// (then nothing is published), and the lifetime note.
struct Outlook {
    already: Option<ReportSummary>,
    lifetime: Option<crate::host::Lifetime>,
}

/// What the deployments phase returns for each app: its name, the deployment and its change.
type Deployed = (String, AppDeployment, ResourceChange);

impl Preview {
    /// Creates or converges the environment of `pr`.
    ///
    /// The phases, each a call of its own: observe the PR; render and preflight (nothing is
    /// changed before both pass); then, concurrently, announce (the "deploying" report), the
    /// database side (apply, tunnels, hooks) and the app side (env vars and domains, then
    /// deployments); then readiness and seed; then verify the PR is still open and report.
    ///
    /// # Guarantees
    /// - Safe to re-run after a crash, a cancel or a concurrent run: every step is a converge.
    /// - A re-run with nothing changed makes no mutating provider call, and does not seed again
    ///   (the report already says ready at this commit, so the seed ran for it).
    /// - A PR that is closed, merged or from a fork is skipped before any secret is resolved.
    /// - A PR that closes while deploying ends with nothing left (the environment is torn down),
    ///   also when the deploy failed meanwhile (a teardown racing it): the outcome is then
    ///   [`DeployStatus::ClosedDuringDeploy`], not a failure report over "torn down".
    /// - A failure in any phase after the PR was read publishes a failure report naming the phase.
    /// - Every report carries the run's start ([`Report::started_at`]); the source host never lets
    ///   it replace the report of a run that started later, so racing runs leave the newest
    ///   outcome on the PR. A "ready" that lost to a newer teardown tears down again.
    /// - When the database or the app side fails, the other side is dropped where it stands (a
    ///   re-run converges), so the failure is reported without waiting for the rest.
    ///
    /// # Assumptions
    /// - Every host operation is a converge as its trait's `# Contract` says (so the unit-level
    ///   retry and a re-run are safe), and the hosts' own request-level retries stop at
    ///   [`Error::RetriesExhausted`].
    /// - The source host keeps the report of the run that started last ([`Report::started_at`]).
    ///
    /// # Errors
    /// [`Error::InPhase`] with the failing phase.
    pub async fn deploy(&self, pr: PrNumber) -> Result<DeployReport> {
        let (report, phases) = crate::event::timed(self.deploy_timed(pr)).await;
        report.map(|r| DeployReport { phases, ..r })
    }

    /// [`Preview::deploy`], inside the scope that keeps its phase timings.
    async fn deploy_timed(&self, pr: PrNumber) -> Result<DeployReport> {
        // Every report of this run carries its start: a host never lets it replace the report
        // of a run that started later.
        let started = (self.now)();
        let name = self.config.name(pr);
        let pull = self.phase(Phase::Observe, self.existing_pull(pr)).await?;
        if let Some(reason) = skip_reason(pr, &pull, self.pinned.as_deref()) {
            return Ok(DeployReport {
                name,
                pr,
                status: DeployStatus::Skipped { reason },
                commit: Some(pull.head_sha.clone()),
                changes: vec![],
                deployments: BTreeMap::new(),
                links: vec![],
                phases: vec![],
            });
        }
        let rendered = self.render(&name, &pull)?;
        self.preflight(&pull, &rendered)
            .map_err(|e| e.redact(&rendered.sensitive_values()))?;
        let converged = async {
            self.make_room(&name, started).await?;
            self.converge(&pull, &rendered, started).await
        };
        match converged.await {
            Ok(report) => Ok(report),
            Err(err) => self.failed(pr, &pull, &rendered, started, err).await,
        }
    }

    /// Secrets and every spec of the environment, with the keyed ownership fingerprints; the
    /// secrets observer learns every sensitive value before anything can print it.
    fn render(&self, name: &PreviewName, pull: &PullRequest) -> Result<Rendered> {
        let inputs = Inputs {
            repo: Some(pull.base_repo.clone()),
            branch: Some(pull.head_branch.clone()),
            sha: Some(pull.head_sha.clone()),
        };
        let env = self.env.clone();
        let lookup = move |k: &str| env(k);
        let secrets = render::secrets(&self.config, name, self.secrets.as_ref(), &lookup)?;
        let mut rendered = render::render_all(&self.config, name, &inputs, secrets, &lookup)?;
        // Keyed ownership fingerprints: without the master, the fingerprint next to a value
        // cannot be recomputed from a guess of it.
        let fingerprint_key = self.secrets.digest_key(crate::secret::FINGERPRINT_KEY)?;
        for app in &mut rendered.apps {
            app.fingerprint_key = fingerprint_key.clone();
        }
        if let Some(f) = &self.on_secrets {
            f(&rendered.sensitive_values());
        }
        Ok(rendered)
    }

    /// A deploy that failed after the PR was read: redacted, never "nothing was touched"; torn
    /// down when the PR closed meanwhile, else a failure report naming the phase.
    async fn failed(
        &self,
        pr: PrNumber,
        pull: &PullRequest,
        rendered: &Rendered,
        started: Timestamp,
        err: Error,
    ) -> Result<DeployReport> {
        let name = &rendered.name;
        // Providers may echo what they were sent (a Fly error quoting the Machine's env, a
        // Vercel `failed[]` item with the value): never into the report or the caller's output.
        // And something may have been changed by now: whatever went wrong is a failure, never
        // "nothing was touched".
        let err = err.redact(&rendered.sensitive_values()).after_changes();
        // The PR closed while we worked (a teardown may be racing us, and may be why we
        // failed): what is left is removed, as when the close is noticed after the seed, and
        // the outcome is "closed", not a failure report over "torn down".
        if let Ok(Some(p)) = self.pull_request(pr).await {
            if p.state != PrState::Open {
                match self.teardown_name(name, started).await {
                    Ok(t) => {
                        self.emit(Event::Warning {
                            message: format!(
                                "pull request #{pr} closed during the deploy, which stopped ({err}); its environment was torn down"
                            ),
                        });
                        return Ok(DeployReport::closed(pr, pull, name, t.changes));
                    }
                    Err(e) => self.emit(Event::Warning {
                        message: format!(
                            "pull request #{pr} closed during the deploy; tearing down failed too: {e}"
                        ),
                    }),
                }
            }
        }
        let phase = err
            .phase()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "deploy".into());
        // The report names the phase on its own: the error text goes without the `phase: `
        // prefix of `Error::InPhase` ("Failed in database: database: …").
        let error = match &err {
            Error::InPhase { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        let failed = Report {
            name: name.clone(),
            pr,
            branch: Some(pull.head_branch.clone()),
            commit: Some(pull.head_sha.clone()),
            state: ReportState::Failed { phase, error },
            run_url: self.run_url.clone(),
            started_at: Some(started),
            phases: crate::event::timings_so_far(),
            lifetime: None,
        };
        if let Err(e) = self
            .retry("publish failure report", || {
                self.source.publish_report(&failed)
            })
            .await
        {
            self.emit(Event::Warning {
                message: format!("could not publish the failure report: {e}"),
            });
        }
        Err(err)
    }

    /// Everything that can be checked before the first mutating call: every derived name and
    /// value against each host's rules (`preflight_database`, `preflight_app`), the programs the
    /// tunnels and hooks need, the files the configuration names (read by `render_all`). Every
    /// problem is reported at once, as one [`Error::Config`]: nothing has been changed.
    fn preflight(&self, pull: &PullRequest, r: &Rendered) -> Result<()> {
        let commit = Commit {
            repo: pull.base_repo.clone(),
            branch: pull.head_branch.clone(),
            sha: pull.head_sha.clone(),
        };
        let tunnels = !self.config.hooks.is_empty();
        let mut problems: Vec<String> = Vec::new();
        let mut note = |r: Result<()>| {
            if let Err(e) = r {
                let text = e.to_string();
                if !problems.contains(&text) {
                    problems.push(text);
                }
            }
        };
        note(
            self.database
                .preflight_database(&r.name, &r.database, tunnels),
        );
        for spec in &r.apps {
            note(self.apps.preflight_app(&r.name, spec, &commit));
        }
        if tunnels {
            // The hooks' argv may name tunnel addresses, known once the tunnels are open: a
            // placeholder stands in for them (only the program and the characters are checked).
            let placeholder = Tunnels::new(
                r.database
                    .services
                    .iter()
                    .map(|s| crate::host::Tunnel {
                        service: s.name.clone(),
                        host: "127.0.0.1".into(),
                        port: 1,
                    })
                    .collect(),
                (),
            );
            match render::hooks(&self.config, r, &placeholder) {
                Ok(runs) => {
                    for h in &runs {
                        note(self.hooks.check(h));
                    }
                }
                Err(e) => note(Err(e)),
            }
        }
        match problems.as_slice() {
            [] => Ok(()),
            [one] => Err(Error::config(format!(
                "preflight (nothing was changed): {one}"
            ))),
            many => Err(Error::config(format!(
                "preflight (nothing was changed): {} problems:\n  - {}",
                many.len(),
                many.join("\n  - ")
            ))),
        }
    }

    /// Announce, both sides, seed, then verify and report.
    async fn converge(
        &self,
        pull: &PullRequest,
        r: &Rendered,
        started: Timestamp,
    ) -> Result<DeployReport> {
        let commit = Commit {
            repo: pull.base_repo.clone(),
            branch: pull.head_branch.clone(),
            sha: pull.head_sha.clone(),
        };
        // Announcing is a report only: nothing below reads it, so it runs alongside the work
        // instead of holding it up for GitHub's paced writes. The database side and the app side
        // need only names and secrets known up front, so they run concurrently too. When one side
        // fails the other is dropped where it stands (as on a cancel; a re-run converges): a
        // Machine that failed to boot is reported now, not after the app builds. The announcement
        // always completes, so the failure report follows it.
        // The hooks may be skipped only where the PR already shows this commit: the report's read
        // is handed to the database side (dropped unsent on an error).
        let (shown_tx, shown_rx) = futures::channel::oneshot::channel::<bool>();
        let (announced, sides) = futures::future::join(
            self.announce(pull, &r.name, started, shown_tx),
            futures::future::try_join(
                self.database_side(r, shown_rx, started),
                self.app_side(r, &commit),
            ),
        )
        .await;
        // Nothing announced: the report already said "ready" at this very commit.
        let (announced, shown) = announced?;
        let was_ready = announced.is_none();
        let mut changes: Vec<ResourceChange> = announced.into_iter().collect();
        let ((applied, hooks), (app_changes, deployed)) = sides?;
        let db_mutated = mutating(&applied.changes);
        changes.extend(applied.changes.iter().cloned());
        changes.extend(app_changes);
        let mut deployments = BTreeMap::new();
        for (app, dep, c) in deployed {
            changes.push(c);
            deployments.insert(app, dep);
        }
        // Ready at this commit (so seeded at it) and nothing changed since: seeding again would
        // only repeat the same requests. A database the hooks' mark says is as they left it (same
        // key, same boot: e.g. woken from a suspend) needs no seed for its own change; one that
        // booted since (its data is gone) always does.
        let unchanged = was_ready
            && !mutating(&changes[applied.changes.len()..])
            && match hooks {
                HooksPlan::Skip => true,
                HooksPlan::Run { data_lost } => !data_lost && !db_mutated,
            };
        if let Some(seed) = r.seed.as_ref().filter(|_| !unchanged) {
            self.seed(seed).await?;
        }
        let outlook = Outlook {
            already: if unchanged { shown } else { None },
            lifetime: self.note(Some(&applied.database), &pull.labels, started),
        };
        self.report_ready(pull, r, started, outlook, changes, deployments)
            .await
    }

    /// The "deploying" report, unless the PR already shows "ready" at this commit: then the
    /// report it shows (nothing announced).
    async fn announce(
        &self,
        pull: &PullRequest,
        name: &PreviewName,
        started: Timestamp,
        shown_tx: futures::channel::oneshot::Sender<bool>,
    ) -> Result<(Option<ResourceChange>, Option<ReportSummary>)> {
        let pr = pull.number;
        self.phase(Phase::Announce, async {
            let current = self
                .retry("get report", || self.source.get_report(name, pr))
                .await?;
            let up_to_date =
                matches!(&current, Some(s) if super::lifetime::shows_commit(s, &pull.head_sha));
            let _ = shown_tx.send(up_to_date);
            if up_to_date {
                return Ok((None, current));
            }
            let deploying = Report {
                name: name.clone(),
                pr,
                branch: Some(pull.head_branch.clone()),
                commit: Some(pull.head_sha.clone()),
                state: ReportState::Deploying,
                run_url: self.run_url.clone(),
                started_at: Some(started),
                phases: vec![],
                lifetime: None,
            };
            let o = self
                .retry("publish report", || self.source.publish_report(&deploying))
                .await?;
            let c = ResourceChange::new(self.source.kind(), "report", format!("PR #{pr}"), o);
            self.changes(std::slice::from_ref(&c));
            Ok((Some(c), None))
        })
        .await
    }

    /// Apply the database; then, unless their mark says they already ran for what the PR shows,
    /// open the tunnels and run the hooks.
    async fn database_side(
        &self,
        r: &Rendered,
        shown: futures::channel::oneshot::Receiver<bool>,
        started: Timestamp,
    ) -> Result<(AppliedDatabase, HooksPlan)> {
        let name = &r.name;
        let applied = self
            .phase(Phase::Database, async {
                let a = self
                    .retry("apply database", || {
                        self.database.apply_database(name, &r.database)
                    })
                    .await?;
                self.changes(&a.changes);
                Ok(a)
            })
            .await?;
        let shown = shown.await.unwrap_or(false);
        let hooks = self
            .hooks_and_marks(r, &applied.database, shown, started)
            .await?;
        Ok((applied, hooks))
    }

    /// Apply every app (env vars, domains), then deploy each at the PR's commit.
    async fn app_side(
        &self,
        r: &Rendered,
        commit: &Commit,
    ) -> Result<(Vec<ResourceChange>, Vec<Deployed>)> {
        let name = &r.name;
        let applied = self
            .phase(Phase::Apps, async {
                let all = futures::future::join_all(r.apps.iter().map(|spec| async move {
                    self.retry("apply app", || self.apps.apply_app(name, spec))
                        .await
                }))
                .await;
                let mut out = Vec::new();
                for c in all {
                    let c = c?;
                    self.changes(&c);
                    out.extend(c);
                }
                Ok(out)
            })
            .await?;
        let deployed = self
            .phase(Phase::Deployments, async {
                let all = futures::future::join_all(r.apps.iter().map(|spec| async move {
                    let d = self
                        .retry("deploy app", || self.apps.deploy_app(name, spec, commit))
                        .await?;
                    Ok::<_, Error>((spec.target.app.clone(), d))
                }))
                .await;
                let mut out = Vec::new();
                for d in all {
                    let (app, (dep, outcome)) = d?;
                    let c = ResourceChange::new(
                        self.apps.kind(),
                        "deployment",
                        format!("{app}/{}", dep.id),
                        outcome,
                    );
                    self.changes(std::slice::from_ref(&c));
                    out.push((app, dep, c));
                }
                Ok(out)
            })
            .await?;
        Ok((applied, deployed))
    }

    /// Verify the PR is still open, then publish "ready". `outlook.already`: nothing changed and
    /// this is the report the PR shows, so neither is needed.
    async fn report_ready(
        &self,
        pull: &PullRequest,
        r: &Rendered,
        started: Timestamp,
        outlook: Outlook,
        mut changes: Vec<ResourceChange>,
        deployments: BTreeMap<String, AppDeployment>,
    ) -> Result<DeployReport> {
        let (name, pr) = (&r.name, pull.number);
        let ready = Report {
            name: name.clone(),
            pr,
            branch: Some(pull.head_branch.clone()),
            commit: Some(pull.head_sha.clone()),
            state: ReportState::Ready {
                links: r.links.clone(),
            },
            run_url: self.run_url.clone(),
            started_at: Some(started),
            phases: crate::event::timings_so_far(),
            lifetime: outlook.lifetime,
        };
        // Nothing created or changed, and the PR already shows exactly this report: a close during
        // the run cannot strand anything this run made, and there is nothing to publish. Reading
        // the PR and the report again would only repeat this run's first reads.
        let digest = ready.digest();
        let outcome = if outlook.already.and_then(|s| s.digest).as_deref() == Some(digest.as_str())
        {
            Outcome::Unchanged
        } else {
            // Close-during-deploy: the PR may have closed while we worked; leave nothing behind.
            let still_open = self
                .phase(Phase::Verify, async {
                    Ok(self.pull_request(pr).await?.map(|p| p.state) == Some(PrState::Open))
                })
                .await?;
            if !still_open {
                let t = self.teardown_name(name, started).await?;
                changes.extend(t.changes);
                return Ok(DeployReport::closed(pr, pull, name, changes));
            }
            let published = self
                .phase(
                    Phase::Report,
                    self.retry("publish report", || self.source.publish_report(&ready)),
                )
                .await?;
            // A run that started after us has published. If it was a teardown (the PR closed
            // right after our check), our "ready" no longer holds: leave nothing behind.
            if published == Outcome::Skipped {
                let newer = self
                    .retry("get report", || self.source.get_report(name, pr))
                    .await?;
                if newer.is_some_and(|s| s.kind == ReportKind::TornDown) {
                    let t = self.teardown_name(name, started).await?;
                    changes.extend(t.changes);
                    return Ok(DeployReport::closed(pr, pull, name, changes));
                }
            }
            published
        };
        let c = ResourceChange::new(self.source.kind(), "report", format!("PR #{pr}"), outcome);
        self.changes(std::slice::from_ref(&c));
        changes.push(c);
        Ok(DeployReport {
            name: name.clone(),
            pr,
            status: DeployStatus::Ready,
            commit: Some(pull.head_sha.clone()),
            changes,
            deployments,
            links: r.links.clone(),
            phases: vec![],
        })
    }
}

/// Why a deploy does nothing for this PR, if it does nothing: it is not open, it comes from a
/// fork, or its head is not the commit the deploy is pinned to.
pub(super) fn skip_reason(
    pr: PrNumber,
    pull: &PullRequest,
    pinned: Option<&str>,
) -> Option<String> {
    if pull.state != PrState::Open {
        return Some(format!("pull request #{pr} is {:?}", pull.state).to_lowercase());
    }
    if pull.is_fork() {
        return Some(format!(
            "pull request #{pr} comes from a fork ({}); previews run only for branches of this repository",
            pull.head_repo.as_deref().unwrap_or("deleted repository")
        ));
    }
    if let Some(pinned) = pinned.filter(|p| *p != pull.head_sha) {
        return Some(format!(
            "the head of pull request #{pr} moved from the verified {pinned} to {} after the deploy was decided; nothing deployed (the push's own run deploys it)",
            pull.head_sha
        ));
    }
    None
}
