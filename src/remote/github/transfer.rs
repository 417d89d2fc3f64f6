//! Moving archives: uploads into a release, converging on what earlier attempts left, and
//! downloads, each streamed from or to disk under the stall watchdog.

use std::path::Path;
use std::time::Duration;

use super::http::{GITHUB, GithubReply, classify, next_link};
use super::release::{Asset, Piece, Release};
use super::{Client, MAX_REDIRECTS};
use crate::error::{Error, RemoteError, Result};
use crate::fsutil;
use crate::progress::Progress;
use crate::remote::Upload;
use crate::remote::net::{Fault, Reply, Watchdog, location, network_fault, race, same_origin};

impl Client {
    /// Uploads the archive as the release's asset, converging on what earlier attempts left:
    /// a complete identical asset is kept; a partial or wrong one is deleted (the local file
    /// rebuilds it) and uploaded again.
    pub(super) fn upload_converging(
        &self,
        release: &Release,
        upload: &Upload<'_>,
        piece: &Piece,
    ) -> Result<()> {
        let name = piece.name.clone();
        let upload_base = release
            .upload_url
            .split('{')
            .next()
            .unwrap_or(&release.upload_url)
            .to_string();
        self.retrying(|| async {
            let assets = self
                .assets_once(release.id)
                .await?;
            if let Some(existing) = assets.iter().find(|a| a.name == name) {
                let complete = existing.state == "uploaded" && existing.size == piece.len;
                if complete && existing.sha256() == Some(piece.sha256.as_str()) {
                    return Ok(());
                }
                if complete && existing.sha256().is_some() && !upload.verified {
                    return Err(Fault::Fatal(RemoteError::refused(format!(
                        "{name} on GitHub differs from the local archive, and the local archive has no .sha256 record to prove it is the good one; nothing was replaced"
                    ))));
                }
                if release.immutable {
                    return Err(Fault::Fatal(RemoteError::refused(format!(
                        "release {} is published as immutable with a broken {name}, and GitHub lets nothing in it be replaced nor its tag be used again; this snapshot can never go to GitHub: it stays local (later snapshots are pushed past it), and this message stops once you delete its local archive and its .sha256",
                        upload.tag
                    ))));
                }
                self.delete_asset(existing.id).await?;
            }
            let asset = self.upload_once(&upload_base, upload, piece).await?;
            if asset.size != piece.len
                || asset.sha256().is_some_and(|sha| sha != piece.sha256)
            {
                // Damaged on the way: the next attempt deletes and uploads again.
                return Err(Fault::Transient {
                    message: format!(
                        "GitHub stored {} bytes with digest {:?}, expected {} bytes with sha256 {}",
                        asset.size, asset.digest, piece.len, piece.sha256
                    ),
                    wait: None,
                });
            }
            Ok(())
        })
    }

    async fn assets_once(&self, release_id: u64) -> std::result::Result<Vec<Asset>, Fault> {
        let mut items = Vec::new();
        let mut next = Some(self.repo_path(&format!("/releases/{release_id}/assets?per_page=100")));
        while let Some(path) = next.take() {
            let reply = self.api_call(reqwest::Method::GET, &path, None).await?;
            let page: Vec<Asset> = reply.json()?;
            items.extend(page);
            next = next_link(&reply.headers);
        }
        Ok(items)
    }

    async fn delete_asset(&self, id: u64) -> std::result::Result<(), Fault> {
        let reply = self
            .api_call(
                reqwest::Method::DELETE,
                &self.repo_path(&format!("/releases/assets/{id}")),
                None,
            )
            .await?;
        match reply.status {
            204 | 404 => Ok(()),
            other => Err(Fault::Fatal(RemoteError::failed(format!(
                "deleting a partial asset answered {other}"
            )))),
        }
    }

    /// One streamed upload: the raw file with its Content-Length, never held in memory.
    async fn upload_once(
        &self,
        upload_base: &str,
        upload: &Upload<'_>,
        piece: &Piece,
    ) -> std::result::Result<Asset, Fault> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let name = piece.name.as_str();
        let unreadable = |e: std::io::Error| {
            Fault::Fatal(RemoteError::failed(format!(
                "cannot read {}: {e}",
                upload.path.display()
            )))
        };
        let mut file = tokio::fs::File::open(upload.path)
            .await
            .map_err(unreadable)?;
        file.seek(std::io::SeekFrom::Start(piece.offset))
            .await
            .map_err(unreadable)?;
        let watchdog = Watchdog::new(self.stall, self.answer_timeout);
        // Small reads, so the watchdog hears about movement often even on a slow link.
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            watchdog.reader(file.take(piece.len), piece.len),
            128 << 10,
        ));
        let sent = self
            .http
            .post(upload_base)
            .query(&[("name", name), ("label", "")])
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header(reqwest::header::CONTENT_TYPE, upload.content_type())
            .header(reqwest::header::CONTENT_LENGTH, piece.len)
            .body(body)
            .send();
        let exchange = async {
            let response = sent
                .await
                .map_err(|e| network_fault(&GITHUB, "upload interrupted", &e))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| network_fault(&GITHUB, "upload answer lost", &e))?;
            Ok((status, headers, body))
        };
        let (status, headers, body) = race(exchange, watchdog.tripped()).await?;
        if let Some(fault) = classify(status, &headers, &body) {
            return Err(fault);
        }
        let reply = Reply {
            status,
            headers,
            body: body.to_vec(),
        };
        match status {
            201 | 200 => reply.json(),
            // A name taken meanwhile (a reset attempt that GitHub completed): the next attempt
            // looks at what is there.
            422 if reply.validation().0.as_deref() == Some("already_exists") => {
                Err(Fault::Transient {
                    message: "the asset name is taken by an earlier attempt".into(),
                    wait: Some(Duration::ZERO),
                })
            }
            422 if reply.validation().1.contains("immutable release") => {
                Err(Fault::Fatal(RemoteError::refused(format!(
                    "release {} is published as immutable without a complete archive (made by an older backup-agent, or by hand), and GitHub takes no more assets into it nor lets its tag be used again; this snapshot can never go to GitHub: it stays local (later snapshots are pushed past it), and this message stops once you delete its local archive and its .sha256",
                    upload.tag
                ))))
            }
            422 => {
                let message = reply.validation().1;
                let hint = if message.contains("size must be") {
                    "; this server's per-asset limit is below max_asset_bytes: set max_asset_bytes under [remote] to that limit, and archives are split into parts that fit"
                } else {
                    ""
                };
                Err(Fault::Fatal(RemoteError::failed(format!(
                    "GitHub refused the upload of {name} (422 {message}){hint}"
                ))))
            }
            other => Err(Fault::Fatal(RemoteError::failed(format!(
                "uploading {name} answered {other}"
            )))),
        }
    }

    /// Downloads the parts of a split archive one by one, each checked against its digest,
    /// and joins them into `dest`; returns the whole file's size and sha256.
    pub(super) fn download_parts(
        &self,
        parts: &[Asset],
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(u64, String)> {
        let part_path = fsutil::with_suffix(dest, ".part");
        let joined = fsutil::create_private(dest)?;
        let mut writer =
            fsutil::HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, joined));
        for part in parts {
            let (size, sha256) = self.download(part, &part_path, progress)?;
            if size != part.size || part.sha256().is_some_and(|want| want != sha256) {
                let _ = std::fs::remove_file(&part_path);
                return Err(RemoteError::corrupt(format!(
                    "part {} downloaded as {size} bytes with sha256 {sha256}, GitHub lists {} bytes with digest {:?}",
                    part.name, part.size, part.digest
                ))
                .into());
            }
            let mut input = std::fs::File::open(&part_path)
                .map_err(|e| Error::io("cannot read", &part_path, e))?;
            fsutil::copy_large(&mut input, &mut writer)
                .map_err(|e| Error::io("cannot write", dest, e))?;
            let _ = std::fs::remove_file(&part_path);
        }
        let (buffered, size, sha256) = writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| Error::io("cannot write", dest, e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", dest, e))?;
        Ok((size, sha256))
    }

    /// Streams an asset to `dest`: the API answers with a redirect to the storage host (fetched
    /// without the Authorization header) or with the bytes.
    pub(super) fn download(
        &self,
        asset: &Asset,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(u64, String)> {
        let url = format!(
            "{}{}",
            self.api_url,
            self.repo_path(&format!("/releases/assets/{}", asset.id))
        );
        self.retrying(|| async {
            let watchdog = Watchdog::new(self.stall, self.answer_timeout);
            race(
                self.download_once(asset, &url, dest, progress, &watchdog),
                watchdog.tripped(),
            )
            .await
        })
    }

    /// One download attempt; every chunk received feeds `watchdog`.
    async fn download_once(
        &self,
        asset: &Asset,
        url: &str,
        dest: &Path,
        progress: &dyn Progress,
        watchdog: &Watchdog,
    ) -> std::result::Result<(u64, String), Fault> {
        {
            let _ = std::fs::remove_file(dest);
            let mut target = url.to_string();
            let mut hops = 0;
            let mut response = loop {
                let mut request = self
                    .http
                    .get(&target)
                    // Kept on every hop: without it a renamed repository's redirect answers
                    // with the asset's JSON instead of its bytes.
                    .header(reqwest::header::ACCEPT, "application/octet-stream");
                // The storage host rejects (and must never see) the token.
                if same_origin(&target, &self.api_url) {
                    request = request.bearer_auth(self.token.expose());
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| network_fault(&GITHUB, "download", &e))?;
                if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                    break response;
                }
                hops += 1;
                target = location(response.headers())
                    .filter(|_| hops <= MAX_REDIRECTS)
                    .ok_or_else(|| {
                        Fault::Fatal(RemoteError::failed(format!(
                            "downloading {} was redirected without end, or without a Location",
                            asset.name
                        )))
                    })?;
            };
            let status = response.status().as_u16();
            if status != 200 {
                let headers = response.headers().clone();
                let body = response.bytes().await.unwrap_or_default();
                return Err(classify(status, &headers, &body).unwrap_or_else(|| {
                    let message = format!("downloading {} answered {status}", asset.name);
                    Fault::Fatal(if status == 404 {
                        RemoteError::not_found(message)
                    } else {
                        RemoteError::failed(message)
                    })
                }));
            }
            let file = fsutil::create_private(dest)
                .map_err(|e| Fault::Fatal(RemoteError::failed(e.to_string())))?;
            let mut writer =
                fsutil::HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| network_fault(&GITHUB, "download interrupted", &e))?
            {
                watchdog.moved();
                std::io::Write::write_all(&mut writer, &chunk).map_err(|e| {
                    Fault::Fatal(RemoteError::failed(format!(
                        "cannot write {}: {e}",
                        dest.display()
                    )))
                })?;
                progress.advance(chunk.len() as u64);
            }
            let (buffered, size, sha256) = writer.finish();
            let file = buffered.into_inner().map_err(|e| {
                Fault::Fatal(RemoteError::failed(format!(
                    "cannot write {}: {}",
                    dest.display(),
                    e.error()
                )))
            })?;
            file.sync_all().map_err(|e| {
                Fault::Fatal(RemoteError::failed(format!(
                    "cannot sync {}: {e}",
                    dest.display()
                )))
            })?;
            Ok((size, sha256))
        }
    }
}
