//! The database Machine's shape besides its containers: its size, what happens when its
//! process exits, and whether the provider's proxy stops it when idle.

use serde::Serialize;

/// CPU class of a Machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuKind {
    /// Shared vCPUs.
    Shared,
    /// Dedicated vCPUs.
    Performance,
}

/// Machine size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineSize {
    /// CPU class.
    pub cpu_kind: CpuKind,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
}

/// Whether the provider's proxy stops (or suspends) the database when no connection uses it, and
/// starts it again on the next one (Fly: `autostop`/`autostart` on the Machine's services).
///
/// Off by default: a stop loses whatever the stack keeps in memory or on the root file system (the
/// flagship's databases), and the next deploy then runs the hooks and the seed again. Use it for
/// stacks whose data can be rebuilt or lives on volumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AutoStop {
    /// Runs until told otherwise.
    #[default]
    Off,
    /// Stopped when idle (its memory is lost), started on the next connection.
    Stop,
    /// Suspended when idle (memory kept; at most 2 GB on Fly), resumed on the next connection.
    Suspend,
}

impl AutoStop {
    /// Whether it is off (the default).
    pub fn is_off(&self) -> bool {
        *self == Self::Off
    }
}

/// What to do when the stack's process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Always restart.
    Always,
    /// Restart after a non-zero exit.
    OnFailure,
}
