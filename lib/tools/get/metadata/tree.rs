//! The metadata tree under `/computeMetadata/`, built once from the identity, and its
//! recursive JSON.

use super::identity::Identity;
use serde_json::{Map, Value};

/// A node of the metadata tree.
pub(super) enum Node {
    Dir(Vec<Entry>),
    Text(String),
    Number(u64),
    List(Vec<String>),
    Token,
}

/// A named child: its path segment and its key in recursive JSON (the real server camelCases).
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) json: String,
    pub(super) node: Node,
}

fn entry(name: &str, node: Node) -> Entry {
    let mut json = String::new();
    let mut upper = false;
    for c in name.chars() {
        match c {
            '-' => upper = true,
            c if upper => {
                json.extend(c.to_uppercase());
                upper = false;
            }
            c => json.push(c),
        }
    }
    Entry { name: name.to_string(), json, node }
}

/// The tree under `/computeMetadata/`.
pub(super) fn tree(id: &Identity) -> Node {
    let account = |aliases: Vec<String>| {
        Node::Dir(vec![
            entry("aliases", Node::List(aliases)),
            entry("email", Node::Text(id.email.clone())),
            entry("scopes", Node::List(id.scopes.clone())),
            entry("token", Node::Token),
        ])
    };
    let mut project = Vec::new();
    if let Some(n) = id.project_number {
        project.push(entry("numeric-project-id", Node::Number(n)));
    }
    if let Some(p) = &id.project_id {
        project.push(entry("project-id", Node::Text(p.clone())));
    }
    let accounts = vec![
        entry("default", account(vec!["default".into()])),
        // The email is a path segment but stays as it is in recursive JSON.
        Entry { name: id.email.clone(), json: id.email.clone(), node: account(vec![id.email.clone()]) },
    ];
    Node::Dir(vec![entry(
        "v1",
        Node::Dir(vec![
            entry("instance", Node::Dir(vec![entry("service-accounts", Node::Dir(accounts))])),
            entry("project", Node::Dir(project)),
            entry("universe", Node::Dir(vec![entry("universe-domain", Node::Text("googleapis.com".into()))])),
        ]),
    )])
}

/// Recursive JSON of a node (the token is not part of listings, as on the real server).
pub(super) fn to_json(node: &Node) -> Option<Value> {
    Some(match node {
        Node::Dir(children) => {
            let mut m = Map::new();
            for c in children {
                if let Some(v) = to_json(&c.node) {
                    m.insert(c.json.clone(), v);
                }
            }
            Value::Object(m)
        }
        Node::Text(t) => Value::String(t.clone()),
        Node::Number(n) => Value::from(*n),
        Node::List(l) => Value::from(l.clone()),
        Node::Token => return None,
    })
}
