//! GitHub's OpenAPI description of the Releases endpoints (`fixtures/github-api/`), as JSON
//! Schema validators: the fake checks every JSON body it answers against them.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/github-api/releases-subset.openapi.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    })
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema: the schema, or null.
fn to_json_schema(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if k != "nullable" && k != "example" && k != "examples" {
                    out.insert(k.clone(), to_json_schema(v));
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                json!({"anyOf": [Value::Object(out), {"type": "null"}]})
            } else {
                Value::Object(out)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// The path template of the spec that `path` matches, most literal segments first.
fn template_for(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut best: Option<(usize, String)> = None;
    for template in spec()["paths"].as_object()?.keys() {
        let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        // A git ref (`tags/v1`) spans several segments.
        let greedy_ref = parts.last() == Some(&"{ref}") && segments.len() > parts.len();
        if parts.len() != segments.len() && !greedy_ref {
            continue;
        }
        let mut literal = 0;
        let fits = parts.iter().zip(&segments).all(|(p, s)| {
            if p.starts_with('{') {
                true
            } else {
                literal += 1;
                p == s
            }
        });
        if fits && best.as_ref().is_none_or(|(n, _)| literal > *n) {
            best = Some((literal, template.clone()));
        }
    }
    best.map(|(_, t)| t)
}

fn response_schema(method: &str, template: &str, status: u16) -> Option<Value> {
    let op = &spec()["paths"][template][method.to_lowercase()];
    let mut response = op["responses"][status.to_string()].clone();
    if let Some(reference) = response["$ref"].as_str() {
        let name = reference.rsplit('/').next()?;
        response = spec()["components"]["responses"][name].clone();
    }
    let schema = response["content"]["application/json"]["schema"].clone();
    (!schema.is_null()).then_some(schema)
}

/// Checks one JSON answer against the spec; statuses the spec does not describe for the
/// operation (faults such as 502 or a rate-limit 403) need only GitHub's `message`.
pub fn check_response(method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
    let Some(template) = template_for(path) else {
        return Err(format!("{method} {path}: not an endpoint of the spec"));
    };
    let Some(schema) = response_schema(method, &template, status) else {
        return match body["message"].as_str() {
            Some(_) => Ok(()),
            None => Err(format!(
                "{method} {template} {status}: an error without `message`"
            )),
        };
    };
    static CACHE: OnceLock<Mutex<HashMap<String, jsonschema::Validator>>> = OnceLock::new();
    let key = format!("{method} {template} {status}");
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    if !cache.contains_key(&key) {
        let mut root = to_json_schema(&schema);
        let mut components = spec()["components"].clone();
        // The one place where GitHub is known to answer outside its description: a failed
        // upload leaves an asset in state `starter` (BEHAVIOUR.md §2, docs and observed logs).
        if let Some(states) =
            components["schemas"]["release-asset"]["properties"]["state"]["enum"].as_array_mut()
        {
            states.push(json!("starter"));
        }
        root["components"] = to_json_schema(&components);
        let validator = jsonschema::validator_for(&root)
            .map_err(|e| format!("{key}: the spec's schema does not compile: {e}"))?;
        cache.insert(key.clone(), validator);
    }
    let errors: Vec<String> = cache[&key]
        .iter_errors(body)
        .take(3)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{key}: {}", errors.join("; ")))
    }
}
