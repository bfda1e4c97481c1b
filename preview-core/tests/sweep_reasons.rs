//! Sweep decisions read consistently (issue 14, item 10): every reason, whatever the PR's state,
//! age or lookup, says "the PR" the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use preview_core::config::SweepDef;
use preview_core::pipeline::{Candidate, PrLookup, SweepAction, decide_sweep};
use preview_core::{Naming, PrNumber, PrState};

#[test]
fn every_reason_spells_the_pr_the_same_way() {
    let naming = Naming::new("pr", "agents").unwrap();
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let lookups = [
        PrLookup::State(PrState::Open),
        PrLookup::State(PrState::Closed),
        PrLookup::State(PrState::Merged),
        PrLookup::Missing,
        PrLookup::Error("github: transport error (timeout)".into()),
    ];
    let mut reasons = Vec::new();
    for delete_missing in [false, true] {
        let policy = SweepDef {
            grace_period: Duration::from_secs(3600),
            delete_missing,
        };
        let mut candidates = Vec::new();
        let mut by_pr = BTreeMap::new();
        for (i, lookup) in lookups.iter().enumerate() {
            for (j, age) in [None, Some(60), Some(7200)].into_iter().enumerate() {
                let pr = PrNumber::new((i * 10 + j + 1) as u64).unwrap();
                by_pr.insert(pr, lookup.clone());
                candidates.push(Candidate {
                    name: naming.name(pr),
                    created_at: age.map(|a| Timestamp::from_second(now.as_second() - a).unwrap()),
                    resources: vec![],
                });
            }
        }
        // And one whose PR was never looked up.
        candidates.push(Candidate {
            name: naming.name(PrNumber::new(99).unwrap()),
            created_at: None,
            resources: vec![],
        });
        for d in decide_sweep(&candidates, &by_pr, &policy, now) {
            reasons.push((d.action, d.reason));
        }
    }
    assert_eq!(reasons.len(), 32);
    for (_, r) in &reasons {
        assert!(r.starts_with("the PR "), "{r}");
        assert!(!r.contains("the pr "), "{r}");
    }
    // The states themselves are lowercase words.
    for want in [
        "the PR is open",
        "the PR is closed",
        "the PR is merged",
        "the PR is closed but the environment is younger than the grace period",
        "the PR is merged but the environment is younger than the grace period",
    ] {
        assert!(
            reasons.iter().any(|(_, r)| r == want),
            "{want}: {reasons:#?}"
        );
    }
    assert!(
        reasons
            .iter()
            .any(|(a, r)| *a == SweepAction::Delete && r == "the PR is merged")
    );
}
