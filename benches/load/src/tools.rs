//! The tools the load server exposes: the tool names of an Intercept policy
//! (by default `benches/policies/fusionauth.yaml`, embedded at build time),
//! each with a realistic description and a small input schema, so that a
//! `tools/list` answer is about as large as a real server's (~100 KB for 310).

use crate::json::push_str;

/// The policy whose tool names the server uses unless `--names FILE` is given.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/fusionauth.yaml");

/// Tool names from a policy file (a line scan of the top-level `tools:`
/// mapping; the `"*"` wildcard is skipped) or, for any other file, one name
/// per line (blank lines and `#` comments skipped).
pub fn names_from(text: &str, yaml: bool) -> Vec<String> {
    if !yaml {
        return text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
    }
    let mut names = Vec::new();
    let mut in_tools = false;
    for line in text.lines() {
        let content = line.trim_end();
        if content.trim_start().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            in_tools = content == "tools:";
            continue;
        }
        // A key of the `tools:` mapping: exactly two spaces of indentation.
        if !in_tools || !line.starts_with("  ") || line[2..].starts_with(' ') {
            continue;
        }
        let entry = &content[2..];
        let key = if let Some(rest) = entry.strip_prefix('"') {
            rest.split_once('"').map(|(k, _)| k)
        } else if let Some(rest) = entry.strip_prefix('\'') {
            rest.split_once('\'').map(|(k, _)| k)
        } else {
            entry.split_once(':').map(|(k, _)| k.trim())
        };
        if let Some(k) = key
            && !k.is_empty()
            && k != "*"
        {
            names.push(k.to_string());
        }
    }
    names
}

/// `n` tool names: the first `n` of `names`, then synthetic ones if needed.
pub fn take(names: &[String], n: usize) -> Vec<String> {
    let mut out: Vec<String> = names.iter().take(n).cloned().collect();
    let mut i = 0;
    while out.len() < n {
        out.push(format!("extraTool{i:04}"));
        i += 1;
    }
    out
}

/// "retrieveUserByEmail" -> ("retrieve", "user by email").
fn split(name: &str) -> (String, String) {
    let verb_end = name
        .char_indices()
        .find(|(_, c)| c.is_ascii_uppercase())
        .map_or(name.len(), |(i, _)| i);
    let (verb, rest) = name.split_at(verb_end);
    let mut words: Vec<String> = Vec::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
        if c.is_ascii_uppercase() && !cur.is_empty() && (prev_lower || next_lower) {
            words.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let thing = words
        .iter()
        .map(|w| {
            if w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase()) {
                w.clone() // API, JWT, IP...
            } else {
                w.to_ascii_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    (verb.to_string(), thing)
}

fn id_field(rest_words: &str) -> String {
    let mut out = String::new();
    for (i, w) in rest_words.split(' ').enumerate() {
        if i == 0 {
            out.push_str(&w.to_ascii_lowercase());
        } else {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                out.push(f.to_ascii_uppercase());
                out.push_str(c.as_str());
            }
        }
    }
    out.push_str("Id");
    out
}

fn description(name: &str, verb: &str, thing: &str) -> String {
    match verb {
        "create" => format!(
            "Creates a {thing} from the request body and returns it with its generated id. Fails with 400 when a required field is missing or a unique field is taken."
        ),
        "retrieve" => format!(
            "Retrieves the {thing}. Returns 404 when nothing matches; secrets, password hashes and private keys are removed from the answer."
        ),
        "update" => format!(
            "Updates the {thing}, replacing it with the request body (PUT): omitted fields are reset to their defaults."
        ),
        "patch" => format!(
            "Patches the {thing}: only the fields present in the request body change (JSON merge patch, RFC 7396)."
        ),
        "delete" => format!(
            "Permanently deletes the {thing} and everything that depends on it. This cannot be undone."
        ),
        "search" => format!(
            "Searches {thing} with a query string. Results are paginated with startRow and numberOfResults."
        ),
        _ => format!(
            "Calls the FusionAuth {name} API. The request body is passed through; the answer is FusionAuth's JSON response."
        ),
    }
}

/// The JSON array of tool definitions (`[{"name":...},...]`).
pub fn tools_array(names: &[String]) -> String {
    let mut out = String::with_capacity(names.len() * 360);
    out.push('[');
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (verb, thing) = split(name);
        out.push_str("{\"name\":");
        push_str(&mut out, name);
        out.push_str(",\"description\":");
        push_str(&mut out, &description(name, &verb, &thing));
        out.push_str(",\"inputSchema\":{\"type\":\"object\",\"properties\":{");
        out.push_str("\"tenantId\":{\"type\":\"string\",\"format\":\"uuid\"}");
        let id = id_field(&thing);
        let required: Vec<String> = match verb.as_str() {
            "create" | "update" | "patch" => {
                out.push_str(&format!(
                    ",\"{id}\":{{\"type\":\"string\",\"format\":\"uuid\"}},\"request\":{{\"type\":\"object\",\"description\":\"The {thing} request body\"}}"
                ));
                if verb == "create" {
                    vec!["request".into()]
                } else {
                    vec![id, "request".into()]
                }
            }
            "retrieve" | "delete" => {
                out.push_str(&format!(
                    ",\"{id}\":{{\"type\":\"string\",\"format\":\"uuid\"}}"
                ));
                Vec::new()
            }
            "search" => {
                out.push_str(
                    ",\"queryString\":{\"type\":\"string\"},\"numberOfResults\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},\"startRow\":{\"type\":\"integer\",\"minimum\":0}",
                );
                Vec::new()
            }
            _ => {
                out.push_str(",\"request\":{\"type\":\"object\"}");
                vec!["request".into()]
            }
        };
        out.push_str("},\"required\":[");
        for (j, r) in required.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_str(&mut out, r);
        }
        out.push_str("]}}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_names_310_tools() {
        let names = names_from(DEFAULT_POLICY, true);
        assert_eq!(names.len(), 310);
        assert_eq!(names[0], "createUser");
        assert!(!names.iter().any(|n| n == "*"));
    }

    #[test]
    fn names_split_into_verb_and_words() {
        assert_eq!(
            split("retrieveUserByEmail"),
            ("retrieve".into(), "user by email".into())
        );
        assert_eq!(split("createAPIKey"), ("create".into(), "API key".into()));
        assert_eq!(split("login"), ("login".into(), String::new()));
    }

    #[test]
    fn plain_name_lists_and_quoted_keys() {
        let yaml = "hide:\n  - x\ntools:\n  a:\n    rules: []\n  \"b\":\n    rules: []\n  \"*\":\n    rules: []\nother:\n  c: 1\n";
        assert_eq!(names_from(yaml, true), vec!["a", "b"]);
        assert_eq!(names_from("# c\nx\n\n y \n", false), vec!["x", "y"]);
        assert_eq!(take(&["a".into()], 2), vec!["a", "extraTool0000"]);
    }
}
