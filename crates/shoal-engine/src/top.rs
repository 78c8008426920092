//! `docker top`: `ps` runs on the node with the client's arguments (`-ef` by default) and only
//! the rows of the container's processes are kept, found by the `PID` column, as Docker does.

use shoal_control::engine::{EngineError, Top};

/// Runs `ps ps_args` and keeps the rows of `pids`.
pub async fn run(ps_args: &str, pids: &[i64]) -> Result<Top, EngineError> {
    let args: Vec<&str> = if ps_args.trim().is_empty() {
        vec!["-ef"]
    } else {
        ps_args.split_whitespace().collect()
    };
    let out = tokio::process::Command::new("ps")
        .args(&args)
        .output()
        .await
        .map_err(|e| EngineError::Internal(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(EngineError::Internal(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    filter(&String::from_utf8_lossy(&out.stdout), pids)
}

/// The header's titles and the rows whose PID is one of `pids`; the last column takes the
/// rest of its line (a command with spaces).
pub fn filter(output: &str, pids: &[i64]) -> Result<Top, EngineError> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<String> = header.split_whitespace().map(str::to_string).collect();
    let pid_col = titles.iter().position(|t| t == "PID").ok_or_else(|| {
        EngineError::invalid(
            "ps_args",
            "Couldn't find PID field in ps output (the arguments must keep the PID column)",
        )
    })?;
    let n = titles.len();
    let processes = lines
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let mut fields: Vec<String> = Vec::with_capacity(n);
            let mut rest = l.trim_start();
            for _ in 0..n.saturating_sub(1) {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                fields.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
            fields.push(rest.to_string());
            let pid: i64 = fields.get(pid_col)?.parse().ok()?;
            pids.contains(&pid).then_some(fields)
        })
        .collect();
    Ok(Top { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_containers_rows_and_whole_commands() {
        let ps = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                  root           1       0  0 02:17 ?        00:00:01 /sbin/init\n\
                  root       25951   25930  0 02:17 ?        00:00:00 httpd -f -p 80\n";
        let top = filter(ps, &[25951]).expect("filter");
        assert_eq!(
            top.titles,
            vec!["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        );
        assert_eq!(
            top.processes,
            vec![vec![
                "root",
                "25951",
                "25930",
                "0",
                "02:17",
                "?",
                "00:00:00",
                "httpd -f -p 80"
            ]]
        );
        let custom = filter("  PID COMMAND\n 7 sleep\n 8 sh\n", &[8]).expect("filter");
        assert_eq!(custom.processes, vec![vec!["8", "sh"]]);
        assert!(matches!(
            filter("COMMAND\nsleep\n", &[1]),
            Err(EngineError::Invalid { .. })
        ));
    }
}
