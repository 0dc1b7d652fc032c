//! `server`: registers, then serves `--bytes` of deterministic data on every bidirectional stream a
//! client opens (after reading its request to the end). Runs until killed.
use crate::args::Args;
use crate::emit;
use crate::net::registered_endpoint;
use crate::payload::{payload, sha256_hex};
use crate::tls::{server_config, transport};
use std::sync::Arc;
use std::time::Instant;

const CHUNK: usize = 64 * 1024;

pub async fn run(args: &Args) -> Result<(), String> {
    let size: usize = args.num("bytes", 8 << 20)?;
    let data = Arc::new(payload(size, args.num("seed", 1)?));
    let digest = sha256_hex(&data);
    let config = server_config(args.str("key")?, args.str("cert")?, transport(args.num("idle-ms", 15_000)?)?)?;
    let endpoint = registered_endpoint(args, Some(config), |port| {
        emit!("listening", port = port, bytes = size, sha256 = digest.as_str());
    })?;
    while let Some(connecting) = endpoint.accept().await {
        let data = data.clone();
        tokio::spawn(async move {
            match connecting.await {
                Ok(connection) => {
                    emit!("connection", remote = connection.remote_address().to_string());
                    serve(connection, data).await;
                }
                Err(e) => emit!("connection-error", message = e.to_string()),
            }
        });
    }
    Ok(())
}

async fn serve(connection: quinn::Connection, data: Arc<Vec<u8>>) {
    loop {
        let (mut send, recv) = match connection.accept_bi().await {
            Ok(streams) => streams,
            Err(quinn::ConnectionError::ApplicationClosed(_)) => return,
            Err(e) => return emit!("serve-error", message = e.to_string()),
        };
        let data = data.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            if let Err(e) = recv.read_to_end(1024).await {
                return emit!("serve-error", message = format!("request: {e}"));
            }
            for chunk in data.chunks(CHUNK) {
                if let Err(e) = send.write_all(chunk).await {
                    return emit!("serve-error", message = e.to_string());
                }
            }
            // The client closes the connection once it has everything, which may beat the ACK of our FIN.
            match send.finish().await {
                Ok(()) | Err(quinn::WriteError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(_))) => {
                    emit!("served", bytes = data.len(), ms = started.elapsed().as_millis() as u64)
                }
                Err(e) => emit!("serve-error", message = e.to_string()),
            }
        });
    }
}
