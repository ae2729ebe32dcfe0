//! `/docs`: the API reference, rendered on the server from the same OpenAPI document that
//! `/openapi.json` serves — every operation, its parameters, body fields with their limits, and
//! answers — as plain HTML (no script, nothing fetched from elsewhere).

use std::fmt::Write;
use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::html::{escape, html, page};

pub async fn reference() -> Response {
    static RENDERED: OnceLock<String> = OnceLock::new();
    let document = RENDERED.get_or_init(|| {
        let spec = crate::openapi::complete();
        let nav = "<a href=\"/dashboard\">Dashboard</a><a href=\"/openapi.json\">openapi.json</a>";
        page("API reference", nav, &render(&spec))
    });
    html(StatusCode::OK, document.clone())
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn render(spec: &Value) -> String {
    let mut out = String::new();
    let title = spec["info"]["title"].as_str().unwrap_or("Authcap");
    let version = spec["info"]["version"].as_str().unwrap_or("");
    let _ = write!(
        out,
        "<h1>{} API reference <span class=\"muted\">{}</span></h1>",
        escape(title),
        escape(version)
    );
    if let Some(description) = spec["info"]["description"].as_str() {
        let _ = write!(out, "<p>{}</p>", escape(description));
    }
    out.push_str(
        "<p>Authenticate with <code>Authorization: Bearer &lt;secret_key&gt;</code>. Amounts are \
         integers in minor units. Every POST accepts <code>Idempotency-Key</code>. Errors are \
         <code>application/problem+json</code>. The machine-readable document is \
         <a href=\"/openapi.json\">/openapi.json</a>.</p>",
    );
    let Some(paths) = spec["paths"].as_object() else {
        return out;
    };
    out.push_str("<h2 id=\"operations\">Operations</h2><ul>");
    for (path, item) in paths {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let _ = write!(
                out,
                "<li><a href=\"#{anchor}\"><span class=\"method\">{method}</span> <code>{path}</code></a></li>",
                anchor = anchor(method, path),
                method = method.to_uppercase(),
                path = escape(path),
            );
        }
    }
    out.push_str("</ul>");
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                operation_html(&mut out, spec, method, path, operation);
            }
        }
    }
    out
}

fn anchor(method: &str, path: &str) -> String {
    let slug: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{method}{slug}")
}

fn operation_html(out: &mut String, spec: &Value, method: &str, path: &str, operation: &Value) {
    let _ = write!(
        out,
        "<section class=\"op\" id=\"{}\"><h3><span class=\"method\">{}</span> <code>{}</code></h3>",
        anchor(method, path),
        method.to_uppercase(),
        escape(path)
    );
    for key in ["summary", "description"] {
        if let Some(text) = operation[key].as_str() {
            let _ = write!(out, "<p>{}</p>", escape(text));
        }
    }
    if let Some(parameters) = operation["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str(
            "<h4>Parameters</h4><div class=\"table-wrap\"><table><thead><tr><th>name</th><th>in</th>\
             <th>type</th><th>required</th><th>description</th></tr></thead><tbody>",
        );
        for parameter in parameters {
            let parameter = resolve(spec, parameter);
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(parameter["name"].as_str().unwrap_or("")),
                escape(parameter["in"].as_str().unwrap_or("")),
                escape(&type_of(&parameter["schema"])),
                if parameter["required"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                escape(parameter["description"].as_str().unwrap_or("")),
            );
        }
        out.push_str("</tbody></table></div>");
    }
    if let Some(schema) =
        operation["requestBody"]["content"]["application/json"]["schema"].as_object()
    {
        out.push_str("<h4>Body</h4>");
        fields_html(out, spec, &Value::Object(schema.clone()), 0);
    }
    if let Some(responses) = operation["responses"].as_object() {
        out.push_str(
            "<h4>Answers</h4><div class=\"table-wrap\"><table><thead><tr><th>status</th>\
             <th>description</th><th>body</th></tr></thead><tbody>",
        );
        for (status, response) in responses {
            let response = resolve(spec, response);
            let body = response["content"]
                .as_object()
                .and_then(|content| content.iter().next())
                .map(|(media, value)| format!("{media}: {}", type_of(&value["schema"])))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(status),
                escape(response["description"].as_str().unwrap_or("")),
                escape(&body)
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("</section>");
}

/// The schema a `$ref` names, or the value itself.
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            spec.pointer(pointer).unwrap_or(value)
        }
        None => value,
    }
}

fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema[combinator].as_array() {
            let names: Vec<String> = options
                .iter()
                .map(type_of)
                .filter(|name| name != "null")
                .collect();
            return names.join(" or ");
        }
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .filter(|kind| *kind != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => String::new(),
    };
    if kind == "array" {
        return format!("array of {}", type_of(&schema["items"]));
    }
    kind
}

/// Limits a field declares, in words.
fn limits(schema: &Value) -> String {
    let mut parts = Vec::new();
    for (key, words) in [
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minimum", "at least {}"),
        ("maximum", "at most {}"),
        ("pattern", "matches {}"),
    ] {
        if let Some(value) = schema.get(key) {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            parts.push(words.replace("{}", &value));
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        parts.push(format!("one of {}", values.join(", ")));
    }
    parts.join("; ")
}

fn fields_html(out: &mut String, spec: &Value, schema: &Value, depth: usize) {
    let schema = resolve(spec, schema);
    let Some(properties) = schema["properties"].as_object() else {
        let _ = write!(out, "<p><code>{}</code></p>", escape(&type_of(schema)));
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str(
        "<div class=\"table-wrap\"><table><thead><tr><th>field</th><th>type</th><th>required</th>\
         <th>description and limits</th></tr></thead><tbody>",
    );
    for (name, field) in properties {
        let resolved = resolve(spec, field);
        let mut description = resolved["description"]
            .as_str()
            .or(field["description"].as_str())
            .unwrap_or("")
            .to_owned();
        let limits = limits(resolved);
        if !limits.is_empty() {
            if !description.is_empty() {
                description.push_str(" — ");
            }
            description.push_str(&limits);
        }
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}",
            escape(name),
            escape(&type_of(field)),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            },
            escape(&description)
        );
        if depth < 2 && resolved["properties"].is_object() {
            fields_html(out, spec, resolved, depth + 1);
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></div>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_document_is_rendered() {
        let spec = crate::openapi::complete();
        let rendered = render(&spec);
        for (path, item) in spec["paths"].as_object().unwrap() {
            for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
                assert!(
                    rendered.contains(&format!("id=\"{}\"", anchor(method, path))),
                    "{method} {path}"
                );
            }
        }
        assert!(rendered.contains("reference"), "body fields are listed");
        assert!(!rendered.contains("<script"));
    }
}
