//! Moving archives: multipart uploads in parts sized to the archive, each part's `Content-MD5`
//! signed and the whole archive's sha256 checked before the upload is completed; downloads
//! streamed to disk; server-side copies. Every transfer runs under the stall watchdog.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use md5::Digest;

use super::S3Remote;
use super::client::{Call, Client, S3};
use super::xml;
use crate::error::{Error, RemoteError, Result};
use crate::fsutil;
use crate::progress::Progress;
use crate::remote::Upload;
use crate::remote::net::{Fault, Watchdog, network_fault, race};

/// The smallest part: S3 takes 5 MiB; a little more means fewer requests on a fast link.
pub(super) const MIN_PART: u64 = 8 << 20;
/// S3's most parts in one upload.
const MAX_PARTS: u64 = 10_000;
/// S3's largest object a single copy request makes.
const MAX_SINGLE_COPY: u64 = 5 << 30;

/// A multipart upload in progress, as `ListMultipartUploads` reports it.
#[derive(Debug)]
pub(super) struct PendingUpload {
    pub(super) key: String,
    pub(super) upload_id: String,
    pub(super) initiated: Option<chrono::DateTime<chrono::Utc>>,
}

/// The part size for an archive of `size` bytes: [`MIN_PART`], or more (whole MiB) when the
/// archive would need more than S3's 10,000 parts.
pub(super) fn part_size(size: u64) -> u64 {
    size.div_ceil(MAX_PARTS)
        .next_multiple_of(1 << 20)
        .max(MIN_PART)
}

/// `Content-MD5` of `bytes`: base64 of the MD5 digest, which S3 checks against what it got.
pub(super) fn content_md5(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes))
}

/// One piece of the archive, read ahead of its upload: where it is, and its `Content-MD5`.
struct Piece {
    number: u32,
    offset: u64,
    len: u64,
    md5: String,
}

/// Reads `len` bytes of `file` from where it is, feeding the part's MD5 and the whole
/// archive's sha256.
fn hash_piece(
    file: &mut std::fs::File,
    len: u64,
    whole: &mut sha2::Sha256,
    buffer: &mut [u8],
) -> std::io::Result<String> {
    let mut md5 = md5::Md5::new();
    let mut left = len;
    while left > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = file.read(&mut buffer[..want])?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive is shorter than when it was made",
            ));
        }
        md5.update(&buffer[..got]);
        sha2::Digest::update(whole, &buffer[..got]);
        left -= got as u64;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(md5.finalize()))
}

/// The part of the archive that starts at `offset` (numbered `number`, `part` bytes at most),
/// read from where `file` is and hashed: its MD5, and the whole archive's sha256 carried on; no
/// piece past the end. Hands the file, the hash and the buffer back for the next part.
#[allow(clippy::type_complexity)]
fn read_ahead(
    mut file: std::fs::File,
    mut whole: sha2::Sha256,
    mut buffer: Vec<u8>,
    offset: u64,
    number: u32,
    part: u64,
    size: u64,
) -> std::io::Result<(Option<Piece>, std::fs::File, sha2::Sha256, Vec<u8>)> {
    if offset >= size {
        return Ok((None, file, whole, buffer));
    }
    let len = part.min(size - offset);
    let md5 = hash_piece(&mut file, len, &mut whole, &mut buffer)?;
    let piece = Piece {
        number,
        offset,
        len,
        md5,
    };
    Ok((Some(piece), file, whole, buffer))
}

impl S3Remote {
    /// Uploads the archive to `key`: one request when it fits a part, else a multipart upload
    /// that is aborted when it fails. With `conditional`, the write is refused by the server if
    /// the name was taken meanwhile.
    pub(super) fn upload_parts(
        &self,
        key: &str,
        upload: &Upload<'_>,
        conditional: bool,
    ) -> Result<()> {
        let client = self.client()?;
        let unreadable = |e: std::io::Error| Error::io("cannot read", upload.path, e);
        let mut file = std::fs::File::open(upload.path).map_err(unreadable)?;
        let mut whole = <sha2::Sha256 as sha2::Digest>::new();
        let mut buffer = vec![0u8; 1 << 20];
        let part = part_size(upload.size);
        let check_whole = |whole: sha2::Sha256| {
            let sha256 = crate::units::hex(&sha2::Digest::finalize(whole));
            if sha256 == upload.sha256 {
                Ok(())
            } else {
                Err(Error::from(RemoteError::failed(format!(
                    "{} changed while it was uploaded (sha256 {sha256}, recorded {}); nothing was stored",
                    upload.path.display(),
                    upload.sha256
                ))))
            }
        };
        if upload.size <= part {
            let md5 =
                hash_piece(&mut file, upload.size, &mut whole, &mut buffer).map_err(unreadable)?;
            check_whole(whole)?;
            let piece = Piece {
                number: 0,
                offset: 0,
                len: upload.size,
                md5,
            };
            return self.retrying(|| async {
                let mut call = self.archive_call(reqwest::Method::PUT, key, upload);
                if conditional {
                    call = call.header("if-none-match", "*");
                }
                let reply = send_piece(client, call, upload.path, &piece, "uploading").await?;
                match reply {
                    200 | 204 => Ok(()),
                    412 => ours_or_taken(client, key, upload).await,
                    status => Err(Fault::Fatal(RemoteError::failed(format!(
                        "uploading {key} answered {status}"
                    )))),
                }
            });
        }
        let upload_id = self.create_upload(client, key, upload)?;
        let parts = (|| {
            let mut etags = Vec::new();
            // Each part is read and hashed on a second thread while the one before it goes up,
            // so hashing costs no time on a link that is slower than the disk.
            let mut ahead = Some(read_ahead(file, whole, buffer, 0, 1, part, upload.size));
            while let Some(next) = ahead.take() {
                let (piece, file, whole, buffer) = next.map_err(unreadable)?;
                let Some(piece) = piece else {
                    check_whole(whole)?;
                    break;
                };
                let following = (piece.offset + piece.len, piece.number + 1);
                let (uploaded, hashed) = std::thread::scope(|scope| {
                    let hashing = scope.spawn(move || {
                        read_ahead(
                            file,
                            whole,
                            buffer,
                            following.0,
                            following.1,
                            part,
                            upload.size,
                        )
                    });
                    let uploaded = self.upload_part(client, key, &upload_id, upload.path, &piece);
                    (uploaded, hashing.join())
                });
                etags.push(uploaded?);
                // A run killed here leaves an unfinished upload for the next run to abort.
                crate::failpoint::hit("s3-part-uploaded");
                ahead = Some(hashed.map_err(|_| {
                    Error::from(RemoteError::failed("hashing the archive's parts failed"))
                })?);
            }
            self.complete_upload(client, key, &upload_id, &etags, upload, conditional)
        })();
        if parts.is_err() {
            // Best effort: what is left is found and aborted by the next run.
            let _ = self.abort_upload(key, &upload_id);
        }
        parts
    }

    /// The request that writes the archive to `key`, with the metadata it keeps.
    fn archive_call<'a>(
        &self,
        method: reqwest::Method,
        key: &'a str,
        upload: &Upload<'_>,
    ) -> Call<'a> {
        Call::new(method, Some(key))
            .header("content-type", upload.content_type())
            .header("x-amz-meta-sha256", upload.sha256.to_string())
            .header("x-amz-meta-tag", upload.tag.to_string())
    }

    fn create_upload(&self, client: &Client, key: &str, upload: &Upload<'_>) -> Result<String> {
        self.retrying(|| async {
            let call = self
                .archive_call(reqwest::Method::POST, key, upload)
                .query("uploads", "");
            let reply = client.call(&call, None, "starting the upload").await?;
            match (reply.status, xml::text(&reply.body, "UploadId")) {
                (200, Some(id)) if !id.is_empty() => Ok(id),
                (status, _) => Err(Fault::Fatal(RemoteError::failed(format!(
                    "starting the upload of {key} answered {status} without an upload id"
                )))),
            }
        })
    }

    fn upload_part(
        &self,
        client: &Client,
        key: &str,
        upload_id: &str,
        path: &Path,
        piece: &Piece,
    ) -> Result<String> {
        self.retrying(|| async {
            let call = Call::new(reqwest::Method::PUT, Some(key))
                .query("partNumber", piece.number.to_string())
                .query("uploadId", upload_id.to_string());
            let (status, etag) = send_piece_with_etag(client, call, path, piece).await?;
            match (status, etag) {
                (200, Some(etag)) => Ok(etag),
                (404, _) => Err(Fault::Fatal(RemoteError::failed(format!(
                    "the upload of {key} was aborted meanwhile (by another run's clean-up?)"
                )))),
                (status, _) => Err(Fault::Fatal(RemoteError::failed(format!(
                    "uploading part {} of {key} answered {status}",
                    piece.number
                )))),
            }
        })
    }

    fn complete_upload(
        &self,
        client: &Client,
        key: &str,
        upload_id: &str,
        etags: &[String],
        upload: &Upload<'_>,
        conditional: bool,
    ) -> Result<()> {
        let mut body = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                xml::escape(etag)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let md5 = content_md5(body.as_bytes());
        let mut attempts = 0;
        self.retrying(|| {
            attempts += 1;
            let retried = attempts > 1;
            let body = body.clone().into_bytes();
            let md5 = md5.clone();
            async move {
                let mut call = Call::new(reqwest::Method::POST, Some(key))
                    .query("uploadId", upload_id.to_string())
                    .header("content-md5", md5);
                if conditional {
                    call = call.header("if-none-match", "*");
                }
                let reply = client
                    .call(&call, Some(body), "completing the upload")
                    .await?;
                match reply.status {
                    // S3 may answer 200 and still fail, with the error in the body (sorted as
                    // the server error it is: InternalError and SlowDown are worth a retry).
                    200 => match xml::text(&reply.body, "Code") {
                        None => Ok(()),
                        Some(code) => Err(client
                            .sort(500, &reply.headers, &reply.body, "completing the upload")
                            .unwrap_or_else(|| {
                                Fault::Fatal(RemoteError::failed(format!(
                                    "completing the upload of {key} failed: {code}"
                                )))
                            })),
                    },
                    412 => ours_or_taken(client, key, upload).await,
                    // An earlier attempt completed it and its answer was lost: the caller's
                    // final check looks at what is there.
                    404 if retried => Ok(()),
                    status => Err(Fault::Fatal(RemoteError::failed(format!(
                        "completing the upload of {key} answered {status}"
                    )))),
                }
            }
        })
        .inspect(|()| tracing::debug!("{key}: {} parts of {}", etags.len(), upload.size))
    }

    /// Aborts a multipart upload; one already gone counts as aborted.
    pub(super) fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()> {
        let client = self.client()?;
        self.retrying(|| async {
            let call = Call::new(reqwest::Method::DELETE, Some(key))
                .query("uploadId", upload_id.to_string());
            let reply = client.call(&call, None, "aborting an upload").await?;
            match reply.status {
                200 | 204 | 404 => Ok(()),
                status => Err(Fault::Fatal(RemoteError::failed(format!(
                    "aborting the upload of {key} answered {status}"
                )))),
            }
        })
    }

    /// A server-side copy of `from` over `to` (a checked replacement): one request, or for an
    /// archive over S3's 5 GiB copy limit a multipart upload whose parts are copied ranges.
    pub(super) fn copy(&self, from: &str, to: &str, upload: &Upload<'_>) -> Result<()> {
        let client = self.client()?;
        let source = format!(
            "/{}/{}",
            client.bucket.name(),
            percent_encoding::utf8_percent_encode(from, COPY_SOURCE)
        );
        if upload.size > MAX_SINGLE_COPY {
            return self.copy_in_parts(client, &source, to, upload);
        }
        self.retrying(|| async {
            let call = Call::new(reqwest::Method::PUT, Some(to))
                .header("x-amz-copy-source", source.clone())
                .header("x-amz-metadata-directive", "COPY");
            let reply = client.call(&call, None, "replacing the archive").await?;
            if xml::text(&reply.body, "Code").is_some() {
                return Err(client
                    .sort(500, &reply.headers, &reply.body, "replacing the archive")
                    .unwrap_or_else(|| {
                        Fault::Fatal(RemoteError::failed(format!("copying to {to} failed")))
                    }));
            }
            match reply.status {
                200 => Ok(()),
                status => Err(Fault::Fatal(RemoteError::failed(format!(
                    "copying to {to} answered {status}"
                )))),
            }
        })
    }

    fn copy_in_parts(
        &self,
        client: &Client,
        source: &str,
        to: &str,
        upload: &Upload<'_>,
    ) -> Result<()> {
        let upload_id = self.create_upload(client, to, upload)?;
        // Copied parts may be up to 5 GiB: few requests.
        let part = part_size(upload.size).max(1 << 30);
        let copied = (|| {
            let mut etags = Vec::new();
            let mut offset = 0;
            let mut number = 1u32;
            while offset < upload.size {
                let last = (offset + part).min(upload.size) - 1;
                let etag = self.retrying(|| async {
                    let call = Call::new(reqwest::Method::PUT, Some(to))
                        .query("partNumber", number.to_string())
                        .query("uploadId", upload_id.clone())
                        .header("x-amz-copy-source", source.to_string())
                        .header("x-amz-copy-source-range", format!("bytes={offset}-{last}"));
                    let reply = client.call(&call, None, "copying a part").await?;
                    match (reply.status, xml::text(&reply.body, "ETag")) {
                        (200, Some(etag)) if xml::text(&reply.body, "Code").is_none() => Ok(etag),
                        (status, _) => Err(client
                            .sort(500, &reply.headers, &reply.body, "copying a part")
                            .unwrap_or_else(|| {
                                Fault::Fatal(RemoteError::failed(format!(
                                    "copying part {number} to {to} answered {status}"
                                )))
                            })),
                    }
                })?;
                etags.push(etag);
                offset = last + 1;
                number += 1;
            }
            self.complete_upload(client, to, &upload_id, &etags, upload, false)
        })();
        if copied.is_err() {
            let _ = self.abort_upload(to, &upload_id);
        }
        copied
    }

    /// Streams the object `key` into the new file `dest` (or only through the hash, without
    /// one); returns its size and sha256.
    pub(super) fn download(
        &self,
        key: &str,
        dest: Option<&Path>,
        progress: &dyn Progress,
    ) -> Result<(u64, String)> {
        let client = self.client()?;
        self.retrying(|| async {
            let watchdog = Watchdog::new(client.stall, client.answer_timeout);
            race(
                download_once(client, key, dest, progress, &watchdog),
                watchdog.tripped(),
            )
            .await
        })
    }
}

/// Characters a copy source keeps as they are: the key's `/` and the unreserved set.
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A conditional write was refused: the name is taken, by this very archive (an earlier attempt
/// whose answer was lost) or by something else, which the next run looks at.
async fn ours_or_taken(
    client: &Client,
    key: &str,
    upload: &Upload<'_>,
) -> std::result::Result<(), Fault> {
    match super::head_once(client, key).await? {
        Some(stored) if stored.holds(upload) => Ok(()),
        _ => Err(Fault::Fatal(RemoteError::transient(format!(
            "{key} was written by someone else while this upload ran; the next run looks at what is there"
        )))),
    }
}

/// Sends one piece of the file as the body of `call`; returns the status.
async fn send_piece(
    client: &Client,
    call: Call<'_>,
    path: &Path,
    piece: &Piece,
    doing: &str,
) -> std::result::Result<u16, Fault> {
    let (status, _) = send(client, call, path, piece, doing).await?;
    Ok(status)
}

/// Sends one part; returns the status and the part's ETag.
async fn send_piece_with_etag(
    client: &Client,
    call: Call<'_>,
    path: &Path,
    piece: &Piece,
) -> std::result::Result<(u16, Option<String>), Fault> {
    send(client, call, path, piece, "uploading a part").await
}

async fn send(
    client: &Client,
    call: Call<'_>,
    path: &Path,
    piece: &Piece,
    doing: &str,
) -> std::result::Result<(u16, Option<String>), Fault> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let unreadable = |e: std::io::Error| {
        Fault::Fatal(RemoteError::failed(format!(
            "cannot read {}: {e}",
            path.display()
        )))
    };
    let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    file.seek(std::io::SeekFrom::Start(piece.offset))
        .await
        .map_err(unreadable)?;
    let watchdog = Watchdog::new(client.stall, client.answer_timeout);
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        watchdog.reader(file.take(piece.len), piece.len),
        128 << 10,
    ));
    let call = call.header("content-md5", piece.md5.clone());
    let sent = client
        .request(&call)
        .header(reqwest::header::CONTENT_LENGTH, piece.len)
        .body(body)
        .send();
    let exchange = async {
        let response = sent
            .await
            .map_err(|e| network_fault(&S3, &format!("{doing} interrupted"), &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| network_fault(&S3, &format!("{doing}: answer lost"), &e))?;
        Ok((status, headers, body))
    };
    let (status, headers, body) = race(exchange, watchdog.tripped()).await?;
    if let Some(fault) = client.sort(status, &headers, &body, doing) {
        return Err(fault);
    }
    let etag = headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((status, etag))
}

/// One download attempt; every chunk received feeds `watchdog`.
async fn download_once(
    client: &Client,
    key: &str,
    dest: Option<&Path>,
    progress: &dyn Progress,
    watchdog: &Watchdog,
) -> std::result::Result<(u64, String), Fault> {
    let call = Call::new(reqwest::Method::GET, Some(key));
    let mut response = client
        .request(&call)
        .send()
        .await
        .map_err(|e| network_fault(&S3, "download", &e))?;
    let status = response.status().as_u16();
    if status != 200 {
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        if let Some(fault) = client.sort(status, &headers, &body, "downloading") {
            return Err(fault);
        }
        let message = format!("downloading {key} answered {status}");
        return Err(Fault::Fatal(if status == 404 {
            RemoteError::not_found(message)
        } else {
            RemoteError::failed(message)
        }));
    }
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Fault::Fatal(RemoteError::failed(format!(
            "cannot {what} {}: {e}",
            dest.map(|d| d.display().to_string()).unwrap_or_default()
        )))
    };
    let sink: Box<dyn std::io::Write> = match dest {
        Some(dest) => {
            let _ = std::fs::remove_file(dest);
            Box::new(fsutil::create_private(dest).map_err(|e| failed("create", &e))?)
        }
        None => Box::new(std::io::sink()),
    };
    let mut writer = fsutil::HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, sink));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| network_fault(&S3, "download interrupted", &e))?
    {
        watchdog.moved();
        std::io::Write::write_all(&mut writer, &chunk).map_err(|e| failed("write", &e))?;
        progress.advance(chunk.len() as u64);
    }
    let (buffered, size, sha256) = writer.finish();
    drop(
        buffered
            .into_inner()
            .map_err(|e| failed("write", e.error()))?,
    );
    if let Some(dest) = dest {
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(|e| failed("sync", &e))?;
    }
    Ok((size, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_with_the_archive_to_stay_within_ten_thousand() {
        assert_eq!(part_size(1), MIN_PART);
        assert_eq!(part_size(1 << 30), MIN_PART);
        let huge = 5u64 << 40;
        let part = part_size(huge);
        assert!(huge.div_ceil(part) <= MAX_PARTS, "{part}");
        assert_eq!(part % (1 << 20), 0);
        // RFC 1864's example digest of an empty body.
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
