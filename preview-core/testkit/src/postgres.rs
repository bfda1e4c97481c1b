//! A throwaway PostgreSQL cluster for the tests that need a real server (tunnel readiness runs a
//! real query; the end-to-end suites run the example's migrations against it).
//!
//! The server binaries (`initdb`, `pg_ctl`) are found the way the platform installs them, in this
//! order (see [`find_binaries`]):
//!
//! 1. `PREVIEW_PG_BINDIR`, when set (it must then hold them: a wrong override is an error, not a
//!    fallback);
//! 2. `PATH`;
//! 3. `pg_config --bindir` (`pg_config` from `PATH`);
//! 4. the usual places: Debian/Ubuntu `/usr/lib/postgresql/*/bin`, PGDG RPMs `/usr/pgsql-*/bin`,
//!    Homebrew `/opt/homebrew/opt/postgresql@*/bin` and `/usr/local/opt/postgresql@*/bin`,
//!    Postgres.app; the newest version first.
//!
//! When none has them, [`Postgres::start`] installs the Debian package `postgresql` on Debian and
//! Ubuntu, if it may (as root, or in CI with password-less `sudo`; `PREVIEW_PG_INSTALL=0` forbids
//! it), so the README's test command passes on a fresh machine. Anywhere else the test fails with
//! what was searched and how to install PostgreSQL. It never skips silently: to run the suites
//! without PostgreSQL, skip its tests by name (`cargo test … -- --skip postgres`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The programs a cluster needs; both must be in one folder.
const REQUIRED: [&str; 2] = ["initdb", "pg_ctl"];

/// Where a folder of server binaries was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    /// The folder holding `initdb`, `pg_ctl` and `postgres`.
    pub dir: PathBuf,
    /// How it was found: `PREVIEW_PG_BINDIR`, `PATH`, `pg_config --bindir` or a known location.
    pub found_via: &'static str,
}

/// No folder holds the server binaries: what was searched, and how to get them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotFound {
    /// Each place looked at, with why it did not do.
    pub searched: Vec<String>,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "PostgreSQL server binaries (initdb, pg_ctl) not found; searched:"
        )?;
        for place in &self.searched {
            writeln!(f, "  - {place}")?;
        }
        write!(
            f,
            "install PostgreSQL: Debian/Ubuntu `sudo apt-get install postgresql` (run as root or in CI, \
             the tests do this themselves), Fedora/RHEL `sudo dnf install postgresql-server`, macOS \
             `brew install postgresql@16`; or point PREVIEW_PG_BINDIR at the folder holding initdb; \
             or run the other tests without these ones: `cargo test --workspace --all-features -- --skip postgres`"
        )
    }
}

impl std::error::Error for NotFound {}

/// Finds the server binaries, reading the environment through `env` (so tests can give their own
/// `PATH`); see the [module docs](self) for the order.
///
/// # Errors
///
/// [`NotFound`], listing every place searched. A set `PREVIEW_PG_BINDIR` that lacks the binaries
/// is reported as such, without looking elsewhere: an override that is wrong should be fixed, not
/// silently replaced by some other PostgreSQL.
pub fn find_binaries(env: &dyn Fn(&str) -> Option<OsString>) -> Result<Binaries, NotFound> {
    let mut searched = Vec::new();
    if let Some(dir) = env("PREVIEW_PG_BINDIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return match missing(&dir) {
            None => Ok(Binaries {
                dir,
                found_via: "PREVIEW_PG_BINDIR",
            }),
            Some(why) => Err(NotFound {
                searched: vec![format!("PREVIEW_PG_BINDIR={}: {why}", dir.display())],
            }),
        };
    }
    searched.push("PREVIEW_PG_BINDIR: not set".to_string());

    let path = env("PATH").unwrap_or_default();
    if let Some(initdb) = on_path(&path, "initdb") {
        // A symlink on PATH (e.g. /usr/local/bin/initdb → /usr/lib/postgresql/16/bin/initdb)
        // stands for the folder it points into, where pg_ctl and postgres live too.
        let dir = initdb
            .canonicalize()
            .unwrap_or(initdb)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        match missing(&dir) {
            None => {
                return Ok(Binaries {
                    dir,
                    found_via: "PATH",
                });
            }
            Some(why) => searched.push(format!("PATH: initdb in {}, but {why}", dir.display())),
        }
    } else {
        searched.push("PATH: no initdb".to_string());
    }

    match on_path(&path, "pg_config") {
        Some(pg_config) => match Command::new(&pg_config).arg("--bindir").output() {
            Ok(out) if out.status.success() => {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                match missing(&dir) {
                    None => {
                        return Ok(Binaries {
                            dir,
                            found_via: "pg_config --bindir",
                        });
                    }
                    Some(why) => searched.push(format!(
                        "pg_config --bindir ({}): {} ({why}; pg_config may come from the client \
                         library package alone)",
                        pg_config.display(),
                        dir.display()
                    )),
                }
            }
            Ok(out) => searched.push(format!(
                "pg_config --bindir ({}): exited with {}",
                pg_config.display(),
                out.status
            )),
            Err(e) => searched.push(format!("pg_config --bindir ({}): {e}", pg_config.display())),
        },
        None => searched.push("pg_config: not on PATH".to_string()),
    }

    for pattern in KNOWN_PLACES {
        let candidates = expand(pattern);
        if candidates.is_empty() {
            searched.push(format!("{pattern}: none"));
        }
        for dir in candidates {
            match missing(&dir) {
                None => {
                    return Ok(Binaries {
                        dir,
                        found_via: "a known location",
                    });
                }
                Some(why) => searched.push(format!("{}: {why}", dir.display())),
            }
        }
    }
    Err(NotFound { searched })
}

/// Where packages put the server binaries; `*` stands for a version folder, newest tried first.
const KNOWN_PLACES: [&str; 6] = [
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/opt/homebrew/opt/postgresql/bin",
    "/Applications/Postgres.app/Contents/Versions/latest/bin",
];

/// The folders matching `pattern` (at most one `*`, in a folder name), newest version first.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let Some((head, tail)) = pattern.split_once('*') else {
        let dir = PathBuf::from(pattern);
        return if dir.is_dir() { vec![dir] } else { vec![] };
    };
    let (parent, prefix) = match head.rsplit_once('/') {
        Some((parent, prefix)) => (parent, prefix),
        None => (".", head),
    };
    let (suffix, rest) = tail.split_once('/').unwrap_or((tail, ""));
    let Ok(entries) = std::fs::read_dir(parent) else {
        return vec![];
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let version = name.strip_prefix(prefix)?.strip_suffix(suffix)?.to_string();
            let dir = e.path().join(rest);
            dir.is_dir().then(|| (version_key(&version), dir))
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, dir)| dir).collect()
}

/// `"9.6"` → `[9, 6]`, so 16 sorts after 9.6.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// Why `dir` does not hold the server binaries, or `None` when it does.
fn missing(dir: &Path) -> Option<String> {
    let absent: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|tool| !is_executable(&dir.join(tool)))
        .collect();
    (!absent.is_empty()).then(|| format!("no {}", absent.join(", no ")))
}

fn on_path(path: &OsStr, tool: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

// ---------------------------------------------------------------------------------------------
// Installing it where the platform makes that one command.

/// Finds the binaries, installing PostgreSQL first where that is allowed (see the module docs).
///
/// # Panics
///
/// When PostgreSQL is neither found nor installable, with what was searched and what to do.
#[must_use]
pub fn binaries() -> Binaries {
    static FOUND: Mutex<Option<Binaries>> = Mutex::new(None);
    let mut found = FOUND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(b) = found.as_ref() {
        return b.clone();
    }
    let env = |k: &str| std::env::var_os(k);
    let b = match find_binaries(&env) {
        Ok(b) => b,
        Err(not_found) => match install(&env) {
            Ok(()) => find_binaries(&env)
                .unwrap_or_else(|e| panic!("the `postgresql` package was installed, but:\n{e}")),
            Err(why) => panic!("{not_found}\n(not installed automatically: {why})"),
        },
    };
    *found = Some(b.clone());
    b
}

/// Installs the Debian package `postgresql`, once across concurrent test processes.
fn install(env: &dyn Fn(&str) -> Option<OsString>) -> Result<(), String> {
    if env("PREVIEW_PG_INSTALL").is_some_and(|v| v == "0") {
        return Err("PREVIEW_PG_INSTALL=0".into());
    }
    if !Path::new("/etc/debian_version").exists() {
        return Err("not Debian or Ubuntu".into());
    }
    let path = env("PATH").unwrap_or_default();
    let apt = on_path(&path, "apt-get")
        .or_else(|| Some(PathBuf::from("/usr/bin/apt-get")).filter(|p| is_executable(p)))
        .ok_or("no apt-get")?;
    let root = run_text("id", &["-u"]).as_deref() == Some("0");
    let sudo = !root
        && env("CI").is_some_and(|v| !v.is_empty() && v != "false")
        && Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !root && !sudo {
        return Err("not root, and not CI with password-less sudo".into());
    }
    let lock_path = std::env::temp_dir().join("preview-testkit-postgresql-install.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    // Another test process may have installed it while this one waited for the lock.
    if find_binaries(env).is_ok() {
        return Ok(());
    }
    let apt_get = |args: &[&str]| -> Result<Output, String> {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive"])
                .arg(&apt);
            c
        } else {
            let mut c = Command::new(&apt);
            c.env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        cmd.args(args)
            .output()
            .map_err(|e| format!("{}: {e}", apt.display()))
    };
    // Printed so a slow first test run says why it is slow.
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "preview-testkit: PostgreSQL server binaries not found; installing the Debian package \
             `postgresql` (apt-get install -y postgresql; PREVIEW_PG_INSTALL=0 to forbid)"
        );
    }
    let install = [
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "postgresql",
    ];
    let out = apt_get(&install)?;
    if out.status.success() {
        return Ok(());
    }
    // A fresh machine may have no package lists yet.
    let update = apt_get(&["update", "-q"])?;
    let out = apt_get(&install)?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "apt-get install postgresql failed:\n{}{}{}",
        tail(&update.stderr),
        tail(&out.stdout),
        tail(&out.stderr)
    ))
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].join("\n") + "\n"
}

fn run_text(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// The cluster.

/// How clients authenticate to a [`Postgres`] cluster.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// Any password is accepted (`--auth=trust`): every derived credential works.
    Trust,
    /// SCRAM with this password for the superuser `appuser`.
    Password(&'a str),
}

/// A throwaway PostgreSQL cluster on `127.0.0.1`, stopped and deleted on drop.
///
/// The superuser is `appuser`. As root, the cluster runs as the `postgres` user (initdb refuses
/// root).
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// Starts a cluster with the binaries [`binaries`] finds (installing them where allowed), and
    /// creates `databases`.
    ///
    /// # Panics
    ///
    /// When PostgreSQL cannot be found or started, with the reason.
    #[must_use]
    pub fn start(auth: Auth<'_>, databases: &[&str]) -> Postgres {
        Self::start_with(&binaries(), auth, databases)
    }

    /// [`Postgres::start`] with given binaries.
    ///
    /// # Panics
    ///
    /// When the cluster cannot be created or started, with the tool's output.
    #[must_use]
    pub fn start_with(binaries: &Binaries, auth: Auth<'_>, databases: &[&str]) -> Postgres {
        let dir = temp_dir("pg");
        let as_postgres = run_text("id", &["-u"]).as_deref() == Some("0");
        let owner = as_postgres.then(|| {
            let id = |flag: &str| -> u32 {
                run_text("id", &[flag, "postgres"])
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| {
                        panic!(
                            "running as root needs a `postgres` user to run the cluster as (initdb \
                             refuses root; the Debian package `postgresql` creates the user)"
                        )
                    })
            };
            (id("-u"), id("-g"))
        });
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
        }
        let pg = Postgres {
            bin: binaries.dir.clone(),
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = pg.dir.join("data").to_string_lossy().to_string();
        let mut initdb = vec![
            "-D".to_string(),
            data.clone(),
            "-U".into(),
            "appuser".into(),
        ];
        match auth {
            Auth::Trust => initdb.push("--auth=trust".into()),
            Auth::Password(password) => {
                let pwfile = pg.dir.join("pw");
                std::fs::write(&pwfile, password)
                    .unwrap_or_else(|e| panic!("write {}: {e}", pwfile.display()));
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))
                        .unwrap_or_else(|e| panic!("chown {}: {e}", pwfile.display()));
                }
                initdb.push("--auth=scram-sha-256".into());
                initdb.push(format!("--pwfile={}", pwfile.display()));
            }
        }
        initdb.push("--no-sync".into());
        pg.run(
            "initdb",
            &initdb.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        pg.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &pg.dir.join("log").to_string_lossy(),
                "-o",
                &format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    pg.port,
                    pg.dir.to_string_lossy()
                ),
                "-w",
                "start",
            ],
        );
        for db in databases {
            pg.create_database(db, auth);
        }
        pg
    }

    /// The TCP port the cluster listens on (`127.0.0.1`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`); the folder goes on drop.
    ///
    /// # Panics
    ///
    /// When `pg_ctl` fails.
    pub fn stop(&self) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    fn create_database(&self, name: &str, auth: Auth<'_>) {
        // `createdb` ships with the server binaries on every platform above (Debian keeps a copy
        // in the versioned bin folder); PGPASSWORD only reaches this one child.
        let mut cmd = self.command("createdb");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "appuser",
            name,
        ]);
        if let Auth::Password(password) = auth {
            cmd.env("PGPASSWORD", password);
        }
        check("createdb", cmd.output());
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            // `runuser` (util-linux) lives in /usr/sbin, which a CI PATH may lack.
            let runuser = if Path::new("/usr/sbin/runuser").exists() {
                "/usr/sbin/runuser"
            } else {
                "runuser"
            };
            let mut c = Command::new(runuser);
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        check(tool, self.command(tool).args(args).output());
    }
}

fn check(tool: &str, out: std::io::Result<Output>) {
    let out = out.unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh folder under the system temp dir.
///
/// # Panics
///
/// When it cannot be created.
#[must_use]
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("preview-test-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A TCP port free on `127.0.0.1` right now.
///
/// # Panics
///
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"))
}
