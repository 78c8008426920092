//! Stop-signal names as Docker accepts them: `SIGTERM`, `TERM`, `term`, `15`. Pure: Linux's
//! signal numbers are written out here so the contract needs no libc or nix; `shoal-native`
//! checks this table against the C library's in its tests.

/// The standard Linux signals (asm-generic numbering, which x86, arm, arm64, riscv, powerpc and
/// s390x share), by the names `kill -l` prints.
const SIGNALS: [(&str, i32); 31] = [
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// SIGTERM, the stop signal when neither the spec nor the image names one.
pub const DEFAULT_STOP_SIGNAL: i32 = 15;

/// Parses a stop signal into its number; an empty string means Docker's default, SIGTERM.
pub fn parse_stop_signal(s: &str) -> Result<i32, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(DEFAULT_STOP_SIGNAL);
    }
    if let Ok(n) = s.parse::<i32>() {
        return SIGNALS
            .iter()
            .find(|(_, num)| *num == n)
            .map(|(_, num)| *num)
            .ok_or_else(|| format!("invalid signal: {s}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(n, _)| n.strip_prefix("SIG") == Some(name))
        .map(|(_, num)| *num)
        .ok_or_else(|| format!("invalid signal: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_forms() {
        assert_eq!(parse_stop_signal(""), Ok(15));
        assert_eq!(parse_stop_signal("SIGTERM"), Ok(15));
        assert_eq!(parse_stop_signal("TERM"), Ok(15));
        assert_eq!(parse_stop_signal("15"), Ok(15));
        assert_eq!(parse_stop_signal("sigint"), Ok(2));
        assert_eq!(parse_stop_signal("quit"), Ok(3));
        assert_eq!(parse_stop_signal("9"), Ok(9));
        assert_eq!(parse_stop_signal(" HUP "), Ok(1));
    }

    #[test]
    fn rejects_unknown_signals_naming_them() {
        assert_eq!(
            parse_stop_signal("SIGNOPE"),
            Err("invalid signal: SIGNOPE".into())
        );
        assert_eq!(parse_stop_signal("0"), Err("invalid signal: 0".into()));
        assert_eq!(parse_stop_signal("999"), Err("invalid signal: 999".into()));
        assert!(parse_stop_signal("-1").is_err());
        assert!(parse_stop_signal("SIG").is_err());
        assert!(parse_stop_signal("SIGSIGTERM").is_err());
    }
}
