//! The subset of CEL (Common Expression Language) that workload identity attribute mappings
//! and conditions use: string/number/bool/list literals, `assertion.X` / `attribute.X` /
//! `google.subject` paths and `["key"]` indexing, `+` (concatenation), `==`, `!=`, `in`,
//! `!`, `&&`, `||`, parentheses and the `startsWith`, `endsWith`, `contains` and `size`
//! methods. Like Google, a missing key is an evaluation error, not `false`.
//!
//! Credential Access Boundary conditions ([`parse_condition`]) see other roots:
//! `resource.name`, `resource.type`, `resource.service` and
//! `api.getAttribute('NAME', DEFAULT)`.

use crate::core::error::{Error, Result};
use serde_json::{Map, Value};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal value.
    Lit(Value),
    /// A list literal.
    List(Vec<Expr>),
    /// A root variable (`assertion`, `google`, `attribute`; `resource`, `api` in boundary conditions).
    Var(String),
    /// `e.name`.
    Member(Box<Expr>, String),
    /// `e[key]`.
    Index(Box<Expr>, Box<Expr>),
    /// `e.method(args)`.
    Call(Box<Expr>, String, Vec<Expr>),
    /// `!e`.
    Not(Box<Expr>),
    /// A binary operator.
    Bin(Op, Box<Expr>, Box<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `in`
    In,
    /// `+`
    Add,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Int(i64),
    Ident(String),
    Sym(&'static str),
}

fn lex(src: &str) -> Result<Vec<Tok>> {
    let bad = |why: String| Error::input(format!("CEL expression {src:?}: {why}"));
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&ch) = chars.get(i) else { return Err(bad("unterminated string".into())) };
                i += 1;
                if ch == c {
                    break;
                }
                if ch == '\\' {
                    let Some(&e) = chars.get(i) else { return Err(bad("unterminated string".into())) };
                    i += 1;
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    s.push(ch);
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let n: String = chars[start..i].iter().collect();
            out.push(Tok::Int(n.parse().map_err(|_| bad(format!("number {n} too large")))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "==" => Some("=="),
                "!=" => Some("!="),
                "&&" => Some("&&"),
                "||" => Some("||"),
                _ => None,
            };
            if let Some(s) = sym {
                out.push(Tok::Sym(s));
                i += 2;
                continue;
            }
            let one = match c {
                '!' => "!",
                '.' => ".",
                '(' => "(",
                ')' => ")",
                '[' => "[",
                ']' => "]",
                ',' => ",",
                '+' => "+",
                _ => return Err(bad(format!("unexpected character {c:?}"))),
            };
            out.push(Tok::Sym(one));
            i += 1;
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    src: &'a str,
    roots: &'a [&'a str],
}

/// The variables of workload identity attribute mappings and conditions.
const ATTRIBUTE_ROOTS: &[&str] = &["assertion", "attribute", "google"];
/// The variables of Credential Access Boundary availability conditions.
const CONDITION_ROOTS: &[&str] = &["resource", "api"];

impl Parser<'_> {
    fn err(&self, why: &str) -> Error {
        Error::input(format!("CEL expression {:?}: {why}", self.src))
    }
    fn peek_sym(&self, s: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Sym(x)) if *x == s)
    }
    fn eat_sym(&mut self, s: &str) -> bool {
        let hit = self.peek_sym(s);
        if hit {
            self.pos += 1;
        }
        hit
    }
    fn expect(&mut self, s: &str) -> Result<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {s}")))
        }
    }
    fn or(&mut self) -> Result<Expr> {
        let mut e = self.and()?;
        while self.eat_sym("||") {
            e = Expr::Bin(Op::Or, Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr> {
        let mut e = self.rel()?;
        while self.eat_sym("&&") {
            e = Expr::Bin(Op::And, Box::new(e), Box::new(self.rel()?));
        }
        Ok(e)
    }
    fn rel(&mut self) -> Result<Expr> {
        let e = self.add()?;
        let op = if self.eat_sym("==") {
            Op::Eq
        } else if self.eat_sym("!=") {
            Op::Ne
        } else if matches!(self.toks.get(self.pos), Some(Tok::Ident(w)) if w == "in") {
            self.pos += 1;
            Op::In
        } else {
            return Ok(e);
        };
        Ok(Expr::Bin(op, Box::new(e), Box::new(self.add()?)))
    }
    fn add(&mut self) -> Result<Expr> {
        let mut e = self.unary()?;
        while self.eat_sym("+") {
            e = Expr::Bin(Op::Add, Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }
    fn unary(&mut self) -> Result<Expr> {
        if self.eat_sym("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.postfix()
    }
    fn args(&mut self, close: &str) -> Result<Vec<Expr>> {
        let mut v = Vec::new();
        if self.eat_sym(close) {
            return Ok(v);
        }
        loop {
            v.push(self.or()?);
            if self.eat_sym(close) {
                return Ok(v);
            }
            self.expect(",")?;
        }
    }
    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.eat_sym(".") {
                let Some(Tok::Ident(name)) = self.toks.get(self.pos).cloned() else {
                    return Err(self.err("expected a name after '.'"));
                };
                self.pos += 1;
                if self.eat_sym("(") {
                    let args = self.args(")")?;
                    e = Expr::Call(Box::new(e), name, args);
                } else {
                    e = Expr::Member(Box::new(e), name);
                }
            } else if self.eat_sym("[") {
                let k = self.or()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(k));
            } else {
                return Ok(e);
            }
        }
    }
    fn primary(&mut self) -> Result<Expr> {
        let Some(t) = self.toks.get(self.pos).cloned() else { return Err(self.err("unexpected end")) };
        self.pos += 1;
        Ok(match t {
            Tok::Str(s) => Expr::Lit(Value::String(s)),
            Tok::Int(n) => Expr::Lit(Value::from(n)),
            Tok::Ident(w) => match w.as_str() {
                "true" => Expr::Lit(Value::Bool(true)),
                "false" => Expr::Lit(Value::Bool(false)),
                "null" => Expr::Lit(Value::Null),
                _ if self.roots.contains(&w.as_str()) => Expr::Var(w),
                _ => return Err(self.err(&format!("unknown name {w:?} (use {})", self.roots.join(", ")))),
            },
            Tok::Sym("(") => {
                let e = self.or()?;
                self.expect(")")?;
                e
            }
            Tok::Sym("[") => Expr::List(self.args("]")?),
            Tok::Sym(s) => return Err(self.err(&format!("unexpected {s}"))),
        })
    }
}

/// Parses an attribute mapping or condition (roots `assertion`, `attribute`, `google`).
pub fn parse(src: &str) -> Result<Expr> {
    parse_with(src, ATTRIBUTE_ROOTS)
}

/// Parses a Credential Access Boundary availability condition (roots `resource`, `api`).
pub fn parse_condition(src: &str) -> Result<Expr> {
    parse_with(src, CONDITION_ROOTS)
}

fn parse_with<'a>(src: &'a str, roots: &'a [&'a str]) -> Result<Expr> {
    let mut p = Parser { toks: lex(src)?, pos: 0, src, roots };
    if p.toks.is_empty() {
        return Err(p.err("empty"));
    }
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(p.err("unexpected text after the expression"));
    }
    Ok(e)
}

/// The variables an expression can see.
#[derive(Default)]
pub struct Env {
    /// The subject token's claims.
    pub assertion: Value,
    /// `google.subject`, `google.groups`.
    pub google: Map<String, Value>,
    /// Mapped custom attributes.
    pub attribute: Map<String, Value>,
    /// A boundary condition's `resource` (`name`, `type`, `service`).
    pub resource: Map<String, Value>,
    /// The request attributes `api.getAttribute` reads.
    pub api: Map<String, Value>,
}

/// Evaluates an expression; errors are messages for the STS error description.
pub fn eval(e: &Expr, env: &Env) -> std::result::Result<Value, String> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::List(items) => Value::Array(items.iter().map(|i| eval(i, env)).collect::<std::result::Result<_, _>>()?),
        Expr::Var(name) => match name.as_str() {
            "assertion" => env.assertion.clone(),
            "google" => Value::Object(env.google.clone()),
            "resource" => Value::Object(env.resource.clone()),
            "api" => Value::Object(env.api.clone()),
            _ => Value::Object(env.attribute.clone()),
        },
        Expr::Member(obj, key) => field(&eval(obj, env)?, key)?,
        Expr::Index(obj, key) => match (eval(obj, env)?, eval(key, env)?) {
            (Value::Array(a), Value::Number(n)) => {
                let i = n.as_u64().ok_or("negative index")? as usize;
                a.get(i).cloned().ok_or_else(|| format!("index {i} out of range"))?
            }
            (o, Value::String(k)) => field(&o, &k)?,
            _ => return Err("invalid index".into()),
        },
        Expr::Call(obj, method, args) => {
            let target = eval(obj, env)?;
            let args: Vec<Value> = args.iter().map(|a| eval(a, env)).collect::<std::result::Result<_, _>>()?;
            match (method.as_str(), &target, args.as_slice()) {
                ("startsWith", Value::String(s), [Value::String(p)]) => Value::Bool(s.starts_with(p.as_str())),
                ("endsWith", Value::String(s), [Value::String(p)]) => Value::Bool(s.ends_with(p.as_str())),
                ("contains", Value::String(s), [Value::String(p)]) => Value::Bool(s.contains(p.as_str())),
                ("size", Value::String(s), []) => Value::from(s.chars().count()),
                ("size", Value::Array(a), []) => Value::from(a.len()),
                // `api.getAttribute(name, default)`: the request attribute, else the default.
                ("getAttribute", Value::Object(m), [Value::String(k), default]) if matches!(**obj, Expr::Var(ref v) if v == "api") => {
                    m.get(k).cloned().unwrap_or_else(|| default.clone())
                }
                _ => return Err(format!("no matching overload for {method}")),
            }
        }
        Expr::Not(inner) => Value::Bool(!as_bool(&eval(inner, env)?)?),
        Expr::Bin(Op::Or, a, b) => {
            // CEL's || and && are commutative with errors: a true/false side decides.
            let l = eval(a, env).and_then(|v| as_bool(&v));
            if l == Ok(true) {
                return Ok(Value::Bool(true));
            }
            let r = eval(b, env).and_then(|v| as_bool(&v));
            if r == Ok(true) {
                return Ok(Value::Bool(true));
            }
            Value::Bool(l? || r?)
        }
        Expr::Bin(Op::And, a, b) => {
            let l = eval(a, env).and_then(|v| as_bool(&v));
            if l == Ok(false) {
                return Ok(Value::Bool(false));
            }
            let r = eval(b, env).and_then(|v| as_bool(&v));
            if r == Ok(false) {
                return Ok(Value::Bool(false));
            }
            Value::Bool(l? && r?)
        }
        Expr::Bin(op, a, b) => {
            let (l, r) = (eval(a, env)?, eval(b, env)?);
            match op {
                Op::Eq => Value::Bool(l == r),
                Op::Ne => Value::Bool(l != r),
                Op::In => match &r {
                    Value::Array(items) => Value::Bool(items.contains(&l)),
                    Value::Object(m) => Value::Bool(l.as_str().is_some_and(|k| m.contains_key(k))),
                    _ => return Err("'in' needs a list or map".into()),
                },
                _ => match (l, r) {
                    (Value::String(x), Value::String(y)) => Value::String(x + &y),
                    (Value::Array(mut x), Value::Array(y)) => {
                        x.extend(y);
                        Value::Array(x)
                    }
                    _ => return Err("no matching overload for '+'".into()),
                },
            }
        }
    })
}

fn field(v: &Value, key: &str) -> std::result::Result<Value, String> {
    match v {
        Value::Object(m) => m.get(key).cloned().ok_or_else(|| format!("no such key: {key}")),
        _ => Err(format!("no such key: {key}")),
    }
}

fn as_bool(v: &Value) -> std::result::Result<bool, String> {
    v.as_bool().ok_or_else(|| "expected a bool".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> Env {
        let mut google = Map::new();
        google.insert("subject".into(), json!("sub-1"));
        let mut attribute = Map::new();
        attribute.insert("tid".into(), json!("t-1"));
        Env {
            assertion: json!({"sub": "sub-1", "tid": "t-1", "roles": ["reader", "writer"], "appid": "app-9", "n": 3}),
            google,
            attribute,
            ..Env::default()
        }
    }

    fn run(src: &str) -> std::result::Result<Value, String> {
        eval(&parse(src).unwrap(), &env())
    }

    #[test]
    fn comparisons_and_logic() {
        assert_eq!(run("assertion.tid == 't-1'").unwrap(), json!(true));
        assert_eq!(run("assertion.tid != \"t-1\"").unwrap(), json!(false));
        assert_eq!(run("!(assertion.tid == 'x') && google.subject == 'sub-1'").unwrap(), json!(true));
        assert_eq!(run("assertion.sub == 'no' || attribute.tid == 't-1'").unwrap(), json!(true));
        assert_eq!(run("assertion.appid in ['app-1', 'app-9']").unwrap(), json!(true));
        assert_eq!(run("'writer' in assertion.roles").unwrap(), json!(true));
        assert_eq!(run("'admin' in assertion.roles").unwrap(), json!(false));
        assert_eq!(run("assertion.sub.startsWith('sub-') && assertion.sub.endsWith('1')").unwrap(), json!(true));
        assert_eq!(run("assertion['tid'] == 't-1'").unwrap(), json!(true));
        assert_eq!(run("assertion.n == 3").unwrap(), json!(true));
    }

    #[test]
    fn mappings_produce_values() {
        assert_eq!(run("assertion.sub").unwrap(), json!("sub-1"));
        assert_eq!(run("'azure::' + assertion.tid").unwrap(), json!("azure::t-1"));
        assert_eq!(run("assertion.roles").unwrap(), json!(["reader", "writer"]));
    }

    #[test]
    fn missing_keys_are_errors_unless_short_circuited() {
        assert!(run("assertion.nope == 'x'").unwrap_err().contains("no such key"));
        assert_eq!(run("assertion.tid == 't-1' || assertion.nope == 'x'").unwrap(), json!(true));
        assert_eq!(run("assertion.nope == 'x' && false").unwrap(), json!(false));
        assert!(run("assertion.tid.startsWith(1)").is_err());
        assert!(run("!assertion.tid").is_err());
    }

    #[test]
    fn boundary_conditions() {
        let mut env = Env::default();
        env.resource.insert("name".into(), json!("projects/_/buckets/b/objects/reports/q1.csv"));
        env.resource.insert("type".into(), json!("storage.googleapis.com/Object"));
        env.api.insert("storage.googleapis.com/objectListPrefix".into(), json!("reports/"));
        let run = |src: &str| eval(&parse_condition(src).unwrap(), &env);
        assert_eq!(run("resource.name.startsWith('projects/_/buckets/b/objects/reports/')").unwrap(), json!(true));
        assert_eq!(
            run("resource.name.endsWith('.csv') && resource.type == 'storage.googleapis.com/Object'").unwrap(),
            json!(true)
        );
        assert_eq!(run("resource.type != 'storage.googleapis.com/Object' || !true").unwrap(), json!(false));
        assert_eq!(
            run("api.getAttribute('storage.googleapis.com/objectListPrefix', '') == 'reports/'").unwrap(),
            json!(true)
        );
        assert_eq!(run("api.getAttribute('other', 'x')").unwrap(), json!("x"));
        assert!(parse_condition("assertion.sub == 'x'").is_err());
        assert!(parse("resource.name == 'x'").is_err());
        assert!(run("resource.getAttribute('name', '')").is_err());
    }

    #[test]
    fn syntax_errors() {
        for bad in ["", "assertion.tid ==", "foo.bar", "assertion.", "'open", "a # b", "(assertion.sub", "1 2"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
