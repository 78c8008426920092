//! The tunnel's three threads: `tx` reads the device and encrypts, `rx` receives datagrams
//! and decrypts, `timer` runs WireGuard's timers every [`TICK_MS`] and retires replaced peer
//! states. All block in `poll` when idle, on their descriptor and on the stop pipe, so stopping
//! never waits for traffic; each reads the peer table through its own [`View`].

use std::io::ErrorKind;
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::datapath::{self, BUF_LEN, Io};
use crate::peers::TICK_MS;
use crate::tunnel::{Shared, View};

/// How long a send waits for room in a full buffer before the packet is dropped.
const SEND_WAIT_MS: u16 = 100;

#[derive(PartialEq, Eq)]
enum Wake {
    Ready,
    Stop,
    Timeout,
}

/// Waits until `fd` has `events`, the tunnel stops, or `timeout` passes.
fn wait(
    shared: &Shared,
    fd: Option<BorrowedFd<'_>>,
    events: PollFlags,
    timeout: PollTimeout,
) -> Wake {
    let stop = PollFd::new(shared.stop.as_fd(), PollFlags::POLLIN);
    let mut both;
    let mut one;
    let fds: &mut [PollFd<'_>] = match fd {
        Some(fd) => {
            both = [stop, PollFd::new(fd, events)];
            &mut both
        }
        None => {
            one = [stop];
            &mut one
        }
    };
    match poll(fds, timeout) {
        Ok(0) => Wake::Timeout,
        Ok(_) if fds[0].any().unwrap_or(true) => Wake::Stop,
        Ok(_) | Err(nix::errno::Errno::EINTR) => Wake::Ready,
        Err(e) => {
            tracing::error!(device = %shared.device, error = %e, "poll failed");
            Wake::Stop
        }
    }
}

pub(crate) struct RealIo<'a> {
    pub shared: &'a Shared,
}

impl Io for RealIo<'_> {
    fn send(&mut self, datagram: &[u8], to: SocketAddrV4) -> bool {
        let socket = &self.shared.socket;
        loop {
            match socket.send_to(datagram, to) {
                Ok(_) => return true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let w = wait(
                        self.shared,
                        Some(socket.as_fd()),
                        PollFlags::POLLOUT,
                        PollTimeout::from(SEND_WAIT_MS),
                    );
                    if w != Wake::Ready {
                        return false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(device = %self.shared.device, %to, error = %e, "send failed");
                    return false;
                }
            }
        }
    }

    fn write_tun(&mut self, packet: &[u8]) -> bool {
        let dev = &self.shared.dev;
        loop {
            match dev.send(packet) {
                Ok(_) => return true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let w = wait(
                        self.shared,
                        Some(dev.as_fd()),
                        PollFlags::POLLOUT,
                        PollTimeout::from(SEND_WAIT_MS),
                    );
                    if w != Wake::Ready {
                        return false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(device = %self.shared.device, error = %e, "writing to the device failed");
                    return false;
                }
            }
        }
    }
}

/// After an unexpected error, a pause before the next try, so a broken descriptor does not
/// spin a core.
fn pause(shared: &Shared) -> bool {
    wait(shared, None, PollFlags::empty(), PollTimeout::from(100u8)) != Wake::Stop
}

pub(crate) fn tx_loop(shared: &Shared) {
    let mut view = View::new(shared);
    let mut packet = vec![0u8; BUF_LEN];
    let mut out = vec![0u8; BUF_LEN];
    let mut io = shared.io();
    while !shared.stopping.load(Ordering::Relaxed) {
        match shared.dev.recv(&mut packet) {
            Ok(n) => {
                let table = view.get(shared);
                datapath::outgoing(table, &packet[..n], &mut out, &mut io, &shared.counters);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let fd = shared.dev.as_fd();
                if wait(shared, Some(fd), PollFlags::POLLIN, PollTimeout::NONE) == Wake::Stop {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(device = %shared.device, error = %e, "reading the device failed");
                if !pause(shared) {
                    break;
                }
            }
        }
    }
}

pub(crate) fn rx_loop(shared: &Shared) {
    let mut view = View::new(shared);
    let mut datagram = vec![0u8; BUF_LEN];
    let mut out = vec![0u8; BUF_LEN];
    let mut io = shared.io();
    while !shared.stopping.load(Ordering::Relaxed) {
        match shared.socket.recv_from(&mut datagram) {
            Ok((n, from)) => {
                let tick = shared.tick.load(Ordering::Relaxed);
                let table = view.get(shared);
                datapath::incoming(
                    table,
                    &datagram[..n],
                    from,
                    &mut out,
                    &mut io,
                    &shared.counters,
                    tick,
                );
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let fd = shared.socket.as_fd();
                if wait(shared, Some(fd), PollFlags::POLLIN, PollTimeout::NONE) == Wake::Stop {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                // ICMP errors for earlier sends surface here (ECONNREFUSED and the like).
                tracing::debug!(device = %shared.device, error = %e, "receive failed");
                if !pause(shared) {
                    break;
                }
            }
        }
    }
}

pub(crate) fn timer_loop(shared: &Shared) {
    let mut view = View::new(shared);
    let mut out = vec![0u8; BUF_LEN];
    let mut io = shared.io();
    let tick_ms = PollTimeout::from(TICK_MS as u16);
    while !shared.stopping.load(Ordering::Relaxed) {
        if wait(shared, None, PollFlags::empty(), tick_ms) == Wake::Stop {
            break;
        }
        let tick = shared.tick.fetch_add(1, Ordering::Relaxed) + 1;
        let table = view.get(shared);
        datapath::on_tick(table, &mut out, &mut io, &shared.counters);
        if table.has_retiring() {
            let _ctl = shared.control.lock();
            let latest = shared.table.read().clone();
            if let Some(next) = latest.without_retired(tick) {
                shared.publish(next);
            }
        }
    }
}
