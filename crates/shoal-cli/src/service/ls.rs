//! `service ls`: `GET /services?status=true` and docker's table (ID, NAME, MODE, REPLICAS, IMAGE,
//! PORTS), with docker's fallback that counts tasks itself when the daemon sends no ServiceStatus.

use std::collections::HashMap;

use bollard_stubs::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, Service, ServiceServiceStatus, Task,
    TaskState,
};

use crate::client::Client;
use crate::error::Result;
use crate::filters::Filters;
use crate::format::{Table, json_row, natural_cmp, truncate_id};
use crate::imageref;
use crate::node::{ListFormat, list_format};

/// `service ls` takes the flags `node ls` does.
pub use crate::node::LsArgs;

pub async fn run(client: &Client, args: LsArgs) -> Result<()> {
    let format = list_format(args.format.as_deref())?;
    let filters = Filters::parse(&args.filter)?;
    let mut query = filters.query();
    if !args.quiet {
        query.push(("status", "true".to_string()));
    }
    let mut services: Vec<Service> = client.get("/services", &query).await?;
    if !args.quiet && services.iter().any(|s| s.service_status.is_none()) {
        append_status(client, &mut services).await?;
    }
    print!("{}", render(services, args.quiet, format));
    Ok(())
}

/// docker's `AppendServiceStatus`, for daemons older than API 1.41.
async fn append_status(client: &Client, services: &mut [Service]) -> Result<()> {
    let mut filters = Filters::new();
    let mut status: HashMap<String, ServiceServiceStatus> = HashMap::new();
    for s in services.iter_mut().filter(|s| s.service_status.is_none()) {
        let mode = s.spec.as_ref().and_then(|sp| sp.mode.as_ref());
        let id = s.id.clone().unwrap_or_default();
        if let Some(r) = mode.and_then(|m| m.replicated.as_ref()) {
            s.service_status = Some(ServiceServiceStatus {
                desired_tasks: r.replicas.and_then(|n| u64::try_from(n).ok()),
                ..Default::default()
            });
        } else if mode.and_then(|m| m.global.as_ref()).is_some() {
            s.service_status = Some(ServiceServiceStatus::default());
        } else {
            continue;
        }
        status.insert(id.clone(), ServiceServiceStatus::default());
        filters.add("service", &id);
    }
    if status.is_empty() {
        return Ok(());
    }
    let tasks: Vec<Task> = client.get("/tasks", &filters.query()).await?;
    if tasks.is_empty() {
        return Ok(());
    }
    let active = crate::node::not_down(client).await?;
    for t in &tasks {
        let Some(st) = t.service_id.as_ref().and_then(|id| status.get_mut(id)) else {
            continue;
        };
        if t.desired_state != Some(TaskState::SHUTDOWN) {
            *st.desired_tasks.get_or_insert(0) += 1;
        }
        let running = t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING);
        if running && t.node_id.as_ref().is_some_and(|n| active.contains(n)) {
            *st.running_tasks.get_or_insert(0) += 1;
        }
    }
    for s in services.iter_mut() {
        if let Some(st) = s.id.as_ref().and_then(|id| status.remove(id)) {
            s.service_status = Some(st);
        }
    }
    Ok(())
}

/// The table, `-q` IDs or JSON rows, sorted by name.
pub fn render(mut services: Vec<Service>, quiet: bool, format: ListFormat) -> String {
    services.sort_by(|a, b| natural_cmp(&name(a), &name(b)));
    if quiet {
        return services
            .iter()
            // docker's quiet format is the row's `{{.ID}}`, which is truncated.
            .map(|s| format!("{}\n", truncate_id(s.id.as_deref().unwrap_or(""))))
            .collect();
    }
    let rows: Vec<[String; 6]> = services
        .iter()
        .map(|s| {
            [
                truncate_id(s.id.as_deref().unwrap_or("")).to_string(),
                name(s),
                mode(s),
                replicas(s),
                image(s),
                ports(
                    s.endpoint
                        .as_ref()
                        .and_then(|e| e.ports.clone())
                        .unwrap_or_default(),
                ),
            ]
        })
        .collect();
    if format == ListFormat::Json {
        return rows
            .into_iter()
            .map(|[id, name, mode, replicas, image, ports]| {
                let row = json_row(&[
                    ("ID", id.into()),
                    ("Image", image.into()),
                    ("Mode", mode.into()),
                    ("Name", name.into()),
                    ("Ports", ports.into()),
                    ("Replicas", replicas.into()),
                ]);
                format!("{row}\n")
            })
            .collect();
    }
    let mut table = Table::new(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]);
    for r in rows {
        table.row(r.to_vec());
    }
    table.render()
}

fn name(s: &Service) -> String {
    s.spec
        .as_ref()
        .and_then(|sp| sp.name.clone())
        .unwrap_or_default()
}

fn mode(s: &Service) -> String {
    let Some(m) = s.spec.as_ref().and_then(|sp| sp.mode.as_ref()) else {
        return String::new();
    };
    if m.global.is_some() {
        "global"
    } else if m.replicated.is_some() {
        "replicated"
    } else if m.replicated_job.is_some() {
        "replicated job"
    } else if m.global_job.is_some() {
        "global job"
    } else {
        ""
    }
    .to_string()
}

/// `3/3`, `0/3 (max 2 per node)`, jobs with their completions.
pub fn replicas(s: &Service) -> String {
    let st = s.service_status.clone().unwrap_or_default();
    let (running, desired, completed) = (
        st.running_tasks.unwrap_or(0),
        st.desired_tasks.unwrap_or(0),
        st.completed_tasks.unwrap_or(0),
    );
    let spec = s.spec.clone().unwrap_or_default();
    let m = spec.mode.clone().unwrap_or_default();
    if let Some(j) = &m.replicated_job {
        return format!(
            "{running}/{desired} ({completed}/{} completed)",
            j.total_completions.unwrap_or(0)
        );
    }
    if m.global_job.is_some() {
        return format!(
            "{running}/{desired} ({completed}/{} completed)",
            desired + completed
        );
    }
    let max = spec
        .task_template
        .as_ref()
        .and_then(|t| t.placement.as_ref())
        .and_then(|p| p.max_replicas)
        .unwrap_or(0);
    if m.replicated.is_some() && max > 0 {
        return format!("{running}/{desired} (max {max} per node)");
    }
    format!("{running}/{desired}")
}

fn image(s: &Service) -> String {
    let image = s
        .spec
        .as_ref()
        .and_then(|sp| sp.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    imageref::display(&image)
}

/// docker's ingress port ranges: `*:80-81->80-81/tcp, *:8080->80/udp`.
pub fn ports(mut list: Vec<EndpointPortConfig>) -> String {
    let proto = |p: &EndpointPortConfig| p.protocol.map(|x| x.to_string()).unwrap_or_default();
    list.sort_by(|a, b| {
        proto(a).cmp(&proto(b)).then(
            a.published_port
                .unwrap_or(0)
                .cmp(&b.published_port.unwrap_or(0)),
        )
    });
    struct Range {
        p: (i64, i64),
        t: (i64, i64),
        proto: String,
    }
    let show = |r: &Range| {
        let side = |(a, b): (i64, i64)| {
            if b > a {
                format!("{a}-{b}")
            } else {
                a.to_string()
            }
        };
        format!("*:{}->{}/{}", side(r.p), side(r.t), r.proto)
    };
    let mut out = Vec::new();
    let mut cur = Range {
        p: (0, 0),
        t: (0, 0),
        proto: String::new(),
    };
    // Go compares these as uint32: a port below the current range wraps to a large gap.
    let gap = |a: i64, b: i64| (a as u32).wrapping_sub(b as u32) > 1;
    for p in &list {
        if p.publish_mode != Some(EndpointPortConfigPublishModeEnum::INGRESS) {
            continue;
        }
        let (published, target) = (p.published_port.unwrap_or(0), p.target_port.unwrap_or(0));
        let is_range = cur.t.1 != cur.t.0;
        let overlaps = target <= cur.t.1;
        if proto(p) != cur.proto
            || gap(published, cur.p.1)
            || gap(target, cur.t.1)
            || (is_range && overlaps)
        {
            if cur.p.0 > 0 {
                out.push(show(&cur));
            }
            cur = Range {
                p: (published, published),
                t: (target, target),
                proto: proto(p),
            };
            continue;
        }
        cur.p.1 = published;
        cur.t.1 = target;
    }
    if cur.p.0 > 0 {
        out.push(show(&cur));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: &str) -> Service {
        serde_json::from_str(json).expect("valid service")
    }

    #[test]
    fn table_matches_docker() {
        let services = vec![
            svc(
                r#"{"ID":"o1na3s1s76cga4717peya4f45","Spec":{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"bb:latest@sha256:aa5e95a6ad90705f62e08600288bcc2e72a460c3602d90e27addab85a252c675"},"Placement":{"MaxReplicas":2}},"Mode":{"Replicated":{"Replicas":3}}},"ServiceStatus":{"RunningTasks":0,"DesiredTasks":3}}"#,
            ),
            svc(
                r#"{"ID":"z7455svtw0xnc5m3g036t0a9n","Spec":{"Name":"ep","TaskTemplate":{"ContainerSpec":{"Image":"bb:latest"}},"Mode":{"Replicated":{"Replicas":1}}},"ServiceStatus":{"RunningTasks":1,"DesiredTasks":1}}"#,
            ),
            svc(
                r#"{"ID":"nxjosg432mmpwot0pa52crwow","Spec":{"Name":"glob","TaskTemplate":{"ContainerSpec":{"Image":"bb:latest"}},"Mode":{"Global":{}}},"Endpoint":{"Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}]},"ServiceStatus":{"RunningTasks":1,"DesiredTasks":1}}"#,
            ),
        ];
        let expected = "\
ID             NAME      MODE         REPLICAS               IMAGE       PORTS
z7455svtw0xn   ep        replicated   1/1                    bb:latest   
nxjosg432mmp   glob      global       1/1                    bb:latest   *:8080->80/tcp
o1na3s1s76cg   web       replicated   0/3 (max 2 per node)   bb:latest   
";
        assert_eq!(render(services.clone(), false, ListFormat::Table), expected);
        assert_eq!(
            render(services.clone(), true, ListFormat::Table),
            "z7455svtw0xn\nnxjosg432mmp\no1na3s1s76cg\n"
        );
        let json = render(services, false, ListFormat::Json);
        assert_eq!(
            json.lines().next(),
            Some(
                r#"{"ID":"z7455svtw0xn","Image":"bb:latest","Mode":"replicated","Name":"ep","Ports":"","Replicas":"1/1"}"#
            )
        );
    }

    #[test]
    fn job_replicas() {
        let s = svc(
            r#"{"Spec":{"Mode":{"ReplicatedJob":{"MaxConcurrent":2,"TotalCompletions":5}}},"ServiceStatus":{"RunningTasks":2,"DesiredTasks":2,"CompletedTasks":1}}"#,
        );
        assert_eq!(replicas(&s), "2/2 (1/5 completed)");
        let s = svc(
            r#"{"Spec":{"Mode":{"GlobalJob":{}}},"ServiceStatus":{"RunningTasks":1,"DesiredTasks":1,"CompletedTasks":2}}"#,
        );
        assert_eq!(replicas(&s), "1/1 (2/3 completed)");
    }

    #[test]
    fn port_ranges_group_like_docker() {
        let p = |published: i64, target: i64, proto: &str| -> EndpointPortConfig {
            serde_json::from_value(serde_json::json!({"Protocol": proto, "PublishedPort": published, "TargetPort": target, "PublishMode": "ingress"}))
                .expect("valid port")
        };
        assert_eq!(
            ports(vec![p(80, 80, "tcp"), p(81, 81, "tcp")]),
            "*:80-81->80-81/tcp"
        );
        assert_eq!(
            ports(vec![p(80, 80, "tcp"), p(81, 81, "tcp"), p(82, 80, "tcp")]),
            "*:80-81->80-81/tcp, *:82->80/tcp"
        );
        assert_eq!(
            ports(vec![p(53, 53, "udp"), p(8080, 80, "tcp")]),
            "*:8080->80/tcp, *:53->53/udp"
        );
        let host: EndpointPortConfig = serde_json::from_value(
            serde_json::json!({"Protocol": "tcp", "PublishedPort": 9000, "TargetPort": 9000, "PublishMode": "host"}),
        )
        .expect("valid port");
        assert_eq!(ports(vec![host]), "");
    }
}
