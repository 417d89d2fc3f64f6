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
    let name = upload.tag.archive_name();
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
            return Err(Error::Other(format!(
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
    if let Some(single) = complete(&tag.archive_name()) {
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

/// The release text: the snapshot in words, then a block `backup list` reads without a download.
pub(super) fn release_body(upload: &Upload<'_>, pieces: &[Piece]) -> String {
    let manifest = crate::archive::read::read_manifest(upload.path).ok();
    let parts: Option<Vec<Value>> = (pieces.len() > 1).then(|| {
        pieces
            .iter()
            .map(|p| json!({"name": p.name, "size": p.len, "sha256": p.sha256}))
            .collect()
    });
    let record = json!({
        "parts": parts,
        "tag": upload.tag.as_str(),
        "size": upload.size,
        "sha256": upload.sha256,
        "host": manifest.as_ref().map(|m| m.host.clone()),
        "kind": upload.tag.kind().as_str(),
        "created_at": upload.tag.time().to_rfc3339(),
        "manifest_version": manifest.as_ref().map(|m| m.manifest_version),
        "databases": manifest.as_ref().map(|m| m.databases.iter().map(|d| json!({
            "name": d.name, "user_version": d.user_version, "size": d.size,
            "rows": d.tables.values().sum::<u64>(),
        })).collect::<Vec<_>>()),
        "files": manifest.as_ref().map(|m| m.files.len()),
        "findings": manifest.as_ref().and_then(|m| m.findings_count()),
    });
    let findings = manifest
        .as_ref()
        .and_then(|m| m.findings_count())
        .filter(|&n| n > 0)
        .map(|n| format!("\n\nThe live data failed SQLite's integrity or foreign key checks when it was copied ({n} finding(s), recorded in the manifest); it restores as it was."))
        .unwrap_or_default();
    let words = match &manifest {
        Some(m) => format!(
            "Snapshot taken {} UTC on {} ({}): {} database(s) ({}), {} file(s); archive {}, sha256 {}.{findings}",
            upload.tag.time().format("%Y-%m-%d %H:%M:%S"),
            m.host,
            upload.tag.kind().as_str(),
            m.databases.len(),
            m.databases
                .iter()
                .map(|d| format!("{} at schema {}", d.name, d.user_version))
                .collect::<Vec<_>>()
                .join(", "),
            m.files.len(),
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
    format!(
        "{words}\n\nRestore with `backup restore {}`.\n\n{BODY_MARKER}{record} -->\n",
        upload.tag
    )
}
