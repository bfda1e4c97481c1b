//! `[[hooks]]` rendered: each hook, ready to run once the tunnels are open.

use super::scope::define_endpoint;
use super::{Fields, HookRun, Mode, Rendered};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::host::{ServiceEndpoint, TlsMode, Tunnels};

/// The hooks, rendered with the tunnels open (their addresses and URLs join the scope). For a
/// [`render_plan`](super::render_plan) rendering, the addresses of tunnels not given show as `<tunnels.NAME.…>`.
///
/// # Errors
/// [`Error::Config`] if a template cannot render.
pub fn hooks(config: &Config, rendered: &Rendered, tunnels: &Tunnels) -> Result<Vec<HookRun>> {
    let mut scope = rendered.scope.clone();
    let real = rendered.mode == Mode::Deploy;
    for svc in &config.database.services {
        if let Some(t) = tunnels.get(&svc.name) {
            let ep = ServiceEndpoint {
                service: svc.name.clone(),
                host: t.host.clone(),
                port: t.port,
                protocol: svc.protocol,
                // Tunnels bypass the edge: no TLS handler applies.
                tls: TlsMode::None,
            };
            define_endpoint(config, &mut scope, "tunnels", svc, &ep, real)?;
        }
    }
    let f = Fields {
        config,
        scope: &scope,
        mode: rendered.mode,
    };
    config
        .hooks
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let argv = h
                .run
                .iter()
                .map(|a| f.text(a))
                .collect::<Result<Vec<_>>>()?;
            let env = h
                .env
                .iter()
                .map(|(k, v)| Ok((k.clone(), f.value(v)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok(HookRun {
                name: h.name.clone(),
                argv,
                env,
                inherit_env: h.inherit_env.clone(),
                // Read and confined with the seed bodies ([`render_all`]); a hook without one
                // could only come from a Rendered of another configuration.
                workdir: rendered.workdirs.get(i).cloned().ok_or_else(|| {
                    Error::config(format!(
                        "{}: hooks[{i}]: rendered for another configuration",
                        config.origin
                    ))
                })?,
                timeout: h.timeout,
            })
        })
        .collect()
}
