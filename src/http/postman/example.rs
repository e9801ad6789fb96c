//! Example values for a Postman request, made from the OpenAPI document's schemas: a JSON
//! body with the required members, form fields, and the collection variable a credential
//! field takes. It reads the document only; it must not know any endpoint by name.

use serde_json::{Map, Value, json};

/// How deep nested schemas are followed (the documents's schemas are shallow; this stops a
/// recursive one).
const MAX_DEPTH: usize = 6;

/// The collection variable a field, header or parameter named `name` takes, if it carries a
/// credential or an identifier the collection holds (so no request holds a placeholder
/// where a credential belongs).
pub fn variable_for(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "x-api-key" | "client_secret" => "{{apiKey}}",
        "x-api-key-id" | "client_id" => "{{apiKeyId}}",
        "x-user-id" | "user_id" => "{{userId}}",
        "refresh_token" => "{{refreshToken}}",
        "token" => "{{accessToken}}",
        _ => return None,
    })
}

/// A value a field of `schema` may start with: the collection variable of its name, the
/// schema's example, default or first enum value, else the empty value of its type.
pub fn field_value(doc: &Value, name: &str, schema: &Value) -> Value {
    if let Some(variable) = variable_for(name) {
        return Value::String(variable.to_owned());
    }
    if name == "grant_type" {
        return Value::String("client_credentials".to_owned());
    }
    example(doc, schema, 0)
}

/// Follows a local `$ref` (`#/components/schemas/Name`).
pub fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let mut current = schema;
    for _ in 0..MAX_DEPTH {
        let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
            return current;
        };
        let Some(pointer) = reference.strip_prefix('#') else {
            return current;
        };
        match doc.pointer(pointer) {
            Some(target) => current = target,
            None => return current,
        }
    }
    current
}

/// The first type of a schema that is not `null` (`type` may be a list in OpenAPI 3.1).
fn type_of(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

/// An example of `schema`: its `example`, first `examples` entry, `default` or first `enum`
/// value; the first non-null alternative of `oneOf`/`anyOf`; for an object, its required
/// members; otherwise the empty value of its type.
pub fn example(doc: &Value, schema: &Value, depth: usize) -> Value {
    let schema = resolve(doc, schema);
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    for key in ["example", "default"] {
        if let Some(value) = schema.get(key) {
            return value.clone();
        }
    }
    if let Some(first) = schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.iter().find(|v| !v.is_null()))
    {
        return first.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let chosen = alternatives
                .iter()
                .find(|alt| type_of(resolve(doc, alt)) != Some("null"));
            if let Some(alt) = chosen {
                return example(doc, alt, depth + 1);
            }
        }
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(members) = example(doc, part, depth + 1) {
                merged.extend(members);
            }
        }
        return Value::Object(merged);
    }
    match type_of(schema) {
        Some("object") => Value::Object(required_members(doc, schema, depth)),
        Some("array") => json!([]),
        Some("integer") | Some("number") => json!(0),
        Some("boolean") => json!(false),
        Some("string") => json!(""),
        _ if schema.get("properties").is_some() => {
            Value::Object(required_members(doc, schema, depth))
        }
        _ => Value::Null,
    }
}

fn required_members(doc: &Value, schema: &Value, depth: usize) -> Map<String, Value> {
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema.get("required").and_then(Value::as_array);
    let mut members = Map::new();
    if let (Some(properties), Some(required)) = (properties, required) {
        for name in required.iter().filter_map(Value::as_str) {
            if let Some(property) = properties.get(name) {
                let value = match variable_for(name) {
                    Some(variable) if type_of(resolve(doc, property)) == Some("string") => {
                        Value::String(variable.to_owned())
                    }
                    _ => example(doc, property, depth + 1),
                };
                members.insert(name.to_owned(), value);
            }
        }
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_follow_refs_and_keep_required_members_only() {
        let doc = json!({"components": {"schemas": {
            "Env": {"type": "string", "enum": ["live", "test"]},
            "Body": {"type": "object", "required": ["name", "env", "user_id", "n"], "properties": {
                "name": {"type": "string"},
                "env": {"$ref": "#/components/schemas/Env"},
                "user_id": {"type": ["string", "null"]},
                "n": {"type": "integer"},
                "optional": {"type": "string"}
            }}
        }}});
        let body = example(&doc, &json!({"$ref": "#/components/schemas/Body"}), 0);
        assert_eq!(
            body,
            json!({"name": "", "env": "live", "user_id": "{{userId}}", "n": 0})
        );
    }

    #[test]
    fn credentials_take_collection_variables() {
        let doc = json!({});
        let string = json!({"type": "string"});
        assert_eq!(field_value(&doc, "client_secret", &string), "{{apiKey}}");
        assert_eq!(field_value(&doc, "X-Api-Key-Id", &string), "{{apiKeyId}}");
        assert_eq!(
            field_value(&doc, "grant_type", &string),
            "client_credentials"
        );
        assert_eq!(field_value(&doc, "scope", &string), "");
        let recursive =
            json!({"components": {"schemas": {"R": {"$ref": "#/components/schemas/R"}}}});
        assert_eq!(
            example(&recursive, &json!({"$ref": "#/components/schemas/R"}), 0),
            Value::Null
        );
    }
}
