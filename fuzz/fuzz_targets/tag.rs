//! Tag parsing: never panics, and a tag it accepts prints back to the same text, is a safe git
//! ref and asset name, and names its archive so that the archive name parses to it again.
#![no_main]

use backup_agent::tag::Tag;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Some(tag) = Tag::parse(text) else {
        return;
    };
    assert_eq!(tag.as_str(), text);
    assert!(
        text.bytes().all(|b| b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || b == b'-'
            || b == b'T'
            || b == b'Z'),
        "{text}"
    );
    assert_eq!(
        Tag::from_archive_name(&tag.archive_name()),
        Some(tag.clone())
    );
    assert_eq!(Tag::parse(&tag.to_string()), Some(tag));
});
