//! How the tool writes numbers for people and for records: byte counts (`1.5 GiB`), times
//! (`2026-12-03 22:10Z`) and digests in hex. The base layer: it depends on nothing in the crate, so errors and every module above
//! can format with it.

/// Formats a time for people, the one form every message and table uses: UTC to the minute,
/// `2026-12-03 22:10Z` (short enough for a table row; the tag keeps the second). Records and `--json` carry RFC 3339 to the second or finer.
pub fn human_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%MZ").to_string()
}

/// Formats a byte count for people: `1.5 GiB`, `312 KiB`, `17 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `n` with its noun in the form the number needs: `1 snapshot`, `3 snapshots`, `0 snapshots`.
/// Messages write the words out; "snapshot(s)" reads as unfinished.
pub fn count<N>(n: N, one: &str, many: &str) -> String
where
    N: std::fmt::Display + PartialEq + From<u8>,
{
    let noun = if n == N::from(1) { one } else { many };
    format!("{n} {noun}")
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_write_the_noun_in_the_form_the_number_needs() {
        assert_eq!(count(1_usize, "snapshot", "snapshots"), "1 snapshot");
        assert_eq!(count(0_u64, "snapshot", "snapshots"), "0 snapshots");
        assert_eq!(count(3_u32, "entry", "entries"), "3 entries");
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(17), "17 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
