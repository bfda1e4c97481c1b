//! `[secrets.NAME]`: values generated per environment, or imported from a variable.

use std::collections::BTreeMap;

use toml::Spanned;

use super::loader::Loader;
use super::raw::RawSecret;
use crate::error::Result;
use crate::secret::SecretKind;

/// A generated or imported secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretDef {
    /// Generated per environment.
    Generated {
        /// What it is for.
        kind: SecretKind,
        /// Bytes of entropy.
        bytes: usize,
        /// Bump to rotate.
        rotation: u32,
    },
    /// Read from an environment variable at deploy time (e.g. a repository secret).
    FromEnv {
        /// The variable.
        var: String,
    },
}

/// Every secret, by name.
pub(super) fn secrets(
    l: &Loader<'_>,
    raw: &BTreeMap<String, Spanned<RawSecret>>,
) -> Result<BTreeMap<String, SecretDef>> {
    let mut secrets = BTreeMap::new();
    for (name, s) in raw {
        secrets.insert(name.clone(), secret(l, name, s)?);
    }
    Ok(secrets)
}

fn secret(l: &Loader<'_>, name: &str, s: &Spanned<RawSecret>) -> Result<SecretDef> {
    let key = format!("secrets.{name}");
    let span = s.span();
    let sd = s.get_ref();
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(l.err(
            &span,
            &key,
            "secret names use lowercase letters, digits and '_'",
        ));
    }
    if let Some(var) = &sd.from_env {
        if sd.kind.is_some() || sd.bytes.is_some() {
            return Err(l.err(
                &span,
                &key,
                "`from_env` secrets are not generated: remove `kind` and `bytes`",
            ));
        }
        l.env_key(var.get_ref(), &var.span(), &format!("{key}.from_env"))?;
        return Ok(SecretDef::FromEnv {
            var: var.get_ref().clone(),
        });
    }
    let kind = sd.kind.unwrap_or(SecretKind::Password);
    let bytes = match &sd.bytes {
        Some(b) => {
            let n = *b.get_ref();
            if n < kind.min_bytes() || n > 64 {
                return Err(l.err(&b.span(), &format!("{key}.bytes"), format!(
                    "{n} bytes is out of range for a {kind:?} secret: use {} to 64 ({} bits minimum)",
                    kind.min_bytes(), kind.min_bytes() * 8
                )));
            }
            n
        }
        None => kind.min_bytes(),
    };
    Ok(SecretDef::Generated {
        kind,
        bytes,
        rotation: sd.rotation,
    })
}
