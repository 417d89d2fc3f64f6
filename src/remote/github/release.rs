//! How a snapshot is laid out on GitHub: a published release named after its tag, whose body
//! describes the snapshot in words and in a machine-readable block, and whose assets are the
//! archive or its numbered parts.

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::Upload;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::tag::Tag;
use crate::units;

/// Marks the machine-readable block in a release body.
pub(super) const BODY_MARKER: &str = "<!-- backup-agent ";
#[derive(Debug, Deserialize)]
pub(super) struct Release {
    pub(super) id: u64,
    pub(super) tag_name: String,
    pub(super) upload_url: String,
    #[serde(default)]
    pub(super) body: Option<String>,
    /// Drafts have no git tag until published, and `releases/tags/{tag}` does not return them.
    #[serde(default)]
    pub(super) draft: bool,
    /// Published in a repository with immutable releases: its assets and tag are locked.
    #[serde(default)]
    pub(super) immutable: bool,
    #[serde(default)]
    pub(super) created_at: Option<String>,
    #[serde(default)]
    pub(super) assets: Vec<Asset>,
}

#[derive(Clone, Debug, Deserialize)]
pub(super) struct Asset {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) size: u64,
    pub(super) state: String,
    #[serde(default)]
    pub(super) digest: Option<String>,
}

impl Asset {
    pub(super) fn sha256(&self) -> Option<&str> {
        self.digest.as_deref()?.strip_prefix("sha256:")
    }
}

/// One asset of a snapshot: the whole archive, or one part of an archive over the asset limit.
#[derive(Clone, Debug)]
pub(super) struct Piece {
    pub(super) name: String,
    pub(super) offset: u64,
    pub(super) len: u64,
    pub(super) sha256: String,
}

/// The assets `upload` becomes: one, or numbered parts each within `max` bytes.
pub(super) fn pieces(upload: &Upload<'_>, max: u64) -> Result<Vec<Piece>> {
    let name = upload.archive_name();
    if upload.size <= max {
        return Ok(vec![Piece {
            name,
            offset: 0,
            len: upload.size,
            sha256: upload.sha256.to_string(),
        }]);
    }
    let count = upload.size.div_ceil(max);
    let mut file = std::fs::File::open(upload.path)
        .map_err(|e| Error::io("cannot read local archive", upload.path, e))?;
    let mut out = Vec::new();
    for i in 0..count {
        let offset = i * max;
        let len = max.min(upload.size - offset);
        let mut sink = fsutil::HashingWriter::new(std::io::sink());
        let copied = std::io::copy(&mut std::io::Read::take(&mut file, len), &mut sink)
            .map_err(|e| Error::io("cannot read local archive", upload.path, e))?;
        let (_, _, sha256) = sink.finish();
        if copied != len {
            return Err(Error::Damaged(format!(
                "local archive {} changed while it was being pushed",
                upload.path.display()
            )));
        }
        out.push(Piece {
            name: format!("{name}.part-{:03}-of-{count:03}", i + 1),
            offset,
            len,
            sha256,
        });
    }
    Ok(out)
}

/// The complete assets holding a snapshot, in order: the single archive, or every part the
/// release body lists. `None` when something is missing or incomplete.
pub(super) fn stored_pieces(
    tag: &Tag,
    assets: &[Asset],
    recorded: Option<&Value>,
) -> Option<Vec<Asset>> {
    let complete = |name: &str| {
        assets
            .iter()
            .find(|a| a.name == name && a.state == "uploaded")
            .cloned()
    };
    if let Some(single) = tag.archive_names().iter().find_map(|name| complete(name)) {
        // Sized as recorded: a listing that cannot tell an asset's state (GraphQL) would
        // otherwise take a partial one an older version left for the archive.
        let recorded_size = recorded.and_then(|r| r["size"].as_u64());
        return recorded_size
            .is_none_or(|size| size == single.size)
            .then(|| vec![single]);
    }
    let parts = recorded?["parts"].as_array()?;
    parts
        .iter()
        .map(|part| {
            let asset = complete(part["name"].as_str()?)?;
            (Some(asset.size) == part["size"].as_u64()).then_some(asset)
        })
        .collect()
}

/// The JSON block of a release body.
pub(super) fn body_record(body: Option<&str>) -> Option<Value> {
    let body = body?;
    let start = body.find(BODY_MARKER)? + BODY_MARKER.len();
    let end = body[start..].find("-->")? + start;
    serde_json::from_str(body[start..end].trim()).ok()
}

/// `text` as GitHub shows it literally in a release body: never markup that could hide the
/// record (`<`, `&`), format the words or link (`*`, `[`, a backtick), mention someone (`@name`)
/// or name an issue (`#12`). The record keeps the text as it was given.
fn as_plain_markdown(text: &str) -> String {
    let mut plain = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => plain.push_str("&amp;"),
            '<' => plain.push_str("&lt;"),
            '>' => plain.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                plain.push('\\');
                plain.push(c);
            }
            // A zero-width space after them keeps GitHub from linking a user or an issue.
            '@' | '#' => {
                plain.push(c);
                plain.push('\u{200B}');
            }
            c => plain.push(c),
        }
    }
    plain
}

/// The release text: the snapshot in words, then a block `backup list` reads without a download.
pub(super) fn release_body(upload: &Upload<'_>, pieces: &[Piece]) -> String {
    let manifest = upload.manifest;
    let parts: Option<Vec<Value>> = (pieces.len() > 1).then(|| {
        pieces
            .iter()
            .map(|p| json!({"name": p.name, "size": p.len, "sha256": p.sha256}))
            .collect()
    });
    let mut record = crate::remote::snapshot_record(upload);
    record["parts"] = json!(parts);
    // The record sits in an HTML comment: a note holding `-->` or the marker must neither end
    // it nor start another. `<` and `>` only occur inside JSON strings, where escapes are valid.
    let record = record
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e");
    let note = manifest
        .and_then(|m| m.note.as_deref())
        .map(|n| format!("\n\nNote: {}", as_plain_markdown(n)))
        .unwrap_or_default();
    let findings = manifest
        .as_ref()
        .and_then(|m| m.findings_count())
        .filter(|&n| n > 0)
        .map(|n| format!("\n\nThe live data failed SQLite's integrity or foreign key checks when it was copied ({}, recorded in the manifest); it restores as it was.", crate::units::count(n, "finding", "findings")))
        .unwrap_or_default();
    let words = match manifest {
        Some(m) => format!(
            "Snapshot taken {} UTC on {} ({}): {} ({}), {}; archive {}, sha256 {}.{findings}",
            upload.tag.time().format("%Y-%m-%d %H:%M:%S"),
            m.host,
            upload.tag.kind().as_str(),
            crate::units::count(m.databases.len(), "database", "databases"),
            m.databases
                .iter()
                .map(|d| format!("{} at schema {}", d.name, d.user_version))
                .collect::<Vec<_>>()
                .join(", "),
            crate::units::count(m.files.len(), "file", "files"),
            units::human_bytes(upload.size),
            upload.sha256
        ),
        None => format!(
            "Snapshot taken {} UTC; archive {}, sha256 {}.",
            upload.tag.time().format("%Y-%m-%d %H:%M:%S"),
            units::human_bytes(upload.size),
            upload.sha256
        ),
    };
    let base = manifest
        .and_then(|m| m.base.as_ref())
        .map(|b| {
            format!(
                "\n\nA differential of {}: restoring it needs that release too.",
                b.tag
            )
        })
        .unwrap_or_default();
    format!(
        "{words}{base}{note}\n\nRestore with `backup restore {}`.\n\n{BODY_MARKER}{record} -->\n",
        upload.tag
    )
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn tag() -> Tag {
        Tag::parse("bk-20260101T000000Z-manual-fixture-000001").unwrap()
    }

    fn asset(name: &str, size: u64, state: &str) -> Asset {
        Asset {
            id: 1,
            name: name.into(),
            size,
            state: state.into(),
            digest: None,
        }
    }

    #[test]
    fn an_archive_over_the_limit_is_cut_into_numbered_parts_that_cover_it_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let tag = tag();
        let sha = hex(&bytes);
        let upload = Upload {
            tag: &tag,
            path: &path,
            size: bytes.len() as u64,
            sha256: &sha,
            manifest: None,
            verified: true,
        };
        // Within the limit, or exactly at it: one asset, the archive itself, not read.
        for max in [10_000, 20_000] {
            let one = pieces(&upload, max).unwrap();
            assert_eq!(one.len(), 1);
            assert_eq!(
                (one[0].name.as_str(), one[0].offset, one[0].len),
                (tag.archive_name().as_str(), 0, 10_000)
            );
            assert_eq!(one[0].sha256, sha);
        }
        for (max, count) in [(9_999, 2), (4_096, 3), (1_000, 10), (3_333, 4)] {
            let parts = pieces(&upload, max).unwrap();
            assert_eq!(parts.len(), count, "max {max}");
            let mut next = 0;
            for (i, part) in parts.iter().enumerate() {
                assert_eq!(
                    part.name,
                    format!("{}.part-{:03}-of-{count:03}", tag.archive_name(), i + 1)
                );
                assert_eq!(part.offset, next, "parts follow each other");
                assert!(part.len <= max && part.len > 0);
                let slice = &bytes[part.offset as usize..(part.offset + part.len) as usize];
                assert_eq!(part.sha256, hex(slice));
                next += part.len;
            }
            assert_eq!(next, 10_000, "the parts cover the archive");
        }
        // The file shrank since it was recorded: refused, not cut short.
        std::fs::write(&path, &bytes[..5_000]).unwrap();
        assert!(pieces(&upload, 4_096).is_err());
    }

    #[test]
    fn a_snapshot_is_stored_when_its_archive_or_every_recorded_part_is_complete() {
        let tag = tag();
        let name = tag.archive_name();
        let part = |i: u32| format!("{name}.part-{i:03}-of-002");
        let record = json!({"parts": [
            {"name": part(1), "size": 10, "sha256": "a"},
            {"name": part(2), "size": 4, "sha256": "b"},
        ]});
        let names = |found: Option<Vec<Asset>>| {
            found.map(|assets| assets.into_iter().map(|a| a.name).collect::<Vec<_>>())
        };

        let single = [asset(&name, 14, "uploaded")];
        assert_eq!(
            names(stored_pieces(&tag, &single, None)),
            Some(vec![name.clone()])
        );
        // An upload GitHub never completed is not the archive.
        let starter = [asset(&name, 14, "starter")];
        assert_eq!(names(stored_pieces(&tag, &starter, None)), None);

        let both = [
            asset(&part(2), 4, "uploaded"),
            asset(&part(1), 10, "uploaded"),
        ];
        assert_eq!(
            names(stored_pieces(&tag, &both, Some(&record))),
            Some(vec![part(1), part(2)]),
            "in the record's order"
        );
        // Parts without the record that lists them say nothing.
        assert_eq!(names(stored_pieces(&tag, &both, None)), None);
        let missing = [asset(&part(1), 10, "uploaded")];
        assert_eq!(names(stored_pieces(&tag, &missing, Some(&record))), None);
        let short = [
            asset(&part(1), 10, "uploaded"),
            asset(&part(2), 3, "uploaded"),
        ];
        assert_eq!(names(stored_pieces(&tag, &short, Some(&record))), None);
        let unfinished = [
            asset(&part(1), 10, "uploaded"),
            asset(&part(2), 4, "starter"),
        ];
        assert_eq!(names(stored_pieces(&tag, &unfinished, Some(&record))), None);
    }

    #[test]
    fn the_release_body_carries_a_record_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        // No manifest: the body says less, but its record is still whole.
        let path = dir.path().join("a.tar.gz");
        std::fs::write(&path, b"not gzip").unwrap();
        let tag = tag();
        let upload = Upload {
            tag: &tag,
            path: &path,
            size: 8,
            sha256: "ab12",
            manifest: None,
            verified: true,
        };
        let parts = pieces(&upload, 4).unwrap();
        let body = release_body(&upload, &parts);
        assert!(body.contains(&format!("backup restore {tag}")), "{body}");
        let record = body_record(Some(&body)).unwrap();
        assert_eq!(record["tag"], tag.as_str());
        assert_eq!(record["size"], 8);
        assert_eq!(record["sha256"], "ab12");
        assert_eq!(record["kind"], "manual");
        assert_eq!(record["parts"].as_array().map(Vec::len), Some(2));
        assert_eq!(record["parts"][1]["size"], 4);

        assert_eq!(body_record(None), None);
        assert_eq!(body_record(Some("written by hand")), None);
        assert_eq!(body_record(Some("<!-- backup-agent {not json} -->")), None);
        assert_eq!(
            body_record(Some("<!-- backup-agent {\"a\": 1}")),
            None,
            "unclosed"
        );
    }

    #[test]
    fn a_note_shows_as_plain_text_without_links_mentions_or_formatting() {
        for (note, shown) in [
            ("before migration 7", "before migration 7"),
            (
                "ping @alice about #12",
                "ping @\u{200B}alice about #\u{200B}12",
            ),
            (
                "*bold* [link](x) `code` a|b ~x~ !",
                "\\*bold\\* \\[link\\](x) \\`code\\` a\\|b \\~x\\~ !",
            ),
            ("a <!-- b --> & c", "a &lt;!-- b --&gt; &amp; c"),
        ] {
            assert_eq!(as_plain_markdown(note), shown, "{note}");
        }
    }

    #[test]
    fn a_note_reads_back_whatever_markup_it_holds() {
        let tag = tag();
        let note = "before <!-- backup-agent {} --> migration 7 & <b>more</b>";
        let manifest = crate::archive::Manifest {
            manifest_version: crate::archive::manifest::MANIFEST_VERSION,
            tag: tag.clone(),
            created_at: tag.time(),
            kind: tag.kind(),
            tool: crate::archive::manifest::ToolInfo::current(),
            host: "fixture".into(),
            databases: Vec::new(),
            files: Vec::new(),
            note: Some(note.into()),
            base: None,
        };
        let upload = Upload {
            tag: &tag,
            path: std::path::Path::new("unused"),
            size: 8,
            sha256: "ab12",
            manifest: Some(&manifest),
            verified: true,
        };
        let body = release_body(&upload, &pieces(&upload, 8).unwrap());
        assert_eq!(body.matches(BODY_MARKER).count(), 1, "{body}");
        assert!(body.contains("Note: before &lt;!-- backup-agent"), "{body}");
        assert!(body.contains("&lt;b&gt;more&lt;/b&gt;"), "{body}");
        let record = body_record(Some(&body)).unwrap();
        assert_eq!(record["note"], note);
        assert_eq!(record["sha256"], "ab12");
    }
}
