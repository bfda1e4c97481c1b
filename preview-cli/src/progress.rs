//! Renders pipeline events: a progress line per phase with its elapsed time, resource changes, hook
//! output. In GitHub Actions each phase is a collapsible log group.

use std::collections::BTreeMap;
use std::sync::Mutex;

use preview_core::event::current_phase;
use preview_core::{Event, EventSink, Outcome, Phase};

use crate::actions::inert;
use crate::context::Stream;
use crate::output::Style;

/// Prints events as they happen.
///
/// In Actions, phases are log groups, which GitHub neither nests nor interleaves, while the
/// pipeline runs phases side by side (announce, database and apps at once). So one phase at a time
/// owns the open group and streams into it; the lines of the others (each event is attributed to
/// its phase with [`current_phase`]) wait, and each is printed as a whole group, ✓ line included,
/// once it is done and no group is open. Lines from outside any phase never land in a group.
#[derive(Debug)]
pub struct Progress {
    out: Stream,
    groups: Option<Mutex<Groups>>,
}

/// The Actions log groups: which is open, and what the others have said so far.
#[derive(Debug, Default)]
struct Groups {
    /// The phase whose group is open on the output.
    open: Option<Phase>,
    /// Running phases in the order they started, each with how many of it run (sweep runs several
    /// teardowns at once) and its lines so far (the open one's are already out).
    running: Vec<(Phase, u32, Vec<String>)>,
    /// Finished phases waiting for the open group to close.
    done: Vec<(Phase, Vec<String>)>,
    /// Lines from outside any phase, waiting for the open group to close.
    loose: Vec<String>,
}

impl Groups {
    fn running(&mut self, phase: Phase) -> Option<&mut (Phase, u32, Vec<String>)> {
        self.running.iter_mut().find(|(p, _, _)| *p == phase)
    }

    fn started(&mut self, out: &Stream, phase: Phase) {
        match self.running(phase) {
            Some(r) => r.1 += 1,
            None => self.running.push((phase, 1, Vec::new())),
        }
        if self.open.is_none() {
            self.open_next(out);
        }
    }

    fn line(&mut self, out: &Stream, phase: Option<Phase>, text: String) {
        match phase {
            Some(p) if self.open == Some(p) => out.line(&text),
            Some(p) if self.running(p).is_some() => {
                if let Some(r) = self.running(p) {
                    r.2.push(text);
                }
            }
            _ if self.open.is_none() => out.line(&text),
            _ => self.loose.push(text),
        }
    }

    fn finished(&mut self, out: &Stream, phase: Phase, text: String) {
        self.line(out, Some(phase), text);
        let Some(i) = self.running.iter().position(|(p, _, _)| *p == phase) else {
            return;
        };
        self.running[i].1 -= 1;
        if self.running[i].1 > 0 {
            return;
        }
        let (_, _, lines) = self.running.remove(i);
        if self.open == Some(phase) {
            out.line("::endgroup::");
            self.open = None;
        } else {
            self.done.push((phase, lines));
        }
        if self.open.is_none() {
            self.flush(out);
        }
    }

    /// With no group open: what waited is printed, then the oldest running phase gets the group.
    fn flush(&mut self, out: &Stream) {
        for l in self.loose.drain(..) {
            out.line(&l);
        }
        for (phase, lines) in self.done.drain(..) {
            out.line(&format!("::group::{phase}"));
            for l in lines {
                out.line(&l);
            }
            out.line("::endgroup::");
        }
        self.open_next(out);
    }

    fn open_next(&mut self, out: &Stream) {
        if let Some((phase, _, lines)) = self.running.first_mut() {
            out.line(&format!("::group::{phase}"));
            for l in lines.drain(..) {
                out.line(&l);
            }
            self.open = Some(*phase);
        }
    }
}

impl Progress {
    /// Progress to `out`; with `groups`, phases become `::group::` blocks (Actions, on stdout).
    pub fn new(out: Stream, groups: bool) -> Self {
        Self {
            out,
            groups: groups.then(Mutex::default),
        }
    }

    fn line(&self, phase: Option<Phase>, text: String) {
        match &self.groups {
            Some(g) => {
                let mut g = g.lock().unwrap_or_else(|p| p.into_inner());
                g.line(&self.out, phase, text);
            }
            None => self.out.line(&text),
        }
    }
}

impl EventSink for Progress {
    fn emit(&self, event: Event) {
        match event {
            Event::PhaseStarted { phase } => match &self.groups {
                Some(g) => {
                    let mut g = g.lock().unwrap_or_else(|p| p.into_inner());
                    g.started(&self.out, phase);
                }
                None => self.out.line(&format!("… {phase}")),
            },
            Event::PhaseFinished {
                phase,
                elapsed_ms,
                ok,
            } => {
                let mark = if ok {
                    self.out.paint(Style::Ok, "✓")
                } else {
                    self.out.paint(Style::Failed, "✗")
                };
                let text = format!("{mark} {phase} ({:.1}s)", elapsed_ms as f64 / 1000.0);
                match &self.groups {
                    Some(g) => {
                        let mut g = g.lock().unwrap_or_else(|p| p.into_inner());
                        g.finished(&self.out, phase, text);
                    }
                    None => self.out.line(&text),
                }
            }
            Event::Resource(c) if c.outcome != Outcome::Unchanged => self.line(
                current_phase(),
                format!(
                    "  {} {} {} ({})",
                    c.outcome,
                    c.kind,
                    inert(&c.id),
                    c.provider
                ),
            ),
            Event::Resource(_) => {}
            Event::HookOutput { hook, line } => {
                self.line(current_phase(), format!("  [{hook}] {}", inert(&line)))
            }
            Event::Warning { message } => self.line(
                current_phase(),
                format!(
                    "{}: {}",
                    self.out.paint(Style::Warning, "warning"),
                    inert(&message)
                ),
            ),
            _ => {}
        }
    }
}

/// `--json` for the commands that run phases: each phase's start and end as one JSON line on
/// `out` (stdout) as it happens, every event also passed on to `inner` (the human progress on
/// stderr). Times are milliseconds since the sink was made (the command's start).
#[derive(Debug)]
pub struct JsonLines {
    out: Stream,
    inner: Box<dyn EventSink>,
    start: std::time::Instant,
}

/// One line of [`JsonLines`].
#[derive(Debug, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum PhaseLine {
    PhaseStarted {
        phase: Phase,
        at_ms: u64,
    },
    PhaseFinished {
        phase: Phase,
        at_ms: u64,
        elapsed_ms: u64,
        outcome: &'static str,
    },
}

impl JsonLines {
    /// Phase lines to `out`, everything to `inner`.
    pub fn new(out: Stream, inner: Box<dyn EventSink>) -> Self {
        Self {
            out,
            inner,
            start: std::time::Instant::now(),
        }
    }
}

impl EventSink for JsonLines {
    fn emit(&self, event: Event) {
        let at_ms = self.start.elapsed().as_millis() as u64;
        let line = match &event {
            Event::PhaseStarted { phase } => Some(PhaseLine::PhaseStarted {
                phase: *phase,
                at_ms,
            }),
            Event::PhaseFinished {
                phase,
                elapsed_ms,
                ok,
            } => Some(PhaseLine::PhaseFinished {
                phase: *phase,
                at_ms,
                elapsed_ms: *elapsed_ms,
                outcome: if *ok { "ok" } else { "failed" },
            }),
            _ => None,
        };
        if let Some(json) = line.and_then(|l| serde_json::to_string(&l).ok()) {
            self.out.line(&json);
        }
        self.inner.emit(event);
    }
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks the group structure of Actions output: every group is closed before the next opens, and
/// every `✓`/`✗` line of a phase is inside that phase's group (colour, if any, ignored). Returns
/// (group, line) of each violation. Public for the binary-level tests.
pub fn misplaced_phase_lines(stdout: &str) -> Vec<(Option<String>, String)> {
    let mut bad = Vec::new();
    let mut open: Option<String> = None;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let stdout = plain(stdout);
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("::group::") {
            if open.is_some() {
                bad.push((open.clone(), line.to_string()));
            }
            open = Some(name.to_string());
            *counts.entry(name.to_string()).or_default() += 1;
        } else if line == "::endgroup::" {
            if open.is_none() {
                bad.push((None, line.to_string()));
            }
            open = None;
        } else if let Some(rest) = line.strip_prefix("✓ ").or_else(|| line.strip_prefix("✗ ")) {
            let phase = rest.split_whitespace().next().unwrap_or_default();
            if open.as_deref() != Some(phase) {
                bad.push((open.clone(), line.to_string()));
            }
        }
    }
    if open.is_some() {
        bad.push((open, "(end of output)".into()));
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use preview_core::ResourceChange;
    use std::io::Write;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn start(p: &Progress, phase: Phase) {
        p.emit(Event::PhaseStarted { phase });
    }

    fn finish(p: &Progress, phase: Phase) {
        p.emit(Event::PhaseFinished {
            phase,
            elapsed_ms: 100,
            ok: true,
        });
    }

    fn created(kind: &str, id: &str) -> Event {
        Event::Resource(ResourceChange::new("x", kind, id, Outcome::Created))
    }

    /// The order of a deploy's concurrent start, as the pipeline emits it, with each resource
    /// emitted from inside its phase.
    #[tokio::test]
    async fn concurrent_phases_each_get_their_own_group_with_their_own_lines() {
        let buf = Buf::default();
        let p = Progress::new(Stream::new(buf.clone()), true);
        start(&p, Phase::Observe);
        finish(&p, Phase::Observe);
        start(&p, Phase::Announce);
        start(&p, Phase::Database);
        start(&p, Phase::Apps);
        preview_core::event::in_phase(Phase::Apps, async { p.emit(created("env_var", "prj/KEY")) })
            .await;
        finish(&p, Phase::Apps);
        start(&p, Phase::Deployments);
        preview_core::event::in_phase(Phase::Database, async { p.emit(created("app", "pr-1")) })
            .await;
        finish(&p, Phase::Database);
        preview_core::event::in_phase(Phase::Announce, async {
            p.emit(created("report", "PR #1"))
        })
        .await;
        // From outside any phase, while a group is open: after it, never inside.
        p.emit(Event::Warning {
            message: "outside".into(),
        });
        start(&p, Phase::Tunnels);
        finish(&p, Phase::Tunnels);
        finish(&p, Phase::Announce);
        finish(&p, Phase::Deployments);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(misplaced_phase_lines(&text), [], "{text}");
        let groups: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("::group::"))
            .collect();
        assert_eq!(
            groups,
            [
                "observe",
                "announce",
                "apps",
                "database",
                "tunnels",
                "deployments"
            ],
            "{text}"
        );
        // Each resource line sits in its own phase's group.
        let group_of = |needle: &str| {
            let mut open = "";
            for l in text.lines() {
                if let Some(g) = l.strip_prefix("::group::") {
                    open = g;
                } else if l == "::endgroup::" {
                    open = "";
                } else if l.contains(needle) {
                    return open.to_string();
                }
            }
            panic!("no {needle} in {text}")
        };
        assert_eq!(group_of("prj/KEY"), "apps");
        assert_eq!(group_of("pr-1"), "database");
        assert_eq!(group_of("PR #1"), "announce");
        assert_eq!(group_of("warning: outside"), "");
    }

    #[test]
    fn outside_actions_lines_stream_as_they_come() {
        let buf = Buf::default();
        let p = Progress::new(Stream::new(buf.clone()), false);
        start(&p, Phase::Announce);
        start(&p, Phase::Apps);
        finish(&p, Phase::Apps);
        finish(&p, Phase::Announce);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "… announce\n… apps\n✓ apps (0.1s)\n✓ announce (0.1s)\n"
        );
    }

    #[test]
    fn coloured_phase_lines_are_checked_too() {
        let buf = Buf::default();
        let p = Progress::new(Stream::new(buf.clone()).coloured(true), true);
        start(&p, Phase::Announce);
        start(&p, Phase::Apps);
        finish(&p, Phase::Apps);
        finish(&p, Phase::Announce);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains('\x1b'), "{text:?}");
        assert_eq!(misplaced_phase_lines(&text), [], "{text:?}");
        assert_eq!(
            misplaced_phase_lines(
                "::group::announce\n\x1b[32m✓\x1b[0m apps (0.1s)\n::endgroup::\n"
            )
            .len(),
            1
        );
    }

    #[test]
    fn the_checker_finds_a_phase_line_in_another_group() {
        let bad = misplaced_phase_lines(
            "::group::announce\n✓ apps (0.1s)\n✓ announce (0.1s)\n::endgroup::\n::group::a\n::group::b\n",
        );
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert_eq!(bad[0], (Some("announce".into()), "✓ apps (0.1s)".into()));
    }
}
