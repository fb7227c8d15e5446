//! TLS settings for HTTPS and WSS connections (one rustls configuration for both).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, SignatureScheme};

use hanami_types::tls::allows_server_auth;

use crate::{ConnectOptions, Error, Result};

/// The rustls configuration for HTTPS and websocket connections with these options.
pub(crate) fn client_config(options: &ConnectOptions) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificates = if options.accept_invalid_certs {
        Certificates::Any
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut trusted = Vec::new();
        if let Some(pem) = &options.root_certificate_pem {
            for (number, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
                let unreadable = |e: &dyn std::fmt::Display| {
                    Error::Options(format!(
                        "root certificate {} of the PEM given cannot be read (is it damaged?): {e}",
                        number + 1
                    ))
                };
                let cert = cert.map_err(|e| unreadable(&e))?;
                roots.add(cert.clone()).map_err(|e| unreadable(&e))?;
                trusted.push(cert);
            }
            if trusted.is_empty() {
                return Err(Error::Options(
                    "root certificate: no PEM certificate in the given file".into(),
                ));
            }
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::Options(format!("root certificates: {e}")))?;
        Certificates::Checked { webpki, trusted }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Options(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier {
            provider,
            certificates,
        }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Checks the server's certificate as `certificates` say; handshake signatures are always
/// checked, so the handshake stays well-formed.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    certificates: Certificates,
}

/// Which server certificates are accepted.
#[derive(Debug)]
enum Certificates {
    /// Any (self-signed test servers; `verify_connection=False` in the Python SDK).
    Any,
    /// Those that webpki accepts with the web roots and the `trusted` certificates; in
    /// addition, a trusted certificate that the server presents as its own although it is
    /// marked as a CA, as `openssl req -x509` makes self-signed certificates (curl's
    /// `--cacert` accepts them too), if it names the server and its extended key usage, if
    /// any, includes server authentication.
    Checked {
        webpki: Arc<WebPkiServerVerifier>,
        trusted: Vec<CertificateDer<'static>>,
    },
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Certificates::Checked { webpki, trusted } = &self.certificates else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(error)
                if is_ca_used_as_end_entity(&error)
                    && trusted.iter().any(|t| t.as_ref() == end_entity.as_ref()) =>
            {
                verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
                if !allows_server_auth(end_entity) {
                    return Err(rustls::CertificateError::InvalidPurpose.into());
                }
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether webpki refused a certificate only because it is marked as a CA.
fn is_ca_used_as_end_entity(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            other.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity)
        }
        _ => false,
    }
}
