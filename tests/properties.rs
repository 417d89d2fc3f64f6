//! Properties over generated input: snapshot tags for any host name and time, manifests that
//! come back unchanged through JSON and through an archive, intervals through their text, and
//! parallel gzip through any gunzip.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use backup_agent::archive::manifest::ToolInfo;
use backup_agent::archive::pgzip::ParallelGzEncoder;
use backup_agent::archive::read::{parse_manifest, read_manifest};
use backup_agent::archive::{DatabaseEntry, FileEntry, MANIFEST_NAME, MANIFEST_VERSION, Manifest};
use backup_agent::checks::{Findings, ForeignKeyFinding};
use backup_agent::schedule::Interval;
use backup_agent::tag::{Kind, Tag, host_id};
use chrono::{DateTime, SubsecRound, Utc};
use proptest::prelude::*;

/// A time between 2000 and 2100, to the nanosecond.
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (946_684_800i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Manual), Just(Kind::Scheduled)]
}

/// Host names as machines have them, and as they should not: any text at all.
fn hostname() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?",
        "[A-Za-z0-9._-]{1,70}",
        any::<String>(),
    ]
}

fn findings() -> impl Strategy<Value = Option<Findings>> {
    proptest::option::of(
        (
            proptest::collection::vec(any::<String>(), 0..3),
            proptest::collection::vec(
                (
                    any::<String>(),
                    any::<String>(),
                    any::<u64>(),
                    proptest::collection::vec(any::<i64>(), 0..3),
                    proptest::option::of(any::<String>()),
                ),
                0..3,
            ),
        )
            .prop_map(|(integrity, keys)| Findings {
                integrity,
                foreign_keys: keys
                    .into_iter()
                    .map(|(table, parent, rows, examples, error)| ForeignKeyFinding {
                        table,
                        parent,
                        rows,
                        examples,
                        error,
                    })
                    .collect(),
            }),
    )
}

fn database(i: usize) -> impl Strategy<Value = DatabaseEntry> {
    (
        (any::<String>(), any::<i64>(), any::<u64>(), "[a-z]{1,8}"),
        (any::<u64>(), "[0-9a-f]{64}"),
        proptest::collection::btree_map(any::<String>(), any::<u64>(), 0..4),
        findings(),
        proptest::option::of(time()),
        proptest::option::of(0u32..0o10000),
    )
        .prop_map(
            move |(
                (path, user_version, page_size, journal_mode),
                (size, sha256),
                tables,
                findings,
                copied_at,
                mode,
            )| {
                DatabaseEntry {
                    name: format!("db{i}"),
                    path,
                    archive_path: format!("databases/db{i}.db"),
                    user_version,
                    page_size,
                    journal_mode,
                    size,
                    sha256,
                    tables,
                    findings,
                    copied_at,
                    mode,
                    pages: None,
                }
            },
        )
}

fn file(i: usize) -> impl Strategy<Value = FileEntry> {
    (
        any::<String>(),
        "[a-z0-9_-][a-z0-9._-]{0,11}",
        any::<u64>(),
        0u32..0o10000,
        "[0-9a-f]{64}",
    )
        .prop_map(move |(path, name, size, mode, sha256)| FileEntry {
            path,
            archive_path: format!("files/{i}/{name}"),
            size,
            mode,
            sha256,
            in_base: false,
        })
}

/// A manifest a restore accepts: unique names and safe paths, anything in the other fields.
fn manifest() -> impl Strategy<Value = Manifest> {
    (
        time(),
        kind(),
        hostname(),
        any::<String>(),
        (0usize..4).prop_flat_map(|n| (0..n).map(database).collect::<Vec<_>>()),
        (0usize..4).prop_flat_map(|n| (0..n).map(file).collect::<Vec<_>>()),
        proptest::option::of(any::<String>()),
    )
        .prop_map(
            |(time, kind, host, version, databases, files, note)| Manifest {
                manifest_version: MANIFEST_VERSION,
                tag: Tag::new(time, kind, &host),
                created_at: time.trunc_subsecs(0),
                kind,
                tool: ToolInfo {
                    name: "backup-agent".into(),
                    version,
                },
                host,
                databases,
                files,
                note,
                base: None,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the host is called and whenever it runs: the tag parses back to itself, names
    /// its time, kind and host identity, and uses only what git and GitHub keep as is.
    #[test]
    fn a_tag_made_for_any_host_and_time_reads_back(time in time(), kind in kind(), host in hostname()) {
        let tag = Tag::new(time, kind, &host);
        prop_assert_eq!(Tag::parse(tag.as_str()), Some(tag.clone()));
        prop_assert_eq!(Tag::from_archive_name(&tag.archive_name()), Some(tag.clone()));
        prop_assert_eq!(tag.time(), time.trunc_subsecs(0));
        prop_assert_eq!(tag.taken_at(), time.trunc_subsecs(3));
        prop_assert_eq!(tag.kind(), kind);
        prop_assert_eq!(tag.host(), host_id(&host));
        prop_assert!(tag.host().len() <= 32, "{}", tag.host());
        prop_assert!(
            tag.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'T' || b == b'Z'),
            "{}", tag
        );
        prop_assert!(!tag.host().contains("--") && !tag.host().starts_with('-') && !tag.host().ends_with('-'));
        let json = serde_json::to_string(&tag).unwrap();
        prop_assert_eq!(serde_json::from_str::<Tag>(&json).unwrap(), tag);
    }

    /// Tags order as their snapshots were taken, to the millisecond, whatever the hosts; across
    /// seconds their text orders the same way.
    #[test]
    fn tags_order_by_when_they_were_taken(a in time(), b in time(), host_a in hostname(), host_b in hostname(), kind_a in kind(), kind_b in kind()) {
        let (a, b) = (a.trunc_subsecs(3), b.trunc_subsecs(3));
        prop_assume!(a != b);
        let (early, late) = if a < b { (a, b) } else { (b, a) };
        let first = Tag::new(early, kind_a, &host_a);
        let second = Tag::new(late, kind_b, &host_b);
        prop_assert!(first < second, "{first} {second}");
        if early.trunc_subsecs(0) != late.trunc_subsecs(0) {
            prop_assert!(first.as_str() < second.as_str(), "{first} {second}");
        }
    }

    /// A host's identity ignores case, and a name that is already clean is its own identity.
    #[test]
    fn a_host_identity_ignores_case_and_keeps_clean_names(host in "[A-Za-z0-9._-]{1,70}") {
        prop_assert_eq!(host_id(&host), host_id(&host.to_uppercase()));
        let id = host_id(&host);
        prop_assert_eq!(host_id(&id), id.clone(), "an identity is clean");
    }

    /// A manifest comes back equal through its JSON, through the restore's parser (which
    /// accepts it) and through an archive's first entry.
    #[test]
    fn a_manifest_round_trips(manifest in manifest()) {
        let json = serde_json::to_vec_pretty(&manifest).unwrap();
        prop_assert_eq!(&serde_json::from_slice::<Manifest>(&json).unwrap(), &manifest);
        prop_assert_eq!(&parse_manifest(&json).unwrap(), &manifest);

        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join(manifest.tag.archive_name());
        crate::support::write_archive(&archive, &[(MANIFEST_NAME.to_string(), json, 0o600)]);
        prop_assert_eq!(read_manifest(&archive).unwrap(), manifest);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// An interval reads back from the text it prints, and from its JSON.
    #[test]
    fn an_interval_reads_back_from_its_text(secs in 0u64..10_000_000_000) {
        let interval = Interval::from_secs(secs);
        let text = interval.to_string();
        prop_assert_eq!(text.parse::<Interval>(), Ok(interval), "{}", text);
        let json = serde_json::to_string(&interval).unwrap();
        prop_assert_eq!(serde_json::from_str::<Interval>(&json).unwrap(), interval);
    }
}

/// Bytes that compress like real data, partly: runs, text and noise from `seed`.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        match state % 3 {
            0 => out.extend(std::iter::repeat_n(
                state as u8,
                (state >> 8) as usize % 300,
            )),
            1 => out.extend_from_slice(b"INSERT INTO tasks (title) VALUES ('write the report');"),
            _ => out.extend_from_slice(&state.to_le_bytes()),
        }
    }
    out.truncate(len);
    out
}

proptest! {
    // Each case compresses up to 3 MiB: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the size (across the 1 MiB blocks), the write sizes, the workers and the level:
    /// one plain gzip member that a single-member gunzip reads back byte for byte.
    #[test]
    fn parallel_gzip_is_one_member_any_gunzip_reads_back(
        len in prop_oneof![0usize..70_000, (1usize << 20) - 100..(1 << 20) + 100, 0usize..3 << 20],
        chunk in prop_oneof![Just(1usize << 16), 1usize..200_000],
        threads in 0usize..5,
        level in 0u32..10,
        seed in any::<u64>(),
    ) {
        let input = data(len, seed);
        let mut encoder =
            ParallelGzEncoder::new(Vec::new(), flate2::Compression::new(level), threads).unwrap();
        for part in input.chunks(chunk) {
            encoder.write_all(part).unwrap();
        }
        let gz = encoder.finish().unwrap();
        // A single-member decoder: anything after the first member would be left unread.
        let mut decoder = flate2::bufread::GzDecoder::new(gz.as_slice());
        let mut output = Vec::new();
        decoder.read_to_end(&mut output).unwrap();
        prop_assert!(output == input, "{} bytes in, {} out", input.len(), output.len());
        prop_assert!(decoder.into_inner().is_empty(), "one member, nothing after it");
    }
}

#[test]
fn host_names_that_differ_only_past_the_cut_keep_apart() {
    let long = "build-agent-production-cluster-";
    let ids: BTreeMap<String, String> = (0..50)
        .map(|i| {
            let name = format!("{long}{i:02}.example.com");
            (host_id(&name), name)
        })
        .collect();
    assert_eq!(ids.len(), 50, "{ids:?}");
}
