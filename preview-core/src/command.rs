//! `/preview` commands in pull-request comments: which there are, and where in a comment one is
//! read.
//!
//! # Where a command is read
//! - On a line of its own: the line's text, after at most three spaces, starts with `/preview`
//!   followed by whitespace or the end of the line, then the command word (any case) and, for a
//!   command that takes them, its arguments, separated by any spaces or tabs.
//! - Not inside a fenced code block (```` ``` ```` or `~~~`), not in an indented code block (four
//!   spaces or a tab), not in a block quote (`>`), and not inside other text on a line
//!   (`please /preview deploy` and `` `/preview deploy` `` are not commands).
//! - The first such line is the comment's command; everything else in the comment is ignored.
//!   `/preview` alone, or with a word that is not a command, is an unknown command (it gets a
//!   help reply).
//!
//! To add a command: one line in the `commands!` table below, and one arm where the CLI runs
//! commands (`preview-cli/src/commands/handle.rs`, `run_command`).

use serde::Serialize;

/// The commands, from one table: variant, word, whether it runs the PR's code (so the workflow
/// must check out the verified head first), whether it takes arguments, and its help line.
macro_rules! commands {
    ($( $(#[$doc:meta])* $variant:ident = $word:literal, checkout: $checkout:literal, args: $args:literal, $help:literal; )*) => {
        /// A `/preview` command.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        // Exhaustive on purpose: a new command does not compile until the CLI runs it.
        pub enum Command {
            $( $(#[$doc])* $variant, )*
        }

        impl Command {
            /// Every command, in the order help lists them.
            pub const ALL: &'static [Command] = &[$(Command::$variant),*];

            /// The word after `/preview`.
            pub fn word(self) -> &'static str {
                match self { $(Command::$variant => $word,)* }
            }

            /// One line of help.
            pub fn help(self) -> &'static str {
                match self { $(Command::$variant => $help,)* }
            }

            /// Whether it runs the pull request's code (hooks, seed): the workflow checks out
            /// the head commit verified when the command was accepted before running it.
            pub fn needs_checkout(self) -> bool {
                match self { $(Command::$variant => $checkout,)* }
            }

            /// Whether it takes arguments after its word.
            pub fn takes_args(self) -> bool {
                match self { $(Command::$variant => $args,)* }
            }
        }
    };
}

commands! {
    /// Deploy the head commit, or bring the preview up to date with it.
    Deploy = "deploy", checkout: true, args: false,
        "deploy the head commit (or bring the preview up to date)";
    /// Tear down, then deploy from scratch.
    Redeploy = "redeploy", checkout: true, args: false,
        "start over: remove the preview, then deploy it from scratch (fresh databases, hooks and seed)";
    /// Remove the preview.
    Teardown = "teardown", checkout: false, args: false,
        "remove the preview";
    /// Reply with what the preview has and where.
    Status = "status", checkout: false, args: false,
        "reply with the preview's resources and URLs";
    /// Keep the preview from expiring and from eviction (adds the keep label).
    Keep = "keep", checkout: false, args: false,
        "keep the preview: it no longer expires or is evicted (adds the keep label to the PR)";
    /// Restart the inactivity clock.
    Extend = "extend", checkout: false, args: false,
        "restart the inactivity clock: the preview expires (and sleeps) that much later";
    /// Wake a sleeping preview.
    Wake = "wake", checkout: true, args: false,
        "wake a sleeping preview (after a stop its data is gone: the hooks and the seed run again)";
}

impl Command {
    /// The command named `word` (any ASCII case).
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.word().eq_ignore_ascii_case(word))
    }

    /// `/preview WORD`.
    pub fn usage(self) -> String {
        format!("/preview {}", self.word())
    }
}

/// The command line of a comment, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A known command, with its arguments (empty unless it takes some).
    Known {
        /// Which.
        command: Command,
        /// Its arguments (untrusted text; never printed).
        args: Vec<String>,
    },
    /// `/preview` alone, an unknown word, or arguments to a command that takes none. What was
    /// written is not kept: it is untrusted and never printed or echoed.
    Unknown,
}

/// The prefix of a command line.
pub const PREFIX: &str = "/preview";

/// The comment's command, if it has one (see the module docs for where one is read).
pub fn parse_comment(body: &str) -> Option<Invocation> {
    let mut fence: Option<(char, usize)> = None;
    for line in body.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let text = &line[indent..];
        if let Some((ch, len)) = fence {
            // Only a fence of the same character, at least as long, closes it.
            if indent <= 3
                && fence_len(text, ch) >= len
                && text.trim_start_matches(ch).trim().is_empty()
            {
                fence = None;
            }
            continue;
        }
        if indent > 3 || text.starts_with('\t') {
            continue;
        }
        for ch in ['`', '~'] {
            let n = fence_len(text, ch);
            if n >= 3 {
                fence = Some((ch, n));
            }
        }
        if fence.is_some() {
            continue;
        }
        let Some(rest) = text.strip_prefix(PREFIX) else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            continue;
        }
        let mut words = rest.split([' ', '\t']).filter(|w| !w.is_empty());
        let invocation = match words.next().and_then(Command::from_word) {
            None => Invocation::Unknown,
            Some(command) => {
                let args: Vec<String> = words.map(str::to_string).collect();
                if !args.is_empty() && !command.takes_args() {
                    Invocation::Unknown
                } else {
                    Invocation::Known { command, args }
                }
            }
        };
        return Some(invocation);
    }
    None
}

/// How many `ch` start `text`.
fn fence_len(text: &str, ch: char) -> usize {
    text.chars().take_while(|c| *c == ch).count()
}

/// The help a reply gives: one line per command.
pub fn help_lines() -> Vec<String> {
    Command::ALL
        .iter()
        .map(|c| format!("`{}`: {}", c.usage(), c.help()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(c: Command) -> Option<Invocation> {
        Some(Invocation::Known {
            command: c,
            args: vec![],
        })
    }

    #[test]
    fn a_command_is_a_line_of_its_own() {
        let cases: &[(&str, Option<Invocation>)] = &[
            ("/preview deploy", known(Command::Deploy)),
            ("/preview   deploy  \t ", known(Command::Deploy)),
            ("   /preview deploy", known(Command::Deploy)),
            ("/preview\tRedeploy", known(Command::Redeploy)),
            (
                "LGTM!\r\n\r\n/preview teardown\r\nthanks",
                known(Command::Teardown),
            ),
            ("/preview status\n/preview teardown", known(Command::Status)),
            ("/preview", Some(Invocation::Unknown)),
            ("/preview    ", Some(Invocation::Unknown)),
            ("/preview launch", Some(Invocation::Unknown)),
            ("/preview deploy now please", Some(Invocation::Unknown)),
            ("please /preview deploy", None),
            ("`/preview deploy`", None),
            ("/previewdeploy", None),
            ("/previews deploy", None),
            ("    /preview deploy", None),
            ("\t/preview deploy", None),
            ("> /preview deploy", None),
            ("```\n/preview deploy\n```", None),
            ("~~~~sh\n/preview deploy\n~~~\nstill code\n~~~~\n", None),
            (
                "```\n/preview deploy\n```\n/preview status",
                known(Command::Status),
            ),
            ("`` not a fence\n/preview status", known(Command::Status)),
            ("", None),
            ("preview deploy", None),
            ("/PREVIEW deploy", None),
        ];
        for (body, want) in cases {
            assert_eq!(&parse_comment(body), want, "{body:?}");
        }
    }

    #[test]
    fn a_hostile_body_is_read_in_one_pass_and_keeps_nothing() {
        let mut body = String::from("::add-mask::x\n::error::owned\n<script>\n````\n");
        while body.len() < 64 * 1024 {
            // A shorter fence does not close a longer one.
            body.push_str("```\n/preview deploy\n> /preview teardown\n");
        }
        // One unclosed fence swallows the rest: no command.
        assert_eq!(parse_comment(&body), None);
        body.insert_str(0, "/preview ::set-output name=x::y\n");
        assert_eq!(parse_comment(&body), Some(Invocation::Unknown));
    }

    #[test]
    fn every_command_has_a_distinct_word_and_help() {
        let mut words: Vec<&str> = Command::ALL.iter().map(|c| c.word()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), Command::ALL.len());
        for c in Command::ALL {
            assert_eq!(Command::from_word(c.word()), Some(*c));
            assert!(!c.help().is_empty());
        }
        assert_eq!(help_lines().len(), Command::ALL.len());
    }
}
