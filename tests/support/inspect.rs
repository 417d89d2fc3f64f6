//! Facts read off a database file or bytes, shared by the tests and by
//! `examples/regenerate_fixtures.rs` (which includes this file): table names, row counts, sha256.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Names of every table, sorted.
pub fn table_names(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Row counts of every table of a database file.
pub fn row_counts(path: &Path) -> BTreeMap<String, u64> {
    let conn = Connection::open(path).unwrap();
    table_names(&conn)
        .into_iter()
        .map(|n| {
            let count: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{n}\""), [], |r| r.get(0))
                .unwrap();
            (n, count as u64)
        })
        .collect()
}
