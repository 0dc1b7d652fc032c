//! `client`: registers, connects to the relay's address (the relay forwards to the server; with
//! `--direct ADDR`, no REG and straight to the server at ADDR),
//! opens one bidirectional stream, sends a request and downloads the answer. Reports progress every
//! 256 KiB or 50 ms of data, whichever comes first, so a stall shows as a gap between events.
use crate::args::Args;
use crate::emit;
use crate::net::registered_endpoint;
use crate::payload::hex;
use crate::tls::{client_config, transport};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

const PROGRESS_BYTES: usize = 256 * 1024;
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// Exit code: 0 done, 2 connect error, 4 transfer error (3, timeout, is main's).
pub async fn run(args: &Args) -> Result<i32, String> {
    let remote = match args.direct()? {
        Some(addr) => addr,
        None => args.relay()?,
    };
    let config = client_config(args.str("cert")?, transport(args.num("idle-ms", 15_000)?)?)?;
    let endpoint = registered_endpoint(args, None, |port| emit!("socket", port = port))?;

    emit!("connecting");
    let started = Instant::now();
    let connecting = endpoint.connect_with(config, remote, "quic-relay-e2e").map_err(|e| e.to_string())?;
    let connection = match connecting.await {
        Ok(c) => c,
        Err(e) => {
            emit!("connect-error", message = e.to_string());
            return Ok(2);
        }
    };
    emit!("handshake", ms = started.elapsed().as_millis() as u64);

    let transfer = Instant::now();
    let mut received = 0usize;
    let mut hash = Sha256::new();
    let result = async {
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(b"GET\n").await.map_err(|e| e.to_string())?;
        send.finish().await.map_err(|e| e.to_string())?;
        let (mut reported_bytes, mut reported_at) = (0usize, Instant::now());
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await.map_err(|e| e.to_string())? {
            hash.update(&chunk.bytes);
            received += chunk.bytes.len();
            if received - reported_bytes >= PROGRESS_BYTES || reported_at.elapsed() >= PROGRESS_EVERY {
                emit!("progress", bytes = received);
                reported_bytes = received;
                reported_at = Instant::now();
            }
        }
        Ok::<(), String>(())
    }
    .await;
    if let Err(message) = result {
        emit!("transfer-error", bytes = received, message = message);
        return Ok(4);
    }
    let ms = transfer.elapsed().as_secs_f64() * 1000.0;
    let mbps = (received as f64 * 8.0 / ms / 1000.0 * 10.0).round() / 10.0;
    emit!("done", bytes = received, sha256 = hex(&hash.finalize()), ms = ms.round() as u64, mbps = mbps);
    connection.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
    Ok(0)
}
