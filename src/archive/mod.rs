//! The snapshot archive format, `<tag>.tar.gz` or `<tag>.tar.zst`: its `MANIFEST.json`, the
//! writer, the reader that trusts nothing, the parallel gzip encoder, and how archives are
//! compressed (`Packing`, the `[snapshot]` table). It sits below snapshot, restore and every
//! remote, so each of them reads and writes archives here rather than through one another.

pub mod manifest;
pub mod pgzip;
pub mod read;
pub(crate) mod write;

pub mod pages;

pub use manifest::{
    BaseRef, DIFFERENTIAL_MANIFEST_VERSION, DatabaseEntry, FileEntry, MANIFEST_NAME,
    MANIFEST_VERSION, Manifest, StoredPages,
};

/// How archives are compressed: `[snapshot] compression` and `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Packing {
    pub compression: Compression,
    /// The compressor's level; `None` for its default here ([`Compression::default_level`]).
    pub level: Option<i32>,
}

impl Default for Packing {
    /// zstd at its default level: on the 1 GiB bench database about 0.6x gzip's time for 0.64x
    /// its size (see README, Performance).
    fn default() -> Packing {
        Packing {
            compression: Compression::Zstd,
            level: None,
        }
    }
}

/// An archive's compressor, and so its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `<tag>.tar.gz`: every version of this tool and every tar reads it.
    Gzip,
    /// `<tag>.tar.zst`, the default: multithreaded; read by this tool from 0.2 and by GNU tar
    /// 1.31 or newer (`tar --zstd -xf`, with the `zstd` program installed) or bsdtar 3.3.3 or
    /// newer.
    Zstd,
}

impl Compression {
    /// The level used when the config names none (measured, see write.rs).
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Gzip => 5,
            Compression::Zstd => 3,
        }
    }

    /// The levels a config may name.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Compression::Gzip => 1..=9,
            Compression::Zstd => 1..=19,
        }
    }

    /// The archive's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => crate::tag::ARCHIVE_EXT,
            Compression::Zstd => crate::tag::ZSTD_ARCHIVE_EXT,
        }
    }
}

impl Packing {
    /// The level to compress at.
    pub fn level(&self) -> i32 {
        self.level
            .unwrap_or_else(|| self.compression.default_level())
    }

    /// Refuses a level the compressor does not have, in words.
    ///
    /// # Errors
    /// The level and the range allowed.
    pub fn check(&self) -> std::result::Result<(), String> {
        let levels = self.compression.levels();
        match self.level {
            Some(level) if !levels.contains(&level) => Err(format!(
                "[snapshot] level = {level} is not a {} level: use {} to {}",
                match self.compression {
                    Compression::Gzip => "gzip",
                    Compression::Zstd => "zstd",
                },
                levels.start(),
                levels.end()
            )),
            _ => Ok(()),
        }
    }
}
