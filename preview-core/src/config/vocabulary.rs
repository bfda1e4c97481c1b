//! Which values a template may reference, and where: the paths a configuration defines (its
//! secrets, services and apps) and the rules of each place a template is used (names may not hold
//! secrets or untrusted text, process arguments may not hold secrets, …).

use std::collections::{BTreeMap, BTreeSet};

use super::SecretDef;

/// Where a template is used; decides what it may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ctx {
    /// Names and domains: only values that cannot carry untrusted text or secrets.
    Name,
    /// Container env: identity and secrets.
    Container,
    /// A service password: secrets.
    Password,
    /// App env and seed headers: everything but tunnels.
    App,
    /// Hook env: everything.
    HookEnv,
    /// Hook argv, URLs, report text: everything that is not secret (argv and URLs get logged).
    Public,
    /// Hook argv: public values plus tunnel addresses.
    HookArgv,
}

pub(super) struct Vocabulary {
    /// path → (secret, root class)
    paths: BTreeMap<String, (bool, Root)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Root {
    Identity,
    PrRuntime,
    Secret,
    Database,
    App,
    Tunnel,
}

impl Vocabulary {
    pub(super) fn new(
        secrets: &BTreeMap<String, SecretDef>,
        services: &[(&str, bool)],
        apps: &[&str],
    ) -> Self {
        let mut paths = BTreeMap::new();
        for p in [
            "pr.number",
            "env.name",
            "repo.owner",
            "repo.name",
            "repo.full_name",
        ] {
            paths.insert(p.to_string(), (false, Root::Identity));
        }
        for p in ["pr.branch", "pr.sha"] {
            paths.insert(p.to_string(), (false, Root::PrRuntime));
        }
        for s in secrets.keys() {
            paths.insert(format!("secrets.{s}"), (true, Root::Secret));
        }
        paths.insert("database.host".into(), (false, Root::Database));
        // A service's URL is secret when it carries a password.
        for &(service, creds) in services {
            for (f, secret) in [
                ("host", false),
                ("port", false),
                ("address", false),
                ("url", creds),
            ] {
                paths.insert(format!("services.{service}.{f}"), (secret, Root::Database));
                paths.insert(format!("tunnels.{service}.{f}"), (secret, Root::Tunnel));
            }
        }
        for a in apps {
            for f in ["domain", "url"] {
                paths.insert(format!("apps.{a}.{f}"), (false, Root::App));
            }
        }
        Self { paths }
    }

    pub(super) fn check(&self, path: &str, ctx: Ctx) -> std::result::Result<(), String> {
        let Some(&(secret, root)) = self.paths.get(path) else {
            let mut parts = path.split('.');
            let root_word = parts.next().unwrap_or("");
            let second: Vec<&str> = self
                .paths
                .keys()
                .filter(|k| k.split('.').next() == Some(root_word))
                .filter_map(|k| k.split('.').nth(1))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let hint = match (second.is_empty(), parts.next()) {
                (true, _) => "values start with pr., env., repo., secrets., database., services., tunnels. or apps.".to_string(),
                (false, Some(name)) if !second.contains(&name) => {
                    format!("defined {root_word}: {}", second.join(", "))
                }
                (false, _) => {
                    let fields: Vec<&str> = self
                        .paths
                        .keys()
                        .filter(|k| k.starts_with(&format!("{}.", path.rsplit_once('.').map_or(path, |p| p.0))))
                        .map(String::as_str)
                        .collect();
                    format!("defined: {}", fields.join(", "))
                }
            };
            return Err(format!("`${{{path}}}` is not defined ({hint})"));
        };
        let allowed = match ctx {
            Ctx::Name => root == Root::Identity,
            Ctx::Container => matches!(root, Root::Identity | Root::Secret),
            Ctx::Password => root == Root::Secret,
            Ctx::App => root != Root::Tunnel,
            Ctx::HookEnv => true,
            Ctx::Public => root != Root::Tunnel && !secret,
            Ctx::HookArgv => !secret,
        };
        if allowed {
            return Ok(());
        }
        let why = match ctx {
            Ctx::Name => {
                "names and domains may use only pr.number, env.name and repo.* (branch names are untrusted and secrets must not become names)"
            }
            Ctx::Container => {
                "container env may use only identity values and secrets (the database does not know app domains yet)"
            }
            Ctx::Password => "a service password must be a secret, e.g. `${secrets.pg_password}`",
            Ctx::App => "tunnels exist only on the machine running hooks; apps must use services.*",
            Ctx::Public if secret => {
                "this value is printed and logged, so it must not contain a secret (put secrets in env or headers)"
            }
            Ctx::Public => "tunnels exist only while hooks run",
            Ctx::HookArgv => {
                "process arguments are visible to other processes; pass secrets through hook env instead"
            }
            Ctx::HookEnv => "",
        };
        Err(format!("`${{{path}}}` cannot be used here: {why}"))
    }
}
