//! [`RecordingHooks`] and [`InMemoryHttp`]: hooks and seed requests, recorded.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::effects::{HookRunner, HttpClient, LineSink};
use crate::error::{Error, Result};
use crate::render::{HookRun, HttpCall};

use super::lock;

/// A [`HookRunner`] that records hooks instead of running them, and can fail one by name.
#[derive(Debug, Clone, Default)]
pub struct RecordingHooks {
    inner: Arc<Mutex<(Vec<HookRun>, Vec<String>)>>,
}

impl RecordingHooks {
    /// A runner where every hook succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes hook `name` fail.
    pub fn fail(&self, name: &str) {
        lock(&self.inner).1.push(name.into());
    }

    /// The hooks run so far.
    pub fn runs(&self) -> Vec<HookRun> {
        lock(&self.inner).0.clone()
    }
}

#[async_trait]
impl HookRunner for RecordingHooks {
    async fn run(&self, hook: &HookRun, out: LineSink<'_>) -> Result<()> {
        let fail = {
            let mut s = lock(&self.inner);
            s.0.push(hook.clone());
            s.1.contains(&hook.name)
        };
        out(&format!("running {}", hook.argv.join(" ")));
        if fail {
            return Err(Error::failed(
                format!("hook {}", hook.name),
                "exited with code 1",
            ));
        }
        Ok(())
    }
}

/// An [`HttpClient`] that answers from a script: every URL answers 200 unless told otherwise.
#[derive(Debug, Clone, Default)]
pub struct InMemoryHttp {
    inner: Arc<Mutex<HttpState>>,
}

#[derive(Debug, Default)]
struct HttpState {
    sent: Vec<HttpCall>,
    answers: BTreeMap<String, VecDeque<u16>>,
    /// (URL prefix, header, value): requests under the prefix without that header answer 401.
    walls: Vec<(String, String, String)>,
}

impl InMemoryHttp {
    /// A client where everything answers 200.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues statuses for `url` (then 200).
    pub fn answer(&self, url: &str, statuses: &[u16]) {
        lock(&self.inner)
            .answers
            .entry(url.into())
            .or_default()
            .extend(statuses);
    }

    /// Puts an auth wall in front of every URL starting with `prefix`: a request without
    /// `header: value` answers 401 (a protected preview).
    pub fn protect(&self, prefix: &str, header: &str, value: &str) {
        lock(&self.inner)
            .walls
            .push((prefix.into(), header.into(), value.into()));
    }

    /// The requests sent so far.
    pub fn sent(&self) -> Vec<HttpCall> {
        lock(&self.inner).sent.clone()
    }
}

#[async_trait]
impl HttpClient for InMemoryHttp {
    async fn send(&self, call: &HttpCall) -> Result<u16> {
        let mut s = lock(&self.inner);
        s.sent.push(call.clone());
        let walled = s.walls.iter().any(|(prefix, header, value)| {
            call.url.starts_with(prefix.as_str())
                && !call
                    .headers
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case(header) && v.expose() == value)
        });
        if walled {
            return Ok(401);
        }
        Ok(s.answers
            .get_mut(&call.url)
            .and_then(VecDeque::pop_front)
            .unwrap_or(200))
    }
}
