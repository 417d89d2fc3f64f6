//! `docs/json.md` against the real output: every command run with `--json` on a real app folder,
//! its keys (at every level) and value types matched to the documented example, its times RFC
//! 3339, and every failure under `--json` printed as the documented error object.

use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::{App, GITHUB_REPO, fake_with_private_repo, github_config, stderr, stdout};

/// Where the command runs: the shared app folder, in order, or its own GitHub-backed app.
#[derive(Clone, Copy, PartialEq)]
enum Setup {
    /// The app folder every row before it left behind (a folder remote).
    Folder,
    /// A fresh app whose remote is a private repository on the fake GitHub.
    Github,
    /// A fresh app whose remote is a bucket on the tests' Garage server (skipped without one).
    S3,
}

/// One documented output: the heading of its section in docs/json.md, the arguments that print
/// it, and the exit code they end with.
struct Case {
    section: &'static str,
    args: &'static [&'static str],
    exit: i32,
    setup: Setup,
}

const fn case(section: &'static str, args: &'static [&'static str], exit: i32) -> Case {
    Case {
        section,
        args,
        exit,
        setup: Setup::Folder,
    }
}

/// Every `--json` output, in the order they run on the shared app folder. A new command is one
/// more row here and one more section in docs/json.md.
const CASES: &[Case] = &[
    case(
        "`backup now --json`",
        &["now", "--json", "--note", "first"],
        0,
    ),
    case("`backup now --json`", &["run", "--json"], 0),
    case("`backup list --json`", &["list", "--json"], 0),
    case(
        "`backup list --json --explain`",
        &["list", "--json", "--explain"],
        0,
    ),
    case("`backup config --json`", &["config", "--json"], 0),
    case(
        "`backup prune --json`",
        &["prune", "--json", "--dry-run"],
        0,
    ),
    case("`backup status --json`", &["status", "--json"], 0),
    case("`backup doctor --json`", &["doctor", "--json"], 0),
    case("`backup init --json`", &["init", "--json"], 0),
    case(
        "`backup verify latest --json`",
        &["verify", "latest", "--json"],
        0,
    ),
    case(
        "`backup verify --all --json`",
        &["verify", "--all", "--json"],
        0,
    ),
    case(
        "`backup restore latest --dry-run --json`",
        &["restore", "latest", "--dry-run", "--json"],
        0,
    ),
    case(
        "`backup restore latest --dry-run --json`",
        &["restore", "latest", "--yes", "--json"],
        0,
    ),
    case(
        "`backup rollback --dry-run --json`",
        &["rollback", "--dry-run", "--json"],
        0,
    ),
    case(
        "`backup rollback --json`",
        &["rollback", "--yes", "--json"],
        0,
    ),
    case(
        "`backup restore latest --to DIR --json`",
        &["restore", "latest", "--to", "recovered", "--json"],
        0,
    ),
    case(
        "`backup schedule install --json`",
        &["schedule", "install", "--systemd", "--dry-run", "--json"],
        0,
    ),
    case(
        "`backup schedule status --json`",
        &["schedule", "status", "--json"],
        0,
    ),
    case(
        "`backup schedule remove --json`",
        &["schedule", "remove", "--json"],
        0,
    ),
    case(
        "`backup demo --json`",
        &["demo", "--dir", "sample", "--json"],
        0,
    ),
    case(
        "`backup show SNAPSHOT --json`",
        &["show", "latest", "--files", "--json"],
        0,
    ),
    case(
        "`backup diff A B --json`",
        &["diff", "latest~1", "latest", "--json"],
        0,
    ),
    case(
        "`backup diff A B --json`",
        &["diff", "latest", "--live", "--json"],
        0,
    ),
    case("`backup stats --json`", &["stats", "--json"], 0),
    // Failures: the error object, the human line still on stderr.
    case("Errors", &["restore", "nosuch", "--json"], 2),
    case(
        "Errors",
        &["verify", "latest", "--json", "--no-such-flag"],
        2,
    ),
    case("Errors", &["list", "--json", "--since", "someday"], 2),
    Case {
        section: "`backup auth status --json`",
        args: &["auth", "status", "--json"],
        exit: 0,
        setup: Setup::Github,
    },
    Case {
        section: "`backup auth status --json` (S3 remote)",
        args: &["auth", "status", "--json"],
        exit: 0,
        setup: Setup::S3,
    },
];

#[test]
fn every_json_output_matches_its_example_in_docs_json_md() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md")).unwrap();
    let app = App::with_snapshot(20);
    let home = app.path("home");
    fs::create_dir_all(&home).unwrap();
    let fake = fake_with_private_repo(GITHUB_REPO);
    let github_app = App::new(5);
    github_app.write_config(&github_config(&fake.api_url, GITHUB_REPO, ""));
    let s3 = crate::support::garage::garage().map(|garage| {
        let app = App::new(5);
        let bucket = garage.unique_bucket("json-docs");
        garage.create_bucket(&bucket);
        app.write_config(&format!(
            "{}[remote]\ntype = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nregion = \"{}\"\npath_style = true\n",
            crate::support::TASKS_CONFIG,
            garage.endpoint,
            garage.region
        ));
        (app, garage)
    });
    let mut problems = Vec::new();
    for case in CASES {
        let name = format!("backup {}", case.args.join(" "));
        let example = example(&doc, case.section);
        let out = match case.setup {
            Setup::Folder => app
                .command(case.args)
                // The schedule rows write nothing (dry run) and read only this home.
                .env("HOME", &home)
                .env_remove("XDG_CONFIG_HOME")
                .output()
                .unwrap(),
            Setup::Github => github_app.run_github(case.args),
            Setup::S3 => {
                let Some((app, garage)) = &s3 else { continue };
                app.command(case.args)
                    .env("AWS_ACCESS_KEY_ID", &garage.key_id)
                    .env("AWS_SECRET_ACCESS_KEY", &garage.secret)
                    .output()
                    .unwrap()
            }
        };
        assert_eq!(
            out.status.code(),
            Some(case.exit),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let real: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{name}: stdout is not one JSON document ({e}): {}",
                stdout(&out)
            )
        });
        conforms(&example, &real, &name, &mut problems);
        if case.exit != 0 {
            error_is_told_both_ways(&out, &real, case.exit, &name, &mut problems);
        }
    }
    assert!(
        problems.is_empty(),
        "docs/json.md and the real output differ:\n{}",
        problems.join("\n")
    );
}

/// A failure says its one line on stderr, and the object on stdout holds the same message.
fn error_is_told_both_ways(
    out: &Output,
    real: &Value,
    exit: i32,
    name: &str,
    problems: &mut Vec<String>,
) {
    // Compared word by word: a usage error may wrap its message over lines on stderr.
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let err = words(&stderr(out));
    let message = words(real["error"]["message"].as_str().unwrap_or_default());
    if message.is_empty() || !err.starts_with("backup: error: ") || !err.contains(&message) {
        problems.push(format!(
            "{name}: stderr {err:?} does not say the JSON message {message:?} after `backup: error: `"
        ));
    }
    if real["error"]["exit_code"] != exit {
        problems.push(format!("{name}: exit_code is not {exit}: {real}"));
    }
}

/// The example under the heading `## <section>` in docs/json.md: its first ```json block.
fn example(doc: &str, section: &str) -> Value {
    let heading = format!("## {section}");
    let start = doc
        .lines()
        .position(|l| l == heading)
        .unwrap_or_else(|| panic!("docs/json.md has no section `{heading}`"));
    let block: Vec<&str> = doc
        .lines()
        .skip(start)
        .skip_while(|l| *l != "```json")
        .skip(1)
        .take_while(|l| *l != "```")
        .collect();
    serde_json::from_str(&block.join("\n"))
        .unwrap_or_else(|e| panic!("docs/json.md, `{section}`: the example is not JSON: {e}"))
}

/// Checks `real` against the documented `doc` at `path`, by the rules docs/json.md states:
/// same keys (`name?` optional, `"*"` a map), same JSON types (`null` either side matches),
/// each array element shaped like the example's first, times in RFC 3339.
fn conforms(doc: &Value, real: &Value, path: &str, problems: &mut Vec<String>) {
    match (doc, real) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(doc), Value::Object(real)) if doc.len() == 1 && doc.contains_key("*") => {
            for (key, value) in real {
                conforms(&doc["*"], value, &format!("{path}.{key}"), problems);
            }
        }
        (Value::Object(doc), Value::Object(real)) => {
            for (key, expected) in doc {
                let name = key.trim_end_matches('?');
                match real.get(name) {
                    Some(value) => conforms(expected, value, &format!("{path}.{name}"), problems),
                    None if key.ends_with('?') => {}
                    None => problems.push(format!("{path}: documented key `{name}` is missing")),
                }
            }
            for (key, value) in real {
                if !doc.contains_key(key) && !doc.contains_key(&format!("{key}?")) {
                    problems.push(format!("{path}: key `{key}` is not documented"));
                }
                if (key == "time" || key.ends_with("_at"))
                    && value
                        .as_str()
                        .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_err())
                {
                    problems.push(format!("{path}.{key}: {value} is not RFC 3339"));
                }
            }
        }
        (Value::Array(doc), Value::Array(real)) => match doc.first() {
            Some(shape) => {
                for (i, value) in real.iter().enumerate() {
                    conforms(shape, value, &format!("{path}[{i}]"), problems);
                }
            }
            None if !real.is_empty() => {
                problems.push(format!("{path}: the example's array shows no element"));
            }
            None => {}
        },
        (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_)) => {}
        (doc, real) => problems.push(format!(
            "{path}: documented {} but printed {}",
            type_name(doc),
            type_name(real)
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The checker itself: what it must refuse, so a passing run means something.
#[test]
fn the_shape_check_refuses_a_missing_key_an_extra_key_and_another_type() {
    let doc = serde_json::json!({
        "a": 1, "b?": "x", "time": "2026-01-01T00:00:00Z", "m": {"*": [true]}, "n": null
    });
    let check = |real: Value| {
        let mut problems = Vec::new();
        conforms(&doc, &real, "$", &mut problems);
        problems
    };
    let good = serde_json::json!({
        "a": 2, "time": "2026-12-03T22:10:44.5Z", "m": {"x": [false], "y": []}, "n": {"any": 1}
    });
    assert_eq!(check(good), Vec::<String>::new());
    for bad in [
        serde_json::json!({"time": "2026-12-03T22:10:44Z", "m": {}, "n": 1}),
        serde_json::json!({"a": 1, "time": "2026-12-03T22:10:44Z", "m": {}, "n": 1, "c": 0}),
        serde_json::json!({"a": "1", "time": "2026-12-03T22:10:44Z", "m": {}, "n": 1}),
        serde_json::json!({"a": 1, "time": "2026-12-03 22:10Z", "m": {}, "n": 1}),
        serde_json::json!({"a": 1, "time": "2026-12-03T22:10:44Z", "m": {"x": [1]}, "n": 1}),
    ] {
        assert_eq!(check(bad.clone()).len(), 1, "{bad}");
    }
}

/// A restore that needs a confirmation nobody gave (exit 3) is the error object too.
#[test]
fn an_unconfirmed_restore_under_json_is_the_error_object_with_exit_3() {
    let app = App::with_snapshot(10);
    crate::support::execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = 'edited' WHERE id = 1",
    );
    let out = app.run(&["restore", "latest", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let real: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(real["error"]["kind"], "unconfirmed", "{real}");
    assert_eq!(real["error"]["exit_code"], 3, "{real}");
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md")).unwrap();
    let mut problems = Vec::new();
    conforms(&example(&doc, "Errors"), &real, "restore", &mut problems);
    assert_eq!(problems, Vec::<String>::new());
}
