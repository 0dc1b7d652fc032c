//! Sockets and quinn endpoints for the two ways a peer can be registered with the relay.
use crate::args::Args;
use crate::emit;
use crate::events::round1;
use crate::relay::register;
use crate::relay_socket::{RelaySocket, Registration};
use quinn::{Endpoint, EndpointConfig, Runtime, ServerConfig, TokioRuntime};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

/// An IPv4 UDP socket on `port` (0: any), with SO_REUSEPORT when asked (the hand-over's sockets).
pub fn bind_udp(port: u16, reuse_port: bool) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(socket.into())
}

fn local_port(sock: &UdpSocket) -> Result<u16, String> {
    sock.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Register with the relay and return the endpoint that carries QUIC at the registered address.
/// `announce` is told the local port before the first REG (the server's `listening`, the client's `socket`).
pub fn registered_endpoint(args: &Args, server: Option<ServerConfig>, announce: impl FnOnce(u16)) -> Result<Endpoint, String> {
    if let Some(addr) = args.direct()? {
        // No relay: the server binds the given port, the client any port (it connects to `addr`).
        let sock = bind_udp(if server.is_some() { addr.port() } else { 0 }, false).map_err(|e| format!("bind: {e}"))?;
        announce(local_port(&sock)?);
        return Endpoint::new(EndpointConfig::default(), server, sock, TokioRuntime).map_err(|e| e.to_string());
    }
    let relay = args.relay()?;
    let field = args.str("session")?;
    let give_up = Duration::from_millis(args.num("register-timeout-ms", 15_000)?);
    if !args.handover()? {
        // Direct: REG from the QUIC socket itself, then quinn takes it over with the keepalive wrapper.
        let sock = bind_udp(0, false).map_err(|e| format!("bind: {e}"))?;
        let port = local_port(&sock)?;
        announce(port);
        let reg = register(&sock, relay, field, give_up).map_err(|e| e.to_string())?;
        emit!("registered", ms = round1(reg.ms), localPort = port, verified = reg.verified, mode = "direct");
        let registration = Registration::new(sock.try_clone().map_err(|e| e.to_string())?, relay, field, reg.cookie);
        let keepalive_ms: u64 = args.num("keepalive-ms", 5000)?;
        if keepalive_ms > 0 {
            registration.spawn_keepalive(Duration::from_millis(keepalive_ms));
        }
        let inner = TokioRuntime.wrap_udp_socket(sock).map_err(|e| e.to_string())?;
        let socket = RelaySocket { inner, registration };
        return Endpoint::new_with_abstract_socket(EndpointConfig::default(), server, socket, TokioRuntime).map_err(|e| e.to_string());
    }
    // Hand-over (quic-portal's way): REG from a helper socket on port X, close it, quinn binds X.
    let helper = bind_udp(args.num("local-port", 0)?, true).map_err(|e| format!("bind: {e}"))?;
    let port = local_port(&helper)?;
    announce(port);
    let reg = register(&helper, relay, field, give_up).map_err(|e| e.to_string())?;
    emit!("registered", ms = round1(reg.ms), localPort = port, verified = reg.verified, mode = "handover");
    // Kept open, the helper shares X with quinn (SO_REUSEPORT) and the kernel picks one of the two
    // sockets per flow: the relay's datagrams may all go to the helper. Only an experiment keeps it
    // (and reports what reaches it instead of quinn).
    let keep_helper = args.num("keep-register-socket", 0u8)? != 0;
    let sock = bind_udp(port, true).map_err(|e| format!("bind {port} after the hand-over: {e}"))?;
    if keep_helper {
        std::thread::spawn(move || drain_helper(helper));
    } else {
        drop(helper);
    }
    emit!("handover", port = port, helperOpen = keep_helper);
    Endpoint::new(EndpointConfig::default(), server, sock, TokioRuntime).map_err(|e| e.to_string())
}

/// The experiment's kept-open helper: counts the datagrams the kernel gives it instead of quinn.
fn drain_helper(helper: UdpSocket) {
    let mut buf = [0u8; 2048];
    let mut count = 0u64;
    while let Ok((n, from)) = helper.recv_from(&mut buf) {
        count += 1;
        if count == 1 || count % 100 == 0 {
            emit!("helper-received", datagrams = count, bytes = n, from = from.to_string());
        }
    }
}
