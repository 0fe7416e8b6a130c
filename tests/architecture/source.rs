//! Source text: comments and literals blanked, the code cut into tokens, unit tests left out.

/// Where a comment or literal starting at `i` ends (exclusive), or `None` if none starts there.
pub(super) fn literal_end(c: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
    match (at(i), at(i + 1)) {
        ('/', '/') => Some((i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len())),
        ('/', '*') => {
            let (mut depth, mut k) = (0usize, i);
            while k < c.len() {
                match (at(k), at(k + 1)) {
                    ('/', '*') => (depth, k) = (depth + 1, k + 2),
                    ('*', '/') if depth == 1 => return Some(k + 2),
                    ('*', '/') => (depth, k) = (depth - 1, k + 2),
                    _ => k += 1,
                }
            }
            Some(c.len())
        }
        ('"', _) => Some(string_end(c, i + 1)),
        ('\'', '\\') => Some((i + 3..c.len()).find(|&k| c[k] == '\'').map_or(c.len(), |k| k + 1)),
        ('\'', _) if at(i + 2) == '\'' => Some(i + 3),
        ('b', '\'') if !ident_before => literal_end(c, i + 1),
        ('b' | 'c', '"') if !ident_before => Some(string_end(c, i + 2)),
        ('b' | 'c' | 'r', _) if !ident_before => raw_string_end(c, i),
        _ => None,
    }
}

/// The end of a string whose body starts at `i` (backslash escapes honoured).
pub(super) fn string_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

/// The end of `r"…"`, `r#"…"#`, `br##"…"##` (and `cr…`) starting at `i`, if one starts there.
pub(super) fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut k = if c[i] == 'r' {
        i + 1
    } else if c.get(i + 1) == Some(&'r') {
        i + 2
    } else {
        return None;
    };
    let hashes = c[k..].iter().take_while(|&&h| h == '#').count();
    k += hashes;
    if c.get(k) != Some(&'"') {
        return None;
    }
    let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat('#').take(hashes)).collect();
    Some((k + 1..c.len()).find(|&j| c[j..].starts_with(&close)).map_or(c.len(), |j| j + close.len()))
}

/// The source with comments and literals turned into spaces (line breaks kept).
pub(super) fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        match literal_end(&c, i) {
            Some(end) => {
                c[i..end].iter().for_each(|&ch| out.push(if ch == '\n' { '\n' } else { ' ' }));
                i = end;
            }
            None => {
                out.push(c[i]);
                i += 1;
            }
        }
    }
    out
}

/// One token of code and the line it is on.
#[derive(Debug, Clone)]
pub(super) struct Tok {
    pub(super) text: String,
    pub(super) line: usize,
}

/// Cuts code (already free of comments and literals) into identifiers, `::` and single marks.
pub(super) fn tokens(code: &str) -> Vec<Tok> {
    let c: Vec<char> = code.chars().collect();
    let (mut toks, mut i, mut line) = (Vec::new(), 0, 1);
    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let start = i;
        if c[i] == '\n' {
            line += 1;
        }
        if c[i].is_whitespace() {
            i += 1;
            continue;
        }
        if word(c[i]) {
            while i < c.len() && word(c[i]) {
                i += 1;
            }
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
        }
        toks.push(Tok { text: c[start..i].iter().collect(), line });
    }
    toks
}

/// The text of token `i`, or "" past the end.
pub(super) fn at(toks: &[Tok], i: usize) -> &str {
    toks.get(i).map_or("", |t| t.text.as_str())
}

/// Where the bracketed group opening at `i` closes (the index of its closing mark).
pub(super) fn group_close(toks: &[Tok], i: usize) -> usize {
    let (open, close) = (at(toks, i).to_string(), if at(toks, i) == "{" { "}" } else { "]" });
    let mut depth = 0;
    for (k, t) in toks.iter().enumerate().skip(i) {
        if t.text == open {
            depth += 1;
        } else if t.text == close {
            depth -= 1;
            if depth == 0 {
                return k;
            }
        }
    }
    toks.len()
}

/// If a `#[cfg(test)]` module starts at token `i`, the index of its last token.
pub(super) fn test_module_end(toks: &[Tok], i: usize) -> Option<usize> {
    let head = ["#", "[", "cfg", "(", "test", ")", "]"];
    if !head.iter().enumerate().all(|(k, h)| at(toks, i + k) == *h) {
        return None;
    }
    let mut k = i + head.len();
    while at(toks, k) == "#" {
        k = group_close(toks, k + 1) + 1;
    }
    if at(toks, k) == "pub" {
        k += if at(toks, k + 1) == "(" { 4 } else { 1 };
    }
    if at(toks, k) != "mod" {
        return None;
    }
    match at(toks, k + 2) {
        "{" => Some(group_close(toks, k + 2)),
        _ => Some(k + 2),
    }
}

/// A lib file read for the checks: its lines before the unit tests and its code's tokens.
pub(super) struct Source {
    /// Lines before the unit-test module (all of them if there is none).
    pub(super) lines: usize,
    /// The code's tokens, unit-test modules left out.
    pub(super) toks: Vec<Tok>,
    /// The unit-test modules kept in files of their own (`#[cfg(test)] mod tests;`).
    pub(super) test_children: Vec<String>,
    /// Whether the file is itself such a unit-test module: left out of the checks.
    pub(super) unit_tests: bool,
}

/// Reads a file's text: counts its lines up to the unit-test module, drops every
/// `#[cfg(test)] mod` block from the tokens and notes the unit-test modules kept apart.
pub(super) fn parse_source(text: &str) -> Source {
    let all = tokens(&code_only(text));
    let (mut toks, mut test_children, mut lines, mut i) = (Vec::new(), Vec::new(), text.lines().count(), 0);
    while i < all.len() {
        match test_module_end(&all, i) {
            Some(end) => {
                lines = lines.min(all[i].line - 1);
                if all[end].text == ";" {
                    test_children.push(all[end - 1].text.clone());
                }
                i = end + 1;
            }
            None => {
                toks.push(all[i].clone());
                i += 1;
            }
        }
    }
    Source { lines, toks, test_children, unit_tests: false }
}
