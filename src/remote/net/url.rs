//! URLs: where a redirect points, which host may see a remote's credentials, and what of a URL
//! may be shown.

/// The `Location` of a redirect, as sent.
pub(crate) fn location(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    Some(value.to_string())
}

/// Whether `url` is on the same scheme, host and port as `base` (the API host, which may see
/// the credentials; no other host may).
pub(crate) fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// `url` fit for a message or a log: without userinfo (`user:password@`), query or fragment,
/// where tokens and signatures travel (a presigned URL's `X-Amz-Signature`, an upload URL's
/// parameters). Read as text, so a URL that does not parse is cut the same way and one
/// without secrets comes back unchanged.
pub(crate) fn redact(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let Some(scheme_end) = url.find("://").map(|at| at + "://".len()) else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_host_is_the_same_origin() {
        let api = "https://ghe.example.com/api/v3";
        assert!(same_origin("https://ghe.example.com/repositories/1", api));
        assert!(!same_origin("https://objects.example.com/x", api));
        assert!(!same_origin("http://ghe.example.com/repositories/1", api));
        assert!(!same_origin("https://ghe.example.com:8443/x", api));
        assert!(!same_origin("/relative", api));
    }

    #[test]
    fn redaction_drops_userinfo_query_and_fragment_and_nothing_else() {
        let cases = [
            // Nothing secret: unchanged, byte for byte.
            (
                "https://api.example.com/repos/o/r",
                "https://api.example.com/repos/o/r",
            ),
            ("https://HOST:8443/a/b/", "https://HOST:8443/a/b/"),
            ("http://127.0.0.1:1234", "http://127.0.0.1:1234"),
            ("/repos/o/r/releases", "/repos/o/r/releases"),
            ("", ""),
            // Userinfo.
            ("https://user:token@host/path", "https://host/path"),
            ("https://token@host", "https://host"),
            ("https://a@b:c@host:1/x", "https://host:1/x"),
            // Query strings and fragments: signatures, tokens, upload parameters.
            (
                "https://bucket.s3.example.com/key.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc",
                "https://bucket.s3.example.com/key.tar.gz",
            ),
            ("https://host/x?token=abc#frag", "https://host/x"),
            ("https://host/x#access_token=abc", "https://host/x"),
            ("/relative?page=2", "/relative"),
            // An `@` in the path or query is no userinfo.
            ("https://host/users/@me?x=a@b", "https://host/users/@me"),
            // Both, in a URL that does not parse.
            ("https://u:p@[bad/x?sig=1", "https://[bad/x"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown, "{url}");
        }
    }
}
