//! What interrupted pushes leave in the bucket, found and removed by the next run or prune:
//! unfinished multipart uploads, copies written aside, records whose archive a cut delete took.

use std::collections::HashSet;

use super::client::Call;
use super::{INCOMING, PROBE, S3Remote, transfer, xml};
use crate::error::Result;
use crate::remote::net::Fault;
use crate::tag::Tag;

/// An upload of another host older than this was abandoned (no run takes a day).
const ABANDONED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);

impl S3Remote {
    /// Removes what interrupted pushes left that no push will finish: multipart uploads of this
    /// host's snapshots (its run holds the run lock, so none is in progress) and other hosts'
    /// older than a day; copies written aside in `.incoming/` (this host's, or older than a
    /// day); and records of this host's snapshots whose archive is gone (a delete cut between
    /// the two). Returns how many went.
    pub fn delete_abandoned(
        &self,
        host: &str,
        _keep: &HashSet<Tag>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize> {
        let abandoned = |tag: Option<&Tag>, at: Option<chrono::DateTime<chrono::Utc>>| {
            tag.is_some_and(|t| t.host() == host)
                || at.is_some_and(|at| now.signed_duration_since(at) > ABANDONED_AFTER)
        };
        let mut gone = 0;
        let incoming = self.key(INCOMING);
        for upload in self.multipart_uploads()? {
            // Only this remote's own names: another config's prefix in the same bucket is not
            // ours to touch.
            let name = upload
                .key
                .strip_prefix(&incoming)
                .or_else(|| upload.key.strip_prefix(&self.key("")))
                .filter(|name| !name.contains('/'))
                .unwrap_or("");
            let tag = aside_tag(name).or_else(|| Tag::from_archive_name(name));
            if (tag.is_some() || name.starts_with(PROBE))
                && abandoned(tag.as_ref(), upload.initiated)
            {
                self.abort_upload(&upload.key, &upload.upload_id)?;
                gone += 1;
            }
        }
        for object in self.list_objects(INCOMING)? {
            let name = object.name.strip_prefix(INCOMING).unwrap_or(&object.name);
            if abandoned(aside_tag(name).as_ref(), object.modified) {
                self.delete_key(&self.key(&object.name))?;
                gone += 1;
            }
        }
        let keys = self.list_keys()?;
        let archives: HashSet<&str> = keys
            .iter()
            .filter_map(|(name, _)| Tag::from_archive_name(name).map(|_| name.as_str()))
            .collect();
        for (name, _) in &keys {
            let Some(tag) = name.strip_suffix(".json").and_then(Tag::parse) else {
                continue;
            };
            if tag.host() == host
                && !tag
                    .archive_names()
                    .iter()
                    .any(|name| archives.contains(name.as_str()))
            {
                self.delete_key(&self.record_key(&tag))?;
                gone += 1;
            }
        }
        Ok(gone)
    }

    /// Every multipart upload in progress under the prefix.
    pub(super) fn multipart_uploads(&self) -> Result<Vec<transfer::PendingUpload>> {
        let client = self.client()?;
        let prefix = self.key("");
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let page = self.retrying(|| {
                let mut call = Call::new(reqwest::Method::GET, None).query("uploads", "");
                if !prefix.is_empty() {
                    call = call.query("prefix", prefix.clone());
                }
                if let Some((key, id)) = &markers {
                    call = call
                        .query("key-marker", key.clone())
                        .query("upload-id-marker", id.clone());
                }
                async move {
                    let reply = client
                        .call(&call, None, "listing unfinished uploads")
                        .await?;
                    match reply.status {
                        200 => Ok(reply.body),
                        status => Err(Fault::Fatal(
                            self.not_found_or_failed(status, "listing unfinished uploads"),
                        )),
                    }
                }
            })?;
            for record in xml::records(&page, "Upload") {
                let (Some(key), Some(upload_id)) = (record.get("Key"), record.get("UploadId"))
                else {
                    continue;
                };
                found.push(transfer::PendingUpload {
                    key: key.clone(),
                    upload_id: upload_id.clone(),
                    initiated: record
                        .get("Initiated")
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&chrono::Utc)),
                });
            }
            let truncated = xml::text(&page, "IsTruncated").is_some_and(|t| t == "true");
            let next = (
                xml::text(&page, "NextKeyMarker").unwrap_or_default(),
                xml::text(&page, "NextUploadIdMarker").unwrap_or_default(),
            );
            if !truncated || next.0.is_empty() || markers.as_ref() == Some(&next) {
                return Ok(found);
            }
            markers = Some(next);
        }
    }
}

/// The snapshot a copy written aside is of: `<tag>.tar.gz.<pid>`.
fn aside_tag(name: &str) -> Option<Tag> {
    let (archive, _) = name.rsplit_once('.')?;
    Tag::from_archive_name(archive)
}
