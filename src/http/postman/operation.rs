//! One OpenAPI operation as one Postman v2.1 request item: the URL on `{{baseUrl}}` with
//! `{{org}}`, its parameters (optional ones disabled), its body, and its authentication
//! from the operation's `security`. It reads the document only; it must not know any
//! endpoint by name.

use serde_json::{Value, json};

use super::example::{self, field_value, variable_for};

/// A request item, before it is filed in a folder.
pub struct Operation {
    /// The first tag: the folder.
    pub tag: String,
    pub method: String,
    /// The OpenAPI path (`/v1/{org}/user/me`).
    pub path: String,
    pub item: Value,
}

/// Bearer `{{accessToken}}`: what a protected request sends.
pub fn bearer() -> Value {
    json!({"type": "bearer", "bearer": [
        {"key": "token", "value": "{{accessToken}}", "type": "string"}
    ]})
}

/// Basic `{{apiKeyId}}`:`{{apiKey}}`: OAuth client authentication (`client_secret_basic`).
fn basic() -> Value {
    json!({"type": "basic", "basic": [
        {"key": "username", "value": "{{apiKeyId}}", "type": "string"},
        {"key": "password", "value": "{{apiKey}}", "type": "string"}
    ]})
}

/// The names of the security schemes of the operation's first requirement (the first
/// alternative is the one a client uses first: Bearer before DPoP and Basic).
fn first_requirement(operation: &Value) -> Vec<String> {
    operation
        .get("security")
        .and_then(Value::as_array)
        .and_then(|alternatives| alternatives.first())
        .and_then(Value::as_object)
        .map(|requirement| requirement.keys().cloned().collect())
        .unwrap_or_default()
}

fn description(value: &Value) -> String {
    value
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Every operation of the document, in its order.
pub fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return out;
    };
    for (path, item) in paths {
        let Some(methods) = item.as_object() else {
            continue;
        };
        for (method, operation) in methods {
            if !matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
            ) {
                continue;
            }
            out.push(Operation {
                tag: operation
                    .get("tags")
                    .and_then(|t| t.get(0))
                    .and_then(Value::as_str)
                    .unwrap_or("Other")
                    .to_owned(),
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                item: request_item(doc, path, &method.to_ascii_uppercase(), operation),
            });
        }
    }
    out
}

fn request_item(doc: &Value, path: &str, method: &str, operation: &Value) -> Value {
    let mut headers = Vec::new();
    let mut query = Vec::new();
    let mut variables = Vec::new();
    let parameters = operation
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for parameter in &parameters {
        let parameter = example::resolve(doc, parameter);
        let Some(name) = parameter.get("name").and_then(Value::as_str) else {
            continue;
        };
        let required = parameter.get("required").and_then(Value::as_bool) == Some(true);
        let schema = parameter.get("schema").cloned().unwrap_or(Value::Null);
        let value = match variable_for(name) {
            Some(variable) => variable.to_owned(),
            None if required => text(&field_value(doc, name, &schema)),
            None => String::new(),
        };
        let entry = json!({
            "key": name,
            "value": value,
            "description": description(parameter),
            "disabled": !required,
        });
        match parameter.get("in").and_then(Value::as_str) {
            Some("header") => headers.push(entry),
            Some("query") => query.push(entry),
            Some("path") if name != "org" => variables.push(json!({
                "key": name,
                "value": "",
                "description": description(parameter),
            })),
            _ => {}
        }
    }

    let requirement = first_requirement(operation);
    let auth = if requirement.iter().any(|s| s == "bearer") {
        bearer()
    } else if requirement.iter().any(|s| s == "client_basic") {
        basic()
    } else {
        // Sign-in's credentials are headers (above); public endpoints send nothing.
        json!({"type": "noauth"})
    };

    let mut request = json!({
        "method": method,
        "header": headers,
        "url": url(path, query, variables),
        "auth": auth,
        "description": description(operation),
    });
    if let Some(body) = body(doc, operation) {
        request["body"] = body;
        if let Some(content_type) = content_type(operation)
            && let Some(headers) = request["header"].as_array_mut()
        {
            headers.push(json!({"key": "Content-Type", "value": content_type}));
        }
    }
    let name = operation
        .get("summary")
        .and_then(Value::as_str)
        .map_or_else(|| format!("{method} {path}"), str::to_owned);
    json!({"name": name, "request": request, "response": []})
}

/// A JSON value as a header or field value: strings as they are, others as JSON text.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `{{baseUrl}}` + the path, `{org}` as `{{org}}` and other parameters as `:name`.
fn url(path: &str, query: Vec<Value>, variables: Vec<Value>) -> Value {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some("org") => "{{org}}".to_owned(),
                Some(name) => format!(":{name}"),
                None => segment.to_owned(),
            },
        )
        .collect();
    let mut raw = format!("{{{{baseUrl}}}}/{}", segments.join("/"));
    let enabled: Vec<String> = query
        .iter()
        .filter(|q| q["disabled"] != Value::Bool(true))
        .filter_map(|q| Some(format!("{}={}", q["key"].as_str()?, q["value"].as_str()?)))
        .collect();
    if !enabled.is_empty() {
        raw = format!("{raw}?{}", enabled.join("&"));
    }
    let mut url = json!({"raw": raw, "host": ["{{baseUrl}}"], "path": segments});
    if !query.is_empty() {
        url["query"] = Value::Array(query);
    }
    if !variables.is_empty() {
        url["variable"] = Value::Array(variables);
    }
    url
}

fn content_type(operation: &Value) -> Option<String> {
    operation
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
        .and_then(|content| content.keys().next().cloned())
}

/// The request body: raw JSON with the schema's required members, or urlencoded fields
/// (required ones enabled, optional ones disabled).
fn body(doc: &Value, operation: &Value) -> Option<Value> {
    let content_type = content_type(operation)?;
    let schema = operation
        .pointer("/requestBody/content")
        .and_then(|c| c.get(&content_type))
        .and_then(|c| c.get("schema"))
        .cloned()
        .unwrap_or(Value::Null);
    if content_type == "application/x-www-form-urlencoded" {
        let schema = example::resolve(doc, &schema);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let fields: Vec<Value> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .iter()
                    .map(|(name, property)| {
                        json!({
                            "key": name,
                            "value": text(&field_value(doc, name, property)),
                            "description": description(example::resolve(doc, property)),
                            "disabled": !required.contains(&name.as_str()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Some(json!({"mode": "urlencoded", "urlencoded": fields}));
    }
    let value = example::example(doc, &schema, 0);
    let raw = serde_json::to_string_pretty(&value).unwrap_or_default();
    Some(json!({"mode": "raw", "raw": raw, "options": {"raw": {"language": "json"}}}))
}
