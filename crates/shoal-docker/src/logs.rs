//! A container's log as [`LogLine`]s. Docker is asked for timestamps so each line keeps its own
//! time; `since` is applied again here because the API only takes whole seconds.

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use shoal_runtime::{LogLine, LogOptions, LogStream, LogStreamKind, RuntimeError};
use shoal_types::Timestamp;

use crate::{api_err, parse_time};

/// Splits Docker's `<RFC 3339 time> <line>` into its parts; a line without a time keeps all of
/// its bytes and gets no time.
pub fn split_timestamp(entry: &[u8]) -> (Timestamp, Bytes) {
    if let Some(sp) = entry.iter().position(|&b| b == b' ')
        && let Ok(t) = std::str::from_utf8(&entry[..sp])
    {
        let ts = parse_time(t);
        if ts != Timestamp::ZERO {
            return (ts, Bytes::copy_from_slice(&entry[sp + 1..]));
        }
    }
    (Timestamp::ZERO, Bytes::copy_from_slice(entry))
}

pub fn stream(docker: &Docker, container: &str, opts: LogOptions) -> LogStream {
    let since_secs = opts.since.unix_nanos() / 1_000_000_000;
    let since = opts.since;
    let query = LogsOptions {
        follow: opts.follow,
        stdout: opts.stdout,
        stderr: opts.stderr,
        since: i32::try_from(since_secs).unwrap_or(i32::MAX),
        until: 0,
        timestamps: true,
        tail: opts
            .tail
            .map_or_else(|| "all".to_string(), |n| n.to_string()),
    };
    let context = format!("reading the logs of container {container}");
    let frames = docker.logs(container, Some(query));
    // A TTY's output comes unframed (`Console`), in chunks that need not end at a newline:
    // those are cut into lines here; other frames are one log entry each.
    let mut console = BytesMut::new();
    let lines = frames
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .flat_map(move |frame| {
            let out: Vec<Result<LogLine, RuntimeError>> = match frame {
                Some(Ok(LogOutput::StdOut { message })) => {
                    vec![Ok(line(LogStreamKind::Stdout, &message))]
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    vec![Ok(line(LogStreamKind::Stderr, &message))]
                }
                Some(Ok(LogOutput::Console { message })) => {
                    console.extend_from_slice(&message);
                    let mut v = Vec::new();
                    while let Some(nl) = console.iter().position(|&b| b == b'\n') {
                        let entry = console.split_to(nl + 1);
                        v.push(Ok(line(LogStreamKind::Stdout, &entry)));
                    }
                    v
                }
                Some(Ok(LogOutput::StdIn { .. })) => Vec::new(),
                Some(Err(e)) => vec![Err(api_err(context.clone(), e))],
                None if console.is_empty() => Vec::new(),
                None => vec![Ok(line(LogStreamKind::Stdout, &console.split()))],
            };
            futures::stream::iter(out)
        })
        .filter(move |l| {
            let keep = match l {
                Ok(l) => l.time >= since || l.time == Timestamp::ZERO,
                Err(_) => true,
            };
            std::future::ready(keep)
        });
    lines.boxed()
}

fn line(stream: LogStreamKind, entry: &[u8]) -> LogLine {
    let (time, line) = split_timestamp(entry);
    LogLine { time, stream, line }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_lose_their_timestamp_prefix() {
        let (t, l) = split_timestamp(b"2026-11-24T17:40:00.000000001Z hello world\n");
        assert_eq!(t, Timestamp::from_unix_nanos(1_795_542_000_000_000_001));
        assert_eq!(&l[..], b"hello world\n");
        let (t, l) = split_timestamp(b"no time here\n");
        assert_eq!(t, Timestamp::ZERO);
        assert_eq!(&l[..], b"no time here\n");
    }
}
