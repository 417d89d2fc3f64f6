//! The retention planner on random timelines: one decision per snapshot, and it never deletes
//! the newest snapshot nor one the remote does not have yet; as a prune plans it, it never
//! deletes the base of a differential it keeps.
#![no_main]

use arbitrary::Arbitrary;
use backup_agent::retention::{Candidate, Count, Policy, Scope, plan, plan_scoped};
use backup_agent::tag::{Kind, Tag};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// (seconds after 2020-01-01, manual, unpushed)
    snapshots: Vec<(u32, bool, bool)>,
    tiers: [u8; 6],
}

fuzz_target!(|input: Input| {
    let count = |n: u8| {
        if n == 255 {
            Count::All
        } else {
            Count::Last(u32::from(n % 40))
        }
    };
    let policy = Policy {
        hourly: count(input.tiers[0]),
        daily: count(input.tiers[1]),
        weekly: count(input.tiers[2]),
        monthly: count(input.tiers[3]),
        yearly: count(input.tiers[4]),
        manual: count(input.tiers[5]),
    };
    let base = 1_577_836_800i64;
    // Tags built from the input alone (the nonce from the index), so a crash replays.
    let mut candidates: Vec<Candidate> = input
        .snapshots
        .iter()
        .take(500)
        .enumerate()
        .map(|(i, &(offset, manual, unpushed))| {
            let time = DateTime::<Utc>::from_timestamp(base + i64::from(offset), 0).unwrap();
            let kind = if manual {
                Kind::Manual
            } else {
                Kind::Scheduled
            };
            let text = format!(
                "bk-{}-{kind}-fuzz-host-{i:06x}",
                time.format("%Y%m%dT%H%M%SZ")
            );
            Candidate {
                tag: Tag::parse(&text).expect("a well-formed tag"),
                unpushed,
                base: None,
            }
        })
        .collect();
    candidates.sort_by(|a, b| a.tag.cmp(&b.tag));
    let decisions = plan(&candidates, &policy);
    assert_eq!(decisions.len(), candidates.len());
    let newest = candidates.iter().map(|c| &c.tag).max();
    for d in &decisions {
        let c = candidates
            .iter()
            .find(|c| c.tag == d.tag)
            .expect("a decision per snapshot");
        if c.unpushed || Some(&d.tag) == newest {
            assert!(d.keep, "{} deleted: {:?}", d.tag, d.reasons);
        }
        assert_eq!(d.keep, !d.reasons.is_empty(), "{d:?}");
    }

    // Scheduled snapshots whose offset is odd are differentials of the newest full before them.
    let mut last_full: Option<Tag> = None;
    for c in &mut candidates {
        let odd = c.tag.suffix().bytes().last().is_some_and(|b| b % 2 == 1);
        match (&last_full, c.tag.kind(), odd) {
            (Some(full), Kind::Scheduled, true) => c.base = Some(full.clone()),
            _ => last_full = Some(c.tag.clone()),
        }
    }
    let scope = Scope {
        host: "fuzz-host".into(),
        protect: None,
        now: DateTime::<Utc>::from_timestamp(base + i64::from(u32::MAX), 0).unwrap(),
    };
    let decisions = plan_scoped(candidates.clone(), &policy, &scope);
    for d in decisions.iter().filter(|d| d.keep) {
        let c = candidates.iter().find(|c| c.tag == d.tag).unwrap();
        if let Some(full) = &c.base {
            let kept = decisions.iter().any(|b| &b.tag == full && b.keep);
            assert!(kept, "{} kept without its base {full}", d.tag);
        }
    }
});
