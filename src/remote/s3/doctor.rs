//! What `backup doctor` says of the S3 remote: where the keys come from, whether the bucket
//! answers and carries the marker, whether the server honours conditional writes, what guards
//! the snapshots against a stolen key (versioning, Object Lock), and what killed uploads left.

use super::{CredentialSource, S3Remote};
use crate::layout::MARKER_FILE;
use crate::remote::{DiagnosedCheck, DiagnosedVerdict};

/// The doctor's checks answer within this, even when the network is down.
const DOCTOR_RETRY_BUDGET_SECS: u64 = 10;

impl S3Remote {
    /// `backup doctor`'s lines. Writes nothing but the conditional-write probe, which it
    /// removes.
    pub fn diagnose(&self) -> Vec<DiagnosedCheck> {
        use DiagnosedVerdict::{Fail, Warn};
        let mut config = self.config.clone();
        config.retry_budget_secs = config.retry_budget_secs.min(DOCTOR_RETRY_BUDGET_SECS);
        let remote = S3Remote {
            given: self.given.clone(),
            ..S3Remote::new(config)
        };
        remote.answer_quickly();
        let keys = match remote.credential_source() {
            Ok(CredentialSource::Environment) => DiagnosedCheck::not_ok(
                Warn,
                "S3 keys",
                format!("from {}", CredentialSource::Environment),
                "a cron or systemd job does not see this shell's variables; use a profile in ~/.aws/credentials or a credentials_file",
            ),
            Ok(source) => DiagnosedCheck::ok("S3 keys", format!("from {source}")),
            Err(e) => {
                return vec![DiagnosedCheck::not_ok(
                    Fail,
                    "S3 keys",
                    e.to_string(),
                    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or credentials_file",
                )];
            }
        };
        let mut checks = vec![keys];
        if let Err(e) = remote.list_page_of_one() {
            checks.push(DiagnosedCheck::not_ok(
                Fail,
                "remote",
                e.to_string(),
                "check the network, [remote] endpoint, region, bucket and path_style, and the key's permissions",
            ));
            return checks;
        }
        checks.push(DiagnosedCheck::ok(
            "remote",
            format!("{} answers", remote.describe()),
        ));
        let marker = remote
            .stored(&remote.key(MARKER_FILE))
            .map(|found| found.is_some());
        checks.push(match marker {
            Ok(true) => DiagnosedCheck::ok("marker", "the bucket carries this tool's marker"),
            Ok(false) => DiagnosedCheck::ok(
                "marker",
                "no marker yet: the first push (or `backup init`) writes it",
            ),
            Err(e) => {
                DiagnosedCheck::not_ok(Warn, "marker", e.to_string(), "check the key's permissions")
            }
        });
        checks.push(match remote.conditional_writes() {
            Ok(true) => DiagnosedCheck::ok(
                "conditional writes",
                "the server refuses a write under a taken name (If-None-Match)",
            ),
            Ok(false) => DiagnosedCheck::not_ok(
                Warn,
                "conditional writes",
                "the server ignores If-None-Match and would overwrite",
                "nothing to do: each push looks before it writes and a replacement is read back and checked first; a server that honours If-None-Match (AWS S3, MinIO, R2) closes the last gap",
            ),
            Err(e) => DiagnosedCheck::not_ok(
                Fail,
                "conditional writes",
                format!("cannot write to the bucket: {e}"),
                "give the key s3:PutObject and s3:DeleteObject on the prefix",
            ),
        });
        checks.push(match remote.protection() {
            Ok((versioning, lock)) => {
                let versioned = versioning.as_deref() == Some("Enabled");
                let detail = format!(
                    "versioning {}, Object Lock {}",
                    versioning.as_deref().unwrap_or("off").to_lowercase(),
                    if lock { "on" } else { "off" }
                );
                if versioned || lock {
                    DiagnosedCheck::ok("protection", detail)
                } else {
                    DiagnosedCheck::not_ok(
                        Warn,
                        "protection",
                        detail,
                        "a stolen key could delete every snapshot: enable versioning with a lifecycle rule, or Object Lock (README, \"S3 remote\")",
                    )
                }
            }
            Err(e) => DiagnosedCheck::not_ok(Warn, "protection", e.to_string(), "check the key may read the bucket's versioning"),
        });
        match remote.multipart_uploads() {
            Ok(pending) if pending.is_empty() => {}
            Ok(pending) => checks.push(DiagnosedCheck::not_ok(
                Warn,
                "unfinished uploads",
                format!(
                    "{} left by interrupted pushes; they cost storage and do not show in most consoles",
                    crate::units::count(pending.len() as u64, "upload", "uploads")
                ),
                "the next `backup run` aborts this machine's (others' after a day)",
            )),
            Err(e) => checks.push(DiagnosedCheck::not_ok(
                Warn,
                "unfinished uploads",
                e.to_string(),
                "give the key s3:ListBucketMultipartUploads and s3:AbortMultipartUpload",
            )),
        }
        checks
    }
}
