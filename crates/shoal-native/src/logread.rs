//! Reading a task's log files (`logs`): stream selection, `since`, `tail`, and `follow`.
//!
//! Concurrency: the shim appends and rotates while readers read. A reader holds the current file
//! open, reads only complete lines (a torn last line waits for its newline), and notices a
//! rotation by the path's inode changing; it then finishes the old handle before switching, so no
//! line is lost or read twice. Following polls every 100 ms on a blocking thread and ends once
//! `exit.json` exists and the file is drained, or as soon as the consumer goes away.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::layout::{EXIT, LOG, TaskDir};
use super::logs::{decode, rotated_path};
use shoal_runtime::{LogLine, LogOptions, LogStream, LogStreamKind, RuntimeError};

const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Whether a line passes the stream and `since` filters. Asking for neither stream means both
/// (the API layer rejects that case for Docker clients; here it is the lenient reading).
pub(crate) fn wanted(line: &LogLine, opts: &LogOptions) -> bool {
    let stream_ok = match line.stream {
        _ if !opts.stdout && !opts.stderr => true,
        LogStreamKind::Stdout => opts.stdout,
        LogStreamKind::Stderr => opts.stderr,
    };
    stream_ok && (opts.since.is_zero() || line.time >= opts.since)
}

/// Applies the filters, then keeps the last `tail` lines.
pub(crate) fn select(lines: Vec<LogLine>, opts: &LogOptions) -> Vec<LogLine> {
    let mut kept: Vec<LogLine> = lines.into_iter().filter(|l| wanted(l, opts)).collect();
    if let Some(n) = opts.tail {
        let drop = kept.len().saturating_sub(n);
        kept.drain(..drop);
    }
    kept
}

/// Splits complete lines off `buf` (leaving a torn tail in it) and decodes them.
fn drain_complete(buf: &mut Vec<u8>, out: &mut Vec<LogLine>) {
    let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
        return;
    };
    for raw in buf[..last_nl].split(|&b| b == b'\n') {
        if let Some(l) = decode(raw) {
            out.push(l);
        }
    }
    buf.drain(..=last_nl);
}

/// An open log file being read forward.
struct Cursor {
    path: PathBuf,
    file: Option<(File, u64)>,
    pending: Vec<u8>,
}

impl Cursor {
    fn new(path: PathBuf) -> Self {
        Cursor {
            path,
            file: None,
            pending: Vec::new(),
        }
    }

    /// Opens the file if it exists and is not open yet.
    fn open(&mut self) -> std::io::Result<()> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => {
                    let ino = f.metadata()?.ino();
                    self.file = Some((f, ino));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn ino(&self) -> Option<u64> {
        self.file.as_ref().map(|(_, ino)| *ino)
    }

    /// Reads every complete line appended since the last call, following one rotation.
    fn read_new(&mut self, out: &mut Vec<LogLine>) -> std::io::Result<()> {
        self.open()?;
        self.read_handle(out)?;
        let current_ino = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if self.file.is_some() && current_ino != self.ino() {
            // Rotated (or removed): finish the old file, whose writer has moved on, then start
            // on the new one from its beginning.
            self.read_handle(out)?;
            self.pending.clear();
            self.file = None;
            if current_ino.is_some() {
                self.open()?;
                self.read_handle(out)?;
            }
        }
        Ok(())
    }

    fn read_handle(&mut self, out: &mut Vec<LogLine>) -> std::io::Result<()> {
        if let Some((f, _)) = &mut self.file {
            f.read_to_end(&mut self.pending)?;
            drain_complete(&mut self.pending, out);
        }
        Ok(())
    }
}

fn io_err(context: &str, dir: &TaskDir, source: std::io::Error) -> RuntimeError {
    RuntimeError::Io {
        context: format!("{context} {}", dir.path().display()),
        source,
    }
}

/// Reads the history (old file, then current) and returns the selected lines plus the cursor
/// positioned after them, for following.
fn history(dir: &TaskDir, opts: &LogOptions) -> Result<(Vec<LogLine>, Cursor), RuntimeError> {
    let err = |e| io_err("reading log", dir, e);
    let current = dir.file(LOG);
    let mut cursor = Cursor::new(current.clone());
    // Hold the current file before looking at the old one. If the old file turns out to be the
    // one just held, a rotation happened in between and the held handle covers it; if a rotation
    // happens later, both handles stay readable. Either way no line is read twice or skipped.
    cursor.open().map_err(err)?;
    let mut lines = Vec::new();
    match File::open(rotated_path(&current)) {
        Ok(mut old) => {
            let ino = old.metadata().map_err(err)?.ino();
            if Some(ino) != cursor.ino() {
                let mut buf = Vec::new();
                old.read_to_end(&mut buf).map_err(err)?;
                drain_complete(&mut buf, &mut lines);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    cursor.read_new(&mut lines).map_err(err)?;
    Ok((select(lines, opts), cursor))
}

fn follow_blocking(
    dir: TaskDir,
    opts: LogOptions,
    mut cursor: Cursor,
    tx: mpsc::Sender<Result<LogLine, RuntimeError>>,
) {
    let exit_path = dir.file(EXIT);
    loop {
        if tx.is_closed() {
            return;
        }
        // Checked before reading: everything the shim wrote before `exit.json` is then read.
        let exited = exit_path.exists();
        let mut batch = Vec::new();
        if let Err(e) = cursor.read_new(&mut batch) {
            let _ = tx.blocking_send(Err(io_err("following log", &dir, e)));
            return;
        }
        for l in batch.into_iter().filter(|l| wanted(l, &opts)) {
            if tx.blocking_send(Ok(l)).is_err() {
                return;
            }
        }
        if exited || !dir.path().exists() {
            return;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// The task's log as a stream (see the module docs for `follow`).
pub(crate) fn stream(dir: TaskDir, opts: LogOptions) -> Result<LogStream, RuntimeError> {
    let (lines, cursor) = history(&dir, &opts)?;
    let initial = futures::stream::iter(lines.into_iter().map(Ok));
    if !opts.follow {
        return Ok(initial.boxed());
    }
    let (tx, rx) = mpsc::channel(256);
    tokio::task::spawn_blocking(move || follow_blocking(dir, opts, cursor, tx));
    Ok(initial
        .chain(tokio_stream::wrappers::ReceiverStream::new(rx))
        .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogWriter;
    use bytes::Bytes;
    use shoal_types::Timestamp;

    fn line(t: i64, stream: LogStreamKind, s: &str) -> LogLine {
        LogLine {
            time: Timestamp(t),
            stream,
            line: Bytes::from(s.to_owned()),
        }
    }

    fn opts() -> LogOptions {
        LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }
    }

    #[test]
    fn selects_streams_since_and_tail() {
        let all = vec![
            line(10, LogStreamKind::Stdout, "a\n"),
            line(20, LogStreamKind::Stderr, "b\n"),
            line(30, LogStreamKind::Stdout, "c\n"),
            line(40, LogStreamKind::Stdout, "d\n"),
        ];
        let texts = |v: Vec<LogLine>| {
            v.iter()
                .map(|l| String::from_utf8_lossy(&l.line).into_owned())
                .collect::<String>()
        };
        assert_eq!(texts(select(all.clone(), &opts())), "a\nb\nc\nd\n");
        assert_eq!(
            texts(select(
                all.clone(),
                &LogOptions {
                    stderr: false,
                    ..opts()
                }
            )),
            "a\nc\nd\n"
        );
        assert_eq!(
            texts(select(
                all.clone(),
                &LogOptions {
                    stdout: false,
                    ..opts()
                }
            )),
            "b\n"
        );
        assert_eq!(
            texts(select(all.clone(), &LogOptions::default())),
            "a\nb\nc\nd\n"
        );
        assert_eq!(
            texts(select(
                all.clone(),
                &LogOptions {
                    since: Timestamp(20),
                    ..opts()
                }
            )),
            "b\nc\nd\n"
        );
        assert_eq!(
            texts(select(
                all.clone(),
                &LogOptions {
                    tail: Some(2),
                    ..opts()
                }
            )),
            "c\nd\n"
        );
        assert_eq!(
            texts(select(
                all.clone(),
                &LogOptions {
                    tail: Some(0),
                    ..opts()
                }
            )),
            ""
        );
        assert_eq!(
            texts(select(
                all.clone(),
                &LogOptions {
                    tail: Some(9),
                    ..opts()
                }
            )),
            "a\nb\nc\nd\n"
        );
        let both = LogOptions {
            tail: Some(1),
            since: Timestamp(15),
            stderr: false,
            ..opts()
        };
        assert_eq!(texts(select(all, &both)), "d\n");
    }

    #[test]
    fn torn_last_line_waits_for_its_newline() {
        let mut buf =
            b"{\"time\":1,\"stream\":\"stdout\",\"line\":\"x\\n\"}\n{\"time\":2,".to_vec();
        let mut out = Vec::new();
        drain_complete(&mut buf, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(buf, b"{\"time\":2,".to_vec());
    }

    #[tokio::test]
    async fn reads_across_rotation_and_follows_until_exit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = TaskDir::from_path(tmp.path().to_path_buf());
        let mut w = LogWriter::open(&dir.file(LOG), 300).expect("open");
        for i in 0..10 {
            w.write(
                Timestamp(i),
                LogStreamKind::Stdout,
                format!("l{i}\n").as_bytes(),
            )
            .expect("write");
        }
        // History spans both files, oldest first, ending with the newest line.
        let got: Vec<_> = stream(dir.clone(), opts()).expect("stream").collect().await;
        let texts: Vec<String> = got
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l.expect("line").line).into_owned())
            .collect();
        assert_eq!(texts.last().map(String::as_str), Some("l9\n"));
        assert!(
            texts
                .windows(2)
                .all(|w| w[0] < w[1] || w[0].len() < w[1].len()),
            "{texts:?}"
        );

        let mut s = stream(
            dir.clone(),
            LogOptions {
                follow: true,
                tail: Some(1),
                ..opts()
            },
        )
        .expect("follow");
        let first = s.next().await.expect("one").expect("ok");
        assert_eq!(&first.line[..], b"l9\n");
        // Each line is read before the next is written, so the reader sees every rotation (a
        // reader more than a whole file behind loses lines, as with Docker's json-file).
        for i in 10..20 {
            w.write(
                Timestamp(i),
                LogStreamKind::Stdout,
                format!("l{i}\n").as_bytes(),
            )
            .expect("write");
            let got = tokio::time::timeout(Duration::from_secs(10), s.next())
                .await
                .expect("line in time");
            assert_eq!(
                got.expect("some").expect("ok").line,
                Bytes::from(format!("l{i}\n"))
            );
        }
        std::fs::write(dir.file(EXIT), b"{}").expect("exit marker");
        let rest = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("follow ends after exit");
        assert!(rest.is_none());
    }
}
