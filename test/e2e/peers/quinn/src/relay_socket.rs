//! Direct mode after the first ACK: quinn owns the socket, and this wrapper (quinn 0.9's
//! `AsyncUdpSocket` hook) keeps the registration alive from that same socket. REG keepalives go
//! out through a dup of the socket's descriptor (same local port, so the same NAT mapping), and the
//! relay's replies are taken out of what quinn reads: a RETRY is answered at once with its cookie,
//! as the Node peers do, and none of the relay's lines reaches quinn (which would drop them anyway).
use crate::emit;
use crate::relay::{parse_reply, reg_datagram, Reply};
use quinn::{AsyncUdpSocket, Transmit};
use quinn_udp::{RecvMeta, UdpState};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

#[derive(Debug)]
struct RegState {
    cookie: Option<String>,
    retries: u32,
}

#[derive(Debug)]
pub struct Registration {
    sender: UdpSocket,
    relay: SocketAddr,
    field: String,
    state: Mutex<RegState>,
}

impl Registration {
    /// `sender` must be a `try_clone()` of the socket quinn gets.
    pub fn new(sender: UdpSocket, relay: SocketAddr, field: &str, cookie: Option<String>) -> Arc<Registration> {
        let state = Mutex::new(RegState { cookie, retries: 0 });
        Arc::new(Registration { sender, relay, field: field.to_owned(), state })
    }

    fn send(&self, cookie: Option<&str>) {
        // Non-blocking (quinn set it): a full send buffer drops this keepalive; the next one follows.
        let _ = self.sender.send_to(&reg_datagram(&self.field, cookie), self.relay);
    }

    pub fn keepalive(&self) {
        let cookie = {
            let mut s = self.state.lock().unwrap();
            s.retries = 0;
            s.cookie.clone()
        };
        self.send(cookie.as_deref());
    }

    fn on_reply(&self, reply: Reply) {
        match reply {
            Reply::Ack => {}
            Reply::Retry(cookie) => {
                let answer = {
                    let mut s = self.state.lock().unwrap();
                    s.retries += 1;
                    s.cookie = Some(cookie.clone());
                    s.retries <= 3
                };
                if answer {
                    emit!("relay-retry");
                    self.send(Some(&cookie));
                }
            }
            Reply::Err(line) => emit!("reg-error", message = line),
        }
    }

    /// REG every `every` from now on, on the runtime of the caller.
    pub fn spawn_keepalive(self: &Arc<Self>, every: Duration) {
        let reg = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                reg.keepalive();
            }
        });
    }
}

#[derive(Debug)]
pub struct RelaySocket {
    pub inner: Box<dyn AsyncUdpSocket>,
    pub registration: Arc<Registration>,
}

impl RelaySocket {
    /// Handle the relay's lines in one received batch entry; returns the length quinn should see.
    /// With GRO one entry holds several datagrams of one flow (`stride` apart, the last may be
    /// shorter), so a short line from the relay can only be the whole entry or its last segment.
    fn strip_relay_lines(&self, data: &[u8], stride: usize) -> usize {
        let stride = if stride == 0 { data.len() } else { stride };
        let mut keep = data.len();
        let mut start = 0;
        while start < data.len() {
            let end = (start + stride).min(data.len());
            if let Some(reply) = parse_reply(&data[start..end]) {
                self.registration.on_reply(reply);
                if end == data.len() || start == 0 {
                    keep = keep.min(start);
                }
            }
            start = end;
        }
        keep
    }
}

impl AsyncUdpSocket for RelaySocket {
    fn poll_send(&mut self, state: &UdpState, cx: &mut Context, transmits: &[Transmit]) -> Poll<io::Result<usize>> {
        self.inner.poll_send(state, cx, transmits)
    }

    fn poll_recv(&self, cx: &mut Context, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        let n = match self.inner.poll_recv(cx, bufs, meta) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        for i in 0..n {
            if meta[i].addr == self.registration.relay && meta[i].len <= bufs[i].len() {
                meta[i].len = self.strip_relay_lines(&bufs[i][..meta[i].len], meta[i].stride);
            }
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
