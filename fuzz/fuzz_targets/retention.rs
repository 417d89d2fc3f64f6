//! The retention planner on random timelines: one decision per snapshot, and it never deletes
//! the newest snapshot nor one the remote does not have yet.
#![no_main]

use arbitrary::Arbitrary;
use backup_agent::retention::{Candidate, Count, Policy, plan};
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
});
