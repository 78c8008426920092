//! `service logs`: the multiplexed log stream (8-byte frame headers, frames split anywhere across
//! reads), the `com.docker.swarm.*` details docker prefixes each line with, and docker's
//! `web.1.abcdef123456@node    | line` context, with task and node names resolved once and cached.

use std::collections::HashMap;
use std::io::Write;

use bollard_stubs::models::{Service, Task};
use http_body_util::BodyExt;

use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::format::truncate_id;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")
    #[arg(long)]
    pub since: Option<String>,
    /// Do not neatly format logs
    #[arg(long)]
    pub raw: bool,
    /// Do not include task IDs in output
    #[arg(long)]
    pub no_task_ids: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Do not map IDs to Names in output
    #[arg(long)]
    pub no_resolve: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    #[arg(value_name = "SERVICE|TASK")]
    pub target: String,
}

/// One frame of the multiplexed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 0 stdin, 1 stdout, 2 stderr, 3 a daemon-side error.
    pub stream: u8,
    pub payload: Vec<u8>,
}

/// Reassembles frames from arbitrary chunks.
#[derive(Debug, Default)]
pub struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Frame> {
        self.buf.extend_from_slice(chunk);
        let mut frames = Vec::new();
        loop {
            if self.buf.len() < 8 {
                break;
            }
            let len =
                u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            if self.buf.len() < 8 + len {
                break;
            }
            let payload = self.buf[8..8 + len].to_vec();
            frames.push(Frame {
                stream: self.buf[0],
                payload,
            });
            self.buf.drain(..8 + len);
        }
        frames
    }

    /// Bytes left over when the stream ended (a truncated frame).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// The swarm context every formatted line carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogContext {
    pub node_id: String,
    pub service_id: String,
    pub task_id: String,
}

/// A log line split into its parts.
#[derive(Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub timestamp: Option<&'a [u8]>,
    pub context: LogContext,
    /// Details other than the swarm context, as `k=v`, sorted.
    pub extra: Vec<String>,
    pub message: &'a [u8],
}

fn unescape(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => {
                        return Err(CliError::Failed(format!(
                            "invalid URL escape in log details: {s}"
                        )));
                    }
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Splits `[timestamp ]details message` as docker's log writer does.
pub fn parse_line(payload: &[u8], timestamps: bool) -> Result<LogLine<'_>> {
    let parts = if timestamps { 3 } else { 2 };
    let split: Vec<&[u8]> = payload.splitn(parts, |b| *b == b' ').collect();
    if split.len() != parts {
        return Err(CliError::Failed(format!(
            "invalid context in log message: {}",
            String::from_utf8_lossy(payload)
        )));
    }
    let (timestamp, details, message) = if timestamps {
        (Some(split[0]), split[1], split[2])
    } else {
        (None, split[0], split[1])
    };
    let details = String::from_utf8_lossy(details);
    let mut map = std::collections::BTreeMap::new();
    for pair in details.split(',') {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                map.insert(unescape(k)?, unescape(v)?);
            }
            _ => return Err(CliError::Failed("invalid details format".into())),
        }
    }
    let mut take = |key: &str, what: &str| {
        map.remove(key)
            .ok_or_else(|| CliError::Failed(format!("missing {what} id in details: {details}")))
    };
    let context = LogContext {
        node_id: take("com.docker.swarm.node.id", "node")?,
        service_id: take("com.docker.swarm.service.id", "service")?,
        task_id: take("com.docker.swarm.task.id", "task")?,
    };
    let extra = map.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(LogLine {
        timestamp,
        context,
        extra,
        message,
    })
}

/// How a context is shown: `name.slot.taskid@node` padded to the widest slot number.
pub fn context_label(
    service: &str,
    slot: i64,
    task_id: &str,
    node: &str,
    no_task_ids: bool,
    no_trunc: bool,
    width: usize,
) -> String {
    let mut name = format!("{service}.{slot}");
    if !no_task_ids {
        name.push('.');
        name.push_str(if no_trunc {
            task_id
        } else {
            truncate_id(task_id)
        });
    }
    let pad = width.saturating_sub(slot.to_string().len());
    format!("{name}@{node}{}", " ".repeat(pad))
}

/// Formats lines, resolving names through the API once per context.
pub struct Formatter<'c> {
    client: &'c Client,
    args: &'c LogsArgs,
    width: usize,
    cache: HashMap<LogContext, String>,
    names: HashMap<String, String>,
}

impl<'c> Formatter<'c> {
    pub fn new(client: &'c Client, args: &'c LogsArgs, width: usize) -> Formatter<'c> {
        Formatter {
            client,
            args,
            width,
            cache: HashMap::new(),
            names: HashMap::new(),
        }
    }

    async fn name(&mut self, kind: &str, id: &str) -> String {
        let key = format!("{kind}/{id}");
        if let Some(n) = self.names.get(&key) {
            return n.clone();
        }
        let name = if self.args.no_resolve {
            id.to_string()
        } else if kind == "nodes" {
            super::ps::resolve_node(self.client, id).await
        } else {
            match self
                .client
                .get::<Service>(&format!("/services/{}", path_escape(id, false)), &[])
                .await
            {
                Ok(s) => s
                    .spec
                    .and_then(|sp| sp.name)
                    .unwrap_or_else(|| id.to_string()),
                Err(_) => id.to_string(),
            }
        };
        self.names.insert(key, name.clone());
        name
    }

    async fn label(&mut self, ctx: &LogContext) -> Result<String> {
        if let Some(l) = self.cache.get(ctx) {
            return Ok(l.clone());
        }
        let node = self.name("nodes", &ctx.node_id).await;
        let service = self.name("services", &ctx.service_id).await;
        let task: Task = self
            .client
            .get(&format!("/tasks/{}", path_escape(&ctx.task_id, false)), &[])
            .await?;
        let slot = task.slot.unwrap_or(0);
        let id = task.id.unwrap_or_else(|| ctx.task_id.clone());
        let label = context_label(
            &service,
            slot,
            &id,
            &node,
            self.args.no_task_ids,
            self.args.no_trunc,
            self.width,
        );
        self.cache.insert(ctx.clone(), label.clone());
        Ok(label)
    }

    /// The formatted line for one frame's payload.
    pub async fn format(&mut self, payload: &[u8]) -> Result<Vec<u8>> {
        let line = parse_line(payload, self.args.timestamps)?;
        let mut out = Vec::with_capacity(payload.len() + 48);
        if let Some(ts) = line.timestamp {
            out.extend_from_slice(ts);
            out.push(b' ');
        }
        out.extend_from_slice(self.label(&line.context).await?.as_bytes());
        out.extend_from_slice(b"    | ");
        if self.args.details {
            out.extend_from_slice(line.extra.join(",").as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(line.message);
        Ok(out)
    }
}

pub async fn run(client: &Client, args: LogsArgs) -> Result<()> {
    let target = path_escape(&args.target, false);
    let (path, tty, width) = match client
        .get::<Service>(&format!("/services/{target}"), &[])
        .await
    {
        Ok(s) => {
            let spec = s.spec.unwrap_or_default();
            let tty = spec
                .task_template
                .and_then(|t| t.container_spec)
                .and_then(|c| c.tty)
                .unwrap_or(false);
            let width = spec
                .mode
                .and_then(|m| m.replicated)
                .and_then(|r| r.replicas)
                .map(|r| r.to_string().len())
                .unwrap_or(1);
            (format!("/services/{target}/logs"), tty, width)
        }
        Err(e) if e.is_not_found() => {
            match client.get::<Task>(&format!("/tasks/{target}"), &[]).await {
                Ok(t) => {
                    let tty = t
                        .spec
                        .and_then(|s| s.container_spec)
                        .and_then(|c| c.tty)
                        .unwrap_or(false);
                    (
                        format!("/tasks/{target}/logs"),
                        tty,
                        t.slot.unwrap_or(0).to_string().len(),
                    )
                }
                Err(e) if e.is_not_found() => {
                    return Err(CliError::Failed(format!(
                        "no such task or service: {}",
                        args.target
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if tty && !args.raw {
        return Err(CliError::Failed(
            "tty service logs only supported with --raw".into(),
        ));
    }
    let mut query = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
        ("tail", args.tail.clone()),
    ];
    if args.details || !args.raw {
        query.push(("details", "1".to_string()));
    }
    if args.follow {
        query.push(("follow", "1".to_string()));
    }
    if args.timestamps {
        query.push(("timestamps", "1".to_string()));
    }
    if let Some(since) = &args.since {
        query.push(("since", since.clone()));
    }
    let resp = client.get_stream(&path, &query).await?;
    let mut body = resp.into_body();
    let mut demux = Demux::default();
    let mut formatter = Formatter::new(client, &args, width);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CliError::Http(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if tty {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&data);
            let _ = out.flush();
            continue;
        }
        for f in demux.push(&data) {
            let text = match (f.stream, args.raw) {
                (3, _) => {
                    return Err(CliError::Failed(
                        String::from_utf8_lossy(&f.payload).trim_end().to_string(),
                    ));
                }
                (_, true) => f.payload,
                (_, false) => formatter.format(&f.payload).await?,
            };
            if f.stream == 2 {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&text);
                let _ = err.flush();
            } else {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&text);
                let _ = out.flush();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    const LINE: &[u8] = b"2026-11-24T12:56:02.313394625Z com.docker.swarm.node.id=n3fvkg7m4vj2v5j6u0r6b2x8g,com.docker.swarm.service.id=p4e6sn8lps4fqgf22pbdx3abb,com.docker.swarm.task.id=iz1rcrl2y1kd8esje10aw0twr hello 5 from ea2f8b56fb3e\n";

    #[test]
    fn demux_handles_frames_split_anywhere() {
        let mut stream = frame(1, LINE);
        stream.extend(frame(2, b"x err 3\n"));
        stream.extend(frame(1, b""));
        // Feed the bytes in every possible pair of chunk sizes, including splits in the header.
        for cut in 0..stream.len() {
            let mut d = Demux::default();
            let mut frames = d.push(&stream[..cut]);
            frames.extend(d.push(&stream[cut..]));
            assert_eq!(frames.len(), 3, "cut at {cut}");
            assert_eq!(
                frames[0],
                Frame {
                    stream: 1,
                    payload: LINE.to_vec()
                }
            );
            assert_eq!(
                frames[1],
                Frame {
                    stream: 2,
                    payload: b"x err 3\n".to_vec()
                }
            );
            assert_eq!(frames[2].payload, Vec::<u8>::new());
            assert_eq!(d.pending(), 0);
        }
        let mut d = Demux::default();
        for b in &stream {
            let _ = d.push(std::slice::from_ref(b));
        }
        assert_eq!(d.pending(), 0);
        let mut d = Demux::default();
        assert!(d.push(&stream[..10]).is_empty());
        assert_eq!(d.pending(), 10);
    }

    #[test]
    fn parses_details_and_timestamps() {
        let l = parse_line(LINE, true).expect("valid line");
        assert_eq!(l.timestamp, Some(&b"2026-11-24T12:56:02.313394625Z"[..]));
        assert_eq!(l.context.node_id, "n3fvkg7m4vj2v5j6u0r6b2x8g");
        assert_eq!(l.context.service_id, "p4e6sn8lps4fqgf22pbdx3abb");
        assert_eq!(l.context.task_id, "iz1rcrl2y1kd8esje10aw0twr");
        assert_eq!(l.message, b"hello 5 from ea2f8b56fb3e\n");
        let no_ts = &LINE[31..];
        let l = parse_line(no_ts, false).expect("valid line");
        assert_eq!(l.timestamp, None);
        assert_eq!(l.message, b"hello 5 from ea2f8b56fb3e\n");
    }

    #[test]
    fn extra_details_are_unescaped_and_sorted() {
        let line = b"com.docker.swarm.task.id=t,zeta=a%2Cb,com.docker.swarm.node.id=n,alpha=x+y,com.docker.swarm.service.id=s msg";
        let l = parse_line(line, false).expect("valid line");
        assert_eq!(
            l.extra,
            vec!["alpha=x y".to_string(), "zeta=a,b".to_string()]
        );
        assert_eq!(l.message, b"msg");
    }

    #[test]
    fn refuses_lines_without_context() {
        let err = parse_line(
            b"com.docker.swarm.service.id=s,com.docker.swarm.task.id=t msg",
            false,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.starts_with("missing node id in details"), "{err}");
        assert!(parse_line(b"nospace", false).is_err());
        assert!(parse_line(b"novalue msg", false).is_err());
        assert!(parse_line(b"a=%zz msg", false).is_err());
        assert!(parse_line(b"only-two parts", true).is_err());
    }

    #[test]
    fn labels_match_docker() {
        assert_eq!(
            context_label(
                "talk",
                2,
                "iz1rcrl2y1kd8esje10aw0twr",
                "vm",
                false,
                false,
                1
            ),
            "talk.2.iz1rcrl2y1kd@vm"
        );
        assert_eq!(
            context_label("talk", 2, "iz1rcrl2y1kd8esje10aw0twr", "vm", true, false, 1),
            "talk.2@vm"
        );
        assert_eq!(
            context_label("talk", 2, "iz1rcrl2y1kd8esje10aw0twr", "vm", false, true, 2),
            "talk.2.iz1rcrl2y1kd8esje10aw0twr@vm "
        );
    }
}
