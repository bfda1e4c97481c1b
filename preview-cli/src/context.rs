//! What a command runs with: its environment, its output streams, Actions mode, and how hosts are
//! built. Tests build one with in-memory hosts and captured streams.

use std::io::Write;
use std::sync::{Arc, Mutex};

use preview_core::Result;
use preview_core::secrecy::SecretString;

use crate::actions::Actions;
use crate::providers::HostFactory;

/// Reads environment variables.
pub type Env = preview_core::pipeline::EnvSource;

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

    /// The same stream, with colour on or off (see [`crate::output::colour`] for when).
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
    pub fn paint(&self, style: crate::output::Style, text: &str) -> String {
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

/// Everything a command needs from the outside world.
pub struct Context {
    /// Environment variables.
    pub env: Env,
    /// Standard output (results, JSON, workflow commands).
    pub stdout: Stream,
    /// Standard error (progress, errors).
    pub stderr: Stream,
    /// Set when running in GitHub Actions.
    pub actions: Option<Actions>,
    /// Builds the hosts.
    pub factory: Arc<dyn HostFactory>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Reads a token from `NAME`, or from the file named by `NAME_FILE`. Never from a flag.
    ///
    /// # Errors
    /// [`preview_core::Error::Config`] when the file cannot be read.
    pub fn token(&self, name: &str) -> Result<Option<SecretString>> {
        if let Some(v) = (self.env)(name).filter(|v| !v.trim().is_empty()) {
            return Ok(Some(SecretString::from(v.trim().to_string())));
        }
        let file_var = format!("{name}_FILE");
        match (self.env)(&file_var) {
            None => Ok(None),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    preview_core::Error::config(format!("{file_var}: cannot read {path}: {e}"))
                })?;
                let t = text.trim();
                Ok((!t.is_empty()).then(|| SecretString::from(t.to_string())))
            }
        }
    }

    /// Like [`Context::token`], but missing is a configuration error naming both variables.
    ///
    /// # Errors
    /// [`preview_core::Error::Config`] when neither is set.
    pub fn require_token(&self, name: &str, what: &str) -> Result<SecretString> {
        self.token(name)?.ok_or_else(|| {
            preview_core::Error::config(format!(
                "{name} is not set: {what} (or put it in a file and set {name}_FILE)"
            ))
        })
    }
}
