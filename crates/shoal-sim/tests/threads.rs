//! A run uses no thread but the one driving its runtime (see the crate docs, "Determinism").
//! Alone in its own test binary, so no other test's thread comes and goes while it counts.

/// The names of this process's threads (Linux: one directory per thread under /proc).
fn threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|t| t.ok())
                .map(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .map(|s| s.trim().to_string())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A run uses no thread but the one driving its runtime. Work on another thread (a store's
/// group-commit thread, a blocking pool, a key generation off the runtime) finishes at a
/// virtual time that depends on how fast the machine is: a seed would run one way on a quiet
/// machine and another on a loaded one. The run goes on a thread of its own while this one samples the
/// process's threads; a helper thread lives as long as what it serves, so a sample sees it.
#[test]
fn a_run_uses_no_other_thread() {
    assert!(
        std::path::Path::new("/proc/self/task").is_dir(),
        "this check reads /proc/self/task (Linux)"
    );
    let before = threads().len();
    let cfg = shoal_sim::Config {
        fault_steps: 20,
        ..Default::default()
    };
    let run = std::thread::Builder::new()
        .name("sim-run".into())
        .spawn(move || shoal_sim::run(7, &cfg))
        .unwrap_or_else(|e| panic!("starting the run's thread: {e}"));
    let mut most = Vec::new();
    while !run.is_finished() {
        let now = threads();
        if now.len() > most.len() {
            most = now;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    run.join()
        .unwrap_or_else(|_| panic!("the run panicked"))
        .unwrap_or_else(|v| panic!("{v}"));
    // This test's thread and the run's: nothing else may have appeared.
    assert!(
        most.len() <= before + 1,
        "a run started threads of its own: {most:?} (before it: {before} threads)"
    );
}
