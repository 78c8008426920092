//! Stop-signal names as Docker accepts them: `SIGTERM`, `TERM`, `term`, `15`. Pure.

use std::str::FromStr;

use nix::sys::signal::Signal;

/// Parses a stop signal; an empty string means Docker's default, SIGTERM.
pub fn parse_stop_signal(s: &str) -> Result<Signal, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Signal::SIGTERM);
    }
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("invalid signal: {s}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("invalid signal: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_forms() {
        assert_eq!(parse_stop_signal(""), Ok(Signal::SIGTERM));
        assert_eq!(parse_stop_signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_stop_signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_stop_signal("15"), Ok(Signal::SIGTERM));
        assert_eq!(parse_stop_signal("sigint"), Ok(Signal::SIGINT));
        assert_eq!(parse_stop_signal("quit"), Ok(Signal::SIGQUIT));
        assert_eq!(parse_stop_signal("9"), Ok(Signal::SIGKILL));
        assert_eq!(parse_stop_signal(" HUP "), Ok(Signal::SIGHUP));
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
    }
}
