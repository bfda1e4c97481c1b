//! Command-line arguments. Doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Configuration:
  preview.toml describes the environment: naming, the database stack, secrets, apps, hooks, seed
  requests and reporting (see examples/inkeep-agents/preview.toml).

Environment (secrets come from NAME or a file named by NAME_FILE, never from a flag):
  FLY_API_TOKEN            Fly.io token (Machines API; also given to flyctl for tunnels)
  VERCEL_TOKEN             Vercel token
  VERCEL_TEAM_ID           Vercel team (VERCEL_ORG_ID is accepted too)
  GITHUB_TOKEN             GitHub token (pull requests, comments, deployments)
  GITHUB_REPOSITORY        owner/name, when --repo is not given
  PREVIEW_MASTER_SECRET    generated secrets derive from it, so pushes do not rotate them
  FLY_API_URL              base URL override (also VERCEL_API_URL, GITHUB_API_URL)
  FLYCTL                   path to flyctl (default: flyctl on PATH)
  PREVIEW_LOG              log filter, e.g. preview_core=debug (logs go to stderr)
  PREVIEW_REPOSITORY_ROOT  the checkout files named by the config must stay in (default: the
                           nearest directory holding .git above the config file)
  NO_COLOR, CLICOLOR_FORCE colour off, or on even in pipes (default: only on a terminal)

Exit codes:
  0  success
  1  the operation failed (provider, hook, deployment, readiness)
  2  usage or configuration error, or refused by the preflight checks; nothing was touched
  3  skipped on purpose (closed or fork pull request; handle: no preview for this event)
  130, 143  interrupted by SIGINT or SIGTERM (hooks and tunnels are stopped first;
            every command is safe to re-run)
  exec exits with the command's own code
  a closed stdout (preview plan --json | head) is not an error: the code stays the command's";

/// `preview --version`: the version and the commit it was built from, `0.1.0 (abc1234 2026-12-05)`
/// (`unknown` when the build had no git and no packaged record of it; see `build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("PREVIEW_BUILD_INFO"),
    ")"
);

/// Per-pull-request preview environments: databases on Fly.io, apps on Vercel, reports on GitHub.
#[derive(Debug, Parser)]
#[command(name = "preview", version = VERSION, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        default_value = "preview.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,

    /// Print JSON on stdout (human progress goes to stderr). plan and status print one JSON
    /// document. deploy, teardown and sweep print JSON Lines: one object per phase as it starts
    /// ({"event":"phase_started","phase":…,"at_ms":…}) and ends (…"phase_finished", with
    /// "elapsed_ms" and "outcome": "ok" or "failed"), then the result document as the last line,
    /// with a "phases" list of durations (`tail -n 1` gets it).
    #[arg(long, global = true)]
    pub json: bool,

    /// The repository, owner/name (default: $GITHUB_REPOSITORY).
    #[arg(long, global = true, value_name = "OWNER/NAME")]
    pub repo: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what deploy would create for a pull request, without calling any provider or
    /// generating any secret (values of secrets are never shown).
    Plan(PlanArgs),
    /// Create or converge the environment of a pull request, run its hooks, seed it and report on
    /// the PR. Re-running with nothing changed makes no change.
    Deploy(PrArgs),
    /// Remove the environment of a pull request (apps, databases) and mark its report torn down.
    /// Succeeds when it is already gone.
    Teardown(PrArgs),
    /// Remove environments whose pull request is closed or merged. With a `[lifetime]` policy, also
    /// the reconcile pass: expire previews inactive for `ttl` (unless labelled with `keep_label`),
    /// put those inactive for `sleep_after` to sleep, evict the least recently active over
    /// `max_environments`, and mark reset those whose database restarted. Each decision is
    /// printed with its evidence; a failed lookup never deletes or sleeps anything.
    Sweep(SweepArgs),
    /// List environments with their pull request, state, age and URLs.
    Status(StatusArgs),
    /// Keep a pull request's preview from expiring and from eviction: add `lifetime.keep_label`
    /// (default `preview:keep`) to the PR and update its report to say so. A PR that carries the
    /// label already gets no write. Needs no generated secret.
    #[command(after_help = LIFETIME_HELP)]
    Keep(PrArgs),
    /// Restart a preview's inactivity clock: record activity now on its database (the Machine's
    /// metadata) and update its report with the new expiry. It does not wake a sleeping preview
    /// (wake does). Needs no generated secret.
    #[command(after_help = LIFETIME_HELP)]
    Extend(PrArgs),
    /// Wake a preview whose database sleeps, through a deploy at the PR's head: after a suspend
    /// the Machine only resumes (no hook, no seed); after a stop its in-memory data is gone, so
    /// the hooks and the seed run again. Ends with the report "ready" and prints whether it woke
    /// or was awake (then nothing is done). Needs what deploy needs.
    #[command(after_help = LIFETIME_HELP)]
    Wake(PrArgs),
    /// Decide and act on the GitHub Actions event that started this run (pull_request or
    /// issue_comment): deploy, tear down, run a /preview command, or skip (exit 3), printing why.
    #[command(after_help = HANDLE_HELP)]
    Handle(HandleArgs),
    /// Open tunnels to an environment's databases and run a command with their local URLs in its
    /// environment; exits with the command's code.
    #[command(override_usage = "preview exec [OPTIONS] --pr <N> -- <CMD>...")]
    Exec(ExecArgs),
}

impl Command {
    /// Whether the command runs pipeline phases, so `--json` streams them as JSON Lines before
    /// the result.
    pub fn streams_phases(&self) -> bool {
        matches!(
            self,
            Command::Deploy(_)
                | Command::Teardown(_)
                | Command::Sweep(_)
                | Command::Wake(_)
                | Command::Handle(_)
        )
    }

    /// The subcommand's name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Plan(_) => "plan",
            Command::Deploy(_) => "deploy",
            Command::Teardown(_) => "teardown",
            Command::Sweep(_) => "sweep",
            Command::Status(_) => "status",
            Command::Keep(_) => "keep",
            Command::Extend(_) => "extend",
            Command::Wake(_) => "wake",
            Command::Exec(_) => "exec",
            Command::Handle(_) => "handle",
        }
    }
}

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The pull request number.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pr: String,
    /// The head branch to show in branch-scoped settings (default: shown as a placeholder).
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// The head commit to show (default: shown as a placeholder).
    #[arg(long, value_name = "SHA")]
    pub sha: Option<String>,
}

/// Arguments naming one pull request.
#[derive(Debug, Args)]
pub struct PrArgs {
    /// The pull request number (default in GitHub Actions: the triggering pull request).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pr: Option<String>,
}

/// Arguments of `sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Decide and print, but change nothing (no removal, no sleep, no report).
    #[arg(long)]
    pub dry_run: bool,
    /// How many pull requests are looked up, and environments removed, at once (GitHub reads are
    /// further capped at 10 in flight, and its writes are serialised 1 s apart).
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {}

const LIFETIME_HELP: &str = "\
How long a preview lives is set in [lifetime] of preview.toml: ttl (tear down after this long
without activity), sleep_after (stop or suspend the database Machine), keep_label (default
preview:keep). Activity is a push, a deploy or a command; it is recorded in the database Machine's
metadata, so nothing is kept on the runner. `preview sweep` (scheduled) acts on it.

  preview keep   --pr 42   the PR gets the keep label: the preview never expires or is evicted
                           (it may still sleep)
  preview extend --pr 42   the clock restarts now: it expires ttl (and sleeps sleep_after) from now
  preview wake   --pr 42   a sleeping preview is started and reported ready (\"woke\"), or, awake
                           already, left alone (\"was awake\")

In a PR comment, with [triggers] commands on (the default): /preview keep, /preview extend,
/preview wake (see preview handle --help). Re-running any of them with nothing to change makes
no change. --json prints the result as JSON (wake: JSON Lines, phases first, as deploy).

Exit codes: 0 done (kept, extended, woke, was awake), 1 failed, 2 usage or settings (nothing
touched), 3 skipped on purpose (a closed PR, no preview, no ttl or sleep_after to extend).";

const HANDLE_HELP: &str = "\
The event: GITHUB_EVENT_NAME and GITHUB_EVENT_PATH (set by GitHub Actions). The pull request's
state, labels, changed files and the commenter's permission are read through the API (with
GITHUB_TOKEN only, before any other secret), never taken from the event.

What happens (see [triggers] in preview.toml, and the README):
  opened, synchronize, reopened, ready_for_review, labeled with the trigger label
      deploy, when the PR is eligible: not a draft (unless triggers.drafts), carrying
      triggers.label (when set), changing a file that matches triggers.paths (when set)
  closed (or a PR found closed)        tear down
  unlabeled (the trigger label)        tear down
  converted_to_draft                   tear down, with triggers.drafts = false
  a fork's pull request                skip (a command on one is refused with a reply)
  issue_comment with /preview WORD on a line of its own (not quoted, not in code), from a user
  with at least triggers.command_permission (default write):
      /preview deploy     deploy the head commit
      /preview redeploy   tear down, then deploy from scratch
      /preview teardown   remove the preview
      /preview status     reply with the preview's resources and URLs
      /preview keep       keep the preview from expiring and eviction (the keep label)
      /preview extend     restart the inactivity clock
      /preview wake       wake a sleeping preview (needs the checkout, like deploy)
  acknowledged with a reaction (eyes); an unknown command gets a reaction (confused) and one
  help reply; a refused one gets one reply.

Two steps in a workflow (the PR's code is checked out only after the decision):
  preview handle --decide-only   decide and acknowledge; outputs action, checkout, sha, pr
  (check out steps.ID.outputs.sha when steps.ID.outputs.checkout is true)
  preview handle --sha SHA       decide again (no second reply; the reaction is answered 200) and act; a deploy
                                 needs --sha equal to the verified head, else exit 2

Exit codes: 0 done (or, with --decide-only, something to do), 1 failed, 2 usage, settings,
or a checked-out commit that is not the verified head (nothing touched), 3 skipped on purpose.";

/// Arguments of `handle`.
#[derive(Debug, Args)]
pub struct HandleArgs {
    /// Decide and acknowledge only: print the decision and write the step outputs `action`,
    /// `checkout`, `sha` and `pr`; deploy and tear down nothing. Exit 0 when there is something
    /// to do, 3 when not.
    #[arg(long)]
    pub decide_only: bool,
    /// The commit the workflow checked out (the `sha` output of the deciding step). A deploy runs
    /// only when it is the head commit verified through the API now.
    #[arg(long, value_name = "SHA")]
    pub sha: Option<String>,
}

/// Arguments of `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The pull request number.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pr: String,
    /// Words before `--`: never run (the command's own flags would be read as preview's); only
    /// there to say so.
    #[arg(hide = true, value_name = "WORD", allow_hyphen_values = true)]
    pub before_separator: Vec<String>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}
