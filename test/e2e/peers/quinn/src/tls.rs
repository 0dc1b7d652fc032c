//! TLS for the peers: the server's key and certificate come from openssl (test/e2e/env.ts);
//! the client pins that certificate (a self-signed test certificate has no name webpki accepts).
use quinn::{ClientConfig, IdleTimeout, ServerConfig, TransportConfig, VarInt};
use rustls::client::{ServerCertVerified, ServerCertVerifier};
use rustls::{Certificate, PrivateKey, ServerName};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn read_pem(path: &str) -> Result<Vec<rustls_pemfile::Item>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    rustls_pemfile::read_all(&mut std::io::BufReader::new(file)).map_err(|e| format!("{path}: {e}"))
}

fn certificate(path: &str) -> Result<Certificate, String> {
    read_pem(path)?
        .into_iter()
        .find_map(|item| match item {
            rustls_pemfile::Item::X509Certificate(der) => Some(Certificate(der)),
            _ => None,
        })
        .ok_or_else(|| format!("{path}: no certificate"))
}

fn private_key(path: &str) -> Result<PrivateKey, String> {
    read_pem(path)?
        .into_iter()
        .find_map(|item| match item {
            rustls_pemfile::Item::PKCS8Key(der) | rustls_pemfile::Item::ECKey(der) | rustls_pemfile::Item::RSAKey(der) => Some(PrivateKey(der)),
            _ => None,
        })
        .ok_or_else(|| format!("{path}: no private key"))
}

/// Idle timeout, and QUIC PINGs at a third of it: in hand-over mode they are all that keeps the
/// NAT mapping and the relay's session alive.
pub fn transport(idle_ms: u64) -> Result<Arc<TransportConfig>, String> {
    let mut t = TransportConfig::default();
    let idle = VarInt::from_u64(idle_ms).map_err(|e| e.to_string())?;
    t.max_idle_timeout(Some(IdleTimeout::from(idle)));
    t.keep_alive_interval(Some(Duration::from_millis((idle_ms / 3).max(100))));
    Ok(Arc::new(t))
}

pub fn server_config(key: &str, cert: &str, transport: Arc<TransportConfig>) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::with_single_cert(vec![certificate(cert)?], private_key(key)?).map_err(|e| e.to_string())?;
    config.transport_config(transport);
    Ok(config)
}

struct PinnedCertificate(Certificate);

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &Certificate,
        _intermediates: &[Certificate],
        _server_name: &ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp_response: &[u8],
        _now: SystemTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The handshake signature is still checked against this certificate's key by rustls.
        if end_entity.0 == (self.0).0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }
}

pub fn client_config(cert: &str, transport: Arc<TransportConfig>) -> Result<ClientConfig, String> {
    let crypto = rustls::ClientConfig::builder()
        .with_safe_default_cipher_suites()
        .with_safe_default_kx_groups()
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_custom_certificate_verifier(Arc::new(PinnedCertificate(certificate(cert)?)))
        .with_no_client_auth();
    let mut config = ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport);
    Ok(config)
}
