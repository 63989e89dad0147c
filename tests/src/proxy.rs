//! A TCP proxy on a free loopback port that injects one network fault
//! between a client and a real server: drop the connection once after N
//! bytes in one direction, or flip one byte of every server response stream
//! at offset N. Plain threads, no HTTP parsing: faults land wherever the
//! byte count says, which in our tests is inside a multi-megabyte blob.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (uploads).
    Up,
    /// Server to client (downloads).
    Down,
}

/// The fault to inject.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Close the first connection that moves more than `after` bytes in
    /// `direction`; later connections pass untouched.
    DropOnce {
        /// Direction counted.
        direction: Direction,
        /// Bytes before the drop.
        after: u64,
    },
    /// Invert one byte at offset `at` of every server-to-client stream.
    FlipByte {
        /// Offset in the connection's response bytes.
        at: u64,
    },
}

/// A running proxy; stops accepting on drop.
pub struct FaultProxy {
    port: u16,
    fired: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free port and forwards to `upstream` (`host:port`).
    pub fn start(upstream: &str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let fired = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let dropped_once = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let (f2, s2) = (fired.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for (dir, from, to) in [
                    (
                        Direction::Up,
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                    ),
                    (Direction::Down, server, client),
                ] {
                    let (fired, dropped_once) = (f2.clone(), dropped_once.clone());
                    std::thread::spawn(move || pump(dir, from, to, fault, &fired, &dropped_once));
                }
            }
        });
        FaultProxy { port, fired, stop }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many times the fault was injected.
    pub fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(
    dir: Direction,
    mut from: TcpStream,
    mut to: TcpStream,
    fault: Fault,
    fired: &AtomicUsize,
    dropped_once: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let start = seen;
        seen += n as u64;
        match fault {
            Fault::DropOnce { direction, after }
                if direction == dir
                    && seen > after
                    && !dropped_once.swap(true, Ordering::SeqCst) =>
            {
                // Forward up to the cut, then kill both sides.
                let keep = (after.saturating_sub(start)) as usize;
                let _ = to.write_all(&buf[..keep.min(n)]);
                fired.fetch_add(1, Ordering::SeqCst);
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
            Fault::FlipByte { at } if dir == Direction::Down && start <= at && at < seen => {
                buf[(at - start) as usize] ^= 0xff;
                fired.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
