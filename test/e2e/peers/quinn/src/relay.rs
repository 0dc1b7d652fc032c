//! The relay's side of the wire (docs/protocol.md): REG lines out, ACK / RETRY / ERR lines in.
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub enum Reply {
    Ack,
    Retry(String),
    Err(String),
}

/// A relay's control line, or None for anything else (QUIC data).
pub fn parse_reply(data: &[u8]) -> Option<Reply> {
    if data.len() > 32 {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let line = text.strip_suffix('\n')?;
    if line == "ACK" {
        return Some(Reply::Ack);
    }
    if let Some(cookie) = line.strip_prefix("RETRY ") {
        let ok = cookie.len() == 16 && cookie.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return ok.then(|| Reply::Retry(cookie.to_owned()));
    }
    if line == "ERR" || line.starts_with("ERR ") {
        return Some(Reply::Err(line.to_owned()));
    }
    None
}

pub fn reg_datagram(field: &str, cookie: Option<&str>) -> Vec<u8> {
    match cookie {
        Some(c) => format!("REG:{field} {c}\n").into_bytes(),
        None => format!("REG:{field}\n").into_bytes(),
    }
}

pub struct Registered {
    pub ms: f64,
    pub verified: bool,
    pub cookie: Option<String>,
}

/// Register `sock` (blocking): one attempt every 300 ms, each answering up to 3 RETRYs at once,
/// until the ACK. Datagrams from anyone but the relay are dropped (nothing else talks to us yet).
pub fn register(sock: &UdpSocket, relay: SocketAddr, field: &str, give_up: Duration) -> io::Result<Registered> {
    let started = Instant::now();
    let mut cookie: Option<String> = None;
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(Duration::from_millis(300)))?;
    while started.elapsed() < give_up {
        let mut retries = 0;
        sock.send_to(&reg_datagram(field, cookie.as_deref()), relay)?;
        loop {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                // An ICMP error (relay not up yet) surfaces here: try again next round.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                Err(e) => return Err(e),
            };
            if from != relay {
                continue;
            }
            match parse_reply(&buf[..n]) {
                Some(Reply::Ack) => {
                    sock.set_read_timeout(None)?;
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    return Ok(Registered { ms, verified: cookie.is_some(), cookie });
                }
                Some(Reply::Retry(c)) if retries < 3 => {
                    retries += 1;
                    sock.send_to(&reg_datagram(field, Some(&c)), relay)?;
                    cookie = Some(c);
                }
                Some(Reply::Err(line)) => return Err(io::Error::new(io::ErrorKind::Other, format!("relay refused the REG: {line}"))),
                _ => {}
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, format!("relay {relay} did not ACK within {give_up:?}")))
}
