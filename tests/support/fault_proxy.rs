//! A TCP proxy between the tool and a server (the Garage of [`super::garage`]) that injects the
//! faults real users hit on the way: a connection reset partway through an upload, a link that
//! goes silent, a server answering 503 `SlowDown` or 500 `InternalError` for a while.
//!
//! A fault is set for the connections accepted after [`FaultProxy::set`], a given number of
//! times, then the proxy passes again. A client that reuses a pooled connection opened before
//! is not affected: set the fault before the command runs (each `backup` is a new process).
//! Plain blocking sockets, two threads per connection, 64 KiB buffers: uploads of hundreds of
//! MiB pass at full speed.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to the connections it accepts next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards everything both ways.
    Pass,
    /// Forwards `bytes` bytes from the client, then resets the connection (the client sees
    /// "connection reset"), on each of the next `times` connections.
    ResetAfter { bytes: u64, times: u32 },
    /// Forwards `bytes` bytes from the client, then forwards nothing more either way, reading
    /// nothing, the sockets held open until the client gives up (a dead link or a hung server),
    /// on each of the next `times` connections.
    StallAfter { bytes: u64, times: u32 },
    /// Answers the next `times` requests itself with `status` and an S3 error body of `code`
    /// (503 `SlowDown`, 500 `InternalError`, 400 `ExpiredToken`…), then closes the connection;
    /// the server never sees them.
    Respond {
        status: u16,
        code: &'static str,
        times: u32,
    },
}

/// What one accepted connection does: a [`Fault`] without its count.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Pass,
    Reset(u64),
    Stall(u64),
    Respond(u16, &'static str),
}

/// A running proxy on a loopback port of its own; it stops when dropped.
pub struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
}

/// What the accepting thread and the connections share with the test.
struct Shared {
    upstream: String,
    fault: Mutex<Fault>,
    injected: AtomicU32,
    connections: AtomicU32,
    stopped: AtomicBool,
}

/// Room for a request head; S3 clients send a few hundred bytes.
const HEAD_LIMIT: usize = 64 * 1024;

/// The buffer of each direction of a connection.
const BUFFER: usize = 64 * 1024;

impl FaultProxy {
    /// A proxy to `upstream` (`http://127.0.0.1:PORT` or `127.0.0.1:PORT`), passing everything
    /// until told otherwise.
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = FaultProxy {
            address: listener.local_addr().unwrap(),
            shared: Arc::new(Shared {
                upstream,
                fault: Mutex::new(Fault::Pass),
                injected: AtomicU32::new(0),
                connections: AtomicU32::new(0),
                stopped: AtomicBool::new(false),
            }),
        };
        let shared = proxy.shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let plan = shared.next_plan();
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(client, plan));
            }
        });
        proxy
    }

    /// The URL to give the tool instead of the server's: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The fault for the connections accepted from now on.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// How many faults were injected so far: resets done, stalls begun, answers made up.
    pub fn injected(&self) -> u32 {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// How many connections the proxy accepted so far.
    pub fn connections(&self) -> u32 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    /// Stops accepting and lets the stalled connections go.
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees `stopped`.
        let _ = TcpStream::connect(self.address);
    }
}

impl Shared {
    /// The plan for a connection just accepted: the fault set, counted down.
    fn next_plan(&self) -> Plan {
        let mut fault = self.fault.lock().unwrap();
        let (plan, times) = match &mut *fault {
            Fault::Pass => return Plan::Pass,
            Fault::ResetAfter { bytes, times } => (Plan::Reset(*bytes), times),
            Fault::StallAfter { bytes, times } => (Plan::Stall(*bytes), times),
            Fault::Respond {
                status,
                code,
                times,
            } => (Plan::Respond(*status, code), times),
        };
        if *times == 0 {
            *fault = Fault::Pass;
            return Plan::Pass;
        }
        *times -= 1;
        if *times == 0 {
            *fault = Fault::Pass;
        }
        plan
    }

    fn serve(&self, client: TcpStream, plan: Plan) {
        let _ = client.set_nodelay(true);
        let limit = match plan {
            Plan::Respond(status, code) => return self.respond(client, status, code),
            Plan::Pass => None,
            Plan::Reset(bytes) | Plan::Stall(bytes) => Some(bytes),
        };
        let Ok(server) = TcpStream::connect(&self.upstream) else {
            // As a server that is down: the client sees its connection closed.
            return;
        };
        let _ = server.set_nodelay(true);
        let (Ok(client_out), Ok(server_in)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        // Set before a fault shuts the sockets, so that the answering direction does not take
        // the shutdown for the server's end and pass it on.
        let faulted = Arc::new(AtomicBool::new(false));
        let answers = {
            let faulted = faulted.clone();
            std::thread::spawn(move || forward_answers(server_in, client_out, &faulted))
        };
        let sent = forward_requests(&client, &server, limit);
        if !sent {
            // The client closed its side: pass that on, and let the answer finish.
            let _ = server.shutdown(Shutdown::Write);
            let _ = answers.join();
            return;
        }
        faulted.store(true, Ordering::SeqCst);
        self.injected.fetch_add(1, Ordering::SeqCst);
        match plan {
            Plan::Reset(_) => {
                // Linger 0: closing sends RST, not FIN. The other thread lets go of its copies
                // once the server side is shut, and the last close resets the client.
                let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                let _ = server.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Read);
                let _ = answers.join();
            }
            _ => {
                self.hold(&client);
                // Lets the answering thread go, with its copies of the sockets.
                let _ = server.shutdown(Shutdown::Both);
                let _ = answers.join();
            }
        }
    }

    /// A stalled connection: nothing read, nothing sent, until the client closes it (seen only
    /// when it has nothing more to send) or the proxy stops.
    fn hold(&self, client: &TcpStream) {
        let _ = client.set_read_timeout(Some(Duration::from_millis(100)));
        let mut probe = [0u8; 1];
        while !self.stopped.load(Ordering::SeqCst) {
            match client.peek(&mut probe) {
                Ok(0) => return,
                Ok(_) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    }

    /// Reads the request head and answers it with an S3 error, as the server would.
    fn respond(&self, mut client: TcpStream, status: u16, code: &str) {
        let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match client.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
            if head.len() > HEAD_LIMIT {
                return;
            }
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
        );
        let answer = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            reason(status),
            body.len()
        );
        if client.write_all(answer.as_bytes()).is_err() {
            return;
        }
        let _ = client.shutdown(Shutdown::Write);
        // Closing with a request body unread would reset the connection, and the client might
        // lose the answer: read what it still sends, for a while.
        let _ = client.set_read_timeout(Some(Duration::from_millis(500)));
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && matches!(client.read(&mut [0u8; BUFFER]), Ok(n) if n > 0) {}
    }
}

/// Forwards the client's bytes to the server until the client's end (`false`) or, with a
/// `limit`, once that many bytes are through (`true`: the fault is due).
fn forward_requests(mut client: &TcpStream, mut server: &TcpStream, limit: Option<u64>) -> bool {
    let mut buf = vec![0u8; BUFFER];
    let mut forwarded = 0u64;
    loop {
        let room = match limit {
            Some(limit) if forwarded >= limit => return true,
            Some(limit) => (limit - forwarded).min(BUFFER as u64) as usize,
            None => BUFFER,
        };
        let n = match client.read(&mut buf[..room]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if server.write_all(&buf[..n]).is_err() {
            return false;
        }
        forwarded += n as u64;
    }
}

/// Forwards the server's bytes to the client until either side ends, or a fault stops it.
fn forward_answers(mut server: TcpStream, mut client: TcpStream, faulted: &AtomicBool) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match server.read(&mut buf) {
            Ok(n) if n > 0 && !faulted.load(Ordering::SeqCst) => n,
            Ok(_) if !faulted.load(Ordering::SeqCst) => {
                // The server's end: pass it on.
                let _ = client.shutdown(Shutdown::Write);
                return;
            }
            _ => return,
        };
        if client.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// The reason phrase of the statuses tests inject.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}
