//! quinn (Rust) QUIC peer for the quic-relay e2e suite: `quinn-peer server|client --flag value ...`.
//! Prints one JSON event per line on stdout, like the Node peers in test/e2e/peers/.
mod args;
mod client;
mod events;
mod net;
mod payload;
mod relay;
mod relay_socket;
mod server;
mod tls;

use std::time::Duration;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match argv.split_first() {
        Some((c, rest)) if c == "server" || c == "client" => (c.clone(), rest.to_vec()),
        _ => {
            eprintln!("usage: quinn-peer server|client --relay-host H --relay-port P --session S [--mode direct|handover] ...");
            std::process::exit(64);
        }
    };
    let code = match args::Args::parse(&rest) {
        Ok(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            runtime.block_on(async {
                if command == "server" {
                    server::run(&args).await.map(|()| 0)
                } else {
                    let limit = Duration::from_millis(args.num("timeout-ms", 60_000).unwrap_or(60_000));
                    match tokio::time::timeout(limit, client::run(&args)).await {
                        Ok(result) => result,
                        Err(_) => {
                            emit!("timeout");
                            Ok(3)
                        }
                    }
                }
            })
        }
        Err(e) => Err(e),
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(message) => {
            emit!("error", message = message.as_str());
            eprintln!("quinn-peer {command}: {message}");
            std::process::exit(1);
        }
    }
}
