//! The converge loop against a scripted daemon: convergence after the monitor period, a paused
//! update, and a rollback that was or was not asked for.

use std::sync::Arc;

use super::*;
use crate::client::server_tests::fake_with;
use crate::service::progress::Renderer;

fn http(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A daemon whose service `web` has one running task and the given update status.
fn daemon(update_status: &'static str) -> Arc<dyn Fn(&str) -> String + Send + Sync> {
    Arc::new(move |head: &str| {
        if head.starts_with("HEAD /_ping") {
            return "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\n\r\n".to_string();
        }
        if head.contains("/services/web") {
            return http(&format!(
                r#"{{"ID":"svc","Spec":{{"Name":"web","Mode":{{"Replicated":{{"Replicas":1}}}},"UpdateConfig":{{"Monitor":1}}}}{update_status}}}"#
            ));
        }
        if head.contains("/tasks?") {
            return http(
                r#"[{"ID":"t1","Slot":1,"NodeID":"n1","DesiredState":"running","Status":{"State":"running"}}]"#,
            );
        }
        if head.contains("/nodes") {
            return http(r#"[{"ID":"n1","Status":{"State":"ready"}}]"#);
        }
        "HTTP/1.1 404 X\r\nContent-Length: 2\r\n\r\n{}".to_string()
    })
}

async fn run(
    update_status: &'static str,
    expect_rollback: bool,
) -> (Result<()>, String, Vec<String>) {
    let f = fake_with(daemon(update_status)).await;
    let client = Client::new(&f.host).expect("valid host");
    let mut out = Renderer::new(Vec::new(), false, 0);
    let result = progress(&client, "web", &mut out, expect_rollback).await;
    let text = String::from_utf8(out.into_inner()).expect("utf8");
    let requests = f.seen.lock().map(|s| s.clone()).unwrap_or_default();
    (result, text, requests)
}

#[tokio::test]
async fn converges_after_the_monitor_period() {
    let (result, text, requests) = run("", false).await;
    assert!(result.is_ok(), "{result:?}");
    // docker's poll: the service, its up-to-date tasks, the nodes.
    assert!(
        requests.iter().any(|r| r.starts_with(
            "GET /v1.41/tasks?filters=%7B%22_up-to-date%22%3A%7B%22true%22%3Atrue%7D%2C%22service%22%3A%7B%22svc%22%3Atrue%7D%7D "
        )),
        "{requests:?}"
    );
    assert!(
        requests.contains(&"GET /v1.41/nodes HTTP/1.1".to_string()),
        "{requests:?}"
    );
    assert!(
        text.starts_with("overall progress: 0 out of 1 tasks\n1/1:\n1/1: running\noverall progress: 1 out of 1 tasks\n"),
        "{text}"
    );
    assert!(text.ends_with("verify: Service web converged\n"), "{text}");
}

#[tokio::test]
async fn a_paused_update_fails() {
    let (result, _, _) = run(r#","UpdateStatus":{"State":"paused","Message":"update paused due to failure or early termination of task t9"}"#, false).await;
    assert_eq!(
        result.err().map(|e| e.to_string()).as_deref(),
        Some("service update paused: update paused due to failure or early termination of task t9")
    );
}

#[tokio::test]
async fn an_unrequested_rollback_fails_after_converging() {
    let status = r#","UpdateStatus":{"State":"rollback_completed","Message":"rollback completed"}"#;
    let (result, text, _) = run(status, false).await;
    assert_eq!(
        result.err().map(|e| e.to_string()).as_deref(),
        Some("service update rolled back: rollback completed")
    );
    assert!(
        text.contains("overall progress: rolling back update: 1 out of 1 tasks\n"),
        "{text}"
    );
    assert!(
        text.ends_with("verify: Service web converged\nrollback: rollback completed\n"),
        "{text}"
    );

    let (result, _, _) = run(status, true).await;
    assert!(result.is_ok(), "{result:?}");
}
