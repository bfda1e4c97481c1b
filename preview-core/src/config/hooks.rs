//! `[[hooks]]`: commands run on this machine once the databases answer (migrations, auth init).

use std::collections::BTreeMap;
use std::time::Duration;

use super::loader::Loader;
use super::raw::RawHook;
use super::vocabulary::{Ctx, Vocabulary};
use super::{ConfigPath, Field};
use crate::error::Result;

/// A hook run once the databases are reachable.
#[derive(Debug, Clone)]
pub struct HookDef {
    /// Name.
    pub name: String,
    /// argv templates (never a shell string).
    pub run: Vec<Field>,
    /// Timeout.
    pub timeout: Duration,
    /// Working directory, relative to the config file's directory (confined to the repository:
    /// see [`crate::repository`]); the config file's directory when unset.
    pub workdir: Option<ConfigPath>,
    /// Env templates.
    pub env: BTreeMap<String, Field>,
    /// Extra variables passed through from the caller's environment.
    pub inherit_env: Vec<String>,
}

/// Every hook, in order.
pub(super) fn hooks(l: &Loader<'_>, raw: &[RawHook], vocab: &Vocabulary) -> Result<Vec<HookDef>> {
    let mut hooks = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        hooks.push(hook(l, h, &format!("hooks[{i}]"), vocab)?);
    }
    Ok(hooks)
}

fn hook(l: &Loader<'_>, h: &RawHook, key: &str, vocab: &Vocabulary) -> Result<HookDef> {
    l.ident(h.name.get_ref(), &h.name.span(), &format!("{key}.name"))?;
    if h.run.get_ref().is_empty() {
        return Err(l.err(
            &h.run.span(),
            &format!("{key}.run"),
            "give the command as an argv list, e.g. [\"pnpm\", \"db:migrate\"]",
        ));
    }
    let first = h.run.get_ref()[0].get_ref();
    if h.run.get_ref().len() == 1 && first.contains(' ') {
        return Err(l.err(&h.run.span(), &format!("{key}.run"), format!("{first:?} looks like a shell string; hooks take argv, e.g. [\"pnpm\", \"db:migrate\"] (no shell is ever started)")));
    }
    let mut run = Vec::new();
    for (j, a) in h.run.get_ref().iter().enumerate() {
        run.push(l.field(a, format!("{key}.run[{j}]"), Ctx::HookArgv, vocab)?);
    }
    let mut env = BTreeMap::new();
    for (k, v) in &h.env {
        let fk = format!("{key}.env.{k}");
        l.env_key(k, &v.span(), &fk)?;
        env.insert(k.clone(), l.field(v, fk, Ctx::HookEnv, vocab)?);
    }
    Ok(HookDef {
        name: h.name.get_ref().clone(),
        run,
        timeout: l.duration_or(
            &h.timeout,
            &format!("{key}.timeout"),
            Duration::from_secs(600),
        )?,
        workdir: h
            .workdir
            .as_ref()
            .map(|w| l.path(w, format!("{key}.workdir")))
            .transpose()?,
        env,
        inherit_env: h.inherit_env.clone(),
    })
}
