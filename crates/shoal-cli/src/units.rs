//! Parsing and printing the quantities docker's flags and tables use: Go durations (`1m30s`),
//! memory sizes (`64m`), CPU counts (`0.5`), whole numbers, and go-units' human durations and
//! binary sizes. Pure functions; errors are the text after `flag: ` in a usage error.

/// Nanoseconds per unit, as Go's `time.ParseDuration` names them.
const UNITS: [(&str, i128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("", 0),
];

/// Go's `time.ParseDuration`, to nanoseconds, with Go's error texts.
pub fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{orig}\"");
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
            frac_part = &rest[..n];
            s = &rest[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration \"{orig}\""));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let Some(&(_, scale)) = UNITS.iter().find(|(name, n)| *n > 0 && *name == unit) else {
            return Err(format!(
                "time: unknown unit \"{unit}\" in duration \"{orig}\""
            ));
        };
        let int_value: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = int_value.checked_mul(scale).ok_or_else(invalid)?;
        // The fraction contributes frac * scale / 10^digits, truncated like Go.
        let mut frac_scale: i128 = 1;
        let mut frac_value: i128 = 0;
        for d in frac_part.bytes().take(18) {
            frac_value = frac_value * 10 + i128::from(d - b'0');
            frac_scale *= 10;
        }
        value += frac_value * scale / frac_scale;
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    let total = if neg { -total } else { total };
    i64::try_from(total).map_err(|_| invalid())
}

/// A duration flag: Go syntax, and not negative.
pub fn parse_duration_flag(s: &str) -> Result<i64, String> {
    let d = parse_go_duration(s)?;
    if d < 0 {
        return Err("duration must not be negative".to_string());
    }
    Ok(d)
}

/// Go's `time.Duration.String()`: `1m30s`, `1.5s`, `200ms`, `0s`, `2160h0m0s`.
pub fn format_go_duration(nanos: i64) -> String {
    let neg = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0 => return "0s".to_string(),
            1..=999 => (0, "ns"),
            1_000..=999_999 => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        let (int, frac) = split_frac(u, prec);
        out.push_str(&int.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let (secs, frac) = split_frac(u, 9);
        u = secs;
        let s = u % 60;
        u /= 60;
        if u > 0 {
            let m = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&format!("{u}h"));
            }
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}{frac}s"));
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Splits `v` into `v / 10^prec` and the fraction as `.ddd` without trailing zeros.
fn split_frac(v: u64, prec: u32) -> (u64, String) {
    let div = 10u64.pow(prec);
    let frac = v % div;
    if frac == 0 {
        return (v / div, String::new());
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (v / div, format!(".{}", digits.trim_end_matches('0')))
}

/// docker's `RAMInBytes`: `512`, `64m`, `1g`, `1.5GiB`, `512 kb` (binary multiples).
pub fn parse_mem_bytes(size: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{size}'");
    let Some(sep) = size.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(invalid());
    };
    let (num, sfx) = if size.as_bytes()[sep] == b' ' {
        (&size[..sep], &size[sep + 1..])
    } else {
        (&size[..=sep], &size[sep + 1..])
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid());
    }
    let value: f64 = num.parse().map_err(|_| invalid())?;
    let bad_suffix = || format!("invalid suffix: '{}'", sfx.to_ascii_lowercase());
    let lower = sfx.to_ascii_lowercase();
    let mul: f64 = match lower.as_bytes() {
        [] => 1.0,
        [b'b'] => 1.0,
        [unit, rest @ ..] if rest.is_empty() || rest == b"b" || rest == b"ib" => match unit {
            b'k' => 1024.0,
            b'm' => 1024.0 * 1024.0,
            b'g' => 1024.0 * 1024.0 * 1024.0,
            b't' => 1024f64.powi(4),
            b'p' => 1024f64.powi(5),
            _ => return Err(bad_suffix()),
        },
        _ => return Err(bad_suffix()),
    };
    let bytes = value * mul;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

/// docker's `--limit-cpu`/`--reserve-cpu`: a decimal (`0.5`) or a fraction (`1/2`) of CPUs, to
/// NanoCPUs, refusing values that are not a whole number of nanoCPUs.
pub fn parse_nano_cpus(value: &str) -> Result<i64, String> {
    let not_rational = || format!("failed to parse {value} as a rational number");
    let too_precise = || "value is too precise".to_string();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((num, den)) = value.split_once('/') {
        if !digits(num) || !digits(den) {
            return Err(not_rational());
        }
        let num: u128 = num.parse().map_err(|_| not_rational())?;
        let den: u128 = den.parse().map_err(|_| not_rational())?;
        if den == 0 {
            return Err(not_rational());
        }
        let scaled = num.checked_mul(1_000_000_000).ok_or_else(not_rational)?;
        if scaled % den != 0 {
            return Err(too_precise());
        }
        return i64::try_from(scaled / den).map_err(|_| not_rational());
    }
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if (int.is_empty() && frac.is_empty())
        || !(int.is_empty() || digits(int))
        || !(frac.is_empty() || digits(frac))
    {
        return Err(not_rational());
    }
    let int: i128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| not_rational())?
    };
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 9 {
        return Err(too_precise());
    }
    let frac_nanos: i128 = if frac_trimmed.is_empty() {
        0
    } else {
        format!("{frac_trimmed:0<9}")
            .parse()
            .map_err(|_| not_rational())?
    };
    let nanos = int
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(not_rational)?;
    i64::try_from(nanos).map_err(|_| not_rational())
}

/// A whole number flag (`--replicas`, `--update-parallelism`).
pub fn parse_uint(value: &str) -> Result<u64, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a number >= 0".to_string());
    }
    value.parse().map_err(|_| "value out of range".to_string())
}

/// A ratio flag (`--update-max-failure-ratio`): a decimal between 0 and 1.
pub fn parse_ratio(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("expected a number between 0 and 1".to_string()),
    }
}

/// go-units' `HumanDuration`: "Less than a second", "About a minute", "3 months".
pub fn human_duration(nanos: i64) -> String {
    let secs = nanos / 1_000_000_000;
    if secs < 1 {
        return "Less than a second".to_string();
    }
    if secs == 1 {
        return "1 second".to_string();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = secs / 60;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (nanos as f64 / 3.6e12 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".to_string();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", nanos / 3_600_000_000_000 / 24 / 365)
}

/// go-units' `BytesSize`: `64MiB`, `23.54GiB`, `512B`.
pub fn bytes_size(bytes: f64) -> String {
    const ABBRS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes;
    let mut i = 0;
    while size >= 1024.0 && i < ABBRS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", format_g4(size), ABBRS[i])
}

/// Go's `%.4g` for the values sizes take (no exponent form below 10^4).
pub fn format_g4(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".to_string();
    }
    let exp = v.abs().log10().floor() as i32;
    let decimals = (3 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10s"), Ok(10 * S));
        assert_eq!(parse_go_duration("1m30s"), Ok(90 * S));
        assert_eq!(parse_go_duration("500ms"), Ok(S / 2));
        assert_eq!(parse_go_duration("1.5h"), Ok(5400 * S));
        assert_eq!(parse_go_duration("2us"), Ok(2_000));
        assert_eq!(parse_go_duration("2µs"), Ok(2_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration(".5s"), Ok(S / 2));
        assert_eq!(parse_go_duration("-1s"), Ok(-S));
        assert_eq!(parse_go_duration("1h2m3s4ms"), Ok(3723 * S + 4_000_000));
    }

    #[test]
    fn go_durations_refuse_like_go() {
        assert_eq!(
            parse_go_duration("5"),
            Err(r#"time: missing unit in duration "5""#.into())
        );
        assert_eq!(
            parse_go_duration("abc"),
            Err(r#"time: invalid duration "abc""#.into())
        );
        assert_eq!(
            parse_go_duration(""),
            Err(r#"time: invalid duration """#.into())
        );
        assert_eq!(
            parse_go_duration("5x"),
            Err(r#"time: unknown unit "x" in duration "5x""#.into())
        );
        assert_eq!(
            parse_go_duration("."),
            Err(r#"time: invalid duration ".""#.into())
        );
        assert!(parse_go_duration("9999999999h").is_err());
        assert_eq!(
            parse_duration_flag("-1s"),
            Err("duration must not be negative".into())
        );
    }

    #[test]
    fn go_durations_print() {
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(5 * S), "5s");
        assert_eq!(format_go_duration(90 * S), "1m30s");
        assert_eq!(format_go_duration(3600 * S), "1h0m0s");
        assert_eq!(format_go_duration(2160 * 3600 * S), "2160h0m0s");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(4), "4ns");
        assert_eq!(format_go_duration(1_200), "1.2µs");
        assert_eq!(format_go_duration(200_000_000), "200ms");
        assert_eq!(format_go_duration(-S), "-1s");
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_mem_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_mem_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_mem_bytes("1024"), Ok(1024));
        assert_eq!(parse_mem_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_mem_bytes("10 MB"), Ok(10 << 20));
        assert_eq!(parse_mem_bytes("7b"), Ok(7));
        assert_eq!(parse_mem_bytes("12q"), Err("invalid suffix: 'q'".into()));
        assert_eq!(parse_mem_bytes("1kx"), Err("invalid suffix: 'kx'".into()));
        assert_eq!(parse_mem_bytes("m"), Err("invalid size: 'm'".into()));
        assert_eq!(parse_mem_bytes("-1m"), Err("invalid size: '-1m'".into()));
        assert_eq!(parse_mem_bytes(""), Err("invalid size: ''".into()));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus(".25"), Ok(250_000_000));
        assert_eq!(parse_nano_cpus("1/4"), Ok(250_000_000));
        assert_eq!(parse_nano_cpus("0.000000001"), Ok(1));
        assert_eq!(parse_nano_cpus("1.5000000000"), Ok(1_500_000_000));
        assert_eq!(
            parse_nano_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
        assert_eq!(parse_nano_cpus("1/3"), Err("value is too precise".into()));
        assert_eq!(
            parse_nano_cpus("abc"),
            Err("failed to parse abc as a rational number".into())
        );
        assert!(parse_nano_cpus("-1").is_err());
        assert!(parse_nano_cpus("1/0").is_err());
        assert!(parse_nano_cpus(".").is_err());
    }

    #[test]
    fn whole_numbers_and_ratios() {
        assert_eq!(parse_uint("3"), Ok(3));
        assert_eq!(parse_uint("-1"), Err("expected a number >= 0".into()));
        assert_eq!(parse_uint("x"), Err("expected a number >= 0".into()));
        assert!(parse_uint("99999999999999999999999").is_err());
        assert_eq!(parse_ratio("0.3"), Ok(0.3));
        assert!(parse_ratio("1.5").is_err());
    }

    #[test]
    fn human_durations_match_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(S), "1 second");
        assert_eq!(human_duration(5 * S), "5 seconds");
        assert_eq!(human_duration(60 * S), "About a minute");
        assert_eq!(human_duration(150 * S), "2 minutes");
        assert_eq!(human_duration(3600 * S), "About an hour");
        assert_eq!(human_duration(5 * 3600 * S), "5 hours");
        assert_eq!(human_duration(3 * 24 * 3600 * S), "3 days");
        assert_eq!(human_duration(90 * 24 * 3600 * S), "3 months");
        assert_eq!(human_duration(3 * 365 * 24 * 3600 * S), "3 years");
    }

    #[test]
    fn binary_sizes() {
        assert_eq!(bytes_size(64.0 * 1024.0 * 1024.0), "64MiB");
        assert_eq!(bytes_size(10.0 * 1024.0 * 1024.0), "10MiB");
        assert_eq!(bytes_size(25_275_236_352.0), "23.54GiB");
        assert_eq!(bytes_size(512.0), "512B");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(format_g4(1023.99), "1024");
    }
}
