//! `preview exec`: tunnels plus a command, the way a developer runs migrations by hand.

use std::process::Stdio;

use preview_core::render::Inputs;
use preview_core::{Error, Result};

use crate::cli::{Cli, ExecArgs};
use crate::context::Context;

/// Opens the tunnels of PR `--pr`, runs the command with the hooks' environment (tunnel URLs,
/// secrets) plus `PREVIEW_<SERVICE>_URL|HOST|PORT|ADDRESS` (and without preview's own tokens and
/// master secret), closes the tunnels and returns the command's exit code (`128 + N` when killed
/// by signal N).
///
/// # Errors
/// Configuration errors; tunnels that cannot be opened; a command that cannot start.
pub async fn run(cli: &Cli, args: &ExecArgs, ctx: &Context) -> Result<u8> {
    // Not echoed: a command line may carry a password.
    if !args.before_separator.is_empty() {
        return Err(Error::config(
            "exec: put the command after `--`, e.g. `preview exec --pr 42 -- pnpm db:migrate` (without `--`, the command's own flags would be read as preview's)",
        ));
    }
    if args.command.is_empty() {
        return Err(Error::config(
            "exec: give the command after `--`, e.g. `preview exec --pr 42 -- pnpm db:migrate`",
        ));
    }
    let config = super::load_with_files(cli, ctx)?;
    let pr = args
        .pr
        .parse()
        .map_err(|e: Error| Error::config(format!("--pr: {e}")))?;
    super::check_settings(cli, ctx, &config, true)?;
    let repo = super::repo(cli, ctx)?;
    let secrets = super::master(ctx)?;
    let name = config.name(pr);
    let env = ctx.env.clone();
    let lookup = move |k: &str| env(k);
    let values = preview_core::render::secrets(&config, &name, secrets.as_ref(), &lookup)?;
    let inputs = Inputs {
        repo: Some(repo.clone()),
        ..Inputs::default()
    };
    let rendered = preview_core::render::render_all(&config, &name, &inputs, values, &lookup)?;
    super::mask(cli, ctx, &rendered.sensitive_values())?;
    let hosts = ctx.factory.hosts(&config, ctx, &repo)?;
    let tunnels = hosts
        .database
        .open_tunnels(&name, &rendered.database)
        .await?;
    let mut child_env: Vec<(String, String)> = Vec::new();
    for hook in preview_core::render::hooks(&config, &rendered, &tunnels)? {
        for (k, v) in hook.env {
            child_env.retain(|(key, _)| key != &k);
            child_env.push((k, v.expose().to_string()));
        }
    }
    for t in tunnels.list() {
        let key = t.service.to_ascii_uppercase().replace('-', "_");
        child_env.push((format!("PREVIEW_{key}_HOST"), t.host.clone()));
        child_env.push((format!("PREVIEW_{key}_PORT"), t.port.to_string()));
        child_env.push((
            format!("PREVIEW_{key}_ADDRESS"),
            format!("{}:{}", t.host, t.port),
        ));
    }
    for svc in &config.database.services {
        if let Some(t) = tunnels.get(&svc.name) {
            let ep = preview_core::ServiceEndpoint {
                service: svc.name.clone(),
                host: t.host.clone(),
                port: t.port,
                protocol: svc.protocol,
                tls: preview_core::TlsMode::None,
            };
            let creds = rendered
                .database
                .services
                .iter()
                .find(|s| s.name == svc.name)
                .and_then(|s| s.credentials.as_ref());
            let key = svc.name.to_ascii_uppercase().replace('-', "_");
            child_env.push((
                format!("PREVIEW_{key}_URL"),
                ep.url(creds).expose().to_string(),
            ));
        }
    }
    child_env.push(("PREVIEW_ENV".into(), name.to_string()));
    let (program, rest) = args.command.split_first().ok_or_else(|| {
        Error::config("give the command after `--`, e.g. preview exec --pr 42 -- pnpm db:migrate")
    })?;
    ctx.stderr
        .line(&format!("tunnels open to {name}; running {program}"));
    let mut cmd = tokio::process::Command::new(program);
    // The command keeps the caller's environment (PATH, node, ...) but not the credentials preview
    // itself reads: like a hook, it gets the connection URLs and secrets its config grants, and
    // never the provider tokens or the master secret (it may be the PR's own code).
    for var in CREDENTIALS {
        cmd.env_remove(var).env_remove(format!("{var}_FILE"));
    }
    let status = cmd
        .args(rest)
        .envs(child_env)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // Stopped with preview (SIGTERM): the tunnels it talks through close then anyway.
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| Error::failed(format!("running {program:?}"), e.to_string()))?;
    drop(tunnels);
    Ok(exit_code(status))
}

/// Variables holding credentials of preview itself (each also as `NAME_FILE`).
const CREDENTIALS: [&str; 4] = [
    "FLY_API_TOKEN",
    "VERCEL_TOKEN",
    "GITHUB_TOKEN",
    "PREVIEW_MASTER_SECRET",
];

/// The command's exit code; killed by signal N, `128 + N` as shells report it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + (sig & 0x7f)).unwrap_or(1),
        (None, None) => 1,
    }
}
