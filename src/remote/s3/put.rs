//! Storing an archive without ever losing the only good copy: look before writing, write only
//! where nothing is (conditionally where the server honours it, which is probed), replace a
//! damaged stored copy only with a proven local one checked aside first, and write the record
//! only once the stored archive checks out.

use super::client::{Call, S3};
use super::{INCOMING, PROBE, S3Remote, Stored, transfer};
use crate::error::{RemoteError, Result};
use crate::remote::Upload;
use crate::remote::net::{self, Fault};

/// How the server took one conditional write of the probe.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Written,
    Refused,
    Unsupported,
}

impl S3Remote {
    /// Stores `upload` (see `Remote::put`): the archive, checked, then its record, so a record
    /// never vouches for an archive that is not there as recorded.
    pub fn put(&self, upload: &Upload<'_>) -> Result<()> {
        let key = self.key(&upload.archive_name());
        match self.stored(&key)? {
            Some(stored) if stored.holds(upload) => {}
            Some(stored) => self.replace_if_damaged(&key, upload, &stored)?,
            None => self.upload_new(&key, upload)?,
        }
        match self.stored(&key)? {
            Some(stored) if stored.holds(upload) => {}
            other => {
                return Err(RemoteError::corrupt(format!(
                    "after the upload, {key} holds {} instead of {} bytes with sha256 {}",
                    other.map_or("nothing".to_string(), |s| format!(
                        "{} bytes with sha256 {}",
                        s.size,
                        s.sha256.unwrap_or_else(|| "unrecorded".into())
                    )),
                    upload.size,
                    upload.sha256
                ))
                .into());
            }
        }
        let record = crate::remote::snapshot_record(upload)
            .to_string()
            .into_bytes();
        self.put_small(
            &self.record_key(upload.tag),
            &record,
            "application/json",
            "writing the snapshot record",
        )
    }

    /// A copy that does not carry the local sha256 is stored under the tag. It is kept when it
    /// is the same archive after all (written without metadata), or when it passes its own
    /// record; it is replaced only when it fails that record and the local one is proven good,
    /// by a copy written aside, read back and checked first.
    fn replace_if_damaged(&self, key: &str, upload: &Upload<'_>, stored: &Stored) -> Result<()> {
        let record = self.record(upload.tag)?;
        let recorded_sha = stored.sha256.clone().or_else(|| {
            record
                .as_ref()
                .and_then(|r| r["sha256"].as_str().map(str::to_string))
        });
        let recorded_size = record.as_ref().and_then(|r| r["size"].as_u64());
        let damaged = if recorded_size.is_some_and(|size| size != stored.size) {
            // Damaged by its own record's size: no download needed to say so.
            true
        } else {
            let (size, actual) = self.download(key, None, &crate::progress::Silent)?;
            if size == upload.size && actual == upload.sha256 {
                return Ok(());
            }
            recorded_sha.as_deref() != Some(actual.as_str()) || size != stored.size
        };
        if !damaged {
            return Err(RemoteError::refused(format!(
                "{key} in the bucket differs from the local archive and passes its own record; nothing was replaced"
            ))
            .into());
        }
        if !upload.verified {
            return Err(RemoteError::refused(format!(
                "{key} in the bucket is damaged, and the local archive has no .sha256 record to prove it is good; nothing was replaced"
            ))
            .into());
        }
        let aside = self.key(&format!(
            "{INCOMING}{}.{}",
            upload.archive_name(),
            std::process::id()
        ));
        self.upload_parts(&aside, upload, false)?;
        let (size, sha256) = self.download(&aside, None, &crate::progress::Silent)?;
        if size != upload.size || sha256 != upload.sha256 {
            self.delete_key(&aside)?;
            return Err(RemoteError::corrupt(format!(
                "the replacement written aside read back as {size} bytes with sha256 {sha256}; nothing was replaced"
            ))
            .into());
        }
        self.copy(&aside, key, upload)?;
        self.delete_key(&aside)?;
        Ok(())
    }

    /// Writes a new archive under its final name, only where nothing is.
    fn upload_new(&self, key: &str, upload: &Upload<'_>) -> Result<()> {
        let conditional = self.conditional_writes()?;
        self.upload_parts(key, upload, conditional)
    }

    /// Whether the server refuses a write under a name that is taken (`If-None-Match: *`):
    /// probed once with a small object written twice, never assumed.
    pub fn conditional_writes(&self) -> Result<bool> {
        if let Some(known) = self.conditional.get() {
            return Ok(known);
        }
        let client = self.client()?;
        let key = self.key(&format!("{INCOMING}{PROBE}{}", std::process::id()));
        let mut answers = Vec::new();
        for body in [&b"first"[..], &b"second"[..]] {
            let answer = self.retrying(|| {
                let call = Call::new(reqwest::Method::PUT, Some(&key))
                    .header("if-none-match", "*")
                    .header("content-md5", transfer::content_md5(body));
                async move {
                    let request = client.request(&call).body(body.to_vec());
                    let reply = client
                        .retrier
                        .answered_in_time(net::exchange(&S3, request, "probing conditional writes"))
                        .await?;
                    match reply.status {
                        200 | 204 => Ok(Probe::Written),
                        412 => Ok(Probe::Refused),
                        // The header itself refused or not implemented: not honoured.
                        400 | 501 => Ok(Probe::Unsupported),
                        status => Err(client
                            .sort(
                                status,
                                &reply.headers,
                                &reply.body,
                                "probing conditional writes",
                            )
                            .unwrap_or_else(|| {
                                Fault::Fatal(RemoteError::failed(format!(
                                    "probing conditional writes answered {status}"
                                )))
                            })),
                    }
                }
            })?;
            answers.push(answer);
        }
        self.delete_key(&key)?;
        // The first write may meet its own earlier attempt (an answer lost): the key is this
        // process's, so a refusal there is no sign either way.
        let honoured = matches!(
            answers.as_slice(),
            [Probe::Written | Probe::Refused, Probe::Refused]
        );
        self.conditional.set(Some(honoured));
        Ok(honoured)
    }
}
