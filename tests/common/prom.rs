//! Prometheus text exposition (format 0.0.4) read two ways: a strict parser here, and the
//! official Python client's `text_string_to_metric_families`; tests compare the two and
//! then look values up by name and labels.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;

/// One sample's identity: metric name and its labels, sorted.
pub type Key = (String, BTreeMap<String, String>);

/// Every sample of an exposition, by name and labels.
#[derive(Debug, Default, PartialEq)]
pub struct Samples {
    pub values: BTreeMap<Key, f64>,
    /// Metric family name → type (`counter`, `gauge`, …), as the TYPE lines say.
    pub types: BTreeMap<String, String>,
}

impl Samples {
    /// The value of `name{labels}`; panics naming what is there when it is missing.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).unwrap_or_else(|| {
            let have: Vec<&Key> = self.values.keys().filter(|(n, _)| n == name).collect();
            panic!("no sample {name}{labels:?}; samples of that name: {have:?}")
        })
    }

    /// The value of `name{labels}`, if there is such a sample.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.values.get(&(name.to_string(), labels)).copied()
    }

    /// Whether any sample has this name.
    pub fn has(&self, name: &str) -> bool {
        self.values.keys().any(|(n, _)| n == name)
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// Parses `name{a="x",b="y"} value` strictly; label values unescaped.
fn parse_sample(line: &str) -> Result<(Key, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_name(name, true) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (k, r) = rest.split_once("=\"").ok_or("label without =\"")?;
            if !is_name(k, false) {
                return Err(format!("bad label name {k:?}"));
            }
            let mut v = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => v.push('\n'),
                        c @ ('\\' | '"') => v.push(c),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, c) => v.push(c),
                }
            };
            if labels.insert(k.to_string(), v).is_some() {
                return Err(format!("label {k} twice"));
            }
            rest = &r[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|e| format!("bad value {v:?}: {e}"))?,
    };
    Ok(((name.to_string(), labels), value))
}

/// The strict reading: every sample belongs to a family declared by HELP and TYPE lines
/// before it (once each), counters end in `_total`, no sample twice, a final newline.
pub fn parse(text: &str) -> Samples {
    assert!(text.ends_with('\n'), "the last line must end with a newline: {text:?}");
    let mut out = Samples::default();
    let mut helped = std::collections::BTreeSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').unwrap_or_else(|| panic!("HELP without text: {line}"));
            assert!(helped.insert(name.to_string()), "second HELP for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("TYPE without a type: {line}"));
            assert!(["counter", "gauge", "untyped", "histogram", "summary"].contains(&kind), "{line}");
            assert!(kind != "counter" || name.ends_with("_total"), "counter {name} does not end in _total");
            let old = out.types.insert(name.to_string(), kind.to_string());
            assert!(old.is_none(), "second TYPE for {name}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (key, value) = parse_sample(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(out.types.contains_key(&key.0), "sample before its TYPE line: {line}");
        assert!(helped.contains(&key.0), "sample without a HELP line: {line}");
        assert!(out.values.insert(key, value).is_none(), "sample twice: {line}");
    }
    out
}

/// The official reading (prometheus_client's parser, from .ci/requirements.txt); `None`
/// when python3 or the module is missing outside CI (see `available`).
pub fn parse_python(text: &str) -> Option<Samples> {
    if !super::python_has("prometheus_client.parser") {
        return None;
    }
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "prometheus_client refused the text: {}", String::from_utf8_lossy(&out.stderr));
    let families: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut s = Samples::default();
    for f in families {
        let (family, kind) = (f["name"].as_str().unwrap(), f["type"].as_str().unwrap());
        // The Python client names a counter family without its _total suffix.
        let declared = if kind == "counter" { format!("{family}_total") } else { family.to_string() };
        s.types.insert(declared, kind.to_string());
        for sample in f["samples"].as_array().unwrap() {
            let labels = sample["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let key = (sample["name"].as_str().unwrap().to_string(), labels);
            assert!(s.values.insert(key, sample["value"].as_f64().unwrap()).is_none());
        }
    }
    Some(s)
}

/// Both readings, which must agree; returns the strict one.
pub fn parse_both(text: &str) -> Samples {
    let strict = parse(text);
    if let Some(official) = parse_python(text) {
        assert_eq!(official, strict, "prometheus_client and the strict parser read different metrics");
    }
    strict
}
