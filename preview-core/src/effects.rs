//! Side effects the pipeline needs besides the three hosts: running hooks and sending seed requests.
//! Both are traits so tests (and embedders) can swap them.

use std::fmt::Debug;
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::error::{Error, Result};
use crate::render::{HookRun, HttpCall};

/// Receives one line of hook output (already masked).
pub type LineSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Runs hooks.
#[async_trait]
pub trait HookRunner: Debug + Send + Sync {
    /// Runs one hook to completion, streaming its output lines to `out`.
    ///
    /// # Errors
    /// [`Error::Failed`] when it exits non-zero, cannot start, or exceeds its timeout.
    async fn run(&self, hook: &HookRun, out: LineSink<'_>) -> Result<()>;

    /// Checks, before anything is changed, that `hook` could start: its program is found and
    /// its arguments and environment can be passed. Called by the deploy's preflight with tunnel
    /// addresses as placeholders. The default accepts everything.
    ///
    /// # Errors
    /// [`Error::Config`] saying what is missing.
    fn check(&self, hook: &HookRun) -> Result<()> {
        let _ = hook;
        Ok(())
    }
}

/// Where `program` would be started from: a name with a `/` as it is (relative to `dir`), a bare
/// name from the first `PATH` (`path`) entry holding an executable file of that name, as the
/// process spawner looks it up.
///
/// # Errors
/// Why not, as text.
pub fn find_program(
    program: &std::path::Path,
    dir: &std::path::Path,
    path: Option<&std::ffi::OsStr>,
) -> std::result::Result<std::path::PathBuf, String> {
    fn executable(p: &std::path::Path) -> bool {
        let Ok(meta) = std::fs::metadata(p) else {
            return false;
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            meta.is_file() && meta.permissions().mode() & 0o111 != 0
        }
        #[cfg(not(unix))]
        {
            meta.is_file()
        }
    }
    if program.as_os_str().is_empty() {
        return Err("the program name is empty".into());
    }
    if program.components().count() > 1 || program.is_absolute() {
        let p = dir.join(program);
        return if executable(&p) {
            Ok(p)
        } else if p.exists() {
            Err(format!("{} is not an executable file", p.display()))
        } else {
            Err(format!("{} does not exist", p.display()))
        };
    }
    let path = path.unwrap_or_default();
    std::env::split_paths(path)
        .map(|d| {
            if d.as_os_str().is_empty() {
                dir.to_path_buf()
            } else {
                d
            }
        })
        .map(|d| d.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| {
            format!(
                "{:?} is not on PATH ({} folders searched)",
                program.display().to_string(),
                std::env::split_paths(path).count()
            )
        })
}

/// Sends HTTP requests for readiness checks and seeding.
#[async_trait]
pub trait HttpClient: Debug + Send + Sync {
    /// Sends one request and returns the status.
    ///
    /// # Errors
    /// Transport failures.
    async fn send(&self, call: &HttpCall) -> Result<u16>;
}

/// Variables a hook inherits from the caller in addition to its own `env` and `inherit_env`.
pub const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "SHELL",
    "CI",
    "NODE_OPTIONS",
    "PNPM_HOME",
    "NPM_CONFIG_CACHE",
    "COREPACK_HOME",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
];

/// Kills a child's whole process group when dropped: the child and everything it started (a hook's
/// `pnpm` starts `node`; a `flyctl` wrapper script starts `flyctl`). `kill_on_drop` reaches the
/// child only, so its own children would outlive a cancelled or timed-out run.
///
/// Spawn the child with `process_group(0)` (its pid is then its group id).
#[derive(Debug)]
pub struct KillGroupOnDrop(pub Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            // ESRCH (all gone) is the normal case after a clean exit.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Runs hooks as child processes: argv only (never a shell), a cleared environment plus an
/// allow-list, the hook's timeout, and every secret in the hook's env masked in its output.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessHookRunner;

fn mask(line: &str, secrets: &[&str]) -> String {
    let mut out = line.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s, "***");
        }
    }
    out
}

#[async_trait]
impl HookRunner for ProcessHookRunner {
    fn check(&self, hook: &HookRun) -> Result<()> {
        let what = format!("hook {}", hook.name);
        let Some(program) = hook.argv.first() else {
            return Err(Error::config(format!("{what}: empty argv")));
        };
        // A process cannot receive a NUL byte (e.g. from a hostile branch name in a template).
        if let Some(i) = hook.argv.iter().position(|a| a.contains('\0')) {
            return Err(Error::config(format!(
                "{what}: argument {i} contains a NUL character, which no process can receive"
            )));
        }
        if let Some((k, _)) = hook.env.iter().find(|(_, v)| v.expose().contains('\0')) {
            return Err(Error::config(format!(
                "{what}: env {k} contains a NUL character, which no process can receive"
            )));
        }
        // The PATH the hook gets (INHERITED) is the one it is looked up on.
        let path = std::env::var_os("PATH");
        find_program(std::path::Path::new(program), &hook.workdir, path.as_deref())
            .map(|_| ())
            .map_err(|why| {
                Error::config(format!(
                    "{what}: cannot start {program:?}: {why}; install it on this runner before preview runs, or fix hooks.run"
                ))
            })
    }

    async fn run(&self, hook: &HookRun, out: LineSink<'_>) -> Result<()> {
        let what = format!("hook {}", hook.name);
        let (program, args) = hook
            .argv
            .split_first()
            .ok_or_else(|| Error::failed(&what, "empty argv"))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&hook.workdir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group, so what it starts is killed with it (see KillGroupOnDrop).
        #[cfg(unix)]
        cmd.process_group(0);
        for var in INHERITED
            .iter()
            .copied()
            .chain(hook.inherit_env.iter().map(String::as_str))
        {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        for (k, v) in &hook.env {
            cmd.env(k, v.expose());
        }
        let secrets: Vec<&str> = hook
            .env
            .iter()
            .filter(|(_, v)| v.is_secret())
            .map(|(_, v)| v.expose())
            .collect();
        let mut child = cmd.spawn().map_err(|e| {
            Error::failed(
                &what,
                format!(
                    "cannot start {program:?} in {}: {e}",
                    hook.workdir.display()
                ),
            )
        })?;
        // The group goes when this future ends, on every path: done, timed out, or cancelled.
        let _group = KillGroupOnDrop(child.id());
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let pump = async {
            let mut o = stdout.map(|s| BufReader::new(s).lines());
            let mut e = stderr.map(|s| BufReader::new(s).lines());
            loop {
                tokio::select! {
                    line = async { match o.as_mut() { Some(l) => l.next_line().await, None => std::future::pending().await } } => {
                        match line { Ok(Some(l)) => out(&mask(&l, &secrets)), _ => o = None }
                    }
                    line = async { match e.as_mut() { Some(l) => l.next_line().await, None => std::future::pending().await } } => {
                        match line { Ok(Some(l)) => out(&mask(&l, &secrets)), _ => e = None }
                    }
                }
                if o.is_none() && e.is_none() {
                    break;
                }
            }
            child.wait().await
        };
        match tokio::time::timeout(hook.timeout, pump).await {
            Err(_) => Err(Error::Timeout {
                what,
                waited: hook.timeout,
                detail: "the hook was killed".into(),
            }),
            Ok(Err(e)) => Err(Error::failed(&what, format!("waiting for it failed: {e}"))),
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(Error::failed(
                &what,
                match status.code() {
                    Some(c) => format!("exited with code {c}"),
                    None => "was killed by a signal".into(),
                },
            )),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::template::Value;
    use secrecy::SecretString;
    use std::sync::Mutex;
    use std::time::Duration;

    fn hook(argv: &[&str], timeout: Duration) -> HookRun {
        HookRun {
            name: "t".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![
                ("PLAIN".into(), Value::Plain("visible".into())),
                (
                    "PASSWORD".into(),
                    Value::Secret(SecretString::from("SENTINEL-PW")),
                ),
            ],
            inherit_env: vec![],
            workdir: std::env::temp_dir(),
            timeout,
        }
    }

    #[tokio::test]
    async fn runs_argv_with_env_and_masks_secrets_in_output() {
        let lines = Mutex::new(Vec::new());
        let sink = |l: &str| lines.lock().unwrap().push(l.to_string());
        ProcessHookRunner
            .run(&hook(&["env"], Duration::from_secs(10)), &sink)
            .await
            .unwrap();
        let lines = lines.into_inner().unwrap();
        assert!(lines.iter().any(|l| l == "PLAIN=visible"), "{lines:?}");
        assert!(lines.iter().any(|l| l == "PASSWORD=***"), "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains("SENTINEL")));
        // The environment is cleared: nothing but the allow-list and the hook's own vars.
        assert!(!lines.iter().any(|l| l.starts_with("CARGO_")), "{lines:?}");
    }

    #[tokio::test]
    async fn failures_and_timeouts_are_errors() {
        let sink = |_: &str| {};
        let err = ProcessHookRunner
            .run(&hook(&["false"], Duration::from_secs(10)), &sink)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exited with code 1"), "{err}");
        let err = ProcessHookRunner
            .run(&hook(&["sleep", "5"], Duration::from_millis(100)), &sink)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        let err = ProcessHookRunner
            .run(
                &hook(&["/nonexistent/preview-hook"], Duration::from_secs(1)),
                &sink,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot start"), "{err}");
    }

    /// Live processes whose command line is exactly `argv` (Linux `/proc`).
    fn running(argv: &str) -> usize {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).replace('\0', " ").trim_end() == argv)
            .count()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn what_a_hook_started_dies_with_it_on_timeout_and_on_cancel() {
        // `sh` forks `sleep` (two commands): killing only `sh` would orphan it.
        let secs = format!("{}.5", 4000 + std::process::id() % 1000);
        let script = format!("sleep {secs}; true");
        let sleeper = format!("sleep {secs}");
        let sink = |_: &str| {};
        let err = ProcessHookRunner
            .run(
                &hook(&["sh", "-c", &script], Duration::from_millis(300)),
                &sink,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            running(&sleeper),
            0,
            "the hook's child outlived its timeout"
        );

        // Cancelled (the future dropped, as on SIGINT) while the grandchild runs.
        let h = hook(&["sh", "-c", &script], Duration::from_secs(60));
        let run = ProcessHookRunner.run(&h, &sink);
        let wait = async {
            while running(&sleeper) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            _ = run => panic!("the hook finished"),
            _ = tokio::time::timeout(Duration::from_secs(10), wait) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(running(&sleeper), 0, "the hook's child outlived a cancel");
    }

    #[test]
    fn programs_are_found_as_the_spawner_finds_them() {
        let dir = std::env::temp_dir().join(format!("preview-find-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::write(dir.join("bin/data"), "not a program").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("bin/tool"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let path =
            std::env::join_paths(["/nonexistent", dir.join("bin").to_str().unwrap()]).unwrap();
        let p = |s: &str| std::path::PathBuf::from(s);
        assert_eq!(
            find_program(&p("tool"), &dir, Some(&path)).unwrap(),
            dir.join("bin/tool")
        );
        assert_eq!(
            find_program(&p("bin/tool"), &dir, None).unwrap(),
            dir.join("bin/tool")
        );
        let err = find_program(&p("data"), &dir, Some(&path)).unwrap_err();
        assert!(
            err.contains("\"data\" is not on PATH (2 folders searched)"),
            "{err}"
        );
        let err = find_program(&p("./bin/data"), &dir, Some(&path)).unwrap_err();
        assert!(err.ends_with("bin/data is not an executable file"), "{err}");
        let err = find_program(&p("/nonexistent/x"), &dir, Some(&path)).unwrap_err();
        assert_eq!(err, "/nonexistent/x does not exist");

        // A hook's check: its program, and what no process can receive.
        let mut h = hook(&["tool"], Duration::from_secs(1));
        h.workdir = dir.clone();
        let err = ProcessHookRunner.check(&h).unwrap_err();
        assert!(err.is_config(), "{err}");
        assert!(
            err.to_string()
                .starts_with("hook t: cannot start \"tool\": \"tool\" is not on PATH"),
            "{err}"
        );
        h.argv = vec!["./bin/tool".into(), "a\0b".into()];
        let err = ProcessHookRunner.check(&h).unwrap_err();
        assert!(
            err.to_string().contains("argument 1 contains a NUL"),
            "{err}"
        );
        h.argv = vec!["./bin/tool".into()];
        ProcessHookRunner.check(&h).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
