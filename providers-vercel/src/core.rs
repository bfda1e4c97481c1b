//! One function per Vercel REST endpoint, over the shared sender
//! ([`preview_core::http::Request::send_retry`]): which request, which statuses are answers, how
//! the body decodes. Requests retry there; a create (a domain, a deployment, an alias) is re-sent
//! only when it never reached Vercel or was refused outright, so an ambiguous failure goes back to
//! the caller, whose unit looks it up first.

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use preview_core::http::{Client, Request, truncate};
use preview_core::{Error, Result};

use crate::errors::PROVIDER;
use crate::wire;

/// Most pages of a list we follow (a safety bound, 100 items each).
pub(crate) const MAX_PAGES: usize = 50;

/// The Vercel API of one team: the client, the base URL, the team, and the unit of the deployment
/// poll schedule.
#[derive(Clone)]
pub(crate) struct Core {
    client: Client,
    base: Url,
    team_id: Option<String>,
    poll_unit: Duration,
}

/// Delay before the next status poll, after `elapsed` of waiting: 1 s for the first 15 s, then
/// 5 s up to a minute, 15 s up to five minutes, 30 s after that (as `@vercel/client` does).
fn poll_delay(elapsed: Duration) -> Duration {
    Duration::from_secs(match elapsed.as_secs() {
        0..15 => 1,
        15..60 => 5,
        60..300 => 15,
        _ => 30,
    })
}

/// Whether a deployment state is final and failed: `ERROR`, `CANCELED` or any `*_ERROR`.
pub(crate) fn is_failed_state(state: &str) -> bool {
    state == "ERROR" || state == "CANCELED" || state.ends_with("_ERROR")
}

/// `Ok(None)` for a 404, the value otherwise.
pub(crate) fn found<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Core {
    pub(crate) fn new(
        client: Client,
        base: Url,
        team_id: Option<String>,
        poll_unit: Duration,
    ) -> Self {
        Self {
            client,
            base,
            team_id,
            poll_unit,
        }
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    pub(crate) fn team_id(&self) -> Option<&str> {
        self.team_id.as_deref()
    }

    /// Builds a URL from path segments (each percent-encoded) and query pairs; adds `teamId`.
    ///
    /// # Errors
    /// [`Error::Config`] for a segment that is empty, `.` or `..`: percent-encoding leaves those
    /// as they are and URL parsing resolves them (`/v10/projects/../env` is `/v10/env`), so a
    /// project or deployment id spelled that way would change the route.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url> {
        if let Some(bad) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
            return Err(Error::config(format!(
                "{bad:?} cannot be a Vercel project or deployment id: it would change the request's path"
            )));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::config("the Vercel base URL cannot carry a path"))?
            .pop_if_empty()
            .extend(segments);
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            if let Some(team) = &self.team_id {
                q.append_pair("teamId", team);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    fn request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Request<'_>> {
        Ok(self.client.request(method, self.url(segments, query)?))
    }

    /// Sends `req` and decodes its 2xx body (an empty one as `{}`); also the request id
    /// (`x-vercel-id`), for errors that a 2xx body reports (env `failed[]`).
    async fn call<T: DeserializeOwned>(&self, req: Request<'_>) -> Result<(T, Option<String>)> {
        let (method, path) = (req.method().clone(), req.url().path().to_string());
        let answer = req.send_retry().await?;
        let body = if answer.body().is_empty() {
            &b"{}"[..]
        } else {
            answer.body()
        };
        // The decode error's position is enough; its text could quote the body.
        let value = serde_json::from_slice(body).map_err(|e| Error::Api {
            provider: PROVIDER,
            status: answer.status().as_u16(),
            message: format!(
                "unexpected response body for {method} {path} ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
            request_id: answer.request_id(),
        })?;
        Ok((value, answer.request_id()))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T> {
        Ok(self
            .call(self.request(Method::GET, segments, query)?)
            .await?
            .0)
    }

    // ---- env vars

    /// Env vars of a project; with `branch`, only those scoped to it.
    pub(crate) async fn list_env(
        &self,
        project: &str,
        branch: Option<&str>,
    ) -> Result<Vec<wire::Env>> {
        let query: Vec<(&str, &str)> = branch.map(|b| ("gitBranch", b)).into_iter().collect();
        let list: wire::EnvList = self
            .get(&["v10", "projects", project, "env"], &query)
            .await?;
        let envs = list.into_vec();
        Ok(match branch {
            Some(b) => envs
                .into_iter()
                .filter(|e| e.git_branch.as_deref() == Some(b))
                .collect(),
            None => envs,
        })
    }

    /// Writes env vars in one upsert (`?upsert=true`): sending it twice leaves the same variables,
    /// so it is re-sent like a read. The request id comes back for a `failed[]` in the body.
    pub(crate) async fn upsert_env(
        &self,
        project: &str,
        writes: &[wire::EnvWrite<'_>],
    ) -> Result<(wire::EnvCreated, Option<String>)> {
        let req = self
            .request(
                Method::POST,
                &["v10", "projects", project, "env"],
                &[("upsert", "true")],
            )?
            .json(writes)
            .idempotent(true);
        self.call(req).await
    }

    /// Deletes env vars by id.
    pub(crate) async fn remove_env(
        &self,
        project: &str,
        ids: &[&str],
    ) -> Result<wire::BatchRemoved> {
        let req = self
            .request(Method::DELETE, &["v1", "projects", project, "env"], &[])?
            .json(&wire::BatchRemove { ids: ids.to_vec() });
        Ok(self.call(req).await?.0)
    }

    // ---- domains

    pub(crate) async fn get_domain(
        &self,
        project: &str,
        domain: &str,
    ) -> Result<Option<wire::Domain>> {
        found(
            self.get(&["v9", "projects", project, "domains", domain], &[])
                .await,
        )
    }

    pub(crate) async fn list_domains(&self, project: &str) -> Result<Vec<wire::Domain>> {
        let mut out = Vec::new();
        let mut until: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit", "100")];
            if let Some(u) = &until {
                query.push(("until", u));
            }
            let page: wire::DomainList = self
                .get(&["v9", "projects", project, "domains"], &query)
                .await?;
            let empty = page.domains.is_empty();
            out.extend(page.domains);
            match page.pagination.and_then(|p| p.next) {
                Some(next) if !empty => until = Some(format!("{}", next as i64)),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Adds `domain` to the project for `branch` (a create: not re-sent after an ambiguous
    /// failure).
    pub(crate) async fn add_domain(&self, project: &str, domain: &str, branch: &str) -> Result<()> {
        let req = self
            .request(Method::POST, &["v10", "projects", project, "domains"], &[])?
            .json(&wire::AddDomain {
                name: domain,
                git_branch: branch,
            });
        self.call::<serde_json::Value>(req).await.map(|_| ())
    }

    /// Points `domain` at `branch`.
    pub(crate) async fn move_domain(
        &self,
        project: &str,
        domain: &str,
        branch: &str,
    ) -> Result<()> {
        let req = self
            .request(
                Method::PATCH,
                &["v9", "projects", project, "domains", domain],
                &[],
            )?
            .json(&wire::UpdateDomain { git_branch: branch });
        self.call::<serde_json::Value>(req).await.map(|_| ())
    }

    /// Removes `domain` from the project; `false` when it was already gone.
    pub(crate) async fn delete_domain(&self, project: &str, domain: &str) -> Result<bool> {
        let req = self.request(
            Method::DELETE,
            &["v9", "projects", project, "domains", domain],
            &[],
        )?;
        Ok(found(self.call::<serde_json::Value>(req).await)?.is_some())
    }

    // ---- deployments

    /// Deployments of a project, newest first, following at most `pages` pages.
    pub(crate) async fn list_deployments(
        &self,
        project: &str,
        filters: &[(&str, &str)],
        pages: usize,
    ) -> Result<Vec<wire::DeploymentItem>> {
        let mut out = Vec::new();
        let mut until: Option<String> = None;
        for _ in 0..pages.min(MAX_PAGES) {
            let mut query = vec![("projectId", project), ("limit", "100")];
            query.extend_from_slice(filters);
            if let Some(u) = &until {
                query.push(("until", u));
            }
            let page: wire::DeploymentList = self.get(&["v6", "deployments"], &query).await?;
            let empty = page.deployments.is_empty();
            out.extend(page.deployments);
            match page.pagination.and_then(|p| p.next) {
                Some(next) if !empty => until = Some(format!("{}", next as i64)),
                _ => break,
            }
        }
        Ok(out)
    }

    pub(crate) async fn get_deployment(&self, id: &str) -> Result<wire::Deployment> {
        self.get(&["v13", "deployments", id], &[]).await
    }

    /// Creates a deployment from its git source (a create: not re-sent after an ambiguous
    /// failure).
    pub(crate) async fn create_deployment(
        &self,
        body: &wire::CreateDeployment<'_>,
    ) -> Result<wire::Deployment> {
        let req = self
            .request(Method::POST, &["v13", "deployments"], &[])?
            .json(body);
        Ok(self.call(req).await?.0)
    }

    /// Deletes a deployment; already gone is success.
    pub(crate) async fn delete_deployment(&self, id: &str) -> Result<()> {
        let req = self.request(Method::DELETE, &["v13", "deployments", id], &[])?;
        found(self.call::<serde_json::Value>(req).await).map(|_| ())
    }

    /// Cancels an in-flight deployment; `false` when it was already gone.
    pub(crate) async fn cancel_deployment(&self, id: &str) -> Result<bool> {
        let req = self.request(Method::PATCH, &["v12", "deployments", id, "cancel"], &[])?;
        Ok(found(self.call::<serde_json::Value>(req).await)?.is_some())
    }

    /// Aliases `alias` to the deployment.
    pub(crate) async fn assign_alias(&self, id: &str, alias: &str) -> Result<()> {
        let req = self
            .request(Method::POST, &["v2", "deployments", id, "aliases"], &[])?
            .json(&wire::AssignAlias { alias });
        self.call::<serde_json::Value>(req).await.map(|_| ())
    }

    /// Polls a deployment until it is ready, fails, or `timeout` passes, on tokio's clock.
    pub(crate) async fn wait_ready(&self, id: &str, timeout: Duration) -> Result<wire::Deployment> {
        let start = tokio::time::Instant::now();
        loop {
            let d = self.get_deployment(id).await?;
            if d.ready_state == "READY" {
                if let Some(ae) = &d.alias_error {
                    return Err(Error::failed(
                        format!("vercel deployment {id}"),
                        format!(
                            "state READY but aliasing failed, code {}: {}; inspect at {}",
                            ae.code,
                            truncate(&ae.message, 300),
                            d.inspector_url.as_deref().unwrap_or("(no inspector URL)")
                        ),
                    ));
                }
                return Ok(d);
            }
            if is_failed_state(&d.ready_state) {
                return Err(Error::failed(
                    format!("vercel deployment {id}"),
                    format!(
                        "state {}, code {}: {}; inspect at {}",
                        d.ready_state,
                        d.error_code.as_deref().unwrap_or("(none)"),
                        truncate(d.error_message.as_deref().unwrap_or("(no message)"), 300),
                        d.inspector_url.as_deref().unwrap_or("(no inspector URL)")
                    ),
                ));
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                return Err(Error::Timeout {
                    what: format!("vercel deployment {id}"),
                    waited: elapsed,
                    detail: format!(
                        "last state {}; inspect at {}",
                        d.ready_state,
                        d.inspector_url.as_deref().unwrap_or("(no inspector URL)")
                    ),
                });
            }
            // The schedule is in units of `poll_unit` (1 s unless a benchmark scales time).
            let ratio = self.poll_unit.as_secs_f64();
            let delay = poll_delay(elapsed.div_f64(ratio))
                .mul_f64(ratio)
                .min(timeout - elapsed);
            tracing::debug!(id, state = %d.ready_state, delay_ms = delay.as_millis() as u64, "waiting for the deployment");
            tokio::time::sleep(delay).await;
        }
    }

    // ---- projects

    /// The project (`GET /v9/projects/{id}`), with its protection settings and bypass secrets.
    pub(crate) async fn get_project(&self, project: &str) -> Result<wire::Project> {
        self.get(&["v9", "projects", project], &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VercelApps;
    use preview_core::http::ClientSettings;

    #[test]
    fn polling_backs_off_in_steps() {
        let s = |n| Duration::from_secs(n);
        assert_eq!(poll_delay(s(0)), s(1));
        assert_eq!(poll_delay(s(14)), s(1));
        assert_eq!(poll_delay(s(15)), s(5));
        assert_eq!(poll_delay(s(59)), s(5));
        assert_eq!(poll_delay(s(60)), s(15));
        assert_eq!(poll_delay(s(300)), s(30));
        assert_eq!(poll_delay(s(3000)), s(30));
    }

    #[test]
    fn failed_states() {
        for s in ["ERROR", "CANCELED", "BUILD_ERROR", "DEPLOY_ERROR"] {
            assert!(is_failed_state(s), "{s}");
        }
        for s in ["READY", "BUILDING", "QUEUED", "INITIALIZING", "ERRORED_NOT"] {
            assert!(!is_failed_state(s), "{s}");
        }
    }

    #[test]
    fn urls_encode_segments_and_queries() {
        let v = VercelApps::builder()
            .token("t")
            .team_id("team_1")
            .base_url("http://127.0.0.1:1/")
            .build()
            .expect("valid");
        let u = v
            .core()
            .url(
                &["v9", "projects", "p/../x", "domains", "a.b"],
                &[("gitBranch", "feat/x?y=1#z&teamId=evil")],
            )
            .expect("url");
        assert_eq!(u.path(), "/v9/projects/p%2F..%2Fx/domains/a.b");
        for dots in ["..", ".", ""] {
            let err = v
                .core()
                .url(&["v10", "projects", dots, "env"], &[])
                .expect_err("a dot segment would change the route");
            assert!(err.is_config(), "{err}");
        }
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("gitBranch".into(), "feat/x?y=1#z&teamId=evil".into()),
                ("teamId".into(), "team_1".into())
            ]
        );
    }
}
