//! Tests of the progress updaters and renderer against docker's output for the same states.

use super::*;

fn service(mode: &str) -> Service {
    serde_json::from_str(&format!(
        r#"{{"ID":"svc1","Spec":{{"Name":"web","Mode":{mode}}}}}"#
    ))
    .expect("valid service")
}

fn task(id: &str, slot: i64, node: &str, desired: &str, state: &str, err: &str) -> Task {
    let err = if err.is_empty() {
        String::new()
    } else {
        format!(r#","Err":"{err}""#)
    };
    serde_json::from_str(&format!(
        r#"{{"ID":"{id}","Slot":{slot},"NodeID":"{node}","DesiredState":"{desired}","Status":{{"State":"{state}"{err}}}}}"#
    ))
    .expect("valid task")
}

fn nodes(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn plain(out: Renderer<Vec<u8>>) -> String {
    String::from_utf8(out.into_inner()).expect("utf8")
}

#[test]
fn replicated_non_tty_prints_each_change_once() {
    let svc = service(r#"{"Replicated":{"Replicas":2}}"#);
    let mut up = Updater::for_service(&svc).expect("replicated");
    let mut out = Renderer::new(Vec::new(), false, 0);
    let active = nodes(&["n1"]);
    let polls = [
        vec![
            task("a", 1, "n1", "running", "new", ""),
            task("b", 2, "", "running", "pending", ""),
        ],
        vec![
            task("a", 1, "n1", "running", "running", ""),
            task("b", 2, "n1", "running", "starting", ""),
        ],
        vec![
            task("a", 1, "n1", "running", "running", ""),
            task("b", 2, "n1", "running", "starting", ""),
        ],
        vec![
            task("a", 1, "n1", "running", "running", ""),
            task("b", 2, "n1", "running", "running", ""),
        ],
    ];
    let mut converged = Vec::new();
    for tasks in &polls {
        converged.push(
            up.update(&svc, tasks, &active, false, &mut out)
                .expect("update"),
        );
    }
    assert_eq!(converged, vec![false, false, false, true]);
    assert_eq!(
        plain(out),
        "overall progress: 0 out of 2 tasks
1/2:
2/2:
1/2: new
2/2: pending
1/2: running
2/2: starting
overall progress: 1 out of 2 tasks
2/2: running
overall progress: 2 out of 2 tasks
"
    );
}

/// The escape sequences docker 28.2.2 wrote on a 150-column terminal for the first polls of
/// `service create --replicas 3` (captured with `script`).
#[test]
fn tty_redraws_like_docker() {
    let svc = service(r#"{"Replicated":{"Replicas":3}}"#);
    let mut up = Updater::for_service(&svc).expect("replicated");
    let mut out = Renderer::new(Vec::new(), true, 150);
    let active = nodes(&["n1"]);
    let tasks: Vec<Task> = (1..=3)
        .map(|i| task(&format!("t{i}"), i, "", "running", "new", ""))
        .collect();
    up.update(&svc, &tasks, &active, false, &mut out)
        .expect("update");
    let bar_new = format!("[{}>{}] ", "=".repeat(5), " ".repeat(45));
    let expected = format!(
        "\n\x1b[1A\x1b[2K\roverall progress: 0 out of 3 tasks \r\x1b[1B\
\n\x1b[1A\x1b[2K\r1/3:   \r\x1b[1B\
\n\x1b[1A\x1b[2K\r2/3:   \r\x1b[1B\
\n\x1b[1A\x1b[2K\r3/3:   \r\x1b[1B\
\x1b[3A\x1b[2K\r1/3: new       {bar_new}\r\x1b[3B\
\x1b[2A\x1b[2K\r2/3: new       {bar_new}\r\x1b[2B\
\x1b[1A\x1b[2K\r3/3: new       {bar_new}\r\x1b[1B\
\x1b[4A\x1b[2K\roverall progress: 0 out of 3 tasks \r\x1b[4B"
    );
    assert_eq!(plain(out), expected);

    let running: Vec<Task> = (1..=3)
        .map(|i| task(&format!("t{i}"), i, "n1", "running", "running", ""))
        .collect();
    let mut out = Renderer::new(Vec::new(), true, 150);
    let mut up = Updater::for_service(&svc).expect("replicated");
    assert!(
        up.update(&svc, &running, &active, false, &mut out)
            .expect("update")
    );
    let text = plain(out);
    assert!(
        text.contains(&format!("1/3: running   [{}>] \r", "=".repeat(50))),
        "{text:?}"
    );
    assert!(
        text.ends_with("\x1b[4A\x1b[2K\roverall progress: 3 out of 3 tasks \r\x1b[4B"),
        "{text:?}"
    );
}

#[test]
fn narrow_terminals_get_no_bars() {
    let svc = service(r#"{"Replicated":{"Replicas":1}}"#);
    let mut up = Updater::for_service(&svc).expect("replicated");
    let mut out = Renderer::new(Vec::new(), true, 80);
    up.update(
        &svc,
        &[task("a", 1, "", "running", "assigned", "")],
        &nodes(&[]),
        false,
        &mut out,
    )
    .expect("update");
    let text = plain(out);
    assert!(text.contains("1/1: assigned  \r"), "{text:?}");
    assert!(!text.contains("[="));
}

#[test]
fn errors_replace_the_state_and_are_truncated() {
    let svc = service(r#"{"Replicated":{"Replicas":1}}"#);
    let mut up = Updater::for_service(&svc).expect("replicated");
    let mut out = Renderer::new(Vec::new(), false, 0);
    let long = "starting container failed: ".to_string() + &"x".repeat(80);
    up.update(
        &svc,
        &[task("a", 1, "n1", "running", "starting", &long)],
        &nodes(&["n1"]),
        false,
        &mut out,
    )
    .expect("update");
    let text = plain(out);
    let expected_err = format!("{}…", &long[..74]);
    assert!(text.contains(&format!("1/1: {expected_err}\n")), "{text}");
    assert_eq!(trunc_error("a\nb"), "a b");
}

#[test]
fn lowest_desired_state_wins_and_down_nodes_are_ignored() {
    let svc = service(r#"{"Replicated":{"Replicas":1}}"#);
    let mut up = Updater::for_service(&svc).expect("replicated");
    let mut out = Renderer::new(Vec::new(), false, 0);
    // The old task is being shut down; the new one is starting; a third sits on a down node.
    let tasks = [
        task("old", 1, "n1", "shutdown", "running", ""),
        task("new", 1, "n1", "running", "starting", ""),
        task("lost", 1, "gone", "running", "running", ""),
    ];
    assert!(
        !up.update(&svc, &tasks, &nodes(&["n1"]), false, &mut out)
            .expect("update")
    );
    let text = plain(out);
    assert_eq!(
        text,
        "overall progress: 0 out of 1 tasks\n1/1:\n1/1: starting\n"
    );
}

#[test]
fn rollback_wording() {
    let svc = service(r#"{"Replicated":{"Replicas":1}}"#);
    let mut up = Updater::for_service(&svc).expect("replicated");
    let mut out = Renderer::new(Vec::new(), false, 0);
    up.update(&svc, &[], &nodes(&[]), true, &mut out)
        .expect("update");
    assert!(plain(out).starts_with("overall progress: rolling back update: 0 out of 1 tasks\n"));
}

#[test]
fn global_waits_for_tasks_then_counts_nodes() {
    let svc = service(r#"{"Global":{}}"#);
    let mut up = Updater::for_service(&svc).expect("global");
    let mut out = Renderer::new(Vec::new(), false, 0);
    let active = nodes(&["node1aaaaaaaaaaaaaaaaaaaa", "node2"]);
    assert!(
        !up.update(&svc, &[], &active, false, &mut out)
            .expect("update")
    );
    let tasks = [
        task(
            "a",
            0,
            "node1aaaaaaaaaaaaaaaaaaaa",
            "running",
            "running",
            "",
        ),
        task("b", 0, "node2", "running", "preparing", ""),
    ];
    assert!(
        !up.update(&svc, &tasks, &active, false, &mut out)
            .expect("update")
    );
    let text = plain(out);
    assert_eq!(
        text,
        "overall progress: waiting for new tasks
overall progress: 0 out of 2 tasks
node1aaaaaaa: running
node2: preparing
overall progress: 1 out of 2 tasks
"
    );
}

#[test]
fn replicated_job_counts_completions() {
    let svc: Service = serde_json::from_str(
        r#"{"ID":"j","Spec":{"Mode":{"ReplicatedJob":{"MaxConcurrent":2,"TotalCompletions":2}}},"JobStatus":{"JobIteration":{"Index":7}}}"#,
    )
    .expect("valid job");
    let mut up = Updater::for_service(&svc).expect("job");
    let mut out = Renderer::new(Vec::new(), false, 0);
    let mut t1 = task("a", 0, "n1", "complete", "complete", "");
    let mut t2 = task("b", 1, "n1", "complete", "running", "");
    for t in [&mut t1, &mut t2] {
        t.job_iteration = Some(bollard_stubs::models::ObjectVersion { index: Some(7) });
    }
    assert!(
        !up.update(
            &svc,
            &[t1.clone(), t2.clone()],
            &nodes(&["n1"]),
            false,
            &mut out
        )
        .expect("update")
    );
    let text = plain(out);
    assert!(
        text.contains("job progress: 0 out of 2 complete\nactive tasks: 0 out of 2 tasks\n"),
        "{text}"
    );
    assert!(text.contains("1/2: complete\n2/2: running\n"), "{text}");
    assert!(
        text.ends_with("job progress: 1 out of 2 complete\nactive tasks: 1 out of 1 tasks\n"),
        "{text}"
    );
}

#[test]
fn failure_watch_gives_up_after_three_failures_per_task() {
    use super::super::wait::FailureWatch;
    let mut w = FailureWatch::default();
    let failed = |id: &str| task(id, 1, "n1", "shutdown", "failed", "exit status 1");
    assert!(w.observe("web", &[failed("a"), failed("b")], 1, 3).is_ok());
    // The same failures seen again do not count twice.
    assert!(w.observe("web", &[failed("a"), failed("b")], 1, 3).is_ok());
    let err = w
        .observe("web", &[failed("c")], 1, 3)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("service \"web\": tasks keep failing (3 failed); last error: exit status 1")
    );
    // With restart condition "none", one failure per expected task is final.
    let mut w = FailureWatch::default();
    assert!(w.observe("web", &[failed("a")], 2, 1).is_ok());
    assert!(w.observe("web", &[failed("b")], 2, 1).is_err());
}

#[test]
fn messages_end_the_redraw_block() {
    let mut out = Renderer::new(Vec::new(), true, 150);
    out.line(
        "verify",
        "Waiting 1 seconds to verify that tasks are stable...",
        None,
    );
    out.message(Some("rollback"), "rollback completed");
    out.line("verify", "Service web converged", None);
    let text = plain(out);
    assert_eq!(
        text,
        "\n\x1b[1A\x1b[2K\rverify: Waiting 1 seconds to verify that tasks are stable... \r\x1b[1B\
rollback: rollback completed\n\
\n\x1b[1A\x1b[2K\rverify: Service web converged \r\x1b[1B"
    );
}

/// Docker 20.10 omits zero values: `"JobIteration":{}` and no `Slot` for slot 0.
#[test]
fn job_iteration_zero_is_omitted_on_the_wire() {
    let svc: Service = serde_json::from_str(
        r#"{"ID":"j","Spec":{"Mode":{"ReplicatedJob":{"MaxConcurrent":2,"TotalCompletions":2}}},"JobStatus":{"JobIteration":{}}}"#,
    )
    .expect("valid job");
    let tasks: Vec<Task> = serde_json::from_str(
        r#"[{"ID":"a","JobIteration":{},"DesiredState":"complete","Status":{"State":"complete"}},
            {"ID":"b","Slot":1,"JobIteration":{},"DesiredState":"complete","Status":{"State":"complete"}}]"#,
    )
    .expect("valid tasks");
    let mut up = Updater::for_service(&svc).expect("job");
    let mut out = Renderer::new(Vec::new(), false, 0);
    assert!(
        up.update(&svc, &tasks, &nodes(&[]), false, &mut out)
            .expect("update")
    );
    assert!(
        plain(out).ends_with("job progress: 2 out of 2 complete\nactive tasks: 0 out of 0 tasks\n")
    );
}
