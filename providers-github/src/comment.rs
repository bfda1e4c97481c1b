//! The sticky comment: its hidden marker and its Markdown.
//!
//! Untrusted text (branch names, titles, error messages, app labels) is made inert: every ASCII
//! punctuation character becomes an HTML character reference, so no Markdown, HTML, backtick,
//! mention or `::workflow-command::` survives; control, zero-width and bidi characters are dropped.
//! URLs are shown only when they parse as `http(s)` URLs, without user info.

use preview_core::command::Command;
use preview_core::{
    Link, PhaseTiming, PreviewName, Report, ReportKind, ReportState, ReportSummary,
};

/// Who authors comments made with the Actions `GITHUB_TOKEN` (which may not read `GET /user`).
pub const ACTIONS_BOT: &str = "github-actions[bot]";

/// The marker's prefix; a comment is ours only if it also has our author.
pub(crate) const MARKER_PREFIX: &str = "<!-- preview:env=";

const MAX_INLINE: usize = 200;
const MAX_ERROR: usize = 2000;
/// Where the run's phase timings begin: the last section of a comment, so comparing two
/// comments can leave it out (see [`without_stamp`]).
const TIMINGS_START: &str = "\n<details><summary>Phase timings</summary>\n";

fn kind_word(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Deploying => "deploying",
        ReportKind::Ready => "ready",
        ReportKind::Failed => "failed",
        ReportKind::TornDown => "torn_down",
        ReportKind::Skipped => "skipped",
        ReportKind::Sleeping => "sleeping",
        ReportKind::Reset => "reset",
    }
}

fn parse_kind(word: &str) -> Option<ReportKind> {
    Some(match word {
        "deploying" => ReportKind::Deploying,
        "ready" => ReportKind::Ready,
        "failed" => ReportKind::Failed,
        "torn_down" => ReportKind::TornDown,
        "skipped" => ReportKind::Skipped,
        "sleeping" => ReportKind::Sleeping,
        "reset" => ReportKind::Reset,
        _ => return None,
    })
}

/// A commit SHA we are willing to echo verbatim: lowercase hex, as GitHub writes them (so it also
/// compares equal to the `sha` of the deployments GitHub lists).
pub(crate) fn clean_sha(sha: Option<&str>) -> Option<&str> {
    sha.filter(|s| {
        (7..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A report digest we are willing to read back: 16 lowercase hex digits (see `Report::digest`).
fn clean_digest(d: &str) -> Option<&str> {
    (d.len() == 16
        && d.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(d)
}

/// The hidden marker naming the environment and summarising the state; `digest` is the report's
/// [`Report::digest`], so a re-run can tell the comment already says exactly this.
pub(crate) fn marker(
    name: &PreviewName,
    kind: ReportKind,
    sha: Option<&str>,
    digest: Option<&str>,
) -> String {
    let mut m = format!("{MARKER_PREFIX}{name} state={}", kind_word(kind));
    if let Some(sha) = clean_sha(sha) {
        m.push_str(" sha=");
        m.push_str(sha);
    }
    if let Some(d) = digest.and_then(clean_digest) {
        m.push_str(" digest=");
        m.push_str(d);
    }
    m.push_str(" -->");
    m
}

/// `marker` with the start of the run that made the report (`run=<Unix milliseconds>`), which
/// decides whether a later report may replace it (`Report::started_at`).
pub(crate) fn stamped(marker: String, started_at: Option<jiff::Timestamp>) -> String {
    match (started_at, marker.strip_suffix(" -->")) {
        (Some(at), Some(head)) => format!("{head} run={} -->", at.as_millisecond()),
        _ => marker,
    }
}

/// `body` without what describes the run that wrote it (the run stamp of its marker and the
/// phase timings): two comments that differ only in which run wrote them say the same thing
/// (re-publishing it is no change).
pub(crate) fn without_stamp(body: &str) -> String {
    let body = body.find(TIMINGS_START).map_or(body, |i| &body[..i]);
    let (first, rest) = body.split_once('\n').unwrap_or((body, ""));
    let first = match first.find(" run=") {
        Some(i) if first.starts_with(MARKER_PREFIX) => {
            let tail = &first[i + 5..];
            let end = tail.find(' ').unwrap_or(tail.len());
            format!("{}{}", &first[..i], &tail[end..])
        }
        _ => first.to_string(),
    };
    if body.contains('\n') {
        format!("{first}\n{rest}")
    } else {
        first
    }
}

/// Reads the marker of `name` back from a comment body; `None` when the body has no marker for
/// exactly this environment.
pub(crate) fn parse_marker(body: &str, name: &PreviewName) -> Option<ReportSummary> {
    let line = body.lines().next()?.trim();
    let rest = line.strip_prefix(MARKER_PREFIX)?.strip_suffix("-->")?;
    let mut words = rest.split_whitespace();
    if words.next()? != name.as_str() {
        return None;
    }
    let mut kind = None;
    let mut commit = None;
    let mut digest = None;
    let mut started_at = None;
    for w in words {
        if let Some(s) = w.strip_prefix("state=") {
            kind = parse_kind(s);
        } else if let Some(s) = w.strip_prefix("sha=") {
            commit = clean_sha(Some(s)).map(str::to_string);
        } else if let Some(s) = w.strip_prefix("digest=") {
            digest = clean_digest(s).map(str::to_string);
        } else if let Some(s) = w.strip_prefix("run=") {
            started_at = s
                .parse::<i64>()
                .ok()
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
        }
    }
    Some(ReportSummary {
        kind: kind?,
        commit,
        digest,
        started_at,
    })
}

/// Whether a character could change how text renders while being invisible or reordering.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// One line of untrusted text, inert in Markdown and HTML, at most `max` characters.
pub(crate) fn inert(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    for c in text.chars() {
        if count == max {
            out.push('…');
            break;
        }
        count += 1;
        if c == '\n' || c == '\r' || c == '\t' {
            out.push(' ');
        } else if is_hidden(c) {
            count -= 1;
        } else if c.is_ascii_punctuation() {
            out.push_str(&format!("&#{};", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Multi-line untrusted text: each line inert, joined with `<br>`.
fn inert_lines(text: &str, max: usize) -> String {
    let clipped: String = text.chars().take(max).collect();
    let mut lines: Vec<String> = clipped
        .lines()
        .map(|l| inert(l, max))
        .filter(|l| !l.trim().is_empty())
        .collect();
    if text.chars().count() > max {
        lines.push("…".into());
    }
    lines.join("<br>")
}

/// An `http(s)` URL safe to put in a Markdown link destination, without user info.
pub(crate) fn safe_url(raw: &str) -> Option<String> {
    let mut url = url::Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    // User info could be a credential; a link never needs it.
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    let mut out = String::new();
    for c in url.as_str().chars() {
        match c {
            '|' | '<' | '>' | ' ' | '`' | '"' | '\'' | '(' | ')' | '[' | ']' | '\\' => {
                out.push_str(&format!("%{:02X}", c as u32));
            }
            c => out.push(c),
        }
    }
    Some(out)
}

fn link(label: &str, url: &str) -> Option<String> {
    Some(format!(
        "[{}]({})",
        inert(label, MAX_INLINE),
        safe_url(url)?
    ))
}

/// The comment body for a report; `commands` (help lines of our own, Markdown) are listed at
/// its end when there are any.
pub(crate) fn comment(report: &Report, commands: &[String]) -> String {
    let name = &report.name;
    let kind = report.state.kind();
    let sha = clean_sha(report.commit.as_deref());
    let mut out = stamped(
        marker(name, kind, report.commit.as_deref(), Some(&report.digest())),
        report.started_at,
    );
    out.push('\n');
    let headline = match &report.state {
        ReportState::Deploying => format!("### ⏳ Preview environment `{name}` is deploying"),
        ReportState::Ready { .. } => format!("### ✅ Preview environment `{name}` is ready"),
        ReportState::Failed { .. } => format!("### ❌ Preview environment `{name}` failed"),
        ReportState::Skipped { .. } => format!("### 💤 No preview environment `{name}`"),
        ReportState::TornDown | ReportState::Removed { .. } => {
            format!("### 🧹 Preview environment `{name}` was removed")
        }
        ReportState::Sleeping { .. } => format!("### 💤 Preview environment `{name}` is sleeping"),
        ReportState::Reset => format!("### ⚠️ Preview environment `{name}` lost its data"),
    };
    out.push_str(&headline);
    out.push_str("\n\n");

    let mut facts: Vec<(String, String)> = Vec::new();
    if let Some(branch) = report.branch.as_deref() {
        facts.push((
            "Branch".into(),
            format!("<code>{}</code>", inert(branch, MAX_INLINE)),
        ));
    }
    match (sha, report.commit.as_deref()) {
        (Some(sha), _) => facts.push(("Commit".into(), format!("`{sha}`"))),
        (None, Some(other)) => facts.push((
            "Commit".into(),
            format!("<code>{}</code>", inert(other, MAX_INLINE)),
        )),
        (None, None) => {}
    }
    if let ReportState::Failed { phase, .. } = &report.state {
        facts.push(("Failed phase".into(), inert(phase, MAX_INLINE)));
    }
    if let Some(run) = report
        .run_url
        .as_deref()
        .and_then(|u| link("workflow run", u))
    {
        facts.push(("Logs".into(), run));
    }
    if !facts.is_empty() {
        out.push_str("| | |\n|---|---|\n");
        for (k, v) in &facts {
            out.push_str(&format!("| **{k}** | {v} |\n"));
        }
        out.push('\n');
    }

    // With commands on, the report names them; otherwise the label and a push.
    let on = !commands.is_empty();
    out.push_str(&state_body(&report.state, on));
    if let Some(l) = &report.lifetime {
        out.push_str(&lifetime(l, on));
    }
    if !commands.is_empty() {
        out.push_str("\n<details><summary>Commands</summary>\n\nComment with one of these on a line of its own:\n\n");
        for c in commands {
            out.push_str("- ");
            out.push_str(c);
            out.push('\n');
        }
        out.push_str("\n</details>\n");
    }
    out.push_str(&timings(&report.phases));
    out
}

/// `` `/preview WORD` ``.
fn usage(c: Command) -> String {
    format!("`{}`", c.usage())
}

/// How to wake a sleeping or reset preview to do `what`: `/preview wake` when commands are on,
/// and a push either way.
fn wake_hint(commands: bool, what: &str) -> String {
    if commands {
        format!(
            "Comment {} or push a commit to {what}.\n",
            usage(Command::Wake)
        )
    } else {
        format!("Push a commit to {what}.\n")
    }
}

/// What the comment says of the environment's state, below its facts; `commands`: whether the
/// `/preview` commands are on (then it names them).
fn state_body(state: &ReportState, commands: bool) -> String {
    let mut text = String::new();
    match state {
        ReportState::Deploying => {
            text.push_str("The environment is being created or updated; this comment changes when it is done.\n");
        }
        ReportState::Ready { links } => {
            let rows: Vec<String> = links.iter().filter_map(row).collect();
            if rows.is_empty() {
                text.push_str("The environment is ready.\n");
            } else {
                text.push_str("| App | URL |\n|---|---|\n");
                for r in rows {
                    text.push_str(&r);
                }
            }
        }
        ReportState::Failed { error, .. } => {
            text.push_str("**Error:** ");
            text.push_str(&inert_lines(error, MAX_ERROR));
            text.push('\n');
        }
        ReportState::TornDown => {
            text.push_str("The preview environment was torn down.\n");
        }
        ReportState::Skipped { reason } => {
            text.push_str(&inert_lines(reason, MAX_ERROR));
            text.push('\n');
        }
        ReportState::Removed { reason } => {
            text.push_str(&inert_lines(reason, MAX_ERROR));
            text.push('\n');
        }
        ReportState::Sleeping { suspended, links } => {
            text.push_str(if *suspended {
                "Its database was suspended after a while without activity (its data is kept). "
            } else {
                "Its database was stopped after a while without activity (its data is gone and is seeded again on waking). "
            });
            text.push_str(&wake_hint(commands, "wake it"));
            let rows: Vec<String> = links.iter().filter_map(row).collect();
            if !rows.is_empty() {
                text.push_str("\n| App | URL |\n|---|---|\n");
                for r in rows {
                    text.push_str(&r);
                }
            }
        }
        ReportState::Reset => {
            text.push_str(
                "Its database restarted (host maintenance or a crash) and came back empty. ",
            );
            text.push_str(&wake_hint(commands, "run the hooks and the seed again"));
        }
    }
    text
}

/// The run's phase timings as a collapsed table (empty when the run was not timed). Always the
/// comment's last section: [`without_stamp`] cuts it off.
fn timings(phases: &[PhaseTiming]) -> String {
    if phases.is_empty() {
        return String::new();
    }
    let mut out = format!("{TIMINGS_START}\n| Phase | Time |\n|---|---|\n");
    for p in phases {
        let mark = if p.ok { "" } else { " ❌" };
        out.push_str(&format!("| {}{mark} | {} |\n", p.phase, p.elapsed_text()));
    }
    out.push_str("\nPhases run side by side overlap; each time is its own.\n</details>\n");
    out
}

/// The lifetime lines: expiry and how to keep it, sleep and how to wake it, and the cost
/// estimate. With `commands` on they name `/preview keep`, `extend` and `wake`; otherwise the
/// keep label and a push.
fn lifetime(l: &preview_core::Lifetime, commands: bool) -> String {
    let mut out = String::from("\n");
    // Inert text shows as written inside an HTML code element, not inside a Markdown code span
    // (where `&#58;` would show literally).
    let label = format!("<code>{}</code>", inert(&l.keep_label, MAX_INLINE));
    let at = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M UTC").to_string();
    if l.kept {
        out.push_str(&format!(
            "Kept: the label {label} exempts it from expiry and eviction.\n"
        ));
    } else if let Some(t) = l.expires_at {
        out.push_str(&format!(
            "Expires {} without activity (a push, a deploy or a command). ",
            at(t)
        ));
        out.push_str(&if commands {
            format!(
                "Comment {} to keep it, or {} to restart the clock.\n",
                usage(Command::Keep),
                usage(Command::Extend)
            )
        } else {
            format!("Add the label {label} to keep it; a push restarts the clock.\n")
        });
    }
    if let Some(t) = l.sleeps_at {
        out.push_str(&format!("Sleeps {} without activity; ", at(t)));
        out.push_str(&if commands {
            format!("{} or a push wakes it.\n", usage(Command::Wake))
        } else {
            "a push wakes it.\n".to_string()
        });
    }
    if let Some(c) = &l.cost {
        out.push_str(&format!("Cost: {}.\n", c.line()));
    }
    out
}

fn row(l: &Link) -> Option<String> {
    let url = safe_url(&l.url)?;
    Some(format!(
        "| {} | [{}]({}) |\n",
        inert(&l.label, MAX_INLINE),
        inert(&url, MAX_INLINE * 4),
        url
    ))
}

/// The first link of a ready report that is a safe URL: the environment URL of the deployment.
pub(crate) fn primary_url(state: &ReportState) -> Option<String> {
    match state {
        ReportState::Ready { links } => links.iter().find_map(|l| safe_url(&l.url)),
        _ => None,
    }
}

/// GitHub's limit on a deployment status description, in characters.
pub(crate) const MAX_DESCRIPTION: usize = 140;

/// A deployment status description. Plain text: GitHub shows it as text, so only hidden
/// characters are removed and whitespace runs (newlines included) become one space. The phase is
/// named once (an error that still starts with it loses that prefix), and a description longer
/// than GitHub's [`MAX_DESCRIPTION`] characters is cut on a character boundary and ends with `…`.
pub(crate) fn status_description(state: &ReportState) -> String {
    let raw = match state {
        ReportState::Deploying => "Deploying the preview environment".to_string(),
        ReportState::Ready { .. } => "Preview environment ready".to_string(),
        ReportState::Failed { phase, error } => {
            let error = error.trim_start();
            let error = error
                .strip_prefix(phase.as_str())
                .and_then(|rest| rest.strip_prefix(": "))
                .unwrap_or(error);
            format!("Failed in {phase}: {error}")
        }
        ReportState::Skipped { .. } => "No preview environment".to_string(),
        ReportState::TornDown | ReportState::Removed { .. } => {
            "Preview environment removed".to_string()
        }
        ReportState::Sleeping { .. } => "Preview environment sleeping".to_string(),
        ReportState::Reset => "Preview environment lost its data".to_string(),
    };
    let visible = raw.chars().filter(|c| !is_hidden(*c) || c.is_whitespace());
    let mut clean = String::with_capacity(raw.len());
    for c in visible {
        if c.is_whitespace() {
            if !clean.ends_with(' ') {
                clean.push(' ');
            }
        } else {
            clean.push(c);
        }
    }
    let clean = clean.trim();
    if clean.chars().count() <= MAX_DESCRIPTION {
        return clean.to_string();
    }
    // Whole characters only (never a split code point), room left for the ellipsis, no space
    // before it.
    let cut: String = clean.chars().take(MAX_DESCRIPTION - 1).collect();
    let mut s = cut.trim_end().to_string();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use preview_core::{Naming, PrNumber};

    fn name() -> PreviewName {
        Naming::new("pr", "agents")
            .unwrap()
            .name(PrNumber::new(42).unwrap())
    }

    #[test]
    fn markers_round_trip_and_match_only_their_environment() {
        let sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
        let m = marker(
            &name(),
            ReportKind::Ready,
            Some(sha),
            Some("0123456789abcdef"),
        );
        assert_eq!(
            m,
            "<!-- preview:env=pr-42-agents state=ready sha=6dcb09b5b57875f334f61aebed695e2e4193db5e digest=0123456789abcdef -->"
        );
        let back = parse_marker(&format!("{m}\nbody"), &name()).unwrap();
        assert_eq!(back.kind, ReportKind::Ready);
        assert_eq!(back.commit.as_deref(), Some(sha));
        assert_eq!(back.digest.as_deref(), Some("0123456789abcdef"));
        let other = Naming::new("pr", "agents")
            .unwrap()
            .name(PrNumber::new(4).unwrap());
        assert_eq!(parse_marker(&m, &other), None);
        assert_eq!(parse_marker(&format!("text\n{m}"), &name()), None);
        let no_sha = marker(
            &name(),
            ReportKind::TornDown,
            Some("not a sha"),
            Some("x -->"),
        );
        assert_eq!(no_sha, "<!-- preview:env=pr-42-agents state=torn_down -->");
        let back = parse_marker(&no_sha, &name()).unwrap();
        assert_eq!((back.commit, back.digest), (None, None));
        // A marker from before digests (or a hand-edited one) reads as "digest unknown".
        let forged = "<!-- preview:env=pr-42-agents state=ready digest=zz -->";
        assert_eq!(parse_marker(forged, &name()).unwrap().digest, None);
    }

    #[test]
    fn the_run_start_rides_in_the_marker() {
        let at = jiff::Timestamp::from_millisecond(1_763_800_000_123).unwrap();
        let m = stamped(
            marker(
                &name(),
                ReportKind::TornDown,
                None,
                Some("0123456789abcdef"),
            ),
            Some(at),
        );
        assert_eq!(
            m,
            "<!-- preview:env=pr-42-agents state=torn_down digest=0123456789abcdef run=1763800000123 -->"
        );
        let back = parse_marker(&m, &name()).unwrap();
        assert_eq!(back.started_at, Some(at));
        assert_eq!(back.kind, ReportKind::TornDown);
        // Without a start (library use), no stamp; an unreadable one reads as unknown.
        let plain = marker(&name(), ReportKind::Ready, None, None);
        assert_eq!(stamped(plain.clone(), None), plain);
        let odd = "<!-- preview:env=pr-42-agents state=ready run=soon -->";
        assert_eq!(parse_marker(odd, &name()).unwrap().started_at, None);
        // Which run wrote a comment is no part of what it says.
        assert_eq!(
            without_stamp(&format!("{m}\nbody")),
            "<!-- preview:env=pr-42-agents state=torn_down digest=0123456789abcdef -->\nbody"
        );
        assert_eq!(without_stamp("no marker run=1"), "no marker run=1");
    }

    #[test]
    fn the_runs_phase_timings_close_the_comment_and_are_no_change() {
        let timing = |phase, elapsed_ms, ok| PhaseTiming {
            phase,
            elapsed_ms,
            ok,
        };
        let mut report = Report {
            name: name(),
            pr: PrNumber::new(42).unwrap(),
            branch: Some("feature".into()),
            commit: None,
            state: ReportState::Failed {
                phase: "hooks".into(),
                error: "migrate exited 1".into(),
            },
            run_url: None,
            started_at: None,
            lifetime: None,
            phases: vec![
                timing(preview_core::Phase::Observe, 212, true),
                timing(preview_core::Phase::Database, 41_250, true),
                timing(preview_core::Phase::Hooks, 125_000, false),
            ],
        };
        let body = comment(&report, &[]);
        let table = "| Phase | Time |\n|---|---|\n| observe | 212 ms |\n| database | 41.2 s |\n\
                     | hooks ❌ | 2 min 5 s |\n";
        assert!(body.contains(table), "{body}");
        assert!(body.trim_end().ends_with("</details>"), "{body}");
        // Another run that took other times says the same thing.
        let first = without_stamp(&body);
        report.phases[1].elapsed_ms = 3;
        assert_eq!(without_stamp(&comment(&report, &[])), first);
        assert!(!first.contains("Phase timings"));
        // An untimed run has no section at all.
        report.phases.clear();
        assert!(!comment(&report, &[]).contains("<details>"));
    }

    #[test]
    fn untrusted_text_is_inert() {
        let s = inert("a`b`<img src=x>*c*\n::add-mask::x @here \u{202E}z", 200);
        for bad in ['`', '<', '>', '*', '\n', ':', '@', '\u{202E}'] {
            assert!(!s.contains(bad), "{bad:?} in {s}");
        }
        assert!(s.starts_with("a&#96;b&#96;&#60;img"), "{s}");
        assert_eq!(inert("abcdef", 3), "abc…");
    }

    #[test]
    fn urls_are_filtered() {
        assert_eq!(
            safe_url("https://user:pw@pr-42.example.com/a|b").as_deref(),
            Some("https://pr-42.example.com/a%7Cb")
        );
        assert_eq!(safe_url("javascript:alert(1)"), None);
        assert_eq!(safe_url("not a url"), None);
    }

    #[test]
    fn status_descriptions_fit_githubs_limit() {
        let d = status_description(&ReportState::Failed {
            phase: "database".into(),
            error: "x\n".repeat(200),
        });
        assert_eq!(d.chars().count(), 140);
        assert!(!d.contains('\n'));
    }

    #[test]
    fn status_descriptions_name_the_phase_once_and_are_cut_cleanly() {
        // An error that still carries its phase prefix (as `Error::InPhase` displays it).
        let d = status_description(&ReportState::Failed {
            phase: "database".into(),
            error: "database: fly: API error (HTTP 422): name taken".into(),
        });
        assert_eq!(
            d,
            "Failed in database: fly: API error (HTTP 422): name taken"
        );
        // Multi-byte text, long: never more than GitHub's 140 characters, cut between
        // characters, with an ellipsis.
        for error in [
            "é".repeat(300),
            "Überprüfung fehlgeschlagen — ".repeat(10),
            "🚀 deploy ".repeat(40),
            "日本語のエラーメッセージ".repeat(20),
            format!("{} tail", "x".repeat(400)),
        ] {
            let d = status_description(&ReportState::Failed {
                phase: "hooks".into(),
                error: error.clone(),
            });
            assert!(
                d.chars().count() <= MAX_DESCRIPTION,
                "{} {d}",
                d.chars().count()
            );
            assert!(d.ends_with('…'), "{d}");
            assert!(d.starts_with("Failed in hooks: "), "{d}");
            let body = d.trim_end_matches('…');
            assert!(!body.ends_with(' '), "{d:?}");
            // A prefix of the cleaned text.
            let full = format!(
                "Failed in hooks: {}",
                error.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            assert!(full.starts_with(body), "{d:?}");
        }
        // Short ones are left whole, whitespace runs collapsed.
        let d = status_description(&ReportState::Failed {
            phase: "seed".into(),
            error: "seed request \"x\":\n\n  answered HTTP 500".into(),
        });
        assert_eq!(d, "Failed in seed: seed request \"x\": answered HTTP 500");
    }
}
