//! Reading what the repository holds: every release through GraphQL's cursor pages (the REST
//! list stops at 1,000 results), or only the newest ones through REST when a push needs no
//! more.

use std::time::Duration;

use serde_json::{Value, json};

use super::http::{GITHUB, GithubFault, GithubReply, classify, header_u64, next_link, until};
use super::release::{Asset, Release, body_record, stored_pieces};
use super::{Client, RemoteSnapshot};
use crate::error::{RemoteError, Result};
use crate::remote::net::{self, Fault, Reply};
use crate::tag::Tag;

/// The releases of a repository, 100 a page, newest first, with what a listing needs.
const RELEASES_QUERY: &str = "query($owner: String!, $name: String!, $after: String) {
  repository(owner: $owner, name: $name) {
    releases(first: 100, after: $after, orderBy: {field: CREATED_AT, direction: DESC}) {
      pageInfo { hasNextPage endCursor }
      nodes {
        databaseId tagName isDraft createdAt description
        releaseAssets(first: 100) { pageInfo { hasNextPage } nodes { name size } }
      }
    }
  }
}";

/// GitHub's GraphQL endpoint for an API URL: `https://api.github.com/graphql`, and
/// `https://HOST/api/graphql` for GitHub Enterprise Server's `https://HOST/api/v3`.
fn graphql_url(api_url: &str) -> String {
    let base = api_url.trim_end_matches('/');
    match base.strip_suffix("/v3") {
        Some(api) if api.ends_with("/api") => format!("{api}/graphql"),
        _ => format!("{base}/graphql"),
    }
}

/// A published release of a snapshot as a listing shows it; `None` for drafts, releases of
/// other tools, and releases without a complete archive.
pub(super) fn snapshot_of(release: &Release) -> Option<RemoteSnapshot> {
    if release.draft {
        return None;
    }
    let tag = Tag::parse(&release.tag_name)?;
    let recorded = body_record(release.body.as_deref());
    let stored = stored_pieces(&tag, &release.assets, recorded.as_ref())?;
    let sha256 = recorded
        .as_ref()
        .and_then(|r| r["sha256"].as_str().map(str::to_string))
        .or_else(|| match stored.as_slice() {
            [single] => single.sha256().map(str::to_string),
            _ => None,
        });
    Some(RemoteSnapshot {
        size: stored.iter().map(|a| a.size).sum(),
        sha256,
        findings: recorded.as_ref().and_then(|r| r["findings"].as_u64()),
        // The body can be edited on github.com: a note that `now --note` would refuse is not shown.
        note: recorded
            .as_ref()
            .and_then(|r| r["note"].as_str())
            .and_then(|n| crate::archive::manifest::clean_note(n).ok()),
        base: recorded.as_ref().and_then(super::super::base_of_record),
        tag,
    })
}

/// GitHub's answer to a page past the first 1,000 results of a list.
pub(super) fn is_result_cap(reply: &Reply) -> bool {
    reply.status == 422 && reply.validation().1.contains("Only the first 1000 results")
}

impl Client {
    /// Every release, drafts included, through GraphQL (no result cap). The repository's
    /// current name comes from the REST API first, which follows a rename.
    pub(super) fn all_releases(&self) -> Result<Vec<Release>> {
        let path = self.repo_path("");
        let reply = self.retrying(|| self.api_call(reqwest::Method::GET, &path, None))?;
        match reply.status {
            200 => {}
            404 => return Err(self.not_found()),
            other => {
                return Err(RemoteError::failed(format!(
                    "reading repository {}/{} answered {other}",
                    self.owner, self.name
                ))
                .into());
            }
        }
        let repo: Value = reply.json().map_err(Fault::into_error)?;
        let full_name = repo["full_name"].as_str().unwrap_or_default().to_string();
        let (owner, name) = full_name
            .split_once('/')
            .unwrap_or((self.owner.as_str(), self.name.as_str()));
        let url = graphql_url(&self.api_url);
        let mut releases = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let request = json!({
                "query": RELEASES_QUERY,
                "variables": {"owner": owner, "name": name, "after": after},
            });
            let data = self.retrying(|| self.graphql(&url, &request))?;
            let connection = &data["repository"]["releases"];
            for node in connection["nodes"].as_array().into_iter().flatten() {
                releases.push(self.release_of_node(node)?);
            }
            if connection["pageInfo"]["hasNextPage"].as_bool() != Some(true) {
                return Ok(releases);
            }
            after = connection["pageInfo"]["endCursor"]
                .as_str()
                .map(str::to_string);
            if after.is_none() {
                return Ok(releases);
            }
        }
    }

    /// A release as GraphQL gives it: its assets without state or digest (the size and the
    /// body's record say whether they are whole); more than a page of assets come from REST.
    fn release_of_node(&self, node: &Value) -> Result<Release> {
        let id = node["databaseId"].as_u64().unwrap_or_default();
        let assets = if node["releaseAssets"]["pageInfo"]["hasNextPage"].as_bool() == Some(true) {
            self.assets(id)?
        } else {
            node["releaseAssets"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| Asset {
                    id: 0,
                    name: a["name"].as_str().unwrap_or_default().to_string(),
                    size: a["size"].as_u64().unwrap_or_default(),
                    state: "uploaded".into(),
                    digest: None,
                })
                .collect()
        };
        Ok(Release {
            id,
            tag_name: node["tagName"].as_str().unwrap_or_default().to_string(),
            upload_url: String::new(),
            body: node["description"].as_str().map(str::to_string),
            draft: node["isDraft"].as_bool().unwrap_or(false),
            // Not asked for: older Enterprise Servers lack the field, and a listing needs it not.
            immutable: false,
            created_at: node["createdAt"].as_str().map(str::to_string),
            assets,
        })
    }

    /// One GraphQL query: its `data`, or a fault from its `errors`.
    async fn graphql(&self, url: &str, request: &Value) -> std::result::Result<Value, Fault> {
        self.retrier
            .answered_in_time(self.graphql_untimed(url, request))
            .await
    }

    async fn graphql_untimed(
        &self,
        url: &str,
        request: &Value,
    ) -> std::result::Result<Value, Fault> {
        let request = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .json(request);
        let reply = net::exchange(&GITHUB, request, "GraphQL").await?;
        if let Some(fault) = classify(reply.status, &reply.headers, &reply.body) {
            return Err(fault);
        }
        let status = reply.status;
        if status != 200 {
            return Err(Fault::Fatal(RemoteError::failed(format!(
                "GitHub's GraphQL API answered {status} ({})",
                reply.validation().1
            ))));
        }
        let value: Value = reply.json()?;
        match value["errors"].get(0) {
            None => Ok(value["data"].clone()),
            // GraphQL reports its rate limit in a 200's body, as type RATE_LIMITED or (lately)
            // RATE_LIMIT with code graphql_rate_limit; the headers say until when, and without
            // them GitHub asks for at least a minute.
            Some(error)
                if error["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("RATE_LIMIT"))
                    || error["code"] == "graphql_rate_limit" =>
            {
                // Until the reset the headers give, when they give one.
                let wait = net::retry_after(&reply.headers)
                    .or_else(|| {
                        (header_u64(&reply.headers, "x-ratelimit-remaining") == Some(0))
                            .then(|| header_u64(&reply.headers, "x-ratelimit-reset"))
                            .flatten()
                            .map(until)
                    })
                    .unwrap_or(Duration::from_secs(60));
                Err(Fault::Transient {
                    message: "GraphQL rate limit".into(),
                    wait: Some(wait),
                })
            }
            Some(error) => Err(Fault::Fatal(RemoteError::failed(format!(
                "GitHub's GraphQL API refused to list the releases of {}/{}: {}",
                self.owner,
                self.name,
                error["message"].as_str().unwrap_or("no message")
            )))),
        }
    }

    /// Walks the release list, newest first, until a page holds only releases created before
    /// `since`, the list ends, or GitHub's 1,000-result cap answers 422.
    pub(super) fn recent_releases(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        mut visit: impl FnMut(Release),
    ) -> Result<()> {
        let mut next = Some(self.repo_path("/releases?per_page=100"));
        while let Some(path) = next.take() {
            let reply = self.retrying(|| self.api_call(reqwest::Method::GET, &path, None))?;
            match reply.status {
                200 => {}
                422 if is_result_cap(&reply) => return Ok(()),
                404 => return Err(self.not_found()),
                other => {
                    return Err(RemoteError::failed(format!(
                        "listing the releases of {}/{} answered {other}",
                        self.owner, self.name
                    ))
                    .into());
                }
            }
            let page: Vec<Release> = reply.json().map_err(Fault::into_error)?;
            let all_older = page.iter().all(|r| {
                r.created_at
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t < since)
            });
            page.into_iter().for_each(&mut visit);
            if all_older {
                break;
            }
            next = next_link(&reply.headers);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::graphql_url;

    #[test]
    fn the_graphql_endpoint_of_each_kind_of_server() {
        assert_eq!(
            graphql_url("https://api.github.com"),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            graphql_url("https://api.acme.ghe.com/"),
            "https://api.acme.ghe.com/graphql"
        );
        assert_eq!(
            graphql_url("https://ghe.example.com/api/v3"),
            "https://ghe.example.com/api/graphql"
        );
        assert_eq!(
            graphql_url("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api/graphql"
        );
    }
}
