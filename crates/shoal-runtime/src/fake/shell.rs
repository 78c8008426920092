//! The small POSIX-shell subset the fake driver runs for `sh -c SCRIPT` tasks and health
//! checks: enough for the scripts the conformance suite gives every driver, parsed the way
//! `sh` would parse them so that one TaskRun means the same thing to the fake and to a real
//! shell. Pure: parsing only; [`super::proc`] runs the result.
//!
//! Grammar: statements separated by `;` or newlines, joined by `&&` / `||`, or ended by `&` (run
//! in the background; only a statement of its own, not the end of an `&&`/`||` list); a
//! statement is `while LIST; do LIST; done` or a simple command: `NAME=WORD` assignments, words,
//! and one
//! redirection (`>&2`, `1>&2`, `2>&1` (ignored), `> FILE`, `>> FILE`). Words take single and
//! double quotes, backslash escapes, `$NAME`, `${NAME}`, `$$` and `$?`. Anything else is a
//! syntax error, which the fake reports as `sh` does (status 2).

/// A piece of a word: literal text, or a variable to expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(String),
    Var(String),
}

pub(crate) type Word = Vec<Part>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redirect {
    /// `>&2`: stdout goes to stderr.
    ToStderr,
    /// `> FILE` or `>> FILE`.
    File { path: Word, append: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Simple {
    pub assigns: Vec<(String, Word)>,
    pub words: Vec<Word>,
    pub redirect: Option<Redirect>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Simple(Simple),
    While {
        cond: List,
        body: List,
    },
    /// `COMMAND &`: run in a process of its own while the script goes on.
    Background(Box<Command>),
}

/// How a command joins the one before it in an and-or list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Join {
    /// The first command, or after `;`.
    Always,
    And,
    Or,
}

pub(crate) type List = Vec<(Join, Command)>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(Word, bool),
    Sep,
    And,
    Or,
    /// A lone `&`: what comes before it runs in the background.
    Amp,
    ToStderr,
    Ignored,
    Out {
        append: bool,
    },
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    let mut word: Word = Vec::new();
    let mut lit = String::new();
    let mut quoted = false;
    let mut in_word = false;
    fn flush_lit(word: &mut Word, lit: &mut String) {
        if !lit.is_empty() {
            word.push(Part::Lit(std::mem::take(lit)));
        }
    }
    fn var(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Part, String> {
        match chars.peek().copied() {
            Some('$') => {
                chars.next();
                Ok(Part::Var("$".into()))
            }
            Some('?') => {
                chars.next();
                Ok(Part::Var("?".into()))
            }
            Some('{') => {
                chars.next();
                let mut name = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        return Ok(Part::Var(name));
                    }
                    name.push(c);
                }
                Err("bad substitution".into())
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if !(c.is_ascii_alphanumeric() || c == '_') {
                        break;
                    }
                    name.push(c);
                    chars.next();
                }
                Ok(Part::Var(name))
            }
            _ => Ok(Part::Lit("$".into())),
        }
    }
    macro_rules! end_word {
        () => {
            if in_word {
                flush_lit(&mut word, &mut lit);
                toks.push(Tok::Word(std::mem::take(&mut word), quoted));
                quoted = false;
                in_word = false;
            }
        };
    }
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => end_word!(),
            ';' | '\n' => {
                end_word!();
                toks.push(Tok::Sep);
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                end_word!();
                toks.push(Tok::And);
            }
            '|' if chars.peek() == Some(&'|') => {
                chars.next();
                end_word!();
                toks.push(Tok::Or);
            }
            '&' => {
                end_word!();
                toks.push(Tok::Amp);
            }
            '|' | '(' | ')' | '<' | '`' => {
                return Err(format!("syntax error: unexpected \"{c}\""));
            }
            '>' => {
                // `1>&2` and `2>&1` start with a digit word that is really part of the operator.
                let fd = if in_word && word.is_empty() && (lit == "1" || lit == "2") {
                    let fd = lit.clone();
                    lit.clear();
                    in_word = false;
                    Some(fd)
                } else {
                    end_word!();
                    None
                };
                if chars.peek() == Some(&'&') {
                    chars.next();
                    match (fd.as_deref(), chars.next()) {
                        (None | Some("1"), Some('2')) => toks.push(Tok::ToStderr),
                        (Some("2"), Some('1')) => toks.push(Tok::Ignored),
                        _ => return Err("syntax error: unsupported redirection".into()),
                    }
                } else if fd.as_deref() == Some("2") {
                    return Err("syntax error: unsupported redirection".into());
                } else {
                    let append = chars.peek() == Some(&'>');
                    if append {
                        chars.next();
                    }
                    toks.push(Tok::Out { append });
                }
            }
            '\'' => {
                in_word = true;
                quoted = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => lit.push(c),
                        None => return Err("syntax error: unterminated quoted string".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                quoted = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$')) => lit.push(c),
                            Some(c) => {
                                lit.push('\\');
                                lit.push(c);
                            }
                            None => return Err("syntax error: unterminated quoted string".into()),
                        },
                        Some('$') => {
                            flush_lit(&mut word, &mut lit);
                            word.push(var(&mut chars)?);
                        }
                        Some(c) => lit.push(c),
                        None => return Err("syntax error: unterminated quoted string".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                quoted = true;
                if let Some(c) = chars.next() {
                    lit.push(c);
                }
            }
            '$' => {
                in_word = true;
                flush_lit(&mut word, &mut lit);
                word.push(var(&mut chars)?);
            }
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        toks.push(Tok::Sep);
                        break;
                    }
                }
            }
            c => {
                in_word = true;
                lit.push(c);
            }
        }
    }
    if in_word {
        flush_lit(&mut word, &mut lit);
        toks.push(Tok::Word(word, quoted));
    }
    Ok(toks)
}

/// An unquoted single-literal word: what keywords and assignments are made of.
fn plain(w: &Word) -> Option<&str> {
    match w.as_slice() {
        [Part::Lit(s)] => Some(s),
        _ => None,
    }
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn keyword(&self) -> Option<&str> {
        match self.peek() {
            Some(Tok::Word(w, false)) => plain(w),
            _ => None,
        }
    }

    fn skip_seps(&mut self) {
        while self.peek() == Some(&Tok::Sep) {
            self.at += 1;
        }
    }

    /// Commands up to the end or one of `stop` (a keyword), which is left unconsumed.
    fn list(&mut self, stop: &[&str]) -> Result<List, String> {
        let mut list = List::new();
        let mut join = Join::Always;
        loop {
            self.skip_seps();
            match self.keyword() {
                Some(k) if stop.contains(&k) => break,
                _ => {}
            }
            if self.peek().is_none() {
                break;
            }
            let mut cmd = self.command()?;
            if self.peek() == Some(&Tok::Amp) {
                // `a && b &` backgrounds the whole and-or list, which this subset has no form
                // for; a command on its own it can.
                let alone = join == Join::Always
                    && !matches!(self.toks.get(self.at + 1), Some(Tok::And | Tok::Or));
                if !alone {
                    return Err("syntax error: unsupported \"&\" after an and-or list".into());
                }
                self.at += 1;
                cmd = Command::Background(Box::new(cmd));
                list.push((join, cmd));
                join = Join::Always;
                continue;
            }
            list.push((join, cmd));
            join = match self.peek() {
                Some(Tok::And) => Join::And,
                Some(Tok::Or) => Join::Or,
                Some(Tok::Sep) | None => Join::Always,
                Some(t) => return Err(format!("syntax error: unexpected {t:?}")),
            };
            if join != Join::Always {
                self.at += 1;
                self.skip_seps();
                if self.peek().is_none() {
                    return Err("syntax error: unexpected end of file".into());
                }
            }
        }
        Ok(list)
    }

    fn expect(&mut self, kw: &str) -> Result<(), String> {
        if self.keyword() == Some(kw) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("syntax error: expected \"{kw}\""))
        }
    }

    fn command(&mut self) -> Result<Command, String> {
        if self.keyword() == Some("while") {
            self.at += 1;
            let cond = self.list(&["do"])?;
            self.expect("do")?;
            let body = self.list(&["done"])?;
            self.expect("done")?;
            if cond.is_empty() || body.is_empty() {
                return Err("syntax error: empty while".into());
            }
            return Ok(Command::While { cond, body });
        }
        let mut s = Simple {
            assigns: Vec::new(),
            words: Vec::new(),
            redirect: None,
        };
        while let Some(t) = self.peek().cloned() {
            match t {
                Tok::Word(w, quoted) => {
                    self.at += 1;
                    let assign = match w.first() {
                        Some(Part::Lit(l)) if !quoted && s.words.is_empty() => l
                            .split_once('=')
                            .filter(|(n, _)| {
                                !n.is_empty()
                                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            })
                            .map(|(n, v)| (n.to_string(), v.to_string())),
                        _ => None,
                    };
                    match assign {
                        Some((name, first)) => {
                            let mut value: Word = Vec::new();
                            if !first.is_empty() {
                                value.push(Part::Lit(first));
                            }
                            value.extend(w.into_iter().skip(1));
                            s.assigns.push((name, value));
                        }
                        None => s.words.push(w),
                    }
                }
                Tok::ToStderr => {
                    self.at += 1;
                    s.redirect = Some(Redirect::ToStderr);
                }
                Tok::Ignored => self.at += 1,
                Tok::Out { append } => {
                    self.at += 1;
                    match self.peek().cloned() {
                        Some(Tok::Word(path, _)) => {
                            self.at += 1;
                            s.redirect = Some(Redirect::File { path, append });
                        }
                        _ => return Err("syntax error: redirection without a file".into()),
                    }
                }
                Tok::Sep | Tok::And | Tok::Or | Tok::Amp => break,
            }
        }
        if s.words.is_empty() && s.assigns.is_empty() {
            return Err("syntax error: empty command".into());
        }
        Ok(Command::Simple(s))
    }
}

/// Parses a script; the error reads like `sh`'s.
pub(crate) fn parse(script: &str) -> Result<List, String> {
    let mut p = Parser {
        toks: tokenize(script)?,
        at: 0,
    };
    let list = p.list(&[])?;
    if p.at < p.toks.len() {
        return Err("syntax error: unexpected token".into());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Word {
        vec![Part::Lit(s.into())]
    }

    #[test]
    fn parses_what_the_suite_runs() {
        let l = parse("echo out; echo err >&2; exit 3").expect("parse");
        assert_eq!(l.len(), 3);
        match &l[1].1 {
            Command::Simple(s) => {
                assert_eq!(s.words, vec![lit("echo"), lit("err")]);
                assert_eq!(s.redirect, Some(Redirect::ToStderr));
            }
            other => panic!("{other:?}"),
        }
        let l = parse("trap '' TERM; while :; do sleep 0.1; done").expect("parse");
        assert!(
            matches!(&l[0].1, Command::Simple(s) if s.words[1] == vec![Part::Lit(String::new())]
            || s.words[1].is_empty())
        );
        assert!(
            matches!(&l[1].1, Command::While { cond, body } if cond.len() == 1 && body.len() == 1)
        );
        let l = parse("x=a; while :; do x=$x$x; done").expect("parse");
        match &l[1].1 {
            Command::While { body, .. } => match &body[0].1 {
                Command::Simple(s) => assert_eq!(
                    s.assigns,
                    vec![(
                        "x".into(),
                        vec![Part::Var("x".into()), Part::Var("x".into())]
                    )]
                ),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        let l = parse("sleep 30 & echo started 1; sleep 30 &").expect("parse");
        assert_eq!(l.len(), 3);
        assert!(matches!(&l[0].1, Command::Background(c) if matches!(**c, Command::Simple(_))));
        assert!(matches!(&l[1].1, Command::Simple(s) if s.words[0] == lit("echo")));
        assert!(matches!(&l[2].1, Command::Background(_)));
        assert!(l.iter().all(|(j, _)| *j == Join::Always));
        let l = parse("echo kept > /data/f && cat /data/f || echo \"no $HOME\"").expect("parse");
        assert_eq!(
            l.iter().map(|(j, _)| *j).collect::<Vec<_>>(),
            vec![Join::Always, Join::And, Join::Or]
        );
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        for bad in [
            "echo a | cat",
            "(echo a)",
            "echo 'open",
            "while :; do sleep 1",
            "echo a &&",
            "cat < f",
            "true && sleep 1 &",
            "sleep 1 & && true",
            "&",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
