//! The small string syntaxes inside compose values, each parsed the way the Go code behind
//! `docker stack deploy` parses it (its quirks kept, so the same file gives the same specs):
//! Go durations (`time.ParseDuration`, and `Duration.String` for `stack config`), byte sizes
//! (`go-units.RAMInBytes`: `512M` is 512 MiB), CPU counts (`opts.ParseCPUs`: an exact rational
//! times 1e9), shell words (`google/shlex`), restart policies (`opts.ParseRestartPolicy`),
//! capabilities (`opts.NormalizeCapability`), env files (`pkg/kvfile`) and Go's lexical
//! `filepath.Join`/`Clean`. Pure functions, no IO.

/// Go's `time.ParseDuration`, in nanoseconds.
pub(crate) fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("invalid duration {orig:?}");
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next()
        && (c == '-' || c == '+')
    {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let int: u128 = if int_len == 0 {
            0
        } else {
            s[..int_len].parse().map_err(|_| invalid())?
        };
        s = &s[int_len..];
        let mut frac = "";
        if s.starts_with('.') {
            let n = s[1..].bytes().take_while(|c| c.is_ascii_digit()).count();
            frac = &s[1..1 + n];
            s = &s[1 + n..];
            if int_len == 0 && n == 0 {
                return Err(invalid());
            }
        }
        let unit_len = s
            .bytes()
            .take_while(|c| !(*c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(format!("missing unit in duration {orig:?}"));
        }
        let unit: u128 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            u => return Err(format!("unknown unit {u:?} in duration {orig:?}")),
        };
        s = &s[unit_len..];
        let mut v = int.checked_mul(unit).ok_or_else(invalid)?;
        // The fraction, truncated like Go's (digits past what fits are dropped).
        let mut scale: u128 = 1;
        let mut f: u128 = 0;
        for d in frac.bytes().take(30) {
            f = f * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        if f > 0 {
            v += f * unit / scale;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > i64::MAX as u128 + u128::from(neg) {
            return Err(invalid());
        }
    }
    let total = total as i128;
    i64::try_from(if neg { -total } else { total }).map_err(|_| invalid())
}

/// Go's `time.Duration.String`: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`.
pub(crate) fn format_duration(d: i64) -> String {
    let sign = if d < 0 { "-" } else { "" };
    let u = d.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    let frac = |v: u64, digits: u32| -> String {
        let p = 10u64.pow(digits);
        let (i, f) = (v / p, v % p);
        if f == 0 {
            return i.to_string();
        }
        let f = format!("{f:0width$}", width = digits as usize);
        format!("{i}.{}", f.trim_end_matches('0'))
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}\u{b5}s", frac(u, 3));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", frac(u, 6));
    }
    let secs = frac(u % 60_000_000_000, 9);
    let mins = u / 60_000_000_000;
    let (h, m) = (mins / 60, mins % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// `go-units.RAMInBytes`: a number with an optional binary suffix (`b`, `k`, `kb`, `kib`, `m`,
/// ... `p`, any case); `1.5g` works, the result is truncated to whole bytes.
pub(crate) fn parse_ram_bytes(s: &str) -> Result<i64, String> {
    let Some(sep) = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(format!("invalid size: {s:?}"));
    };
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let size: f64 = num.parse().map_err(|_| format!("invalid size: {s:?}"))?;
    if size.is_nan() || size < 0.0 {
        return Err(format!("invalid size: {s:?}"));
    }
    let sfx = sfx.to_ascii_lowercase();
    let bad = || format!("invalid suffix: {sfx:?}");
    let mul: f64 = match sfx.as_bytes() {
        [] => 1.0,
        [b'b'] => 1.0,
        [c, rest @ ..] => {
            let m = match c {
                b'k' => 1u64 << 10,
                b'm' => 1 << 20,
                b'g' => 1 << 30,
                b't' => 1 << 40,
                b'p' => 1 << 50,
                _ => return Err(bad()),
            };
            if !(rest.is_empty() || rest == b"b" || rest == b"ib") {
                return Err(bad());
            }
            m as f64
        }
    };
    let v = size * mul;
    if v >= 9.223_372_036_854_776e18 {
        return Err(format!("invalid size: {s:?} is too large"));
    }
    Ok(v as i64)
}

/// `opts.ParseCPUs`: `0.5`, `2`, `1.5e-3`, `1/4` as an exact rational times 1e9, which must be
/// a whole number of nano-CPUs.
pub(crate) fn parse_cpus(value: &str) -> Result<i64, String> {
    let not_rational = || format!("failed to parse {value} as a rational number");
    let too_precise = || "value is too precise".to_string();
    if let Some((a, b)) = value.split_once('/') {
        let a: i128 = parse_signed_int(a).ok_or_else(not_rational)?;
        let b: i128 = if b.bytes().all(|c| c.is_ascii_digit()) && !b.is_empty() {
            b.parse().map_err(|_| not_rational())?
        } else {
            return Err(not_rational());
        };
        if b == 0 {
            return Err(not_rational());
        }
        let n = a.checked_mul(1_000_000_000).ok_or_else(not_rational)?;
        if n % b != 0 {
            return Err(too_precise());
        }
        return i64::try_from(n / b).map_err(|_| not_rational());
    }
    let (neg, body) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (
            &body[..i],
            parse_signed_int(&body[i + 1..]).ok_or_else(not_rational)?,
        ),
        None => (body, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return Err(not_rational());
    }
    let frac = frac.trim_end_matches('0');
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    // value = digits * 10^(exp - frac.len()), times 1e9.
    let scale = exp
        .checked_add(9)
        .and_then(|e| e.checked_sub(frac.len() as i128))
        .ok_or_else(not_rational)?;
    if digits.len() > 30 {
        return Err(too_precise());
    }
    let mut n: i128 = digits.parse().map_err(|_| not_rational())?;
    if scale >= 0 {
        for _ in 0..scale {
            n = n.checked_mul(10).ok_or_else(not_rational)?;
            if n > i128::from(i64::MAX) {
                return Err(not_rational());
            }
        }
    } else {
        let div = u32::try_from(-scale)
            .ok()
            .and_then(|p| 10i128.checked_pow(p))
            .ok_or_else(too_precise)?;
        if n % div != 0 {
            return Err(too_precise());
        }
        n /= div;
    }
    let n = if neg { -n } else { n };
    i64::try_from(n).map_err(|_| not_rational())
}

fn parse_signed_int(s: &str) -> Option<i128> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || body.len() > 30 || !body.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `google/shlex`'s `Split`, which docker uses for string `command`/`entrypoint`: words split on
/// blanks, `'...'` literal, `"..."` where a backslash escapes any character, a backslash outside
/// quotes escapes the next character, and a `#` starting a word comments out the rest of the
/// line.
pub(crate) fn shell_split(s: &str) -> Result<Vec<String>, String> {
    #[derive(PartialEq)]
    enum St {
        Start,
        Word,
        Escape,
        EscapeQuoted,
        Double,
        Single,
        Comment,
    }
    let mut out = Vec::new();
    let mut word = String::new();
    let mut st = St::Start;
    for c in s.chars() {
        let blank = matches!(c, ' ' | '\t' | '\r' | '\n');
        st = match st {
            St::Start => match c {
                _ if blank => St::Start,
                '"' => St::Double,
                '\'' => St::Single,
                '\\' => St::Escape,
                '#' => St::Comment,
                _ => {
                    word.push(c);
                    St::Word
                }
            },
            St::Word => match c {
                _ if blank => {
                    out.push(std::mem::take(&mut word));
                    St::Start
                }
                '"' => St::Double,
                '\'' => St::Single,
                '\\' => St::Escape,
                _ => {
                    word.push(c);
                    St::Word
                }
            },
            St::Escape => {
                word.push(c);
                St::Word
            }
            St::EscapeQuoted => {
                word.push(c);
                St::Double
            }
            St::Double => match c {
                '"' => St::Word,
                '\\' => St::EscapeQuoted,
                _ => {
                    word.push(c);
                    St::Double
                }
            },
            St::Single => match c {
                '\'' => St::Word,
                _ => {
                    word.push(c);
                    St::Single
                }
            },
            St::Comment => {
                if c == '\n' {
                    St::Start
                } else {
                    St::Comment
                }
            }
        };
    }
    match st {
        St::Start | St::Comment => {}
        St::Word => out.push(word),
        St::Escape | St::EscapeQuoted => return Err("EOF found after escape character".into()),
        St::Double | St::Single => return Err("EOF found when expecting closing quote".into()),
    }
    Ok(out)
}

/// `opts.ParseRestartPolicy`: `name[:max-retries]`.
pub(crate) fn parse_restart(policy: &str) -> Result<(String, i64), String> {
    let (name, count) = policy.split_once(':').unwrap_or((policy, ""));
    if policy.contains(':') && name.is_empty() {
        return Err("invalid restart policy format: no policy provided before colon".into());
    }
    let count = if count.is_empty() {
        0
    } else {
        count.parse::<i64>().map_err(|_| {
            "invalid restart policy format: maximum retry count must be an integer".to_string()
        })?
    };
    Ok((name.to_string(), count))
}

/// `opts.NormalizeCapability`: upper case, trimmed, with a `CAP_` prefix (but `ALL`, `RESET`).
pub(crate) fn normalize_capability(c: &str) -> String {
    let c = c.trim().to_uppercase();
    if c == "ALL" || c == "RESET" || c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// `opts.EffectiveCapAddCapDrop`: normalized, deduplicated, sorted; `ALL` trumps the others;
/// what is added is not dropped; `RESET` is dropped.
pub(crate) fn effective_caps(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    use std::collections::BTreeSet;
    let norm = |v: &[String]| -> BTreeSet<String> {
        let set: BTreeSet<String> = v.iter().map(|c| normalize_capability(c)).collect();
        if set.contains("ALL") {
            BTreeSet::from(["ALL".to_string()])
        } else {
            set
        }
    };
    let (a, d) = (norm(add), norm(drop));
    let cap_drop = d
        .iter()
        .filter(|c| !a.contains(*c) && *c != "RESET")
        .cloned()
        .collect();
    let cap_add = a.into_iter().filter(|c| c != "RESET").collect();
    (cap_add, cap_drop)
}

/// Go's `filepath.Clean` (Unix): lexical, `..` resolved, no trailing slash.
pub(crate) fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// docker's `absPath`: an absolute path as written, a relative one joined to `dir` and cleaned.
pub(crate) fn abs_path(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        clean_path(&format!("{dir}/{p}"))
    }
}

/// `pkg/kvfile`: an env file. Blank and `#` lines are skipped, leading blanks trimmed,
/// `KEY=VALUE` taken as written (quotes included), a bare `KEY` looked up with `lookup` and
/// dropped when unset.
pub(crate) fn parse_env_file(
    bytes: &[u8],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(format!("invalid utf8 bytes at line {}", n + 1));
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, has_value) = match line.split_once('=') {
            Some((k, _)) => (k, true),
            None => (line, false),
        };
        if key.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if key.contains([' ', '\t']) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        if has_value {
            out.push(line.to_string());
        } else if let Some(v) = lookup(line) {
            out.push(format!("{key}={v}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_like_go() {
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("1\u{b5}s"), Ok(1_000));
        assert_eq!(
            parse_duration("10"),
            Err("missing unit in duration \"10\"".into())
        );
        assert_eq!(
            parse_duration("1d"),
            Err("unknown unit \"d\" in duration \"1d\"".into())
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration(".s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        for (d, s) in [
            (0, "0s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500_000_000, "1.5s"),
            (500_000_000, "500ms"),
            (1_500, "1.5\u{b5}s"),
            (12, "12ns"),
            (-5_000_000_000, "-5s"),
        ] {
            assert_eq!(format_duration(d), s);
            assert_eq!(parse_duration(s), Ok(d));
        }
    }

    #[test]
    fn sizes_are_binary() {
        assert_eq!(parse_ram_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_ram_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(parse_ram_bytes("64kb"), Ok(64 << 10));
        assert_eq!(parse_ram_bytes("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_ram_bytes("100"), Ok(100));
        assert_eq!(parse_ram_bytes("100b"), Ok(100));
        assert!(parse_ram_bytes("12x").is_err());
        assert!(parse_ram_bytes("-1m").is_err());
        assert!(parse_ram_bytes("m").is_err());
        assert!(parse_ram_bytes("9999999999p").is_err());
    }

    #[test]
    fn cpus_are_exact() {
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("1/4"), Ok(250_000_000));
        assert_eq!(parse_cpus("1.5e-3"), Ok(1_500_000));
        assert_eq!(parse_cpus(".25"), Ok(250_000_000));
        assert_eq!(parse_cpus("0.000000001"), Ok(1));
        assert_eq!(
            parse_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
        assert_eq!(
            parse_cpus("two"),
            Err("failed to parse two as a rational number".into())
        );
        assert!(parse_cpus("1e400").is_err());
    }

    #[test]
    fn shell_words_follow_shlex() {
        let w = |s: &str| shell_split(s).expect("ok");
        assert_eq!(w("echo hello world"), ["echo", "hello", "world"]);
        assert_eq!(
            w(r#"sh -c "echo \"hi\" $HOME""#),
            ["sh", "-c", r#"echo "hi" $HOME"#]
        );
        assert_eq!(w("a 'b c' d\\ e"), ["a", "b c", "d e"]);
        assert_eq!(w("a#b # comment\nc"), ["a#b", "c"]);
        assert_eq!(w("''"), [""]);
        assert!(shell_split("'open").is_err());
        assert!(shell_split("x\\").is_err());
    }

    #[test]
    fn restart_caps_and_paths() {
        assert_eq!(parse_restart("on-failure:3"), Ok(("on-failure".into(), 3)));
        assert_eq!(parse_restart("always"), Ok(("always".into(), 0)));
        assert!(parse_restart(":3").is_err());
        assert!(parse_restart("on-failure:x").is_err());
        let (add, drop) = effective_caps(
            &["net_admin".into(), "CAP_SYS_TIME".into()],
            &["ALL".into(), "net_admin".into()],
        );
        assert_eq!(add, ["CAP_NET_ADMIN", "CAP_SYS_TIME"]);
        assert_eq!(drop, ["ALL"]);
        assert_eq!(abs_path("/srv/app", "./data/../x/"), "/srv/app/x");
        assert_eq!(abs_path("/srv/app", "/abs/"), "/abs/");
        assert_eq!(abs_path("/srv/app", "../../.."), "/");
        assert_eq!(clean_path("a/../.."), "..");
    }

    #[test]
    fn env_files_follow_kvfile() {
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_string());
        let got = parse_env_file(
            b"\xEF\xBB\xBF# c\n  A=1\r\nB=\"q\" \n\nHOME\nUNSET\n",
            &lookup,
        )
        .expect("ok");
        assert_eq!(got, ["A=1", "B=\"q\" ", "HOME=/root"]);
        assert_eq!(
            parse_env_file(b"=x", &lookup).expect_err("an error"),
            "no variable name on line '=x'"
        );
        assert_eq!(
            parse_env_file(b"A B=x", &lookup).expect_err("an error"),
            "variable 'A B' contains whitespaces"
        );
    }
}
