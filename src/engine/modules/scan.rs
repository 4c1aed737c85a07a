//! A small JavaScript scanner: what a module imports or requires, whether it is written as an ES module,
//! and which names a CommonJS module exports. It skips comments, strings, template literals and regular
//! expressions, and looks at the tokens that remain.
//!
//! It guesses; it never decides anything about safety. A specifier it finds by mistake is only resolved
//! ahead of time (a failure is kept and reported only if the module is really imported), and one it misses
//! fails clearly when the module asks for it. Export names it misses are still reachable through the
//! default export, as in Node.

#[derive(Clone, Debug, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Str(String),
    Punct(u8),
    /// A number, a regular expression or a template literal: a value, nothing to read in it.
    Value,
}

struct Token<'a> {
    tok: Tok<'a>,
    /// Brace, bracket and parenthesis depth before the token.
    depth: u32,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

const REGEX_AFTER_WORDS: &[&str] = &[
    "return",
    "typeof",
    "case",
    "do",
    "else",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "instanceof",
    "yield",
    "await",
];

fn tokenize(src: &str) -> Vec<Token<'_>> {
    let b = src.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut depth: u32 = 0;
    // Template literals open inside `${ }` of an enclosing template: the depth each one resumes at.
    let mut template_stack: Vec<u32> = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == b'"' || c == b'\'' {
            let mut s = String::new();
            let mut j = i + 1;
            let mut start = j;
            while j < b.len() && b[j] != c && b[j] != b'\n' {
                if b[j] == b'\\' {
                    s.push_str(&src[start..j]);
                    j += 1;
                    if j < b.len() {
                        let esc = src[j..].chars().next().unwrap_or(' ');
                        s.push(esc);
                        j += esc.len_utf8();
                    }
                    start = j;
                    continue;
                }
                j += 1;
            }
            s.push_str(&src[start..j.min(b.len())]);
            out.push(Token {
                tok: Tok::Str(s),
                depth,
            });
            i = j + 1;
            continue;
        }
        if c == b'`' || (c == b'}' && template_stack.last() == Some(&depth.wrapping_sub(1))) {
            if c == b'}' {
                template_stack.pop();
                depth = depth.saturating_sub(1);
            }
            // Inside a template literal: skip to its end or to the next `${`.
            let mut j = i + 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'\\' {
                    j += 2;
                    continue;
                }
                if b[j] == b'`' {
                    j += 1;
                    break;
                }
                if b[j] == b'$' && b.get(j + 1) == Some(&b'{') {
                    template_stack.push(depth);
                    depth += 1;
                    j += 2;
                    break;
                }
                j += 1;
            }
            if c == b'`' {
                out.push(Token {
                    tok: Tok::Value,
                    depth,
                });
            }
            i = j;
            continue;
        }
        if c == b'/' {
            let regex = match out.last().map(|t| &t.tok) {
                None => true,
                Some(Tok::Punct(p)) => !matches!(p, b')' | b']' | b'}'),
                Some(Tok::Ident(w)) => REGEX_AFTER_WORDS.contains(w),
                Some(_) => false,
            };
            if regex {
                let mut j = i + 1;
                let mut class = false;
                while j < b.len() && b[j] != b'\n' {
                    match b[j] {
                        b'\\' => j += 1,
                        b'[' => class = true,
                        b']' => class = false,
                        b'/' if !class => break,
                        _ => {}
                    }
                    j += 1;
                }
                j += 1;
                while j < b.len() && is_ident_char(b[j]) {
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Value,
                    depth,
                });
                i = j;
                continue;
            }
        }
        if is_ident_start(c) {
            let mut j = i + 1;
            while j < b.len() && is_ident_char(b[j]) {
                j += 1;
            }
            // Stay on a character boundary for non-ASCII identifiers.
            while j < b.len() && !src.is_char_boundary(j) {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Ident(&src[i..j]),
                depth,
            });
            i = j;
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i + 1;
            while j < b.len() && (is_ident_char(b[j]) || b[j] == b'.') {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Value,
                depth,
            });
            i = j;
            continue;
        }
        match c {
            b'{' | b'(' | b'[' => {
                out.push(Token {
                    tok: Tok::Punct(c),
                    depth,
                });
                depth += 1;
            }
            b'}' | b')' | b']' => {
                depth = depth.saturating_sub(1);
                out.push(Token {
                    tok: Tok::Punct(c),
                    depth,
                });
            }
            _ => out.push(Token {
                tok: Tok::Punct(c),
                depth,
            }),
        }
        i += 1;
    }
    out
}

/// What a module's source says about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    /// Specifiers of `import`, `export … from`, `import()` and `require()` with a string literal.
    pub specifiers: Vec<String>,
    /// It has a top-level `import` or `export` statement.
    pub has_module_syntax: bool,
    /// CommonJS: names assigned to `exports` / `module.exports`.
    pub exports: Vec<String>,
    /// CommonJS: modules whose exports it re-exports (`module.exports = require(…)`, `__exportStar`).
    pub reexports: Vec<String>,
}

fn ident<'a>(toks: &'a [Token<'a>], i: usize) -> Option<&'a str> {
    match toks.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn punct(toks: &[Token], i: usize, p: u8) -> bool {
    matches!(toks.get(i).map(|t| &t.tok), Some(Tok::Punct(c)) if *c == p)
}

fn string<'a>(toks: &'a [Token<'a>], i: usize) -> Option<&'a str> {
    match toks.get(i).map(|t| &t.tok) {
        Some(Tok::Str(s)) => Some(s),
        _ => None,
    }
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// Reads `source` (see the module comment for how far to trust it).
pub fn scan(source: &str) -> Scan {
    let toks = tokenize(source);
    let mut out = Scan::default();
    for i in 0..toks.len() {
        // A property access (`x.import`, `a.require(…)`) is not the keyword or the function.
        let after_dot = i > 0 && punct(&toks, i - 1, b'.');
        match ident(&toks, i) {
            Some("import") if !after_dot => {
                if punct(&toks, i + 1, b'(') {
                    if let Some(s) = string(&toks, i + 2) {
                        push_unique(&mut out.specifiers, s);
                    }
                } else if punct(&toks, i + 1, b'.') {
                    // import.meta
                } else {
                    if toks[i].depth == 0 {
                        out.has_module_syntax = true;
                    }
                    if let Some(s) = string(&toks, i + 1) {
                        push_unique(&mut out.specifiers, s);
                    }
                }
            }
            Some("export")
                if !after_dot
                    && toks[i].depth == 0
                    && (matches!(
                        ident(&toks, i + 1),
                        Some("default" | "const" | "let" | "var" | "function" | "class" | "async")
                    ) || punct(&toks, i + 1, b'{')
                        || punct(&toks, i + 1, b'*')) =>
            {
                out.has_module_syntax = true;
            }
            Some("from") if !after_dot => {
                if let Some(s) = string(&toks, i + 1) {
                    push_unique(&mut out.specifiers, s);
                }
            }
            Some("require")
                if !after_dot && punct(&toks, i + 1, b'(') && punct(&toks, i + 3, b')') =>
            {
                if let Some(s) = string(&toks, i + 2) {
                    push_unique(&mut out.specifiers, s);
                }
            }
            _ => {}
        }
    }
    cjs_exports(&toks, &mut out);
    out
}

fn cjs_exports(toks: &[Token], out: &mut Scan) {
    let is_exports = |i: usize| -> Option<usize> {
        // `exports` or `module.exports`, not a property of something else; returns the index after it.
        if i > 0 && punct(toks, i - 1, b'.') {
            return None;
        }
        match ident(toks, i) {
            Some("exports") => Some(i + 1),
            Some("module") if punct(toks, i + 1, b'.') && ident(toks, i + 2) == Some("exports") => {
                Some(i + 3)
            }
            _ => None,
        }
    };
    for i in 0..toks.len() {
        if let Some(j) = is_exports(i) {
            // exports.NAME = / exports["NAME"] =
            if punct(toks, j, b'.') {
                if let Some(name) = ident(toks, j + 1) {
                    if punct(toks, j + 2, b'=') && !punct(toks, j + 3, b'=') {
                        push_unique(&mut out.exports, name);
                    }
                }
            } else if punct(toks, j, b'[') && punct(toks, j + 2, b']') {
                if let Some(name) = string(toks, j + 1) {
                    if punct(toks, j + 3, b'=') {
                        push_unique(&mut out.exports, name);
                    }
                }
            } else if ident(toks, i) == Some("module")
                && punct(toks, j, b'=')
                && !punct(toks, j + 1, b'=')
            {
                // module.exports = require("x")
                if ident(toks, j + 1) == Some("require") && punct(toks, j + 2, b'(') {
                    if let Some(s) = string(toks, j + 3) {
                        push_unique(&mut out.reexports, s);
                    }
                } else if punct(toks, j + 1, b'{') {
                    object_literal_keys(toks, j + 1, out);
                }
            }
        }
        // Object.defineProperty(exports, "NAME", …)
        if ident(toks, i) == Some("defineProperty")
            && punct(toks, i + 1, b'(')
            && is_exports(i + 2).is_some()
        {
            let j = is_exports(i + 2).unwrap_or(i + 3);
            if punct(toks, j, b',') {
                if let Some(name) = string(toks, j + 1) {
                    if name != "__esModule" {
                        push_unique(&mut out.exports, name);
                    }
                }
            }
        }
        // __exportStar(require("x"), exports) / __export(require("x"))
        if matches!(ident(toks, i), Some("__exportStar" | "__export"))
            && punct(toks, i + 1, b'(')
            && ident(toks, i + 2) == Some("require")
            && punct(toks, i + 3, b'(')
        {
            if let Some(s) = string(toks, i + 4) {
                push_unique(&mut out.reexports, s);
            }
        }
    }
}

/// `module.exports = { a, b: …, "c": … }`: the keys at the literal's top level.
fn object_literal_keys(toks: &[Token], open: usize, out: &mut Scan) {
    let depth = toks[open].depth + 1;
    let mut i = open + 1;
    let mut expect_key = true;
    while i < toks.len() {
        let t = &toks[i];
        if t.depth < depth {
            break;
        }
        if t.depth == depth {
            match &t.tok {
                Tok::Punct(b',') => expect_key = true,
                Tok::Punct(b'.') if punct(toks, i + 1, b'.') => {
                    // spread: not a name
                    expect_key = false;
                }
                Tok::Ident(name) if expect_key => {
                    if !matches!(*name, "get" | "set" | "async") || punct(toks, i + 1, b':') {
                        push_unique(&mut out.exports, name);
                    }
                    expect_key = false;
                }
                Tok::Str(name) if expect_key => {
                    push_unique(&mut out.exports, name);
                    expect_key = false;
                }
                _ => expect_key = false,
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_imports_and_skips_strings_comments_and_regexes() {
        let s = scan(
            r#"
            import a from "a"; import { b } from './b.js'
            import "side";
            export * from "star";
            // import x from "commented"
            /* require("also-commented") */
            const s = "import q from 'in-a-string'";
            const t = `require("in-a-template") ${require("in-substitution")}`;
            const r = /from "regex"/g;
            const lazy = await import("dyn");
            const c = require("cjs");
            obj.require("method");
            "#,
        );
        assert_eq!(
            s.specifiers,
            vec![
                "a",
                "./b.js",
                "side",
                "star",
                "in-substitution",
                "dyn",
                "cjs"
            ]
        );
        assert!(s.has_module_syntax);
    }

    #[test]
    fn tells_commonjs_from_module_syntax() {
        let s =
            scan("const x = require('y'); module.exports = function () { return import('z') };");
        assert!(!s.has_module_syntax);
        assert_eq!(s.specifiers, vec!["y", "z"]);
        assert!(scan("export default 1").has_module_syntax);
        assert!(scan("export const a = 1").has_module_syntax);
        assert!(!scan("if (x) { exports.a = 1 }").has_module_syntax);
    }

    #[test]
    fn finds_commonjs_export_names() {
        let s = scan(
            r#"
            "use strict";
            Object.defineProperty(exports, "__esModule", { value: true });
            exports.WebClient = void 0;
            exports.a = exports.b = 1;
            module.exports.c = 2;
            exports["d-e"] = 3;
            Object.defineProperty(exports, "F", { enumerable: true, get: function () { return x.F; } });
            __exportStar(require("./types"), exports);
            if (exports.a === 1) {}
            "#,
        );
        assert_eq!(s.exports, vec!["WebClient", "a", "b", "c", "d-e", "F"]);
        assert_eq!(s.reexports, vec!["./types"]);
        let s = scan("module.exports = { one, two: 2, 'three': 3, four() {}, ...rest };");
        assert_eq!(s.exports, vec!["one", "two", "three", "four"]);
        let s = scan("module.exports = require('./lib/index')");
        assert_eq!(s.reexports, vec!["./lib/index"]);
    }
}
