//! Helpers for tests that drive a runtime driver directly (no daemon): run a task, wait for it
//! with a deadline, read its whole output. Cleanup is `shoal_testkit::reap`.
#![allow(dead_code)]

use std::time::Duration;

use shoal_runtime::{ExitInfo, LogOptions, LogStreamKind, RuntimeDriver, TaskRun, next_log_line};
use shoal_types::Id;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub async fn start(driver: &dyn RuntimeDriver, run: &TaskRun) -> i64 {
    driver.prepare(run).await.expect("prepare");
    driver.start(&run.task_id).await.expect("start")
}

pub async fn wait(driver: &dyn RuntimeDriver, id: &Id) -> ExitInfo {
    tokio::time::timeout(DEADLINE, driver.wait(id))
        .await
        .expect("task ends in time")
        .expect("wait")
}

/// (stdout, stderr) of a task, all of it.
pub async fn output(driver: &dyn RuntimeDriver, id: &Id) -> (String, String) {
    let opts = LogOptions {
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut s = driver.logs(id, opts).await.expect("logs");
    let (mut out, mut err) = (String::new(), String::new());
    while let Some(l) = next_log_line(&mut s).await {
        let l = l.expect("log line");
        let text = String::from_utf8_lossy(&l.line).into_owned();
        match l.stream {
            LogStreamKind::Stdout => out.push_str(&text),
            LogStreamKind::Stderr => err.push_str(&text),
        }
    }
    (out, err)
}
