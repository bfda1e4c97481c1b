//! Renders pipeline events: a progress line per phase with its elapsed time, resource changes, hook
//! output. In GitHub Actions each phase is a collapsible log group.

use std::sync::Mutex;

use preview_core::{Event, EventSink, Outcome};

use crate::actions::inert;
use crate::context::Stream;
use crate::output::Style;

/// Prints events as they happen.
#[derive(Debug)]
pub struct Progress {
    out: Stream,
    groups: bool,
    open: Mutex<u32>,
}

impl Progress {
    /// Progress to `out`; with `groups`, phases become `::group::` blocks (Actions, on stdout).
    pub fn new(out: Stream, groups: bool) -> Self {
        Self {
            out,
            groups,
            open: Mutex::new(0),
        }
    }
}

impl EventSink for Progress {
    fn emit(&self, event: Event) {
        match event {
            Event::PhaseStarted { phase } => {
                if self.groups {
                    let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                    // Groups do not nest; concurrent phases share the open one.
                    if *open == 0 {
                        self.out.line(&format!("::group::{phase}"));
                    }
                    *open += 1;
                } else {
                    self.out.line(&format!("… {phase}"));
                }
            }
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
                self.out.line(&format!(
                    "{mark} {phase} ({:.1}s)",
                    elapsed_ms as f64 / 1000.0
                ));
                if self.groups {
                    let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                    *open = open.saturating_sub(1);
                    if *open == 0 {
                        self.out.line("::endgroup::");
                    }
                }
            }
            Event::Resource(c) if c.outcome != Outcome::Unchanged => {
                self.out.line(&format!(
                    "  {} {} {} ({})",
                    c.outcome,
                    c.kind,
                    inert(&c.id),
                    c.provider
                ));
            }
            Event::Resource(_) => {}
            Event::HookOutput { hook, line } => {
                self.out.line(&format!("  [{hook}] {}", inert(&line)))
            }
            Event::Warning { message } => self.out.line(&format!(
                "{}: {}",
                self.out.paint(Style::Warning, "warning"),
                inert(&message)
            )),
            _ => {}
        }
    }
}
