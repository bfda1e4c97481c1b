//! Finding PostgreSQL's server binaries the way each platform installs them: through `PATH`,
//! `pg_config --bindir`, an override, then the known folders; and a real cluster started from
//! binaries found on `PATH` alone.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use preview_testkit::postgres::{Auth, Binaries, Postgres, binaries, find_binaries, temp_dir};

fn executable(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

#[test]
fn found_on_path_through_a_symlink_as_the_folder_it_points_into() {
    let root = temp_dir("pgfind-path");
    let real = root.join("opt/pg/17/bin");
    executable(&real.join("initdb"), "exit 0");
    executable(&real.join("pg_ctl"), "exit 0");
    let on_path = root.join("bin");
    std::fs::create_dir_all(&on_path).unwrap();
    std::os::unix::fs::symlink(real.join("initdb"), on_path.join("initdb")).unwrap();
    let path = std::env::join_paths([root.join("empty"), on_path]).unwrap();
    let found = find_binaries(&env_of(&[("PATH", Path::new(&path))])).unwrap();
    assert_eq!(
        found,
        Binaries {
            dir: real.canonicalize().unwrap(),
            found_via: "PATH"
        }
    );
}

#[test]
fn found_through_pg_config_bindir() {
    let root = temp_dir("pgfind-config");
    let server = root.join("server/bin");
    executable(&server.join("initdb"), "exit 0");
    executable(&server.join("pg_ctl"), "exit 0");
    let client = root.join("client");
    executable(
        &client.join("pg_config"),
        &format!(
            "[ \"$1\" = --bindir ] && echo '{}' || exit 1",
            server.display()
        ),
    );
    let found = find_binaries(&env_of(&[("PATH", &client)])).unwrap();
    assert_eq!(found.dir, server);
    assert_eq!(found.found_via, "pg_config --bindir");
}

#[test]
fn a_wrong_override_is_an_error_naming_it_not_a_fallback() {
    let root = temp_dir("pgfind-override");
    executable(&root.join("initdb"), "exit 0");
    let err = find_binaries(&env_of(&[("PREVIEW_PG_BINDIR", &root)])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("PREVIEW_PG_BINDIR="), "{text}");
    assert!(text.contains("no pg_ctl"), "{text}");
    assert_eq!(err.searched.len(), 1, "{text}");

    executable(&root.join("pg_ctl"), "exit 0");
    let found = find_binaries(&env_of(&[("PREVIEW_PG_BINDIR", &root)])).unwrap();
    assert_eq!((found.dir, found.found_via), (root, "PREVIEW_PG_BINDIR"));
}

#[test]
fn a_pg_config_from_the_client_package_alone_is_explained() {
    let root = temp_dir("pgfind-client-only");
    let empty = root.join("nothing-here");
    std::fs::create_dir_all(&empty).unwrap();
    executable(
        &root.join("bin/pg_config"),
        &format!("echo '{}'", empty.display()),
    );
    match find_binaries(&env_of(&[("PATH", &root.join("bin"))])) {
        // The machine running the test may have PostgreSQL in a known location.
        Ok(found) => assert_eq!(found.found_via, "a known location"),
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains("client library package"), "{text}");
            assert!(text.contains("apt-get install postgresql"), "{text}");
            assert!(text.contains("brew install"), "{text}");
            assert!(text.contains("--skip postgres"), "{text}");
        }
    }
}

/// A real cluster from binaries found on `PATH` only: a folder of symlinks to the real ones,
/// which is how `/usr/local/bin` or a Nix profile presents them.
#[test]
fn postgres_starts_from_binaries_found_on_path() {
    let real = binaries();
    let shims = temp_dir("pgfind-shims");
    for tool in ["initdb", "pg_ctl", "postgres", "createdb"] {
        std::os::unix::fs::symlink(real.dir.join(tool), shims.join(tool)).unwrap();
    }
    let found = find_binaries(&env_of(&[("PATH", &shims)])).unwrap();
    assert_eq!(found.found_via, "PATH");
    assert_eq!(found.dir, real.dir.canonicalize().unwrap());
    let pg = Postgres::start_with(&found, Auth::Password("pw"), &["made_here"]);
    let listening = std::net::TcpStream::connect(("127.0.0.1", pg.port()));
    assert!(listening.is_ok(), "{listening:?}");
    let _ = std::fs::remove_dir_all(PathBuf::from(&shims));
}
