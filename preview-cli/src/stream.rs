//! An output stream and its colours: what the command, the progress renderer and the printers
//! write to.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A colour for text on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A phase that succeeded.
    Ok,
    /// A phase that failed.
    Failed,
    /// A warning.
    Warning,
    /// The `error` of an error line.
    Error,
}

impl Style {
    pub(crate) fn ansi(self) -> &'static str {
        match self {
            Style::Ok => "\x1b[32m",
            Style::Failed => "\x1b[31m",
            Style::Warning => "\x1b[33m",
            Style::Error => "\x1b[1;31m",
        }
    }
}

/// Whether a stream gets colour: never with `NO_COLOR` set (to anything but the empty string);
/// always with `CLICOLOR_FORCE` set (to anything but `0` or the empty string); never with
/// `CLICOLOR=0`; otherwise only on a terminal (`terminal`) whose `TERM` is not `dumb`. Files and
/// pipes get plain text. (`NO_COLOR` wins over `CLICOLOR_FORCE`, as in the Rust ecosystem's
/// `anstream`.)
pub fn colour(env: &preview_core::env::EnvSource, terminal: bool) -> bool {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if set("NO_COLOR").is_some() {
        return false;
    }
    if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    if set("CLICOLOR").as_deref() == Some("0") {
        return false;
    }
    terminal && env("TERM").as_deref() != Some("dumb")
}

/// An output stream shared between the command and the event renderer.
///
/// A reader that went away (`preview plan --json | head`) is not an error: what is written after
/// that is dropped, silently, and the command ends with its own exit code, as Unix filters do
/// (without dying of `SIGPIPE` halfway through a deploy).
#[derive(Clone)]
pub struct Stream {
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    colour: bool,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("colour", &self.colour)
            .finish_non_exhaustive()
    }
}

/// Swallows writes once the reader has closed the pipe.
struct Quiet<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Write for Quiet<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

impl Stream {
    /// Wraps a writer (plain text: see [`Stream::coloured`]).
    pub fn new(w: impl Write + Send + 'static) -> Self {
        Self {
            writer: Arc::new(Mutex::new(Box::new(Quiet {
                inner: w,
                closed: false,
            }))),
            colour: false,
        }
    }

    /// The same stream, with colour on or off (see [`colour`] for when).
    #[must_use]
    pub fn coloured(mut self, colour: bool) -> Self {
        self.colour = colour;
        self
    }

    /// Whether this stream gets colour.
    pub fn colour(&self) -> bool {
        self.colour
    }

    /// `text` in `style` when this stream gets colour, as it is otherwise.
    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.colour {
            format!("{}{text}\x1b[0m", style.ansi())
        } else {
            text.to_string()
        }
    }

    /// Writes one line (errors writing to our own output are not actionable and are ignored).
    pub fn line(&self, text: &str) {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(w, "{text}");
        let _ = w.flush();
    }

    /// Runs `f` with the writer locked.
    pub fn with<T>(&self, f: impl FnOnce(&mut dyn Write) -> T) -> T {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut **w);
        let _ = w.flush();
        r
    }
}
