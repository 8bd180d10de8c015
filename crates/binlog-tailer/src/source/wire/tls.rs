//! TLS for the binlog connection, as `source.tls` says: `required` verifies
//! the server's certificate against `ca_file` and the Mozilla root set and
//! its name against `source.host`; `required-no-verify` encrypts without
//! verifying (test servers). The same choices as the query connections.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::WireError;
use crate::config::{TlsConfig, TlsMode};

/// Runs the TLS handshake on `tcp`.
///
/// # Errors
/// [`WireError::Tls`] for a CA file that does not load or a certificate that
/// does not verify; [`WireError::Io`] for a network error.
pub(super) async fn connect(
    host: &str,
    config: &TlsConfig,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, WireError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| WireError::Tls(e.to_string()))?;
    let client = match config.mode {
        TlsMode::RequiredNoVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
        TlsMode::Required | TlsMode::Disabled => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    WireError::Tls(format!(
                        "reading source.tls.ca_file {}: {e}",
                        path.display()
                    ))
                })?;
                let mut found = 0;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        WireError::Tls(format!("source.tls.ca_file {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        WireError::Tls(format!("source.tls.ca_file {}: {e}", path.display()))
                    })?;
                    found += 1;
                }
                if found == 0 {
                    return Err(WireError::Tls(format!(
                        "source.tls.ca_file {} holds no PEM certificate",
                        path.display()
                    )));
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        WireError::Tls(format!(
            "source.host {host} cannot be checked against a certificate: {e}"
        ))
    })?;
    TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            if e.get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                WireError::Tls(format!(
                    "the TLS handshake with {host} failed: {e}. Check that source.tls.ca_file is \
                     the CA that signed the server's certificate and that the certificate names \
                     {host} (or use required-no-verify for a test server)"
                ))
            } else {
                WireError::Io(e)
            }
        })
}

/// `required-no-verify`: any certificate, any name; the handshake's
/// signatures are still checked, so the connection is encrypted to whoever
/// holds the presented key.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
