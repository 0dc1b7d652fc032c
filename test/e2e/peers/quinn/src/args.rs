//! `--name value` pairs, as the Node peers take them.
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

pub struct Args(HashMap<String, String>);

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut it = argv.iter();
        while let Some(name) = it.next() {
            let key = name.strip_prefix("--").ok_or_else(|| format!("expected --flag, got '{name}'"))?;
            let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            map.insert(key.to_owned(), value.clone());
        }
        Ok(Args(map))
    }

    pub fn str(&self, key: &str) -> Result<&str, String> {
        self.0.get(key).map(String::as_str).ok_or_else(|| format!("--{key} is required"))
    }

    pub fn num<T: FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: not a number: '{v}'")),
        }
    }

    pub fn relay(&self) -> Result<SocketAddr, String> {
        let host = self.str("relay-host")?;
        let port: u16 = self.num("relay-port", 4433)?;
        (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("relay address {host}:{port}: {e}"))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| format!("relay address {host}:{port}: no IPv4 address"))
    }

    /// `--direct HOST:PORT`: no relay at all (the benchmark's baseline, bench/quic-bulk.ts): the server
    /// binds that port, the client connects to that address; nobody sends REG.
    pub fn direct(&self) -> Result<Option<SocketAddr>, String> {
        let addr = match self.0.get("direct") {
            Some(addr) => addr,
            None => return Ok(None),
        };
        addr.to_socket_addrs()
            .map_err(|e| format!("--direct {addr}: {e}"))?
            .find(SocketAddr::is_ipv4)
            .map(Some)
            .ok_or_else(|| format!("--direct {addr}: no IPv4 address"))
    }

    /// `direct` (REG from the QUIC socket itself) or `handover` (REG from a helper socket on the same port).
    pub fn handover(&self) -> Result<bool, String> {
        match self.0.get("mode").map(String::as_str).unwrap_or("direct") {
            "direct" => Ok(false),
            "handover" => Ok(true),
            other => Err(format!("--mode must be direct or handover, got '{other}'")),
        }
    }
}
