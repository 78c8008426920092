//! The task log format and its writer. One JSON object per line:
//! `{"time":<unix nanos>,"stream":"stdout"|"stderr","line":"<text with its newline>"}`.
//! The shim is the only writer of a task's log (single-threaded, blocking IO); readers
//! (`logread`) only ever read, and tolerate a torn last line and a rotation under them.
//!
//! Rotation: once the file would pass its size limit it is renamed to `log.json.1` (replacing the
//! older one) and a fresh `log.json` is started, so a task keeps at most two files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use shoal_types::Timestamp;

use shoal_runtime::{LogLine, LogStreamKind};

/// Lines longer than this are cut into pieces (as Docker's 16 KiB buffer does), so one endless
/// line never holds the shim's memory or a reader's follow hostage.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// Default size past which the log rotates.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(serde::Serialize, serde::Deserialize)]
struct Record<'a> {
    time: i64,
    stream: LogStreamKind,
    #[serde(borrow)]
    line: std::borrow::Cow<'a, str>,
}

/// Encodes one record, newline-terminated. Output that is not UTF-8 is stored with replacement
/// characters, as Docker's json-file driver does.
pub(crate) fn encode(time: Timestamp, stream: LogStreamKind, line: &[u8]) -> Vec<u8> {
    let rec = Record {
        time: time.unix_nanos(),
        stream,
        line: String::from_utf8_lossy(line),
    };
    // Serialising a struct of an integer, an enum and a string cannot fail.
    let mut out = serde_json::to_vec(&rec).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Decodes one line of the file (without its trailing newline); `None` for a torn or foreign line.
pub(crate) fn decode(raw: &[u8]) -> Option<LogLine> {
    let rec: Record<'_> = serde_json::from_slice(raw).ok()?;
    Some(LogLine {
        time: Timestamp::from_unix_nanos(rec.time),
        stream: rec.stream,
        line: Bytes::from(rec.line.into_owned()),
    })
}

/// Cuts a byte stream into lines (each keeping its `\n`), at most [`MAX_LINE`] bytes each.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit` for every complete (or over-long) line.
    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = MAX_LINE - self.pending.len();
            let window = &data[..data.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&window[..=i]);
                    emit(&self.pending);
                    self.pending.clear();
                    data = &data[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(window);
                    data = &data[window.len()..];
                    if self.pending.len() >= MAX_LINE {
                        emit(&self.pending);
                        self.pending.clear();
                    }
                }
            }
        }
    }

    /// Emits what is left (a last line without a newline) at end of stream.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// Appends records to a task's log, rotating by size.
#[derive(Debug)]
pub(crate) struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

pub(crate) fn rotated_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl LogWriter {
    pub fn open(path: &Path, max: u64) -> std::io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max: max.max(1),
        })
    }

    pub fn write(
        &mut self,
        time: Timestamp,
        stream: LogStreamKind,
        line: &[u8],
    ) -> std::io::Result<()> {
        let rec = encode(time, stream, line);
        if self.size > 0 && self.size + rec.len() as u64 > self.max {
            std::fs::rename(&self.path, rotated_path(&self.path))?;
            self.file = open_append(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(&rec)?;
        self.size += rec.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_newlines_and_bad_utf8() {
        let enc = encode(Timestamp(42), LogStreamKind::Stderr, b"hi \"there\"\n");
        assert_eq!(enc.last(), Some(&b'\n'));
        let dec = decode(&enc[..enc.len() - 1]).expect("decodes");
        assert_eq!(dec.time, Timestamp(42));
        assert_eq!(dec.stream, LogStreamKind::Stderr);
        assert_eq!(&dec.line[..], b"hi \"there\"\n");
        let bad = encode(Timestamp(1), LogStreamKind::Stdout, b"a\xffb");
        assert_eq!(
            &decode(&bad[..bad.len() - 1]).expect("decodes").line[..],
            "a\u{fffd}b".as_bytes()
        );
        assert_eq!(decode(b"{\"time\":1,\"stream\":\"stdo"), None);
        assert_eq!(decode(b"not json"), None);
    }

    #[test]
    fn splitter_cuts_lines_and_long_runs() {
        let mut s = LineSplitter::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        s.push(b"one\ntw", |l| out.push(l.to_vec()));
        s.push(b"o\n\nthree", |l| out.push(l.to_vec()));
        assert_eq!(
            out,
            vec![b"one\n".to_vec(), b"two\n".to_vec(), b"\n".to_vec()]
        );
        s.finish(|l| out.push(l.to_vec()));
        assert_eq!(out.last().map(Vec::as_slice), Some(&b"three"[..]));

        let mut out: Vec<Vec<u8>> = Vec::new();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        s.push(&long, |l| out.push(l.to_vec()));
        s.push(b"\n", |l| out.push(l.to_vec()));
        assert_eq!(
            out.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_LINE, MAX_LINE, 11]
        );
    }

    #[test]
    fn writer_rotates_keeping_one_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.json");
        let mut w = LogWriter::open(&path, 200).expect("open");
        for i in 0..20 {
            w.write(
                Timestamp(i),
                LogStreamKind::Stdout,
                format!("line {i}\n").as_bytes(),
            )
            .expect("write");
        }
        let cur = std::fs::metadata(&path).expect("current").len();
        let old = std::fs::metadata(rotated_path(&path))
            .expect("rotated")
            .len();
        assert!(cur <= 200 && old <= 200, "{cur} {old}");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("line 19"), "{text}");
        assert!(!dir.path().join("log.json.1.1").exists());
    }
}
