//! Tiered retention: `backup prune`, `backup run`'s prune, `list --explain`, two years of
//! hourly runs, and a property test against an independent model of the policy.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use backup_agent::retention::{self, Candidate, Count, Period, Policy};
use backup_agent::tag::Tag;
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::Value;

use crate::support::{App, assert_exit_saying, is_archive_name, sha256_hex, stderr};

/// A tag of this machine (the one the binary under test runs on).
fn own_tag(time: DateTime<Utc>, kind: &str, nonce: u32) -> String {
    tag_of(&backup_agent::tag::this_host(), time, kind, nonce)
}

fn tag_of(host: &str, time: DateTime<Utc>, kind: &str, nonce: u32) -> String {
    format!(
        "bk-{}-{kind}-{host}-{nonce:06x}",
        time.format("%Y%m%dT%H%M%SZ")
    )
}

/// A stand-in archive (named as gzip's) with its checksum record: pruning never reads archives.
fn put_archive(dir: &Path, tag: &str) {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{tag}.tar.gz"));
    let data = format!("archive of {tag}");
    fs::write(&path, &data).unwrap();
    backup_agent::fsutil::write_checksum(&path, &sha256_hex(data.as_bytes())).unwrap();
}

/// The tags of the archives in `dir`, stand-ins and real ones, whichever their compression.
fn archives(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            is_archive_name(&name).then(|| crate::support::tag_of(&name).to_string())
        })
        .collect()
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
}

fn app_with_dir_remote(rows: usize) -> App {
    let app = App::new(rows);
    fs::create_dir_all(app.path("remote")).unwrap();
    app.write_config(crate::support::DIR_REMOTE_CONFIG);
    app
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn prune_keeps_the_tiers_deletes_the_rest_and_says_why() {
    let app = app_with_dir_remote(5);
    // Three days of hourly snapshots, and 25 manual ones on the last day.
    let mut all = Vec::new();
    for day in 1..=3 {
        for hour in 0..24 {
            all.push(own_tag(at(day, hour), "scheduled", day * 100 + hour));
        }
    }
    for i in 0..25 {
        all.push(own_tag(
            at(3, 0) + Duration::minutes(i64::from(i) * 2 + 1),
            "manual",
            9000 + i,
        ));
    }
    for tag in &all {
        put_archive(&app.path("backups"), tag);
        put_archive(&app.path("remote"), tag);
    }

    let out = app.run(&["prune", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = json(&out);
    assert_eq!(
        archives(&app.path("backups")).len(),
        all.len(),
        "a dry run deletes nothing"
    );
    let rows = plan["snapshots"].as_array().unwrap();
    assert_eq!(rows.len(), all.len());
    let kept: Vec<&Value> = rows.iter().filter(|r| r["keep"] == true).collect();
    // 24 hours (the last day), days 1 and 2 (their 23:00), 20 manual.
    assert_eq!(kept.len(), 24 + 2 + 20, "{plan:#}");
    let day1 = own_tag(at(1, 23), "scheduled", 123);
    let row = rows.iter().find(|r| r["tag"] == day1.as_str()).unwrap();
    // 2026-03-01 is a Sunday: the last day of the ISO week before the other two days.
    assert_eq!(
        row["reasons"],
        serde_json::json!(["daily 3/7", "weekly 2/4"]),
        "{row}"
    );

    let out = app.run(&["prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hourly 1/24"), "{text}");
    assert!(text.contains("manual 20/20"), "{text}");
    let expected: BTreeSet<String> = kept
        .iter()
        .map(|r| r["tag"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(archives(&app.path("backups")), expected);
    assert_eq!(
        archives(&app.path("remote")),
        expected,
        "the same sweep on both sides"
    );
    let records = fs::read_dir(app.path("backups")).unwrap().count();
    assert_eq!(
        records,
        expected.len() * 2 + 1,
        "archives, records and the lock file"
    );

    // Nothing left to do: a second prune deletes nothing.
    let out = app.run(&["prune", "--json"]);
    let again = json(&out);
    assert!(
        again["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["keep"] == true)
    );
}

#[test]
fn another_hosts_snapshots_and_unpushed_ones_are_never_deleted() {
    let app = app_with_dir_remote(5);
    let mut mine = Vec::new();
    for hour in 0..24 {
        for minute in [0, 20, 40] {
            mine.push(own_tag(
                at(5, hour) + Duration::minutes(minute),
                "scheduled",
                hour * 100 + minute as u32,
            ));
        }
    }
    let theirs: Vec<String> = (0..40)
        .map(|i| {
            tag_of(
                "other-laptop",
                at(5, 0) + Duration::minutes(i),
                "scheduled",
                i as u32,
            )
        })
        .collect();
    // The oldest of mine never made it to the remote.
    let unpushed = mine[0].clone();
    for tag in &mine {
        put_archive(&app.path("backups"), tag);
        if *tag != unpushed {
            put_archive(&app.path("remote"), tag);
        }
    }
    for tag in &theirs {
        put_archive(&app.path("remote"), tag);
    }
    let out = app.run(&["prune", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["other_hosts"], 40);
    let local = archives(&app.path("backups"));
    assert!(local.contains(&unpushed), "an unpushed snapshot stays");
    let row = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tag"] == unpushed.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["reasons"], serde_json::json!(["not on the remote yet"]));
    assert_eq!(
        local.len(),
        24 + 1,
        "the newest of each hour, and the unpushed one"
    );
    let remote = archives(&app.path("remote"));
    for tag in &theirs {
        assert!(remote.contains(tag), "{tag} of another host was deleted");
    }
    let mine_remote: BTreeSet<String> = remote
        .difference(&theirs.iter().cloned().collect())
        .cloned()
        .collect();
    let expected: BTreeSet<String> = local.iter().filter(|t| **t != unpushed).cloned().collect();
    assert_eq!(mine_remote, expected);
}

#[test]
fn a_remote_that_cannot_be_listed_means_nothing_is_deleted() {
    let app = app_with_dir_remote(5);
    for hour in 0..30 {
        put_archive(
            &app.path("backups"),
            &own_tag(at(7, 0) + Duration::hours(hour), "scheduled", hour as u32),
        );
    }
    fs::remove_dir(app.path("remote")).unwrap();
    let out = app.run(&["prune"]);
    assert_exit_saying(&out, 4, "does not exist");
    assert_eq!(archives(&app.path("backups")).len(), 30);
}

#[test]
fn run_prunes_after_its_push_and_list_explains_why() {
    let app = app_with_dir_remote(20);
    for hour in 0..30 {
        let tag = own_tag(at(8, 0) + Duration::hours(hour), "scheduled", hour as u32);
        put_archive(&app.path("backups"), &tag);
        put_archive(&app.path("remote"), &tag);
    }
    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    // The new snapshot takes the newest hour: of the 30 old hours the 23 newest stay hourly,
    // the older days keep their last hour as daily.
    let pruned = report["pruned"].as_array().unwrap();
    assert!(!pruned.is_empty(), "{report:#}");
    let local = archives(&app.path("backups"));
    assert_eq!(local, archives(&app.path("remote")));
    assert!(local.contains(report["tag"].as_str().unwrap()));

    let out = app.run(&["list", "--explain", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = json(&out);
    let newest = &rows[0];
    assert_eq!(newest["keep"], true);
    assert!(
        newest["reasons"]
            .as_array()
            .unwrap()
            .contains(&"newest".into()),
        "{newest}"
    );
    let out = app.run(&["list", "--explain"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("RETENTION") && text.contains("hourly 1/24"),
        "{text}"
    );
}

// ---- The policy over long timelines, without the binary ----

fn tag(host: &str, time: DateTime<Utc>, kind: &str, nonce: u32) -> Tag {
    Tag::parse(&tag_of(host, time, kind, nonce)).unwrap()
}

/// Two years of hourly runs, with a remote that is down now and then: after every run the
/// newest and every unpushed snapshot are kept; at the end each tier holds what it should, and
/// local and remote hold the same set.
#[test]
fn two_years_of_hourly_runs_converge_on_the_tiers() {
    let policy = Policy::default();
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 17, 0).unwrap();
    let mut local: BTreeSet<Tag> = BTreeSet::new();
    let mut remote: BTreeSet<Tag> = BTreeSet::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let hours = 2 * 365 * 24;
    for hour in 0..hours {
        let now = start + Duration::hours(hour);
        local.insert(tag("laptop", now, "scheduled", (hour % 0xff_ffff) as u32));
        if hour % 500 == 7 {
            local.insert(tag("laptop", now + Duration::minutes(5), "manual", 1));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let remote_up = !seed.is_multiple_of(10) || hour == hours - 1;
        if !remote_up {
            continue; // `run` stops at the failed push and does not prune
        }
        remote.extend(local.iter().cloned());
        let candidates: Vec<Candidate> = local
            .union(&remote)
            .map(|t| Candidate {
                tag: t.clone(),
                unpushed: local.contains(t) && !remote.contains(t),
                base: None,
            })
            .collect();
        let plan = retention::plan(&candidates, &policy);
        assert!(plan[0].keep, "the newest is kept");
        for decision in plan.iter().filter(|d| !d.keep) {
            local.remove(&decision.tag);
            remote.remove(&decision.tag);
        }
    }
    assert_eq!(local, remote);
    let plan = retention::plan(
        &local
            .iter()
            .map(|t| Candidate {
                tag: t.clone(),
                unpushed: false,
                base: None,
            })
            .collect::<Vec<_>>(),
        &policy,
    );
    assert!(
        plan.iter().all(|d| d.keep),
        "a settled set loses nothing more"
    );
    let per_tier = |name: &str| {
        plan.iter()
            .filter(|d| d.reasons.iter().any(|r| r.starts_with(name)))
            .count()
    };
    assert_eq!(per_tier("hourly"), 24);
    assert_eq!(per_tier("daily"), 7);
    assert_eq!(per_tier("weekly"), 4);
    assert_eq!(per_tier("monthly"), 12);
    assert_eq!(per_tier("yearly"), 2, "2025 and 2026");
    assert_eq!(per_tier("manual"), (hours as usize).div_ceil(500).min(20));
    assert!(local.len() <= 24 + 7 + 4 + 12 + 2 + 20 + 1);
}

/// The policy as a plain set computation, written independently of `retention::plan`: for each
/// tier, group the scheduled snapshots by period, take the N latest periods, keep the newest
/// snapshot of each.
fn model(snapshots: &[(DateTime<Utc>, bool, bool)], policy: &Policy) -> BTreeSet<usize> {
    let mut keep = BTreeSet::new();
    for period in Period::ALL {
        let count = match period {
            Period::Hour => policy.hourly,
            Period::Day => policy.daily,
            Period::Week => policy.weekly,
            Period::Month => policy.monthly,
            Period::Year => policy.yearly,
        };
        let mut newest_per_period: BTreeMap<_, usize> = BTreeMap::new();
        for (i, (time, manual, _)) in snapshots.iter().enumerate() {
            if *manual {
                continue;
            }
            let slot = newest_per_period.entry(period.key(*time)).or_insert(i);
            if snapshots[*slot].0 < *time || (snapshots[*slot].0 == *time && *slot < i) {
                *slot = i;
            }
        }
        let take = match count {
            Count::All => usize::MAX,
            Count::Last(n) => n as usize,
        };
        keep.extend(newest_per_period.values().rev().take(take));
    }
    let mut manual: Vec<usize> = (0..snapshots.len()).filter(|i| snapshots[*i].1).collect();
    manual.sort_by_key(|i| (snapshots[*i].0, *i));
    let take = match policy.manual {
        Count::All => usize::MAX,
        Count::Last(n) => n as usize,
    };
    keep.extend(manual.iter().rev().take(take));
    // Tags order by time, then kind as text (`manual` < `scheduled`), then nonce (here `i`).
    if let Some(newest) =
        (0..snapshots.len()).max_by_key(|i| (snapshots[*i].0, !snapshots[*i].1, *i))
    {
        keep.insert(newest);
    }
    keep.extend((0..snapshots.len()).filter(|i| snapshots[*i].2));
    keep
}

fn count() -> impl Strategy<Value = Count> {
    prop_oneof![(0u32..6).prop_map(Count::Last), Just(Count::All)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn plan_agrees_with_the_model(
        offsets in prop::collection::vec((0i64..3 * 366 * 24 * 60, any::<bool>(), prop::bool::weighted(0.05)), 0..80),
        hourly in count(), daily in count(), weekly in count(),
        monthly in count(), yearly in count(), manual in count(),
    ) {
        let policy = Policy { hourly, daily, weekly, monthly, yearly, manual };
        let start = Utc.with_ymd_and_hms(2025, 12, 20, 0, 0, 0).unwrap();
        // Minutes over three years around a week-53 new year; the nonce keeps tags apart.
        let snapshots: Vec<(DateTime<Utc>, bool, bool)> = offsets
            .iter()
            .map(|(m, manual, unpushed)| (start + Duration::minutes(*m), *manual, *unpushed))
            .collect();
        let candidates: Vec<Candidate> = snapshots
            .iter()
            .enumerate()
            .map(|(i, (time, manual, unpushed))| Candidate {
                tag: tag("laptop", *time, if *manual { "manual" } else { "scheduled" }, i as u32),
                unpushed: *unpushed,
                base: None,
            })
            .collect();
        let plan = retention::plan(&candidates, &policy);
        let kept: BTreeSet<String> = plan.iter().filter(|d| d.keep).map(|d| d.tag.to_string()).collect();
        let expected: BTreeSet<String> = model(&snapshots, &policy)
            .into_iter()
            .map(|i| candidates[i].tag.to_string())
            .collect();
        prop_assert_eq!(kept, expected);
        prop_assert_eq!(plan.len(), candidates.len());
    }
}
