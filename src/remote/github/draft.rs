//! How a snapshot's release is made: a draft first, the archive uploaded into it and checked,
//! then published. Immutable releases (a repository or organisation setting) take no assets once
//! published, and drafts have no tag until then.

use serde_json::json;

use super::super::Upload;
use super::Client;
use super::http::{GithubFault, GithubReply};
use super::release::{Piece, Release, release_body};
use crate::error::{Error, RemoteError, Result};
use crate::remote::net::{Fault, Reply};
use crate::tag::Tag;

impl Client {
    /// The published release of `tag` after GitHub answered 422 `already_exists` for it: GitHub
    /// may not show a release by its tag right away, so a 404 here is retried.
    fn published_after_conflict(&self, tag: &Tag) -> Result<Release> {
        let path = self.repo_path(&format!("/releases/tags/{tag}"));
        self.retrying(|| async {
            let reply = self.api_call(reqwest::Method::GET, &path, None).await?;
            match reply.status {
                200 => reply.json(),
                404 => Err(Fault::Transient {
                    message: format!("GitHub says release {tag} exists but does not show it yet"),
                    wait: None,
                }),
                other => Err(Fault::Fatal(RemoteError::failed(format!(
                    "reading release {tag} answered {other}"
                )))),
            }
        })
    }

    /// A published release of `upload`'s tag: its assets are completed where GitHub allows it.
    pub(super) fn complete_published(
        &self,
        release: &Release,
        upload: &Upload<'_>,
        pieces: &[Piece],
    ) -> Result<()> {
        for piece in pieces {
            self.upload_converging(release, upload, piece)?;
        }
        Ok(())
    }

    /// Drafts of `tag`, newest first. Drafts have no tag yet, so they are found in the release
    /// list; it is sorted newest first, and a draft of `tag` was made after the snapshot was
    /// taken, so the walk stops at the first page wholly older than the tag (a day's margin for
    /// a wrong clock), or where GitHub's 1,000-result cap ends the list.
    fn drafts_of(&self, tag: &Tag) -> Result<Vec<Release>> {
        let since = tag.time() - chrono::Duration::days(1);
        let mut drafts = Vec::new();
        self.recent_releases(since, |release| {
            if release.draft && release.tag_name == tag.as_str() {
                drafts.push(release);
            }
        })?;
        Ok(drafts)
    }

    /// The draft to upload `upload` into: one an earlier attempt left (the one holding the most
    /// complete assets; other drafts of the tag are deleted), or a new one.
    /// Also whether the draft was made by a create that had to be retried: GitHub may then
    /// have made two.
    pub(super) fn draft_for(
        &self,
        upload: &Upload<'_>,
        pieces: &[Piece],
    ) -> Result<(Release, bool)> {
        let mut drafts = self.drafts_of(upload.tag)?;
        drafts.sort_by_key(|d| {
            std::cmp::Reverse(d.assets.iter().filter(|a| a.state == "uploaded").count())
        });
        let mut drafts = drafts.into_iter();
        if let Some(kept) = drafts.next() {
            for extra in drafts {
                self.delete_release(extra.id)?;
            }
            return Ok((kept, false));
        }
        self.create_draft(upload, pieces)
    }

    pub(super) fn delete_release(&self, id: u64) -> Result<()> {
        let path = self.repo_path(&format!("/releases/{id}"));
        let reply = self.retrying(|| self.api_call(reqwest::Method::DELETE, &path, None))?;
        match reply.status {
            204 | 404 => Ok(()),
            other => Err(RemoteError::failed(format!(
                "deleting release {id} answered {other} ({})",
                reply.validation().1
            ))
            .into()),
        }
    }

    /// `POST /releases` as a draft: no tag is made until it is published.
    fn create_draft(&self, upload: &Upload<'_>, pieces: &[Piece]) -> Result<(Release, bool)> {
        let body = json!({
            "tag_name": upload.tag.as_str(),
            "name": upload.tag.as_str(),
            "body": release_body(upload, pieces),
            "draft": true,
            "prerelease": false,
        });
        let path = self.repo_path("/releases");
        let attempts = std::cell::Cell::new(0);
        let reply = self.retrying(|| {
            attempts.set(attempts.get() + 1);
            self.api_call(reqwest::Method::POST, &path, Some(&body))
        })?;
        match reply.status {
            201 | 200 => Ok((reply.json().map_err(Fault::into_error)?, attempts.get() > 1)),
            422 => Err(self.release_refused(upload.tag, &reply)),
            404 => Err(RemoteError::not_found(format!(
                "repository {}/{} was not found, or the token cannot write to it",
                self.owner, self.name
            ))
            .into()),
            other => Err(RemoteError::failed(format!(
                "creating release {} answered {other}",
                upload.tag
            ))
            .into()),
        }
    }

    /// What a 422 on making or publishing the release of `tag` means, and what to do.
    fn release_refused(&self, tag: &Tag, reply: &Reply) -> Error {
        match reply.validation() {
            (_, message) if message.contains("Repository is empty") => RemoteError::failed(format!(
                "repository {}/{} is empty and GitHub cannot make a release in it; add a first commit (e.g. a README on github.com), or name a repository that does not exist yet in the config and run `backup init --create`, which makes it with one",
                self.owner, self.name
            ))
            .into(),
            (_, message) if message.contains("immutable release") => {
                RemoteError::refused(format!(
                    "tag {tag} belonged to an immutable release that was deleted, and GitHub never lets such a tag be used again ({message}); this snapshot can never go to GitHub: it stays local (later snapshots are pushed past it), and this message stops once you delete its local archive and its .sha256"
                ))
                .into()
            }
            (_, message) => {
                RemoteError::failed(format!("GitHub refused the release {tag} (422 {message})"))
                    .into()
            }
        }
    }

    /// After the uploads: every piece is on the draft, complete, with GitHub's digest (where it
    /// gives one) equal to the local sha256, before anything is published.
    pub(super) fn check_uploaded(
        &self,
        draft: &Release,
        tag: &Tag,
        pieces: &[Piece],
    ) -> Result<()> {
        let assets = self.assets(draft.id)?;
        for piece in pieces {
            let good = assets.iter().any(|a| {
                a.name == piece.name
                    && a.state == "uploaded"
                    && a.size == piece.len
                    && a.sha256().is_none_or(|sha| sha == piece.sha256)
            });
            if !good {
                return Err(RemoteError::corrupt(format!(
                    "{} on the draft release {tag} does not match the local archive after its upload; nothing was published, and the next run uploads it again",
                    piece.name
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Publishes the draft without making it the repository's Latest release (hourly snapshots
    /// would keep taking that from the project's own releases). If another attempt published the
    /// tag meanwhile, that release is completed and this draft deleted.
    /// `retried_create`: the draft's create was retried, so GitHub may hold a second draft of
    /// the tag, deleted once this one is published.
    pub(super) fn publish(
        &self,
        draft: &Release,
        upload: &Upload<'_>,
        pieces: &[Piece],
        retried_create: bool,
    ) -> Result<()> {
        // The body again: a draft an earlier attempt left may describe other pieces.
        let body = json!({
            "draft": false,
            "make_latest": "false",
            "body": release_body(upload, pieces),
        });
        let path = self.repo_path(&format!("/releases/{}", draft.id));
        let reply = self.retrying(|| self.api_call(reqwest::Method::PATCH, &path, Some(&body)))?;
        match reply.status {
            200 if retried_create => {
                // A create retried after GitHub had made the draft leaves a second one.
                for extra in self.drafts_of(upload.tag)? {
                    self.delete_release(extra.id)?;
                }
                Ok(())
            }
            200 => Ok(()),
            422 if reply.validation().0.as_deref() == Some("already_exists") => {
                let published = self.published_after_conflict(upload.tag)?;
                self.complete_published(&published, upload, pieces)?;
                self.delete_release(draft.id)
            }
            422 => Err(self.release_refused(upload.tag, &reply)),
            404 => Err(RemoteError::transient(format!(
                "the draft release of {} was deleted while it was being published; the next run makes it again",
                upload.tag
            ))
            .into()),
            other => Err(RemoteError::failed(format!(
                "publishing release {} answered {other}",
                upload.tag
            ))
            .into()),
        }
    }
}
