//! Tiered retention: which snapshots to keep, and why.
//!
//! [`plan`] is a pure function of the snapshots and the policy, used the same way for the local
//! folder and the remote. Buckets come from the UTC time in the tag (never from file times or a
//! release's date). For each tier, the scheduled snapshots are walked newest first and the newest
//! snapshot of each of the N most recent periods that hold one is kept (hour; day; ISO week,
//! Monday to Sunday; month; year). Manual snapshots count only in the manual bucket, whose
//! newest N are kept. A snapshot is kept if any rule keeps it. Whatever the tiers say, the
//! newest snapshot and any snapshot the remote does not have yet are kept.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::tag::{Kind, Tag};

/// How many periods (or manual snapshots) a tier keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Every period.
    All,
    /// The N most recent; 0 turns the tier off.
    Last(u32),
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::All => f.write_str("all"),
            Count::Last(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Count {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Count::All => s.serialize_str("all"),
            Count::Last(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Count;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of periods (0 turns the tier off) or \"all\"")
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Count, E> {
                u32::try_from(n).map(Count::Last).map_err(|_| {
                    E::custom(format!(
                        "{n} is not a count: use 0 or more (0 turns the tier off), or \"all\""
                    ))
                })
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Count, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(-1))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Count, E> {
                if text == "all" {
                    Ok(Count::All)
                } else {
                    Err(E::custom(format!(
                        "`{text}` is not a count: use a number (0 turns the tier off) or \"all\""
                    )))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[retention]`: the defaults are hourly 24, daily 7, weekly 4, monthly 12, yearly all,
/// manual 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub hourly: Count,
    pub daily: Count,
    pub weekly: Count,
    pub monthly: Count,
    pub yearly: Count,
    pub manual: Count,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            hourly: Count::Last(24),
            daily: Count::Last(7),
            weekly: Count::Last(4),
            monthly: Count::Last(12),
            yearly: Count::All,
            manual: Count::Last(20),
        }
    }
}

/// A time bucket of the scheduled tiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    pub const ALL: [Period; 5] = [
        Period::Hour,
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Year,
    ];

    pub fn tier_name(self) -> &'static str {
        match self {
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }

    /// The bucket a time falls in; equal keys mean the same period.
    pub fn key(self, time: DateTime<Utc>) -> (i32, u32, u32, u32) {
        match self {
            Period::Hour => (time.year(), time.ordinal(), time.hour(), 0),
            Period::Day => (time.year(), time.ordinal(), 0, 0),
            Period::Week => {
                let week = time.iso_week();
                (week.year(), week.week(), 0, 0)
            }
            Period::Month => (time.year(), time.month(), 0, 0),
            Period::Year => (time.year(), 0, 0, 0),
        }
    }

    fn count(self, policy: &Policy) -> Count {
        match self {
            Period::Hour => policy.hourly,
            Period::Day => policy.daily,
            Period::Week => policy.weekly,
            Period::Month => policy.monthly,
            Period::Year => policy.yearly,
        }
    }
}

/// A snapshot the plan decides on.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub tag: Tag,
    /// Held locally but not (or not whole) on the remote: never deleted.
    pub unpushed: bool,
    /// The full snapshot this one is a differential of: kept as long as this one is.
    pub base: Option<Tag>,
}

/// The decision for one snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub tag: Tag,
    pub keep: bool,
    /// Why it is kept (`hourly 3/24`, `manual 5/20`, `newest`, `not on the remote yet`); empty
    /// when it is deleted.
    pub reasons: Vec<String>,
}

/// Decides, for each snapshot, keep or delete, with the reasons; newest first. The caller
/// passes only this machine's snapshots: another host's are never deleted.
pub fn plan(snapshots: &[Candidate], policy: &Policy) -> Vec<Decision> {
    let mut ordered: Vec<&Candidate> = snapshots.iter().collect();
    ordered.sort_by(|a, b| b.tag.cmp(&a.tag));
    ordered.dedup_by(|a, b| a.tag == b.tag);
    let mut decisions: Vec<Decision> = ordered
        .iter()
        .map(|c| Decision {
            tag: c.tag.clone(),
            keep: false,
            reasons: Vec::new(),
        })
        .collect();
    let keep = |d: &mut Decision, reason: String| {
        d.keep = true;
        d.reasons.push(reason);
    };

    for period in Period::ALL {
        let count = period.count(policy);
        let mut seen = BTreeSet::new();
        for d in decisions
            .iter_mut()
            .filter(|d| d.tag.kind() == Kind::Scheduled)
        {
            let within = match count {
                Count::All => true,
                Count::Last(n) => seen.len() < n as usize,
            };
            if !within {
                break;
            }
            // Newest first: the first snapshot met in a period is its newest.
            if seen.insert(period.key(d.tag.time())) {
                keep(d, format!("{} {}/{count}", period.tier_name(), seen.len()));
            }
        }
    }
    let mut manual = 0u32;
    for d in decisions
        .iter_mut()
        .filter(|d| d.tag.kind() == Kind::Manual)
    {
        let within = match policy.manual {
            Count::All => true,
            Count::Last(n) => manual < n,
        };
        if !within {
            break;
        }
        manual += 1;
        keep(d, format!("manual {manual}/{}", policy.manual));
    }
    if let Some(newest) = decisions.first_mut() {
        keep(newest, "newest".into());
    }
    for (d, c) in decisions.iter_mut().zip(&ordered) {
        if c.unpushed {
            keep(d, "not on the remote yet".into());
        }
    }
    decisions
}

/// [`plan`] as a prune carries it out for `scope`: snapshots dated in the future are kept and
/// planned without (a 2099 snapshot would be "newest" for ever and fill a period of its own in
/// every tier), and the snapshot the calling run took is kept. Newest first.
pub fn plan_scoped(candidates: Vec<Candidate>, policy: &Policy, scope: &Scope) -> Vec<Decision> {
    let bases: Vec<(Tag, Tag)> = candidates
        .iter()
        .filter_map(|c| Some((c.tag.clone(), c.base.clone()?)))
        .collect();
    let (future, candidates): (Vec<Candidate>, Vec<Candidate>) = candidates
        .into_iter()
        .partition(|c| dated_in_future(&c.tag, scope.now));
    let mut decisions = plan(&candidates, policy);
    decisions.extend(future.into_iter().map(|c| Decision {
        tag: c.tag,
        keep: true,
        reasons: vec!["dated in the future (a wrong clock)".into()],
    }));
    decisions.sort_by(|a, b| b.tag.cmp(&a.tag));
    for decision in &mut decisions {
        if scope.protect.as_ref() == Some(&decision.tag) {
            decision.keep = true;
            decision.reasons.push("taken by this run".into());
        }
    }
    keep_bases(&mut decisions, &bases);
    decisions
}

/// Keeps the base of every kept differential (`bases`: differential, base), saying so: a
/// differential without its base cannot be restored. Bases are fulls, so one pass is enough.
fn keep_bases(decisions: &mut [Decision], bases: &[(Tag, Tag)]) {
    let mut needed: std::collections::BTreeMap<&Tag, Vec<&Tag>> = Default::default();
    for (differential, base) in bases {
        if decisions.iter().any(|d| d.keep && &d.tag == differential) {
            needed.entry(base).or_default().push(differential);
        }
    }
    for decision in decisions.iter_mut() {
        let Some(differentials) = needed.get_mut(&decision.tag) else {
            continue;
        };
        differentials.sort_unstable_by(|a, b| b.cmp(a));
        decision.keep = true;
        decision.reasons.push(match differentials.len() {
            1 => format!("base of {}", differentials[0]),
            n => format!("base of {} and {} more", differentials[0], n - 1),
        });
    }
}

/// Whose snapshots a prune plans for, and what it must keep whatever the plan says.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The host whose snapshots are planned (this machine's unless `--host` names another);
    /// every other host's are left alone.
    pub host: String,
    /// The snapshot the calling run just took: never deleted by its own run, whatever the
    /// tiers say.
    pub protect: Option<Tag>,
    /// Now, for telling snapshots dated in the future (a wrong clock) apart: they are kept and
    /// left out of the tiers, so they do not stand in for real periods.
    pub now: DateTime<Utc>,
}

impl Scope {
    /// This machine's snapshots, now.
    pub fn this_host() -> Scope {
        Scope {
            host: crate::tag::this_host(),
            protect: None,
            now: crate::clock::now(),
        }
    }
}

/// How far in the future a record may be before the clock is called wrong (NTP steps).
pub const CLOCK_SLACK_SECS: i64 = 300;

/// Whether a snapshot's tag is later than `now` by more than a clock may be off (NTP steps):
/// it was taken under a wrong clock.
pub fn dated_in_future(tag: &Tag, now: DateTime<Utc>) -> bool {
    tag.time() > now + chrono::Duration::seconds(CLOCK_SLACK_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(time: &str, kind: &str, nonce: u32) -> Tag {
        Tag::parse(&format!("bk-{time}-{kind}-laptop-{nonce:06x}")).unwrap()
    }

    fn scheduled(times: &[&str]) -> Vec<Candidate> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Candidate {
                tag: tag(t, "scheduled", i as u32),
                unpushed: false,
                base: None,
            })
            .collect()
    }

    fn only(period: Period, n: u32) -> Policy {
        let off = Count::Last(0);
        let mut policy = Policy {
            hourly: off,
            daily: off,
            weekly: off,
            monthly: off,
            yearly: off,
            manual: off,
        };
        match period {
            Period::Hour => policy.hourly = Count::Last(n),
            Period::Day => policy.daily = Count::Last(n),
            Period::Week => policy.weekly = Count::Last(n),
            Period::Month => policy.monthly = Count::Last(n),
            Period::Year => policy.yearly = Count::Last(n),
        }
        policy
    }

    fn kept(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.tag.time().format("%Y%m%dT%H%M%SZ").to_string())
            .collect()
    }

    #[test]
    fn several_snapshots_in_one_hour_keep_the_newest_of_it() {
        let snaps = scheduled(&[
            "20260301T100500Z",
            "20260301T103000Z",
            "20260301T105959Z",
            "20260301T110000Z",
        ]);
        let plan = plan(&snaps, &only(Period::Hour, 24));
        assert_eq!(kept(&plan), ["20260301T110000Z", "20260301T105959Z"]);
        assert_eq!(plan[1].reasons, ["hourly 2/24"]);
    }

    #[test]
    fn days_without_snapshots_are_not_periods() {
        // Three days with snapshots spread over three weeks: daily 2 keeps the two newest days
        // that hold one, however far back.
        let snaps = scheduled(&["20260301T090000Z", "20260310T090000Z", "20260321T090000Z"]);
        let plan = plan(&snaps, &only(Period::Day, 2));
        assert_eq!(kept(&plan), ["20260321T090000Z", "20260310T090000Z"]);
    }

    #[test]
    fn month_and_year_boundaries_are_utc_calendar_boundaries() {
        let snaps = scheduled(&[
            "20251231T235959Z",
            "20260101T000000Z",
            "20260131T230000Z",
            "20260201T000100Z",
        ]);
        let plan_months = plan(&snaps, &only(Period::Month, 12));
        assert_eq!(
            kept(&plan_months),
            ["20260201T000100Z", "20260131T230000Z", "20251231T235959Z"]
        );
        let plan_years = plan(&snaps, &only(Period::Year, 5));
        assert_eq!(kept(&plan_years), ["20260201T000100Z", "20251231T235959Z"]);
        assert_eq!(plan_years[3].reasons, ["yearly 2/5"]);
    }

    #[test]
    fn iso_week_53_spans_the_new_year() {
        // 2026-12-31 (Thursday) to 2027-01-03 (Sunday) are ISO week 53 of 2026; Monday
        // 2027-01-04 starts week 1 of 2027. 2026-12-27 is a Sunday: week 52.
        let snaps = scheduled(&[
            "20261227T120000Z",
            "20261228T080000Z",
            "20270101T120000Z",
            "20270103T235959Z",
            "20270104T000000Z",
        ]);
        let plan = plan(&snaps, &only(Period::Week, 10));
        assert_eq!(
            kept(&plan),
            ["20270104T000000Z", "20270103T235959Z", "20261227T120000Z"]
        );
        assert_eq!(plan[1].reasons, ["weekly 2/10"]);
    }

    #[test]
    fn manual_snapshots_count_only_in_their_own_bucket() {
        let mut snaps = scheduled(&["20260301T100000Z", "20260301T110000Z"]);
        for (i, t) in ["20260301T103000Z", "20260301T104000Z", "20260301T104500Z"]
            .iter()
            .enumerate()
        {
            snaps.push(Candidate {
                tag: tag(t, "manual", 100 + i as u32),
                unpushed: false,
                base: None,
            });
        }
        let policy = Policy {
            manual: Count::Last(2),
            ..only(Period::Hour, 24)
        };
        let plan = plan(&snaps, &policy);
        assert_eq!(
            kept(&plan),
            [
                "20260301T110000Z",
                "20260301T104500Z",
                "20260301T104000Z",
                "20260301T100000Z"
            ],
            "a manual snapshot does not take the place of the 10:00 hour"
        );
        assert_eq!(plan[1].reasons, ["manual 1/2"]);
    }

    #[test]
    fn the_newest_and_unpushed_snapshots_are_kept_whatever_the_tiers_say() {
        let mut snaps = scheduled(&["20260301T100000Z", "20260302T100000Z", "20260303T100000Z"]);
        snaps[0].unpushed = true;
        let off = only(Period::Hour, 0);
        let plan = plan(&snaps, &off);
        assert_eq!(kept(&plan), ["20260303T100000Z", "20260301T100000Z"]);
        assert_eq!(plan[0].reasons, ["newest"]);
        assert_eq!(plan[2].reasons, ["not on the remote yet"]);
        assert!(!plan[1].keep && plan[1].reasons.is_empty());
    }

    #[test]
    fn every_tier_gives_its_reason() {
        let snaps = scheduled(&["20250615T100000Z", "20260301T100000Z"]);
        let plan = plan(&snaps, &Policy::default());
        assert_eq!(
            plan[0].reasons,
            [
                "hourly 1/24",
                "daily 1/7",
                "weekly 1/4",
                "monthly 1/12",
                "yearly 1/all",
                "newest"
            ]
        );
        assert_eq!(
            plan[1].reasons,
            [
                "hourly 2/24",
                "daily 2/7",
                "weekly 2/4",
                "monthly 2/12",
                "yearly 2/all"
            ]
        );
    }
}
