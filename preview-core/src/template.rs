//! `${…}` templates in `preview.toml`.
//!
//! A template is literal text with references such as `${pr.number}`, `${secrets.pg_password}` or
//! `${services.manage.url}`; `$${` is a literal `${`. A lone `$` (as in a shell `$VAR`) is literal.
//! References are checked when the configuration is loaded ([`crate::config`]); rendering a value
//! that involves a secret yields a [`Value::Secret`], so secrecy survives interpolation.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};

use crate::name::PreviewName;

/// A rendered value: plain text, or a secret (because a secret went into it).
#[derive(Clone)]
pub enum Value {
    /// Not sensitive.
    Plain(String),
    /// Sensitive: `Debug`, `Display` and `Serialize` show `<redacted>`.
    Secret(SecretString),
}

impl Value {
    /// Whether the value is sensitive.
    pub fn is_secret(&self) -> bool {
        matches!(self, Value::Secret(_))
    }

    /// The text, exposed. Call only where the value leaves the process (a request body, a child's env).
    pub fn expose(&self) -> &str {
        match self {
            Value::Plain(s) => s,
            Value::Secret(s) => s.expose_secret(),
        }
    }

    /// Equality of the underlying text (constant-time is not needed: both sides are ours).
    pub fn same_as(&self, other: &Value) -> bool {
        self.is_secret() == other.is_secret() && self.expose() == other.expose()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(s) => f.debug_tuple("Plain").field(s).finish(),
            Value::Secret(_) => f.write_str("Secret(<redacted>)"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(s) => f.write_str(s),
            Value::Secret(_) => f.write_str("<redacted>"),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Plain(v) => s.serialize_str(v),
            Value::Secret(_) => s.serialize_str("<redacted>"),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Plain(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Plain(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Ref(String),
}

/// A parsed template.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl Template {
    /// Parses `source`; the error says what is malformed.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut rest = source;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(r) = after.strip_prefix("$${") {
                lit.push_str("${");
                rest = r;
            } else if let Some(r) = after.strip_prefix("${") {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("unclosed `${{` in {source:?}"))?;
                let path = r[..end].trim();
                if path.is_empty()
                    || path.split('.').any(|p| {
                        p.is_empty()
                            || !p
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    })
                {
                    return Err(format!(
                        "`${{{}}}` is not a valid reference: use dotted names such as `${{pr.number}}` (write `$${{` for a literal `${{`)",
                        &r[..end]
                    ));
                }
                if !lit.is_empty() {
                    segments.push(Segment::Lit(std::mem::take(&mut lit)));
                }
                segments.push(Segment::Ref(path.to_string()));
                rest = &r[end + 1..];
            } else {
                lit.push('$');
                rest = &after[1..];
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Ok(Self {
            source: source.to_string(),
            segments,
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The references, in order.
    pub fn refs(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Ref(r) => Some(r.as_str()),
            Segment::Lit(_) => None,
        })
    }

    /// Renders against `scope`.
    ///
    /// # Errors
    /// The first reference the scope does not define (configuration loading rules this out), or a
    /// secret whose value is not known (plan mode).
    pub fn render(&self, scope: &Scope) -> Result<Value, String> {
        let mut out = String::new();
        let mut secret = false;
        for seg in &self.segments {
            match seg {
                Segment::Lit(l) => out.push_str(l),
                Segment::Ref(r) => match scope.values.get(r) {
                    Some(Entry::Plain(v)) => out.push_str(v),
                    Some(Entry::Secret { value: Some(v), .. }) => {
                        secret = true;
                        out.push_str(v.expose_secret());
                    }
                    Some(Entry::Secret { value: None, .. }) => {
                        return Err(format!("the value of `${{{r}}}` is not known yet"));
                    }
                    None => return Err(format!("`${{{r}}}` is not defined")),
                },
            }
        }
        Ok(if secret {
            Value::Secret(SecretString::from(out))
        } else {
            Value::Plain(out)
        })
    }

    /// Renders for display: secrets appear as `<secret:LABEL>`, unknown values as `<NAME>`.
    pub fn render_display(&self, scope: &Scope) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::Lit(l) => out.push_str(l),
                Segment::Ref(r) => match scope.values.get(r) {
                    Some(Entry::Plain(v)) => out.push_str(v),
                    Some(Entry::Secret {
                        shown: Some(shown), ..
                    }) => out.push_str(shown),
                    Some(Entry::Secret { label, .. }) => {
                        out.push_str("<secret:");
                        out.push_str(label);
                        out.push('>');
                    }
                    None => {
                        out.push('<');
                        out.push_str(r);
                        out.push('>');
                    }
                },
            }
        }
        out
    }

    /// Whether rendering involves a secret.
    pub fn is_secret(&self, scope: &Scope) -> bool {
        self.refs()
            .any(|r| matches!(scope.values.get(r), Some(Entry::Secret { .. })))
    }
}

#[derive(Clone)]
enum Entry {
    Plain(String),
    Secret {
        label: String,
        value: Option<SecretString>,
        shown: Option<String>,
    },
}

/// The values templates can reference, by dotted path. `Debug` shows paths and plain values only.
#[derive(Clone, Default)]
pub struct Scope {
    values: BTreeMap<String, Entry>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.values {
            match v {
                Entry::Plain(p) => m.entry(k, p),
                Entry::Secret { .. } => m.entry(k, &"<redacted>"),
            };
        }
        m.finish()
    }
}

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines a plain value.
    pub fn plain(&mut self, path: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.values.insert(path.into(), Entry::Plain(value.into()));
        self
    }

    /// Defines a secret; `value` is `None` where it is not known (plan mode). `label` names it in
    /// displays (`<secret:label>`).
    pub fn secret(
        &mut self,
        path: impl Into<String>,
        label: impl Into<String>,
        value: Option<SecretString>,
    ) -> &mut Self {
        self.values.insert(
            path.into(),
            Entry::Secret {
                label: label.into(),
                value,
                shown: None,
            },
        );
        self
    }

    /// Defines a secret whose value is unknown (plan mode) but whose shape can be shown, e.g.
    /// `postgresql://app:<secret:pg_password>@host:5432/db`.
    pub fn secret_shape(&mut self, path: impl Into<String>, shown: impl Into<String>) -> &mut Self {
        let path = path.into();
        self.values.insert(
            path.clone(),
            Entry::Secret {
                label: path,
                value: None,
                shown: Some(shown.into()),
            },
        );
        self
    }

    /// Defines `path` from a rendered value, keeping its secrecy.
    pub fn value(
        &mut self,
        path: impl Into<String>,
        label: impl Into<String>,
        value: Value,
    ) -> &mut Self {
        match value {
            Value::Plain(p) => self.plain(path, p),
            Value::Secret(s) => self.secret(path, label, Some(s)),
        }
    }

    /// Whether `path` is defined.
    pub fn contains(&self, path: &str) -> bool {
        self.values.contains_key(path)
    }

    /// The defined paths.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

/// The values every environment has from its identity alone: `pr.number`, `env.name` and, when
/// the repository is known, `repo.owner`, `repo.name` and `repo.full_name`.
pub(crate) fn identity_scope(name: &PreviewName, repo: Option<&str>) -> Scope {
    let mut s = Scope::new();
    s.plain("pr.number", name.pr().to_string())
        .plain("env.name", name.as_str());
    if let Some(repo) = repo {
        let (owner, short) = repo.split_once('/').unwrap_or(("", repo));
        s.plain("repo.owner", owner)
            .plain("repo.name", short)
            .plain("repo.full_name", repo);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references_literals_and_escapes() {
        let t = Template::parse("pr-${pr.number}-api.${ base }.com $HOME $${x}").unwrap();
        assert_eq!(t.refs().collect::<Vec<_>>(), vec!["pr.number", "base"]);
        let mut s = Scope::new();
        s.plain("pr.number", "42").plain("base", "example");
        assert_eq!(
            t.render(&s).unwrap().expose(),
            "pr-42-api.example.com $HOME ${x}"
        );
    }

    #[test]
    fn malformed_templates_are_rejected() {
        assert!(
            Template::parse("${pr.number")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(Template::parse("${}").is_err());
        assert!(Template::parse("${a..b}").is_err());
        assert!(Template::parse("${a b}").is_err());
        assert!(Template::parse("${$(rm -rf)}").is_err());
    }

    #[test]
    fn secrets_stay_secret_through_interpolation() {
        let t = Template::parse("postgresql://u:${secrets.pw}@h/db").unwrap();
        let mut s = Scope::new();
        s.secret("secrets.pw", "pw", Some(SecretString::from("SENTINEL")));
        let v = t.render(&s).unwrap();
        assert!(v.is_secret());
        assert_eq!(v.expose(), "postgresql://u:SENTINEL@h/db");
        assert!(!format!("{v:?} {v}").contains("SENTINEL"));
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"<redacted>\"");
        assert_eq!(t.render_display(&s), "postgresql://u:<secret:pw>@h/db");
        assert!(!format!("{s:?}").contains("SENTINEL"));
    }

    #[test]
    fn unknown_and_unresolved_references_are_errors() {
        let t = Template::parse("${nope}").unwrap();
        assert!(t.render(&Scope::new()).unwrap_err().contains("not defined"));
        let mut s = Scope::new();
        s.secret("nope", "nope", None);
        assert!(t.render(&s).unwrap_err().contains("not known"));
    }
}
