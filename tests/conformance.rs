//! One remote contract, every remote: each test here runs against every remote in [`REMOTES`]
//! (the directory remote, the GitHub remote on the project's fake, and the S3 remote on a real
//! Garage server), through the library's `Remote`. A new remote is one more entry there.

use std::fs;
use std::path::{Path, PathBuf};

use backup_agent::RemoteErrorKind;
use backup_agent::auth::Token;
use backup_agent::progress::Silent;
use backup_agent::remote::github::{DEFAULT_RETRY_MAX_DELAY_MS, GITHUB_MAX_ASSET_BYTES};
use backup_agent::remote::s3::Credentials;
use backup_agent::remote::{
    DirConfig, GithubConfig, GithubRemote, Remote, RemoteConfig, RemoteSetup, S3Config, S3Remote,
    Upload,
};
use backup_agent::tag::Tag;
use tempfile::TempDir;

use crate::fake_github::{FakeGitHub, TOKEN};
use crate::support::sha256_hex;

const REPO: &str = "octo-user/app-backups";

/// Every remote under test, each made missing (its folder, repository or bucket not there yet);
/// `None` when its server cannot run here (the test says so, see `support::skip`).
const REMOTES: [fn() -> Option<Subject>; 3] = [Subject::dir, Subject::github, Subject::s3];

/// A remote under test, with what it needs kept alive.
struct Subject {
    remote: Remote,
    name: &'static str,
    fake: Option<FakeGitHub>,
    dir: TempDir,
}

impl Subject {
    /// A folder remote whose folder does not exist yet.
    fn dir() -> Option<Subject> {
        let dir = TempDir::new().unwrap();
        let remote = Remote::from_config(
            &RemoteConfig::Dir(DirConfig {
                path: dir.path().join("remote"),
            }),
            &RemoteSetup {
                local_dir: &dir.path().join("local"),
                earlier_good_push: false,
            },
        );
        Some(Subject {
            remote,
            name: "dir",
            fake: None,
            dir,
        })
    }

    /// A GitHub remote whose repository does not exist yet.
    fn github() -> Option<Subject> {
        let fake = FakeGitHub::start();
        let config = GithubConfig {
            repo: REPO.into(),
            api_url: fake.api_url.clone(),
            token_file: None,
            max_asset_bytes: GITHUB_MAX_ASSET_BYTES,
            retry_budget_secs: 5,
            retry_max_delay_ms: DEFAULT_RETRY_MAX_DELAY_MS.min(20),
            stall_secs: 5,
            reply_timeout_secs: 5,
            answer_timeout_secs: 5,
            push_deadline_secs: 60,
        };
        let token = Token::given(TOKEN).unwrap().unwrap();
        let remote = Remote::Github(Box::new(GithubRemote::with_token(config, token).unwrap()));
        Some(Subject {
            remote,
            name: "github",
            fake: Some(fake),
            dir: TempDir::new().unwrap(),
        })
    }

    /// An S3 remote on the tests' Garage server, its bucket not made yet.
    fn s3() -> Option<Subject> {
        let garage = crate::support::garage::garage()?;
        let mut config = S3Config::new(
            &garage.endpoint,
            &garage.region,
            &garage.unique_bucket("conformance"),
            true,
        );
        config.prefix = "host-a".into();
        config.retry_budget_secs = 5;
        config.retry_max_delay_ms = 20;
        let keys = Credentials::given(&garage.key_id, &garage.secret, None);
        Some(Subject {
            remote: Remote::S3(Box::new(S3Remote::with_credentials(config, keys))),
            name: "s3",
            fake: None,
            dir: TempDir::new().unwrap(),
        })
    }

    /// Every remote, missing.
    fn all_missing() -> Vec<Subject> {
        REMOTES.iter().filter_map(|make| make()).collect()
    }

    /// Every remote, ready (created by `init`).
    fn all() -> Vec<Subject> {
        let subjects = Subject::all_missing();
        for s in &subjects {
            let ready = s.remote.init(true).unwrap();
            assert!(ready.created, "{}: {ready:?}", s.name);
        }
        subjects
    }

    /// A local archive of `len` bytes for `tag`.
    fn archive(&self, tag: &Tag, len: usize, seed: u8) -> (PathBuf, String) {
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        let path = self
            .dir
            .path()
            .join(format!("{seed}-{}", tag.archive_name()));
        fs::write(&path, &data).unwrap();
        (path, sha256_hex(&data))
    }

    fn push(
        &self,
        tag: &Tag,
        path: &Path,
        sha256: &str,
        verified: bool,
    ) -> backup_agent::Result<()> {
        let size = fs::metadata(path).unwrap().len();
        self.remote.put(&Upload {
            tag,
            path,
            size,
            sha256,
            manifest: None,
            verified,
        })
    }

    fn tags(&self) -> Vec<String> {
        self.remote
            .list()
            .unwrap()
            .into_iter()
            .map(|s| s.tag.as_str().to_string())
            .collect()
    }

    fn fetch(&self, tag: &Tag) -> backup_agent::Result<Vec<u8>> {
        let dest = self
            .dir
            .path()
            .join(format!("fetched-{}", tag.archive_name()));
        let _ = fs::remove_file(&dest);
        let (size, sha256) = self.remote.fetch(tag, &dest, &Silent)?;
        let data = fs::read(&dest).unwrap();
        assert_eq!(size, data.len() as u64, "{}", self.name);
        assert_eq!(sha256, sha256_hex(&data), "{}", self.name);
        Ok(data)
    }
}

impl Drop for Subject {
    fn drop(&mut self) {
        if let Some(fake) = &self.fake
            && !std::thread::panicking()
        {
            assert_eq!(fake.violations(), Vec::<String>::new());
        }
    }
}

fn tag(text: &str) -> Tag {
    Tag::parse(text).unwrap()
}

const OLD: &str = "bk-20260301T100000Z-scheduled-laptop-0a0a0a";
const NEW: &str = "bk-20260301T110000Z-manual-laptop-0b0b0b";

#[test]
fn a_missing_remote_is_refused_until_init_creates_it() {
    for s in Subject::all_missing() {
        let t = tag(OLD);
        let (path, sha) = s.archive(&t, 1_000, 1);
        let attempts = [
            ("list", s.remote.list().err()),
            ("holding", s.remote.holding(std::slice::from_ref(&t)).err()),
            ("put", s.push(&t, &path, &sha, true).err()),
            ("fetch", s.fetch(&t).err()),
            ("delete", s.remote.delete(&t).err()),
        ];
        for (operation, err) in attempts {
            let err = err
                .unwrap_or_else(|| panic!("{}: {operation} on a missing remote succeeded", s.name));
            assert_eq!(
                err.remote_kind(),
                Some(RemoteErrorKind::NotFound),
                "{}: {operation}: {err}",
                s.name
            );
        }
        let created = s.remote.init(true).unwrap();
        assert!(created.created, "{}", s.name);
        let again = s.remote.init(false).unwrap();
        assert!(!again.created, "{}: {again:?}", s.name);
        assert!(s.tags().is_empty(), "{}", s.name);
    }
}

#[test]
fn what_is_pushed_lists_with_its_size_and_checksum_and_comes_back_identical() {
    for s in Subject::all() {
        let (old, new) = (tag(OLD), tag(NEW));
        let (old_path, old_sha) = s.archive(&old, 70_000, 1);
        let (new_path, new_sha) = s.archive(&new, 1_000, 2);
        s.push(&new, &new_path, &new_sha, true).unwrap();
        s.push(&old, &old_path, &old_sha, true).unwrap();
        let listed = s.remote.list().unwrap();
        assert_eq!(s.tags(), [OLD, NEW], "{}: oldest first", s.name);
        assert_eq!(listed[0].size, 70_000, "{}", s.name);
        assert_eq!(
            listed[0].sha256.as_deref(),
            Some(old_sha.as_str()),
            "{}",
            s.name
        );
        assert_eq!(
            s.fetch(&old).unwrap(),
            fs::read(&old_path).unwrap(),
            "{}",
            s.name
        );
        assert_eq!(
            s.fetch(&new).unwrap(),
            fs::read(&new_path).unwrap(),
            "{}",
            s.name
        );
    }
}

#[test]
fn pushing_the_same_snapshot_again_converges_on_one_copy() {
    for s in Subject::all() {
        let t = tag(OLD);
        let (path, sha) = s.archive(&t, 5_000, 3);
        s.push(&t, &path, &sha, true).unwrap();
        s.push(&t, &path, &sha, false).unwrap();
        assert_eq!(s.tags(), [OLD], "{}", s.name);
        if let Some(fake) = &s.fake {
            assert_eq!(fake.releases(REPO).len(), 1);
            assert_eq!(fake.releases(REPO)[0].assets.len(), 1);
        }
    }
}

#[test]
fn an_unproven_local_archive_never_replaces_a_different_remote_copy() {
    for s in Subject::all() {
        let t = tag(OLD);
        let (good, good_sha) = s.archive(&t, 5_000, 4);
        let (other, other_sha) = s.archive(&t, 5_000, 5);
        s.push(&t, &good, &good_sha, true).unwrap();
        let err = s.push(&t, &other, &other_sha, false).unwrap_err();
        // That snapshot can never go there as it is: a run passes over it, with a warning.
        assert_eq!(
            err.remote_kind(),
            Some(RemoteErrorKind::Refused),
            "{}: {err}",
            s.name
        );
        assert!(
            err.to_string().contains("nothing was replaced"),
            "{}: {err}",
            s.name
        );
        assert_eq!(s.fetch(&t).unwrap(), fs::read(&good).unwrap(), "{}", s.name);
    }
}

#[test]
fn a_deleted_snapshot_is_gone_and_deleting_it_again_succeeds() {
    for s in Subject::all() {
        let (old, new) = (tag(OLD), tag(NEW));
        for (i, t) in [&old, &new].into_iter().enumerate() {
            let (path, sha) = s.archive(t, 2_000, 10 + i as u8);
            s.push(t, &path, &sha, true).unwrap();
        }
        s.remote.delete(&old).unwrap();
        assert_eq!(s.tags(), [NEW], "{}", s.name);
        s.remote.delete(&old).unwrap();
        let err = s.fetch(&old).unwrap_err();
        assert_eq!(
            err.remote_kind(),
            Some(RemoteErrorKind::NotFound),
            "{}: {err}",
            s.name
        );
        if let Some(fake) = &s.fake {
            // The release and its git tag: tags do not pile up.
            assert_eq!(fake.tags(REPO), [NEW]);
        }
    }
}

#[test]
fn fetching_a_snapshot_the_remote_never_had_is_not_found() {
    for s in Subject::all() {
        let err = s.fetch(&tag(NEW)).unwrap_err();
        assert_eq!(
            err.remote_kind(),
            Some(RemoteErrorKind::NotFound),
            "{}: {err}",
            s.name
        );
    }
}

/// A zstd archive (`<tag>.tar.zst`) goes up under its own name, lists under its tag, comes back
/// identical, and goes with its snapshot; the gzip name of the same tag is never made up for it.
#[test]
fn a_zstd_archive_keeps_its_name_and_comes_back_identical() {
    for s in Subject::all() {
        let t = tag(NEW);
        let (made, sha) = s.archive(&t, 9_000, 21);
        let named = s.dir.path().join("zstd").join(format!("{t}.tar.zst"));
        fs::create_dir_all(named.parent().unwrap()).unwrap();
        fs::rename(&made, &named).unwrap();
        s.push(&t, &named, &sha, true).unwrap();
        let listed = s.remote.list().unwrap();
        assert_eq!(s.tags(), [NEW], "{}", s.name);
        assert_eq!(
            listed[0].sha256.as_deref(),
            Some(sha.as_str()),
            "{}",
            s.name
        );
        assert_eq!(
            s.fetch(&t).unwrap(),
            fs::read(&named).unwrap(),
            "{}",
            s.name
        );
        if let Some(fake) = &s.fake {
            let assets = &fake.releases(REPO)[0].assets;
            assert_eq!(assets[0].name, format!("{t}.tar.zst"));
        }
        s.remote.delete(&t).unwrap();
        assert!(s.tags().is_empty(), "{}", s.name);
        assert_eq!(
            s.fetch(&t).unwrap_err().remote_kind(),
            Some(RemoteErrorKind::NotFound),
            "{}",
            s.name
        );
    }
}

/// A differential and its base, real archives of a real app: each remote lists the
/// differential with its base without a download (a record, or a folder's archive read in
/// place), and gives both archives back identical.
#[test]
fn a_differential_lists_with_its_base_and_both_archives_come_back_identical() {
    let app = crate::support::App::new(300);
    app.write_config(crate::support::TASKS_CONFIG);
    let mut made = Vec::new();
    for title in ["a", "b"] {
        crate::support::execute_on(
            app.path("data/tasks.db"),
            &format!("UPDATE tasks SET title = '{title}' WHERE id = 9"),
        );
        let out = app.run(&["run", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            crate::support::stderr(&out)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        made.push(report["tag"].as_str().unwrap().to_string());
    }
    let archives: Vec<(Tag, PathBuf)> = made
        .iter()
        .map(|t| {
            (
                tag(t),
                crate::support::archive_path(&app.path("backups"), t),
            )
        })
        .collect();
    for s in Subject::all() {
        for (t, path) in &archives {
            let manifest = backup_agent::archive::read::read_manifest(path).unwrap();
            let bytes = fs::read(path).unwrap();
            s.remote
                .put(&Upload {
                    tag: t,
                    path,
                    size: bytes.len() as u64,
                    sha256: &sha256_hex(&bytes),
                    manifest: Some(&manifest),
                    verified: true,
                })
                .unwrap();
        }
        let listed = s.remote.list().unwrap();
        let base_of = |t: &Tag| listed.iter().find(|l| &l.tag == t).unwrap().base.clone();
        assert_eq!(base_of(&archives[0].0), None, "{}", s.name);
        assert_eq!(
            base_of(&archives[1].0),
            Some(archives[0].0.clone()),
            "{}",
            s.name
        );
        let held = s.remote.holding(&[archives[1].0.clone()]).unwrap();
        assert_eq!(held[0].base, Some(archives[0].0.clone()), "{}", s.name);
        for (t, path) in &archives {
            assert_eq!(s.fetch(t).unwrap(), fs::read(path).unwrap(), "{}", s.name);
        }
    }
}
