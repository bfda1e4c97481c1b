//! What a preview costs: an estimate from a dated price table, never a bill.
//!
//! # The table
//! [`PriceTable::fly_2024_04`] holds Fly.io's published pay-as-you-go prices for Machines in its
//! base regions (e.g. `iad`), in US dollars, as a linear model Fly's own presets follow:
//!
//! | item | price | derived from |
//! |---|---|---|
//! | shared vCPU | $0.69 a month | preset `shared-cpu-1x` 256 MB at $1.94/month, less its memory |
//! | performance vCPU | $21.00 a month | preset `performance-1x` 2 GB at $31.00/month, less its memory |
//! | memory | $5.00 per GB a month | presets `shared-cpu-1x` 1 GB $5.70 vs 256 MB $1.94 (and 2 GB $10.70) |
//! | stopped or suspended Machine | $0.15 per GB a month | root file system (and a suspend's memory snapshot), billed since 2024-04-25 |
//! | dedicated IPv4 | $2.00 a month | the app's dedicated address, billed running or not |
//! | Vercel | $0 a day | preview deployments are included in Vercel's plans (set `[cost] apps_per_day` otherwise) |
//!
//! Sources: fly.io/docs/about/pricing (the Machines and IP tables), Fly's blog post "New VMs: more
//! RAM, extra CPU, and a dollar menu" (the per-preset prices), and Fly's community announcement
//! "We are going to start collecting charges for stopped Machines rootfs starting April 25th"
//! (the $0.15 per GB-month), as they stood in April 2024. A month is 730 hours, as Fly's monthly
//! figures assume. Every figure can be overridden in `[cost]`, which then also names its own date.

use serde::Serialize;

use crate::host::{CostEstimate, CpuKind, MachineSize};

/// Hours in the month a monthly price is quoted for (8,760 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// A dated price table (monthly prices, one currency).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceTable {
    /// When these prices were published or checked (`YYYY-MM-DD` or `YYYY-MM`).
    pub dated: String,
    /// Where they come from.
    pub source: String,
    /// Currency code.
    pub currency: String,
    /// One shared vCPU, a month.
    pub shared_cpu_month: f64,
    /// One performance (dedicated) vCPU, a month.
    pub performance_cpu_month: f64,
    /// One GB of memory, a month.
    pub memory_gb_month: f64,
    /// One GB kept for a stopped or suspended Machine, a month.
    pub stopped_gb_month: f64,
    /// The root file system a stopped Machine keeps, in GB.
    pub rootfs_gb: f64,
    /// One dedicated IPv4 address, a month.
    pub ipv4_month: f64,
    /// All the apps of one preview, a day (Vercel: 0, included in the plan).
    pub apps_per_day: f64,
}

impl PriceTable {
    /// Fly.io's prices as published in April 2024 (see the module documentation).
    pub fn fly_2024_04() -> Self {
        Self {
            dated: "2024-04".into(),
            source: "Fly.io pricing (fly.io/docs/about/pricing), April 2024; Vercel previews included in the plan".into(),
            currency: "USD".into(),
            shared_cpu_month: 0.69,
            performance_cpu_month: 21.00,
            memory_gb_month: 5.00,
            stopped_gb_month: 0.15,
            rootfs_gb: 1.0,
            ipv4_month: 2.00,
            apps_per_day: 0.0,
        }
    }

    /// What a running Machine of `size` (with the app's IPv4 and the apps) costs an hour.
    pub fn running_per_hour(&self, size: &MachineSize) -> f64 {
        let cpu = match size.cpu_kind {
            CpuKind::Shared => self.shared_cpu_month,
            CpuKind::Performance => self.performance_cpu_month,
        };
        let monthly = cpu * f64::from(size.cpus)
            + self.memory_gb_month * f64::from(size.memory_mb) / 1024.0
            + self.ipv4_month;
        monthly / HOURS_PER_MONTH + self.apps_per_day / 24.0
    }

    /// What a sleeping Machine costs an hour: its root file system (and, suspended, the
    /// snapshot of its memory), the IPv4 and the apps.
    pub fn sleeping_per_hour(&self, size: &MachineSize, suspended: bool) -> f64 {
        let mut gb = self.rootfs_gb;
        if suspended {
            gb += f64::from(size.memory_mb) / 1024.0;
        }
        (self.stopped_gb_month * gb + self.ipv4_month) / HOURS_PER_MONTH + self.apps_per_day / 24.0
    }
}

/// Estimates the cost of a preview whose Machine has `size`, that has existed for `age_secs`
/// of which it slept `asleep_secs`. Pure.
pub fn estimate(
    table: &PriceTable,
    size: &MachineSize,
    suspends: bool,
    age_secs: u64,
    asleep_secs: u64,
) -> CostEstimate {
    let running = table.running_per_hour(size);
    let sleeping = table.sleeping_per_hour(size, suspends);
    let asleep = asleep_secs.min(age_secs) as f64 / 3600.0;
    let awake = (age_secs as f64 / 3600.0) - asleep;
    CostEstimate {
        currency: table.currency.clone(),
        so_far_cents: cents(awake * running + asleep * sleeping),
        per_day_running_cents: cents(running * 24.0),
        per_day_sleeping_cents: cents(sleeping * 24.0),
        prices_dated: table.dated.clone(),
    }
}

fn cents(v: f64) -> u64 {
    (v * 100.0).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagship() -> MachineSize {
        MachineSize {
            cpu_kind: CpuKind::Shared,
            cpus: 4,
            memory_mb: 4096,
        }
    }

    #[test]
    fn the_flagship_matches_a_hand_calculation() {
        // By hand, from the table: 4 × $0.69 + 4 GB × $5.00 + $2.00 (IPv4) = $24.76 a month;
        // ÷ 730 h × 24 = $0.8140 a day running. Asleep (stopped, 4 GB > 2 GB cannot suspend):
        // 1 GB × $0.15 + $2.00 = $2.15 a month → $0.0707 a day. Ten days, two of them asleep:
        // 8 × 0.81403 + 2 × 0.07068 = $6.653.
        let t = PriceTable::fly_2024_04();
        let e = estimate(&t, &flagship(), false, 10 * 86_400, 2 * 86_400);
        assert_eq!(e.per_day_running_cents, 81);
        assert_eq!(e.per_day_sleeping_cents, 7);
        assert_eq!(e.so_far_cents, 665);
        assert_eq!(e.currency, "USD");
        assert_eq!(
            e.line(),
            "≈ $6.65 so far; $0.81/day running, $0.07/day asleep (estimate, prices of 2024-04)"
        );
    }

    #[test]
    fn presets_come_back_out_of_the_linear_model() {
        let t = PriceTable {
            ipv4_month: 0.0,
            ..PriceTable::fly_2024_04()
        };
        let month = |kind, cpus, memory_mb| {
            t.running_per_hour(&MachineSize {
                cpu_kind: kind,
                cpus,
                memory_mb,
            }) * HOURS_PER_MONTH
        };
        // The published presets the table was derived from, within a cent.
        assert!((month(CpuKind::Shared, 1, 256) - 1.94).abs() <= 0.011);
        assert!((month(CpuKind::Shared, 1, 1024) - 5.70).abs() <= 0.011);
        assert!((month(CpuKind::Shared, 1, 2048) - 10.70).abs() < 0.02);
        assert!((month(CpuKind::Performance, 1, 2048) - 31.00).abs() <= 0.011);
    }

    #[test]
    fn a_suspended_machine_pays_for_its_memory_snapshot() {
        let t = PriceTable::fly_2024_04();
        let small = MachineSize {
            cpu_kind: CpuKind::Shared,
            cpus: 1,
            memory_mb: 2048,
        };
        assert!(t.sleeping_per_hour(&small, true) > t.sleeping_per_hour(&small, false));
        let e = estimate(&t, &small, true, 3600, 7200);
        // Asleep longer than it existed: capped, so all of its hour counts as asleep.
        assert_eq!(e.so_far_cents, cents(t.sleeping_per_hour(&small, true)));
    }
}
