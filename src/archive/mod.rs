//! The snapshot archive format, `<tag>.tar.gz`: its `MANIFEST.json`, the writer, the reader that
//! trusts nothing, and the parallel gzip encoder. It sits below snapshot, restore and every
//! remote, so each of them reads and writes archives here rather than through one another.

pub mod manifest;
pub mod pgzip;
pub mod read;
pub(crate) mod write;

pub use manifest::{DatabaseEntry, FileEntry, MANIFEST_NAME, MANIFEST_VERSION, Manifest};
