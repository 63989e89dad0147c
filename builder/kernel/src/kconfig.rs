//! Just enough of the Kconfig language to explain why `make olddefconfig`
//! dropped an option: for each symbol, its `depends on` conditions (its own
//! plus those of the enclosing `if`, `menu` and `choice` blocks), whether it
//! has a prompt, and which symbols `select` it. Expressions are evaluated
//! against the final `.config` to name the unmet dependencies.
//!
//! Limits: this is a reader for diagnostics, not a Kconfig implementation.
//! It follows `source` lines with `$(SRCARCH)` substituted and skips the
//! ones that name other macros or globs; `$(...)` macros inside expressions
//! count as satisfied (Kconfig resolved them when it ran); `default`,
//! `range`, `imply` and `visible if` are ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::ConfigValue;

/// The Kconfig files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KconfigParseError {
    /// A Kconfig file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `source` lines nest deeper than any real tree does (a loop).
    #[error("{path}: `source` lines nest more than {MAX_DEPTH} deep")]
    TooDeep {
        /// The file at which the limit was hit.
        path: PathBuf,
    },
}

const MAX_DEPTH: usize = 64;

/// A Kconfig expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A symbol name (without `CONFIG_`), or one of the constants y, m, n.
    Sym(String),
    /// A quoted string or a number.
    Const(String),
    /// `$(...)` or anything else resolved when Kconfig ran.
    Macro(String),
    /// `!e`.
    Not(Box<Expr>),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a OP b` with OP one of `=`, `!=`, `<`, `>`, `<=`, `>=`.
    Cmp(String, Box<Expr>, Box<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Sym(s) | Expr::Const(s) | Expr::Macro(s) => f.write_str(s),
            Expr::Not(e) => match **e {
                Expr::And(..) | Expr::Or(..) | Expr::Cmp(..) => write!(f, "!({e})"),
                _ => write!(f, "!{e}"),
            },
            Expr::And(a, b) => {
                let wrap = |e: &Expr| match e {
                    Expr::Or(..) => format!("({e})"),
                    _ => e.to_string(),
                };
                write!(f, "{} && {}", wrap(a), wrap(b))
            }
            Expr::Or(a, b) => write!(f, "{a} || {b}"),
            Expr::Cmp(op, a, b) => write!(f, "{a}{op}{b}"),
        }
    }
}

/// A `depends on` condition and where it was written.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// The condition.
    pub expr: Expr,
    /// File (relative to the source tree) and line.
    pub at: String,
}

/// One `config NAME` block.
#[derive(Debug, Clone)]
pub struct Definition {
    /// File (relative to the source tree) and line of the `config` line.
    pub at: String,
    /// Every condition that must hold for the symbol to be settable.
    pub depends: Vec<Dependency>,
    /// Whether the user can set it (a prompt); without one only `select`
    /// or a default turns it on.
    pub has_prompt: bool,
}

/// A `select NAME [if COND]` in another symbol's block.
#[derive(Debug, Clone)]
pub struct Selector {
    /// The symbol whose block has the `select`.
    pub by: String,
    /// The `if` condition, if any.
    pub cond: Option<Expr>,
}

/// What the Kconfig files say about one symbol.
#[derive(Debug, Clone, Default)]
pub struct SymbolInfo {
    /// Its `config` blocks (a symbol may be defined in several files).
    pub definitions: Vec<Definition>,
    /// The symbols that select it.
    pub selected_by: Vec<Selector>,
}

/// The symbols of a source tree.
#[derive(Debug, Clone, Default)]
pub struct KconfigTree {
    symbols: BTreeMap<String, SymbolInfo>,
}

#[derive(Debug)]
enum Entry {
    None,
    Config(String),
    /// A menu or choice: its `depends on` lines go on the block.
    Block,
}

struct Parser<'a> {
    srctree: &'a Path,
    srcarch: &'a str,
    tree: KconfigTree,
    /// Conditions of the enclosing if/menu/choice blocks.
    blocks: Vec<Vec<Dependency>>,
    entry: Entry,
}

impl KconfigTree {
    /// Reads the whole tree starting at `srctree/Kconfig`, with
    /// `$(SRCARCH)` set to `srcarch` (`x86` for x86_64).
    pub fn parse(srctree: &Path, srcarch: &str) -> Result<Self, KconfigParseError> {
        let mut p = Parser {
            srctree,
            srcarch,
            tree: KconfigTree::default(),
            blocks: Vec::new(),
            entry: Entry::None,
        };
        p.file(Path::new("Kconfig"), 0, false)?;
        Ok(p.tree)
    }

    /// Parses one Kconfig text (for tests and single files); `source`
    /// lines are resolved against `srctree`.
    pub fn parse_text(srctree: &Path, name: &str, text: &str) -> Result<Self, KconfigParseError> {
        let mut p = Parser {
            srctree,
            srcarch: "x86",
            tree: KconfigTree::default(),
            blocks: Vec::new(),
            entry: Entry::None,
        };
        p.text(Path::new(name), text, 0)?;
        Ok(p.tree)
    }

    /// What the tree says about `name` (without `CONFIG_`).
    pub fn symbol(&self, name: &str) -> Option<&SymbolInfo> {
        self.symbols.get(name)
    }

    /// Why `symbol` (with or without `CONFIG_`) could not take the
    /// `requested` value in `config`, as one sentence.
    pub fn explain(
        &self,
        symbol: &str,
        requested: &ConfigValue,
        config: &BTreeMap<String, ConfigValue>,
    ) -> String {
        let name = symbol.strip_prefix("CONFIG_").unwrap_or(symbol);
        let Some(info) = self.symbols.get(name).filter(|i| !i.definitions.is_empty()) else {
            return format!(
                "no Kconfig file in this source defines {name} (misspelt, or not in this kernel version?)"
            );
        };
        let env = Env { config };
        if matches!(requested, ConfigValue::NotSet) {
            let on: Vec<String> = info
                .selected_by
                .iter()
                .filter(|s| env.tri(&Expr::Sym(s.by.clone())) > 0)
                .filter(|s| s.cond.as_ref().is_none_or(|c| env.tri(c) > 0))
                .map(|s| format!("CONFIG_{}", s.by))
                .collect();
            if !on.is_empty() {
                return format!("it is selected by {}", on.join(", "));
            }
            if info.definitions.iter().all(|d| !d.has_prompt) {
                return "it has no prompt and Kconfig sets it by default".to_string();
            }
            return "Kconfig turned it on (a default or a choice)".to_string();
        }
        // Unmet `depends on` conditions of any definition.
        let mut unmet = Vec::new();
        for def in &info.definitions {
            for dep in &def.depends {
                if env.tri(&dep.expr) == 0 {
                    let mut culprits = Vec::new();
                    env.culprits(&dep.expr, true, &mut culprits);
                    culprits.dedup();
                    let why = if culprits.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", culprits.join(", "))
                    };
                    unmet.push(format!("`depends on {}` ({}){}", dep.expr, dep.at, why));
                }
            }
        }
        if !unmet.is_empty() {
            return format!("unmet dependency {}", unmet.join("; "));
        }
        if info.definitions.iter().all(|d| !d.has_prompt) {
            let by: Vec<String> = info
                .selected_by
                .iter()
                .map(|s| format!("CONFIG_{}", s.by))
                .collect();
            return if by.is_empty() {
                "it has no prompt and nothing selects it, so it cannot be set by hand".to_string()
            } else {
                format!(
                    "it has no prompt: only an option that selects it turns it on ({})",
                    by.join(", ")
                )
            };
        }
        "its dependencies hold; Kconfig chose another value (a choice, a range or a type mismatch?)"
            .to_string()
    }
}

struct Env<'a> {
    config: &'a BTreeMap<String, ConfigValue>,
}

impl Env<'_> {
    /// The string value of a term: a symbol's value, or the constant.
    fn value(&self, e: &Expr) -> String {
        match e {
            Expr::Sym(s) if matches!(s.as_str(), "y" | "m" | "n") => s.clone(),
            Expr::Sym(s) => match self.config.get(&format!("CONFIG_{s}")) {
                Some(ConfigValue::Set(v)) => v.trim_matches('"').to_string(),
                _ => "n".to_string(),
            },
            Expr::Const(c) => c.trim_matches('"').to_string(),
            _ => "y".to_string(),
        }
    }

    /// Tristate value: 0 = n, 1 = m, 2 = y.
    fn tri(&self, e: &Expr) -> u8 {
        match e {
            Expr::Sym(_) => match self.value(e).as_str() {
                "y" => 2,
                "m" => 1,
                _ => 0,
            },
            Expr::Const(_) => 0,
            Expr::Macro(_) => 2,
            Expr::Not(e) => 2 - self.tri(e),
            Expr::And(a, b) => self.tri(a).min(self.tri(b)),
            Expr::Or(a, b) => self.tri(a).max(self.tri(b)),
            Expr::Cmp(op, a, b) => {
                let (x, y) = (self.value(a), self.value(b));
                let ord = match (parse_num(&x), parse_num(&y)) {
                    (Some(i), Some(j)) => i.cmp(&j),
                    _ => x.cmp(&y),
                };
                let holds = match op.as_str() {
                    "=" => ord.is_eq(),
                    "!=" => ord.is_ne(),
                    "<" => ord.is_lt(),
                    ">" => ord.is_gt(),
                    "<=" => ord.is_le(),
                    _ => ord.is_ge(),
                };
                if holds { 2 } else { 0 }
            }
        }
    }

    /// The symbols that make `e` differ from `want`.
    fn culprits(&self, e: &Expr, want: bool, out: &mut Vec<String>) {
        let holds = self.tri(e) > 0;
        if holds == want {
            return;
        }
        match e {
            Expr::Sym(s) if matches!(s.as_str(), "y" | "m" | "n") => {}
            Expr::Sym(s) => {
                if want {
                    out.push(format!("CONFIG_{s} is not set"));
                } else {
                    out.push(format!("CONFIG_{s}={} must be off", self.value(e)));
                }
            }
            Expr::Not(inner) => self.culprits(inner, !want, out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.culprits(a, want, out);
                self.culprits(b, want, out);
            }
            Expr::Cmp(_, a, _) => {
                let shown = match &**a {
                    Expr::Sym(s) => format!("CONFIG_{s} is {}", self.value(a)),
                    other => other.to_string(),
                };
                out.push(format!("`{e}` does not hold ({shown})"));
            }
            Expr::Const(_) | Expr::Macro(_) => {}
        }
    }
}

fn parse_num(s: &str) -> Option<i64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// Indentation width with tabs at 8 columns, as Kconfig's lexer counts it.
fn indent(line: &str) -> usize {
    let mut n = 0;
    for c in line.chars() {
        match c {
            ' ' => n += 1,
            '\t' => n = (n / 8 + 1) * 8,
            _ => break,
        }
    }
    n
}

impl Parser<'_> {
    fn file(&mut self, rel: &Path, depth: usize, optional: bool) -> Result<(), KconfigParseError> {
        let path = self.srctree.join(rel);
        if depth > MAX_DEPTH {
            return Err(KconfigParseError::TooDeep { path });
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(KconfigParseError::Read { path, source }),
        };
        self.text(rel, &text, depth)
    }

    fn text(&mut self, rel: &Path, text: &str, depth: usize) -> Result<(), KconfigParseError> {
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        // `help` text runs while lines are blank or at least as indented as
        // its first line.
        let mut help_indent: Option<Option<usize>> = None;
        while i < lines.len() {
            let lineno = i + 1;
            let mut line = lines[i].to_string();
            i += 1;
            if let Some(hi) = help_indent {
                if line.trim().is_empty() {
                    continue;
                }
                let ind = indent(&line);
                match hi {
                    None => {
                        help_indent = Some(Some(ind));
                        continue;
                    }
                    Some(h) if ind >= h => continue,
                    Some(_) => help_indent = None,
                }
            }
            while line.ends_with('\\') && i < lines.len() {
                line.pop();
                line.push(' ');
                line.push_str(lines[i]);
                i += 1;
            }
            let code = strip_comment(&line);
            let code = code.trim();
            if code.is_empty() {
                continue;
            }
            let (kw, rest) = code
                .split_once(char::is_whitespace)
                .map(|(k, r)| (k, r.trim()))
                .unwrap_or((code, ""));
            let at = format!("{}:{lineno}", rel.display());
            match kw {
                "config" | "menuconfig" => {
                    let name = rest.to_string();
                    let depends: Vec<Dependency> = self.blocks.iter().flatten().cloned().collect();
                    self.tree
                        .symbols
                        .entry(name.clone())
                        .or_default()
                        .definitions
                        .push(Definition {
                            at,
                            depends,
                            has_prompt: false,
                        });
                    self.entry = Entry::Config(name);
                }
                "choice" | "menu" => {
                    self.blocks.push(Vec::new());
                    self.entry = Entry::Block;
                }
                "endchoice" | "endmenu" | "endif" => {
                    self.blocks.pop();
                    self.entry = Entry::None;
                }
                "if" => {
                    let expr = parse_expr(rest);
                    self.blocks.push(vec![Dependency { expr, at }]);
                    self.entry = Entry::None;
                }
                "comment" | "mainmenu" => self.entry = Entry::None,
                "source" | "osource" | "rsource" | "orsource" => {
                    self.entry = Entry::None;
                    let arg = rest.trim_matches('"').replace("$(SRCARCH)", self.srcarch);
                    if arg.contains("$(") || arg.contains('*') {
                        tracing::debug!("{at}: skipping `source {arg}`");
                        continue;
                    }
                    let target = if kw.starts_with('r') || kw.starts_with("or") {
                        rel.parent().unwrap_or(Path::new("")).join(&arg)
                    } else {
                        PathBuf::from(&arg)
                    };
                    self.file(&target, depth + 1, kw.starts_with('o'))?;
                }
                "help" | "---help---" => help_indent = Some(None),
                "depends" => {
                    let expr = parse_expr(rest.strip_prefix("on").unwrap_or(rest).trim());
                    let dep = Dependency { expr, at };
                    match &self.entry {
                        Entry::Config(name) => {
                            if let Some(def) = self
                                .tree
                                .symbols
                                .get_mut(name)
                                .and_then(|s| s.definitions.last_mut())
                            {
                                def.depends.push(dep);
                            }
                        }
                        Entry::Block => {
                            if let Some(b) = self.blocks.last_mut() {
                                b.push(dep);
                            }
                        }
                        Entry::None => {}
                    }
                }
                "bool" | "tristate" | "string" | "int" | "hex" | "prompt"
                    if rest.starts_with('"') =>
                {
                    self.mark_prompt();
                }
                "select" => {
                    if let Entry::Config(by) = &self.entry {
                        let (target, cond) = match rest.split_once(" if ") {
                            Some((t, c)) => (t.trim(), Some(parse_expr(c))),
                            None => (rest, None),
                        };
                        let sel = Selector {
                            by: by.clone(),
                            cond,
                        };
                        self.tree
                            .symbols
                            .entry(target.to_string())
                            .or_default()
                            .selected_by
                            .push(sel);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn mark_prompt(&mut self) {
        if let Entry::Config(name) = &self.entry {
            if let Some(def) = self
                .tree
                .symbols
                .get_mut(name)
                .and_then(|s| s.definitions.last_mut())
            {
                def.has_prompt = true;
            }
        }
    }
}

/// Drops a `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut in_quote = None;
    for (i, c) in line.char_indices() {
        match (in_quote, c) {
            (None, '"' | '\'') => in_quote = Some(c),
            (Some(q), _) if c == q => in_quote = None,
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Not,
    And,
    Or,
    Op(String),
    Word(String),
    Str(String),
    Macro(String),
}

fn tokenize(s: &str) -> Vec<Tok> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            b'&' if b.get(i + 1) == Some(&b'&') => {
                out.push(Tok::And);
                i += 2;
            }
            b'|' if b.get(i + 1) == Some(&b'|') => {
                out.push(Tok::Or);
                i += 2;
            }
            b'!' if b.get(i + 1) == Some(&b'=') => {
                out.push(Tok::Op("!=".into()));
                i += 2;
            }
            b'!' => {
                out.push(Tok::Not);
                i += 1;
            }
            b'<' | b'>' => {
                if b.get(i + 1) == Some(&b'=') {
                    out.push(Tok::Op(format!("{}=", c as char)));
                    i += 2;
                } else {
                    out.push(Tok::Op((c as char).to_string()));
                    i += 1;
                }
            }
            b'=' => {
                out.push(Tok::Op("=".into()));
                i += 1;
            }
            b'"' | b'\'' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push(Tok::Str(s[start..i].to_string()));
            }
            b'$' if b.get(i + 1) == Some(&b'(') => {
                let start = i;
                let mut depth = 0;
                while i < b.len() {
                    match b[i] {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                out.push(Tok::Macro(s[start..i].to_string()));
            }
            _ => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_-.$".contains(&b[i])) {
                    i += 1;
                }
                if i == start {
                    i += 1; // an unexpected byte: skip it
                    continue;
                }
                out.push(Tok::Word(s[start..i].to_string()));
            }
        }
    }
    out
}

/// Parses a Kconfig expression; malformed input yields a best-effort tree
/// (this is for diagnostics only).
pub fn parse_expr(s: &str) -> Expr {
    let toks = tokenize(s);
    let mut pos = 0;
    let e = parse_or(&toks, &mut pos);
    e.unwrap_or_else(|| Expr::Macro(s.to_string()))
}

fn parse_or(t: &[Tok], pos: &mut usize) -> Option<Expr> {
    let mut lhs = parse_and(t, pos)?;
    while t.get(*pos) == Some(&Tok::Or) {
        *pos += 1;
        let rhs = parse_and(t, pos)?;
        lhs = Expr::Or(Box::new(lhs), Box::new(rhs));
    }
    Some(lhs)
}

fn parse_and(t: &[Tok], pos: &mut usize) -> Option<Expr> {
    let mut lhs = parse_not(t, pos)?;
    while t.get(*pos) == Some(&Tok::And) {
        *pos += 1;
        let rhs = parse_not(t, pos)?;
        lhs = Expr::And(Box::new(lhs), Box::new(rhs));
    }
    Some(lhs)
}

fn parse_not(t: &[Tok], pos: &mut usize) -> Option<Expr> {
    if t.get(*pos) == Some(&Tok::Not) {
        *pos += 1;
        return Some(Expr::Not(Box::new(parse_not(t, pos)?)));
    }
    parse_cmp(t, pos)
}

fn parse_cmp(t: &[Tok], pos: &mut usize) -> Option<Expr> {
    let lhs = parse_primary(t, pos)?;
    if let Some(Tok::Op(op)) = t.get(*pos) {
        *pos += 1;
        let rhs = parse_primary(t, pos)?;
        return Some(Expr::Cmp(op.clone(), Box::new(lhs), Box::new(rhs)));
    }
    Some(lhs)
}

fn parse_primary(t: &[Tok], pos: &mut usize) -> Option<Expr> {
    let tok = t.get(*pos)?.clone();
    *pos += 1;
    match tok {
        Tok::LParen => {
            let e = parse_or(t, pos)?;
            if t.get(*pos) == Some(&Tok::RParen) {
                *pos += 1;
            }
            Some(e)
        }
        Tok::Word(w)
            if w.bytes()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == b'-') =>
        {
            Some(Expr::Const(w))
        }
        Tok::Word(w) => Some(Expr::Sym(w)),
        Tok::Str(s) => Some(Expr::Const(s)),
        Tok::Macro(m) => Some(Expr::Macro(m)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    fn cfg(text: &str) -> BTreeMap<String, ConfigValue> {
        ConfigFile::parse(Path::new("final"), text)
            .unwrap()
            .to_map()
    }

    /// A tiny fake source tree: a top Kconfig that sources an arch file and
    /// a driver file, with an `if` block, a menu with a dependency, a
    /// promptless symbol and a `select`.
    fn fake_tree() -> (tempfile::TempDir, KconfigTree) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("arch/x86")).unwrap();
        std::fs::create_dir_all(root.join("drivers/virtio")).unwrap();
        std::fs::write(
            root.join("Kconfig"),
            "mainmenu \"Linux\"\nsource \"arch/$(SRCARCH)/Kconfig\"\nsource \"drivers/virtio/Kconfig\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("arch/x86/Kconfig"),
            "config X86\n\tdef_bool y\n\nconfig HYPERVISOR_GUEST\n\tbool \"Linux guest support\"\n\thelp\n\t  Say Y.\n\n\t  depends on NOTHING is help text, not a dependency.\n\nif HYPERVISOR_GUEST\nconfig PARAVIRT\n\tbool \"Enable paravirtualization code\"\n\nconfig KVM_GUEST\n\tbool \"KVM Guest support\"\n\tdepends on PARAVIRT\n\tselect PARAVIRT_CLOCK\nendif\n\nconfig PARAVIRT_CLOCK\n\tbool\n",
        )
        .unwrap();
        std::fs::write(
            root.join("drivers/virtio/Kconfig"),
            "config VIRTIO\n\ttristate\n\nmenuconfig VIRTIO_MENU\n\tbool \"Virtio drivers\"\n\tdefault y\n\nmenu \"vsock\"\n\tdepends on NET\n\nconfig VIRTIO_VSOCKETS\n\ttristate \"virtio transport\"\n\tdepends on VSOCKETS && VIRTIO # a comment\n\tdepends on !S390 && (ARCH = \"x86\" || ARCH = \"arm\")\nendmenu\n",
        )
        .unwrap();
        let tree = KconfigTree::parse(root, "x86").unwrap();
        (dir, tree)
    }

    #[test]
    fn test_parse_expr_precedence_and_display() {
        let e = parse_expr("A && !(B || C) && D=\"x\" || E");
        assert_eq!(e.to_string(), "A && !(B || C) && D=\"x\" || E");
        assert!(matches!(e, Expr::Or(..)));
        assert_eq!(
            parse_expr("X86_64 && $(cc-option,-mfoo)").to_string(),
            "X86_64 && $(cc-option,-mfoo)"
        );
    }

    #[test]
    fn test_tree_collects_if_block_and_own_dependencies_but_not_help_text() {
        let (_dir, tree) = fake_tree();
        let kvm = tree.symbol("KVM_GUEST").unwrap();
        let deps: Vec<String> = kvm.definitions[0]
            .depends
            .iter()
            .map(|d| d.expr.to_string())
            .collect();
        assert_eq!(deps, ["HYPERVISOR_GUEST", "PARAVIRT"]);
        assert!(kvm.definitions[0].has_prompt);
        assert_eq!(kvm.definitions[0].depends[1].at, "arch/x86/Kconfig:17");
        let hg = tree.symbol("HYPERVISOR_GUEST").unwrap();
        assert!(
            hg.definitions[0].depends.is_empty(),
            "help text leaked: {hg:?}"
        );
        let clock = tree.symbol("PARAVIRT_CLOCK").unwrap();
        assert!(!clock.definitions[0].has_prompt);
        assert_eq!(clock.selected_by[0].by, "KVM_GUEST");
    }

    #[test]
    fn test_explain_names_the_unset_dependency() {
        let (_dir, tree) = fake_tree();
        let fin = cfg("CONFIG_HYPERVISOR_GUEST=y\n# CONFIG_PARAVIRT is not set\n");
        let why = tree.explain("CONFIG_KVM_GUEST", &ConfigValue::Set("y".into()), &fin);
        assert_eq!(
            why,
            "unmet dependency `depends on PARAVIRT` (arch/x86/Kconfig:17): CONFIG_PARAVIRT is not set"
        );
        // With the enclosing `if` unmet too, both are named.
        let why = tree.explain("KVM_GUEST", &ConfigValue::Set("y".into()), &cfg(""));
        assert!(why.contains("`depends on HYPERVISOR_GUEST` (arch/x86/Kconfig:11): CONFIG_HYPERVISOR_GUEST is not set"), "{why}");
        assert!(why.contains("CONFIG_PARAVIRT is not set"), "{why}");
    }

    #[test]
    fn test_explain_names_only_the_missing_half_of_a_conjunction_and_menu_deps() {
        let (_dir, tree) = fake_tree();
        let fin = cfg("CONFIG_NET=y\nCONFIG_VIRTIO=y\nCONFIG_ARCH=\"x86\"\n");
        let why = tree.explain(
            "CONFIG_VIRTIO_VSOCKETS",
            &ConfigValue::Set("y".into()),
            &fin,
        );
        assert_eq!(
            why,
            "unmet dependency `depends on VSOCKETS && VIRTIO` (drivers/virtio/Kconfig:13): CONFIG_VSOCKETS is not set"
        );
        let fin = cfg("CONFIG_VIRTIO=y\nCONFIG_VSOCKETS=y\nCONFIG_S390=y\nCONFIG_ARCH=\"mips\"\n");
        let why = tree.explain(
            "CONFIG_VIRTIO_VSOCKETS",
            &ConfigValue::Set("y".into()),
            &fin,
        );
        assert!(
            why.contains("`depends on NET` (drivers/virtio/Kconfig:9): CONFIG_NET is not set"),
            "{why}"
        );
        assert!(why.contains("CONFIG_S390=y must be off"), "{why}");
        assert!(
            why.contains("`ARCH=\"x86\"` does not hold (CONFIG_ARCH is mips)"),
            "{why}"
        );
    }

    #[test]
    fn test_explain_promptless_unknown_and_selected_symbols() {
        let (_dir, tree) = fake_tree();
        let why = tree.explain(
            "CONFIG_PARAVIRT_CLOCK",
            &ConfigValue::Set("y".into()),
            &cfg(""),
        );
        assert_eq!(
            why,
            "it has no prompt: only an option that selects it turns it on (CONFIG_KVM_GUEST)"
        );
        let why = tree.explain("CONFIG_NO_SUCH", &ConfigValue::Set("y".into()), &cfg(""));
        assert!(
            why.contains("no Kconfig file in this source defines NO_SUCH"),
            "{why}"
        );
        let fin = cfg("CONFIG_KVM_GUEST=y\nCONFIG_PARAVIRT_CLOCK=y\n");
        let why = tree.explain("CONFIG_PARAVIRT_CLOCK", &ConfigValue::NotSet, &fin);
        assert_eq!(why, "it is selected by CONFIG_KVM_GUEST");
    }
}
