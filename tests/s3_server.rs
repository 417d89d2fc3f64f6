//! The S3 remote's test infrastructure, checked on its own with plain HTTP/1.1 over std sockets:
//! the Garage server is a real S3 server (it refuses unsigned requests the S3 way, and its key
//! signs, creates buckets through `CreateBucket` and reaches those made by the CLI), and the
//! fault proxy passes bytes untouched, at speed, and injects each fault as many times as asked.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use crate::support::fault_proxy::{Fault, FaultProxy};
use crate::support::garage::{Garage, garage};
use crate::support::sha256_hex;

/// Sends `request` to `address` (`http://HOST:PORT` or `HOST:PORT`), reads to the end; the status
/// and the whole answer.
fn exchange(address: &str, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

/// An unsigned `GET /` (ListBuckets without credentials).
fn unsigned_list(address: &str) -> (u16, String) {
    let host = address.trim_start_matches("http://");
    exchange(
        address,
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// `method path` with an empty body, signed with the test key; the status and the body.
fn signed(garage: &Garage, method: &str, path: &str) -> (u16, String) {
    let (status, body) = garage.request(method, path, b"");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A server on loopback that sends back every byte it receives, and ends when the client does:
/// an upstream for the proxy that makes "passed untouched" easy to see.
fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let _ = std::io::copy(&mut &stream, &mut out);
                let _ = out.shutdown(Shutdown::Write);
            });
        }
    });
    address
}

/// Sends `bytes` through the proxy to the echo server, closes its side; what came back.
fn echo_through(proxy: &FaultProxy, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(proxy.url().trim_start_matches("http://"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut sender = stream.try_clone()?;
    let bytes = bytes.to_vec();
    // Sent while the echo is read, or both ends would wait on full buffers.
    let sending = std::thread::spawn(move || {
        sender.write_all(&bytes)?;
        sender.shutdown(Shutdown::Write)
    });
    let mut back = Vec::new();
    let read = stream.read_to_end(&mut back);
    sending.join().unwrap()?;
    read?;
    Ok(back)
}

#[test]
fn garage_refuses_an_unsigned_request_as_s3_does() {
    let Some(garage) = garage() else { return };
    let (status, answer) = unsigned_list(&garage.endpoint);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("<Code>AccessDenied</Code>"), "{answer}");
}

#[test]
fn garage_key_creates_buckets_through_s3_and_reaches_those_the_cli_made() {
    let Some(garage) = garage() else { return };
    let made_by_s3 = garage.unique_bucket("S3 server: CreateBucket");
    assert!(
        made_by_s3.starts_with("s3-server--createbucket-"),
        "{made_by_s3}"
    );
    let (status, answer) = signed(garage, "HEAD", &format!("/{made_by_s3}"));
    assert_eq!(status, 404, "not there before: {answer}");
    let (status, answer) = signed(garage, "PUT", &format!("/{made_by_s3}"));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = signed(garage, "PUT", &format!("/{made_by_s3}"));
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("BucketAlreadyOwnedByYou"), "{answer}");

    let made_by_cli = garage.unique_bucket("cli");
    assert_ne!(made_by_cli, made_by_s3);
    garage.create_bucket(&made_by_cli);
    let (status, answer) = signed(garage, "HEAD", &format!("/{made_by_cli}"));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = signed(garage, "GET", "/");
    assert_eq!(status, 200, "{answer}");
    for name in [&made_by_s3, &made_by_cli] {
        assert!(answer.contains(&format!("<Name>{name}</Name>")), "{answer}");
    }
}

#[test]
fn proxy_passes_garage_answers_unchanged() {
    let Some(garage) = garage() else { return };
    let proxy = FaultProxy::start(&garage.endpoint);
    let (direct, _) = unsigned_list(&garage.endpoint);
    let (status, answer) = unsigned_list(&proxy.url());
    assert_eq!(status, direct, "{answer}");
    assert!(answer.contains("<Code>AccessDenied</Code>"), "{answer}");
    assert_eq!((proxy.connections(), proxy.injected()), (1, 0));
}

#[test]
fn proxy_carries_a_large_body_both_ways_untouched() {
    let proxy = FaultProxy::start(&echo_server());
    let body: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
    let back = echo_through(&proxy, &body).unwrap();
    assert_eq!(back.len(), body.len());
    assert_eq!(sha256_hex(&back), sha256_hex(&body));
}

#[test]
fn proxy_answers_for_the_server_the_times_asked_then_passes() {
    let proxy = FaultProxy::start(&echo_server());
    proxy.set(Fault::Respond {
        status: 503,
        code: "SlowDown",
        times: 2,
    });
    // An upload: the proxy answers after the head, and reads the body it never forwards, so
    // the client gets the answer rather than a reset.
    let body = vec![7u8; 1 << 20];
    let request = [
        format!(
            "PUT /b/k HTTP/1.1\r\nHost: s3\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body,
    ]
    .concat();
    for _ in 0..2 {
        let (status, answer) = exchange(&proxy.url(), &request);
        assert_eq!(status, 503, "{answer}");
        assert!(answer.contains("Content-Type: application/xml"), "{answer}");
        assert!(answer.contains("Connection: close"), "{answer}");
        assert!(answer.contains("<Code>SlowDown</Code>"), "{answer}");
    }
    assert_eq!(echo_through(&proxy, &request).unwrap(), request);
    assert_eq!((proxy.connections(), proxy.injected()), (3, 2));
}

#[test]
fn proxy_resets_after_the_bytes_given_then_passes() {
    let proxy = FaultProxy::start(&echo_server());
    proxy.set(Fault::ResetAfter {
        bytes: 100,
        times: 1,
    });
    let sent = vec![1u8; 1000];
    let err = echo_through(&proxy, &sent).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_eq!(echo_through(&proxy, &sent).unwrap(), sent);
    assert_eq!((proxy.connections(), proxy.injected()), (2, 1));
}

#[test]
fn proxy_stalls_after_the_bytes_given_until_the_client_gives_up() {
    let proxy = FaultProxy::start(&echo_server());
    proxy.set(Fault::StallAfter { bytes: 0, times: 2 });
    let address = proxy.url().replace("http://", "");

    // A request that never gets an answer: the client's read times out.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream.write_all(b"hello").unwrap();
    let err = stream.read(&mut [0u8; 16]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );

    // An upload that stops moving: once the buffers are full, the client's write times out.
    let mut upload = TcpStream::connect(&address).unwrap();
    upload
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let err = upload.write_all(&vec![0u8; 256 << 20]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    drop((stream, upload));

    assert_eq!(echo_through(&proxy, b"after").unwrap(), b"after");
    assert_eq!((proxy.connections(), proxy.injected()), (3, 2));
}
