//! shoal against real Docker Swarm on this machine's Docker Engine: the time from
//! `service create --replicas N` to N/N running, for both, driven by the same docker CLI. The
//! measurement is the shell script next to this file (`swarm-vs-shoal.sh`, which says what it
//! does and needs); this target runs it with the shoal binary cargo just built, so that it is
//! one `cargo bench` like the others: `cargo bench -p shoal --bench swarm [-- RUNS [REPLICAS]]`
//! (as root; defaults 5 runs of 100 replicas).
//!
//! `cargo bench -p shoal --bench swarm -- stack [RUNS]` runs `stack-vs-swarm.sh` instead: the
//! time from `stack deploy` of a 10-service stack to every task running, same file for both.

use std::process::Command;

fn main() {
    // `cargo bench` adds its own `--bench` flag; the scripts take only numbers.
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let script = if args.first().map(String::as_str) == Some("stack") {
        args.remove(0);
        concat!(env!("CARGO_MANIFEST_DIR"), "/benches/stack-vs-swarm.sh")
    } else {
        concat!(env!("CARGO_MANIFEST_DIR"), "/benches/swarm-vs-shoal.sh")
    };
    let status = Command::new("bash")
        .arg(script)
        .args(&args)
        .env("SHOAL", env!("CARGO_BIN_EXE_shoal"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("{script} failed: {s}");
            std::process::exit(s.code().unwrap_or(1));
        }
        Err(e) => {
            eprintln!("cannot run {script}: {e}");
            std::process::exit(1);
        }
    }
}
