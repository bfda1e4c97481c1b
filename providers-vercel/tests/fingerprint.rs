//! Keyed ownership fingerprints (issue 14, item 8): the `fp=` in a var's comment is an HMAC under a
//! key derived from the master secret, so a guess of a write-only value cannot be confirmed from the
//! comment; vars carrying the unkeyed fingerprint of earlier versions stay ours and are rewritten
//! once. Every body is checked against the spec.

mod common;

use common::*;
use preview_core::secrecy::SecretString;
use preview_core::{
    AppHost, AppSpec, DerivedSecrets, DigestKey, EnvVar, FINGERPRINT_KEY, Outcome, SecretSource,
    Value,
};
use sha2::{Digest, Sha256};

const MASTER: &str = "fingerprint-test-master-secret-0123456789";
/// A low-entropy value a team might import from the environment and store write-only.
const WEAK: &str = "hunter2";

fn key_of(master: &str) -> DigestKey {
    DerivedSecrets::new(SecretString::from(master.to_string()))
        .expect("a long enough master")
        .digest_key(FINGERPRINT_KEY)
        .expect("derivable")
        .expect("a derived source has a key")
}

/// The fingerprint of earlier versions: SHA-256 of the length-prefixed (env, key, type, value),
/// 64 bits. Anyone who can read the comment can compute it for a guess.
fn unkeyed(env: &str, key: &str, kind: &str, value: &str) -> String {
    let mut h = Sha256::new();
    for part in [env, key, kind, value] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn keyed(key: &DigestKey, env: &str, var: &str, kind: &str, value: &str) -> String {
    key.hex(&[env, var, kind, value], 16)
}

/// The spec of the test: a plain var, a generated secret, and a weak imported one stored
/// write-only, fingerprinted under the master's key.
fn keyed_spec(master: &str) -> AppSpec {
    let mut s = spec(
        API,
        Some("pr-42-api.preview.inkeep.com"),
        vec![
            var("SPICEDB_TLS_ENABLED", "false"),
            secret("BETTER_AUTH_SECRET", SECRET),
            EnvVar {
                key: "DB_PASSWORD".into(),
                value: Value::Secret(WEAK.to_string().into()),
                sensitive: true,
            },
        ],
    );
    s.fingerprint_key = Some(key_of(master));
    s
}

fn fp_of(comment: &str) -> &str {
    comment
        .split_whitespace()
        .find_map(|f| f.strip_prefix("fp="))
        .unwrap_or_else(|| panic!("no fingerprint in {comment:?}"))
}

fn value_of(spec: &AppSpec, key: &str) -> (String, String) {
    let v = spec
        .env
        .iter()
        .find(|v| v.key == key)
        .unwrap_or_else(|| panic!("no {key} in the spec"));
    let kind = if v.sensitive {
        "sensitive"
    } else {
        "encrypted"
    };
    (kind.to_string(), v.value.expose().to_string())
}

#[tokio::test]
async fn a_fingerprint_is_reproducible_only_with_the_master_secret() {
    let fake = fake();
    let server = fake.start().await;
    let s = keyed_spec(MASTER);
    host(&server)
        .apply_app(&name(42), &s)
        .await
        .expect("applied");

    let envs = fake.envs(API);
    assert_eq!(envs.len(), 3);
    for e in &envs {
        let comment = e.comment.as_deref().expect("a marker");
        let fp = fp_of(comment);
        let (kind, value) = value_of(&s, &e.key);
        assert_eq!(e.kind, kind);
        // With the master secret: the fingerprint is recomputed exactly.
        assert_eq!(
            fp,
            keyed(&key_of(MASTER), "pr-42-agents", &e.key, &kind, &value),
            "{}",
            e.key
        );
        // Without it: neither the unkeyed digest of the value nor a key from another master
        // gives it (nor any prefix of it).
        let without = [
            unkeyed("pr-42-agents", &e.key, &kind, &value),
            keyed(
                &key_of("another-master-secret-of-enough-length-xyz"),
                "pr-42-agents",
                &e.key,
                &kind,
                &value,
            ),
            keyed(
                &DigestKey::from_bytes([0; 32]),
                "pr-42-agents",
                &e.key,
                &kind,
                &value,
            ),
        ];
        for guess in &without {
            assert!(!fp.starts_with(&guess[..16]), "{}: {guess} vs {fp}", e.key);
        }
    }

    // The attack the issue describes, against the write-only weak value: hashing guesses
    // confirms nothing any more, while the same guesses did confirm the unkeyed fingerprint.
    let weak = envs
        .iter()
        .find(|e| e.key == "DB_PASSWORD")
        .expect("the weak var");
    assert_eq!(weak.kind, "sensitive");
    let fp = fp_of(weak.comment.as_deref().expect("a marker"));
    let guesses = ["password", "123456", "letmein", "hunter1", WEAK, "qwerty"];
    let confirmed: Vec<&str> = guesses
        .iter()
        .copied()
        .filter(|g| unkeyed("pr-42-agents", "DB_PASSWORD", "sensitive", g) == fp)
        .collect();
    assert!(confirmed.is_empty(), "{confirmed:?}");
    let old_comment = unkeyed("pr-42-agents", "DB_PASSWORD", "sensitive", WEAK);
    let confirmed_before: Vec<&str> = guesses
        .iter()
        .copied()
        .filter(|g| unkeyed("pr-42-agents", "DB_PASSWORD", "sensitive", g) == old_comment)
        .collect();
    assert_eq!(confirmed_before, [WEAK], "the old scheme was guessable");
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn the_key_is_the_masters_so_another_process_sees_the_vars_unchanged() {
    let fake = fake();
    let server = fake.start().await;
    host(&server)
        .apply_app(&name(42), &keyed_spec(MASTER))
        .await
        .expect("first");
    let before = fake.mutations().len();
    // A new host (another run of the CLI): the same master gives the same key.
    let changes = host(&server)
        .apply_app(&name(42), &keyed_spec(MASTER))
        .await
        .expect("second");
    assert!(
        changes.iter().all(|c| c.outcome == Outcome::Unchanged),
        "{changes:?}"
    );
    assert_eq!(fake.mutations().len(), before, "{:?}", fake.mutations());

    // A spec without a key falls back to the host's own: stable for that host only, so another
    // host rewrites the vars once (never compares against a digest it cannot reproduce).
    let mut unkeyed_spec = keyed_spec(MASTER);
    unkeyed_spec.fingerprint_key = None;
    let first = host(&server);
    let changes = first
        .apply_app(&name(42), &unkeyed_spec)
        .await
        .expect("own key");
    assert!(
        changes
            .iter()
            .filter(|c| c.kind == "env_var")
            .all(|c| c.outcome == Outcome::Updated),
        "{changes:?}"
    );
    let changes = first
        .apply_app(&name(42), &unkeyed_spec)
        .await
        .expect("own key again");
    assert!(
        changes.iter().all(|c| c.outcome == Outcome::Unchanged),
        "{changes:?}"
    );
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn vars_with_the_unkeyed_fingerprint_stay_ours_and_are_rewritten_once() {
    let fake = fake();
    let server = fake.start().await;
    let s = keyed_spec(MASTER);
    host(&server)
        .apply_app(&name(42), &s)
        .await
        .expect("applied");
    // As an earlier version left them: same values, the unkeyed fingerprint.
    let mut legacy = Vec::new();
    for e in fake.envs(API) {
        let (kind, value) = value_of(&s, &e.key);
        let comment = format!(
            "managed-by:preview env=pr-42-agents pr=42 fp={}",
            unkeyed("pr-42-agents", &e.key, &kind, &value)
        );
        fake.set_env_comment(API, &e.id, &comment);
        legacy.push(comment);
    }
    assert_eq!(legacy.len(), 3);

    // Still ours: status and sweep find them by the marker alone.
    let status = host(&server)
        .get_app(&name(42), &s.target)
        .await
        .expect("status")
        .expect("ours");
    assert_eq!(status.env_keys.len(), 3, "{status:?}");
    let owned = host(&server)
        .list_apps(&[API.to_string()])
        .await
        .expect("listed");
    assert_eq!(
        owned
            .iter()
            .filter(|o| o.resource.starts_with("env_var"))
            .count(),
        3,
        "{owned:?}"
    );

    // Rewritten once, in one upsert, with the keyed fingerprint.
    let before = fake.mutations().len();
    let changes = host(&server)
        .apply_app(&name(42), &s)
        .await
        .expect("migrated");
    let vars: Vec<Outcome> = changes
        .iter()
        .filter(|c| c.kind == "env_var")
        .map(|c| c.outcome)
        .collect();
    assert_eq!(vars, [Outcome::Updated; 3], "{changes:?}");
    let writes = &fake.mutations()[before..];
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].path, "/v10/projects/prj_api/env");
    for e in fake.envs(API) {
        let (kind, value) = value_of(&s, &e.key);
        let comment = e.comment.as_deref().expect("a marker");
        assert_eq!(
            fp_of(comment),
            keyed(&key_of(MASTER), "pr-42-agents", &e.key, &kind, &value)
        );
    }

    // After that, nothing to do.
    let before = fake.mutations().len();
    let changes = host(&server).apply_app(&name(42), &s).await.expect("again");
    assert!(
        changes.iter().all(|c| c.outcome == Outcome::Unchanged),
        "{changes:?}"
    );
    assert_eq!(fake.mutations().len(), before);

    // And a teardown (which has no key) removes vars carrying either fingerprint.
    let ids: Vec<String> = fake.envs(API).iter().map(|e| e.id.clone()).collect();
    fake.set_env_comment(API, &ids[0], &legacy[0]);
    host(&server)
        .delete_app(&name(42), &s.target)
        .await
        .expect("torn down");
    assert!(fake.envs(API).is_empty(), "{:?}", fake.envs(API));
    check_exchanges(&fake.exchanges());
}
