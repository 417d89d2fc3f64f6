//! Reading S3's XML answers: each is a shallow document whose values sit in leaf elements, read
//! here by element name whatever the namespace (AWS, Garage and MinIO differ there).

use std::collections::HashMap;

use quick_xml::events::Event;

/// A leaf element's text, with the path of elements leading to it; each step carries how many
/// elements of that name had started before it, so repeated groups (`Contents`) stay apart.
struct Leaf {
    path: Vec<(String, usize)>,
    text: String,
}

/// Every leaf of `body`, in document order; a body that is not XML gives what came before the
/// fault (nothing, for a body that is not XML at all).
fn leaves(body: &[u8]) -> Vec<Leaf> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut starts: HashMap<String, usize> = HashMap::new();
    let mut found = Vec::new();
    let mut current = String::new();
    let mut has_children = Vec::<bool>::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_string();
                let ordinal = starts.entry(name.clone()).or_insert(0);
                stack.push((name, *ordinal));
                *ordinal += 1;
                if let Some(parent) = has_children.last_mut() {
                    *parent = true;
                }
                has_children.push(false);
                current.clear();
            }
            Ok(Event::Empty(e)) => {
                let name = e.local_name().as_ref().to_string();
                let ordinal = starts.entry(name.clone()).or_insert(0);
                let mut path = stack.clone();
                path.push((name, *ordinal));
                *ordinal += 1;
                found.push(Leaf {
                    path,
                    text: String::new(),
                });
            }
            Ok(Event::Text(t)) => current.push_str(&t.xml10_content()),
            Ok(Event::CData(t)) => current.push_str(&t.into_inner()),
            Ok(Event::GeneralRef(r)) => {
                let entity = format!("&{};", r.into_inner());
                match quick_xml::escape::unescape(&entity) {
                    Ok(resolved) => current.push_str(&resolved),
                    Err(_) => current.push_str(&entity),
                }
            }
            Ok(Event::End(_)) => {
                let leaf = !has_children.pop().unwrap_or(true);
                if leaf {
                    found.push(Leaf {
                        path: stack.clone(),
                        text: std::mem::take(&mut current),
                    });
                }
                current.clear();
                stack.pop();
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    found
}

/// The text of the first element named `name`, anywhere.
pub(super) fn text(body: &[u8], name: &str) -> Option<String> {
    leaves(body)
        .into_iter()
        .find(|leaf| leaf.path.last().is_some_and(|(n, _)| n == name))
        .map(|leaf| leaf.text)
}

/// Each element named `group`, as its leaves' texts by element name: the `Contents` of a
/// listing, the `Upload`s of a multipart listing.
pub(super) fn records(body: &[u8], group: &str) -> Vec<HashMap<String, String>> {
    let mut out: Vec<(usize, HashMap<String, String>)> = Vec::new();
    for leaf in leaves(body) {
        let Some(at) = leaf.path.iter().position(|(n, _)| n == group) else {
            continue;
        };
        let ordinal = leaf.path[at].1;
        let Some((name, _)) = leaf.path.last() else {
            continue;
        };
        if out.last().is_none_or(|(o, _)| *o != ordinal) {
            out.push((ordinal, HashMap::new()));
        }
        if let Some((_, record)) = out.last_mut() {
            record.insert(name.clone(), leaf.text);
        }
    }
    out.into_iter().map(|(_, record)| record).collect()
}

/// `text` with the five XML special characters escaped, for request bodies.
pub(super) fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_reads_as_records_whatever_the_namespace() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
<Contents><Key>a&amp;b.tar.gz</Key><Size>10</Size></Contents>
<Contents><Key>c.json</Key><Size>2</Size><Owner><ID>x</ID></Owner></Contents>
<NextContinuationToken>tok=</NextContinuationToken></ListBucketResult>"#;
        let found = records(body, "Contents");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0]["Key"], "a&b.tar.gz");
        assert_eq!(found[1]["Size"], "2");
        assert_eq!(text(body, "NextContinuationToken").as_deref(), Some("tok="));
        assert_eq!(text(body, "IsTruncated").as_deref(), Some("true"));
        let error = b"<Error><Code>SlowDown</Code><Message>Please reduce</Message></Error>";
        assert_eq!(text(error, "Code").as_deref(), Some("SlowDown"));
        assert_eq!(text(b"not xml", "Code"), None);
        assert_eq!(escape("a<b&c"), "a&lt;b&amp;c");
    }
}
