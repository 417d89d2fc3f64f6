//! The tools' output schemas, made from the examples in docs/json.md: a tool answers with what
//! the command prints under `--json`, and that page is the contract for it (`tests/json_docs.rs`
//! holds the program to it), so the schema an agent is given cannot say something else.
//!
//! An example reads by the page's own rules: `null` stands for any value, any documented value
//! may be `null`, a key written `name?` may be left out, an object whose only key is `"*"` is a
//! map, and an array shows one element.

use serde_json::{Map, Value, json};

/// docs/json.md, built in: the server needs no file beside the binary.
const JSON_DOC: &str = include_str!("../../docs/json.md");

/// The example under the heading `## <section>` in docs/json.md, as a JSON Schema that wants its
/// keys with their types (the root is never `null`).
///
/// # Panics
/// When the section or its example is missing or not JSON: a unit test reads every section the
/// server uses.
pub fn of_section(section: &str) -> Value {
    let example = example(section);
    let mut schema = of_example(&example, None);
    schema["type"] = type_name(&example).into();
    schema
}

/// The example of `## <section>` in docs/json.md: its first ```json block.
fn example(section: &str) -> Value {
    let heading = format!("## {section}");
    let block: Vec<&str> = JSON_DOC
        .lines()
        .skip_while(|l| *l != heading)
        .skip_while(|l| *l != "```json")
        .skip(1)
        .take_while(|l| *l != "```")
        .collect();
    serde_json::from_str(&block.join("\n"))
        .unwrap_or_else(|e| panic!("docs/json.md, `{section}`: no JSON example ({e})"))
}

/// The schema of one documented value; `key` is its name, for times.
fn of_example(example: &Value, key: Option<&str>) -> Value {
    let kind = type_name(example);
    match example {
        Value::Null => json!({}),
        Value::Object(map) if map.len() == 1 && map.contains_key("*") => json!({
            "type": [kind, "null"],
            "additionalProperties": of_example(&map["*"], None),
        }),
        Value::Object(map) => {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for (name, value) in map {
                let bare = name.trim_end_matches('?');
                if bare == name {
                    required.push(Value::from(bare));
                }
                properties.insert(bare.to_string(), of_example(value, Some(bare)));
            }
            // Keys beyond the example are let through: clients refuse a result that fails its
            // schema, and a key this page forgot must not cost an agent its restore
            // (`tests/json_docs.rs` is where undocumented keys fail).
            json!({
                "type": [kind, "null"],
                "properties": properties,
                "required": required,
            })
        }
        Value::Array(items) => match items.first() {
            Some(item) => json!({ "type": [kind, "null"], "items": of_example(item, None) }),
            None => json!({ "type": [kind, "null"] }),
        },
        Value::String(_) if key.is_some_and(|k| k == "time" || k.ends_with("_at")) => {
            json!({ "type": [kind, "null"], "format": "date-time" })
        }
        _ => json!({ "type": [kind, "null"] }),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An object with one required key holding `inner` (a listing's array: a tool's structured
/// result is an object).
pub fn wrapped(key: &str, inner: Value, doc: &str) -> Value {
    json!({
        "type": "object",
        "properties": { key: with_description(inner, doc) },
        "required": [key],
    })
}

/// `schema` with a description.
pub fn with_description(mut schema: Value, doc: &str) -> Value {
    schema["description"] = doc.into();
    schema
}

/// One of `schemas`, as an object (a tool answers in one of several documented shapes).
pub fn one_of(schemas: Vec<Value>) -> Value {
    json!({ "type": "object", "anyOf": schemas })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_example_becomes_a_schema_by_the_pages_rules() {
        let example = json!({
            "tag": "bk-…",
            "note?": "…",
            "tables": { "*": 3 },
            "created_at": "2026-12-03T22:10:44Z",
            "list": [{ "a": true }],
            "any": null
        });
        let schema = of_example(&example, None);
        assert_eq!(
            schema["required"],
            json!(["tag", "tables", "created_at", "list", "any"])
        );
        assert_eq!(
            schema["properties"]["note"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(
            schema["properties"]["tables"]["additionalProperties"]["type"],
            json!(["number", "null"])
        );
        assert_eq!(schema["properties"]["created_at"]["format"], "date-time");
        assert_eq!(
            schema["properties"]["list"]["items"]["required"],
            json!(["a"])
        );
        assert_eq!(schema["properties"]["any"], json!({}));
    }

    #[test]
    fn a_documented_section_has_an_object_root() {
        let schema = of_section("`backup status --json`");
        assert_eq!(schema["type"], "object");
        assert!(schema["required"].as_array().unwrap().len() > 3);
    }
}
