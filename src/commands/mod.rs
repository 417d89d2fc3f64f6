//! One module per command: arguments, one library call, rendering.

pub mod auth;
pub mod demo;
pub mod diff;
pub mod doctor;
pub mod init;
pub mod list;
pub mod man;
pub mod prune;
pub mod restore;
pub mod schedule;
pub mod show;
pub mod show_config;
pub mod snapshot;
pub mod stats;
pub mod status;
