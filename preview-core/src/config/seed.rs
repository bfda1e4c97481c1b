//! `[seed]`: requests sent once the readiness URL answers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::loader::Loader;
use super::raw::{RawRequest, RawSeed};
use super::vocabulary::{Ctx, Vocabulary};
use super::{ConfigPath, Field};
use crate::error::Result;

/// One seed request.
#[derive(Debug, Clone)]
pub struct RequestDef {
    /// Name.
    pub name: String,
    /// HTTP method.
    pub method: String,
    /// URL template (no secrets).
    pub url: Field,
    /// Header templates (may hold secrets).
    pub headers: BTreeMap<String, Field>,
    /// Body file, relative to the config file's directory (confined to the repository: see
    /// [`crate::repository`]).
    pub body_file: Option<ConfigPath>,
    /// Accepted statuses.
    pub expect_status: Vec<u16>,
}

/// Seeding: requests sent once the readiness URL answers.
#[derive(Debug, Clone)]
pub struct SeedDef {
    /// Readiness URL template.
    pub ready_url: Field,
    /// How long to wait for it.
    pub ready_timeout: Duration,
    /// Requests.
    pub requests: Vec<RequestDef>,
}

/// The seeding, when the file has a `[seed]`.
pub(super) fn seed(
    l: &Loader<'_>,
    raw: Option<&RawSeed>,
    vocab: &Vocabulary,
) -> Result<Option<SeedDef>> {
    let Some(s) = raw else {
        return Ok(None);
    };
    let mut requests = Vec::new();
    for (i, r) in s.requests.iter().enumerate() {
        requests.push(request(l, r, &format!("seed.requests[{i}]"), vocab)?);
    }
    Ok(Some(SeedDef {
        ready_url: l.field(&s.ready_url, "seed.ready_url".into(), Ctx::Public, vocab)?,
        ready_timeout: l.duration_or(
            &s.ready_timeout,
            "seed.ready_timeout",
            Duration::from_secs(300),
        )?,
        requests,
    }))
}

fn request(l: &Loader<'_>, r: &RawRequest, key: &str, vocab: &Vocabulary) -> Result<RequestDef> {
    let method = r.method.get_ref().to_ascii_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        return Err(l.err(
            &r.method.span(),
            &format!("{key}.method"),
            "use GET, POST, PUT, PATCH or DELETE",
        ));
    }
    let mut headers = BTreeMap::new();
    for (k, v) in &r.headers {
        headers.insert(
            k.clone(),
            l.field(v, format!("{key}.headers.{k}"), Ctx::App, vocab)?,
        );
    }
    Ok(RequestDef {
        name: r.name.get_ref().clone(),
        method,
        url: l.field(&r.url, format!("{key}.url"), Ctx::Public, vocab)?,
        headers,
        body_file: r
            .body_file
            .as_ref()
            .map(|b| l.path(b, format!("{key}.body_file")))
            .transpose()?,
        expect_status: r.expect_status.clone(),
    })
}
