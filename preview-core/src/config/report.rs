//! `[report]`: how the PR is told (the sticky comment, the deployment environment, the links).

use super::Field;
use super::loader::Loader;
use super::raw::RawReport;
use super::vocabulary::{Ctx, Vocabulary};
use crate::error::{Error, Result};
use crate::template::Template;

/// How the PR is told.
#[derive(Debug, Clone)]
pub struct ReportDef {
    /// Post a sticky comment.
    pub comment: bool,
    /// Deployment environment name template.
    pub environment: Field,
    /// Links shown when ready.
    pub links: Vec<(String, Field)>,
}

/// The report, with its defaults (a comment; environment `preview/pr-N`).
pub(super) fn report(l: &Loader<'_>, raw: &RawReport, vocab: &Vocabulary) -> Result<ReportDef> {
    let environment = match &raw.environment {
        Some(e) => l.field(e, "report.environment".into(), Ctx::Name, vocab)?,
        None => Field {
            template: Template::parse("preview/pr-${pr.number}").map_err(Error::config)?,
            key: "report.environment".into(),
            line: 0,
        },
    };
    let mut links = Vec::new();
    for (i, link) in raw.links.iter().enumerate() {
        links.push((
            link.label.clone(),
            l.field(
                &link.url,
                format!("report.links[{i}].url"),
                Ctx::Public,
                vocab,
            )?,
        ));
    }
    Ok(ReportDef {
        comment: raw.comment,
        environment,
        links,
    })
}
