//! A fake process's standard streams: its input (nothing, an exec's read up front, or what
//! attached clients write as they write it) and what a terminal makes of its output.

use bytes::Bytes;

/// A process's standard input.
pub(super) enum Input {
    /// Nothing (`/dev/null`).
    Empty,
    /// All of it, known before the process runs (an exec's, read to its end first).
    Known(Bytes),
    /// What attached clients write, as they write it (a task with `open_stdin`); it ends when
    /// the sender is gone.
    Live {
        rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
        buf: Vec<u8>,
    },
}

impl Input {
    /// Everything up to the end of input.
    pub(super) async fn read_all(&mut self) -> Vec<u8> {
        match self {
            Input::Empty => Vec::new(),
            Input::Known(b) => std::mem::take(b).to_vec(),
            Input::Live { rx, buf } => {
                let mut out = std::mem::take(buf);
                while let Some(chunk) = rx.recv().await {
                    out.extend_from_slice(&chunk);
                }
                out
            }
        }
    }

    /// One line (without its newline); `None` at the end of input with nothing before it.
    pub(super) async fn read_line(&mut self) -> Option<Vec<u8>> {
        let (buf, rx) = match self {
            Input::Empty => return None,
            Input::Known(b) => {
                let at = b.iter().position(|c| *c == b'\n');
                let line = match at {
                    Some(i) => {
                        let l = b.split_to(i + 1);
                        l[..i].to_vec()
                    }
                    None if b.is_empty() => return None,
                    None => std::mem::take(b).to_vec(),
                };
                return Some(line);
            }
            Input::Live { rx, buf } => (buf, rx),
        };
        loop {
            if let Some(i) = buf.iter().position(|c| *c == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                return Some(line[..i].to_vec());
            }
            match rx.recv().await {
                Some(chunk) => buf.extend_from_slice(&chunk),
                None if buf.is_empty() => return None,
                None => return Some(std::mem::take(buf)),
            }
        }
    }
}

/// `bytes` as a terminal writes them: `\n` as `\r\n`.
pub(super) fn on_terminal(bytes: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(bytes.len());
    for b in bytes {
        if *b == b'\n' {
            v.push(b'\r');
        }
        v.push(*b);
    }
    Bytes::from(v)
}
