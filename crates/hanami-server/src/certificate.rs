//! The server's own certificate: loading it with its key into the TLS configuration, and
//! the checks at start of what would make clients refuse it.

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use rustls::pki_types::{CertificateDer, UnixTime};

/// What makes clients refuse the server's certificate at `now` whatever they trust: it has
/// expired, is not valid yet, or its extended key usage leaves out servers. The chain is
/// checked with its last certificate as the root; other problems (an issuer the file does
/// not hold, a self-signed certificate marked as a CA) are left to the clients.
pub(crate) fn problem(
    chain: &[CertificateDer<'_>],
    provider: &rustls::crypto::CryptoProvider,
    now: UnixTime,
) -> Option<&'static str> {
    let last = chain.last()?;
    // Read apart from the chain: webpki checks it only after the basic constraints, which
    // a self-signed certificate marked as a CA does not pass as a server's, while clients
    // that trust that very certificate take it and then refuse it for its purpose.
    if !hanami_types::tls::allows_server_auth(&chain[0]) {
        return Some(
            "is not for servers (its extended key usage leaves out server authentication)",
        );
    }
    let intermediates = chain.get(1..chain.len() - 1).unwrap_or_default();
    let roots = [webpki::anchor_from_trusted_cert(last).ok()?];
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).ok()?;
    let verified = leaf.verify_for_usage(
        provider.signature_verification_algorithms.all,
        &roots,
        intermediates,
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    );
    match verified.err()? {
        webpki::Error::CertExpired { .. } => Some("has expired"),
        webpki::Error::CertNotValidYet { .. } => Some("is not valid yet"),
        _ => None,
    }
}

/// The TLS configuration from the PEM certificate chain and private key, with messages that
/// name the file and what is wrong with it (rustls alone says "peer sent no certificates"
/// for a certificate file without certificates). HTTP/1.1 only, as the original (see
/// `connections`).
pub(crate) fn tls_server_config(
    tls: &crate::config::TlsFiles,
) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::{self, PemObject};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &Path, what: &str| {
        let mut bytes = crate::config::read_settings_file(path, what)?;
        // Editors on Windows start UTF-8 files with a byte-order mark, which PEM readers skip.
        if bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes.drain(..3);
        }
        anyhow::Ok(bytes)
    };
    let cert = tls.cert.display();
    let key = tls.key.display();
    let chain = CertificateDer::pem_slice_iter(&read(&tls.cert, "certificate file")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{cert} is not a valid PEM file: {}", pem_problem(&e)))?;
    if chain.is_empty() {
        bail!("{cert} holds no certificate (a PEM block '-----BEGIN CERTIFICATE-----')");
    }
    // Each certificate is sent to every client, which would refuse a damaged one.
    for (index, certificate) in chain.iter().enumerate() {
        let parsed = if index == 0 {
            webpki::EndEntityCert::try_from(certificate).map(drop)
        } else {
            webpki::anchor_from_trusted_cert(certificate).map(drop)
        };
        let problem = match parsed {
            Ok(()) => continue,
            Err(webpki::Error::UnsupportedCertVersion) => {
                "is an X.509 version 1 certificate; HTTPS needs version 3".to_owned()
            }
            Err(webpki::Error::UnsupportedCriticalExtension) => {
                "has a critical extension that the server does not know".to_owned()
            }
            Err(e) => format!("is damaged (not an X.509 certificate: {e:?})"),
        };
        bail!(
            "certificate {} of {} in {cert} {problem}",
            index + 1,
            chain.len()
        );
    }
    let key_pem = read(&tls.key, "key file")?;
    crate::startup::warn_if_others_may_use(
        &tls.key,
        0o006,
        "whoever reads it can pose as this server; let only the server's user and group have \
         it (chmod o-rwx)",
    );
    let encrypted = [&b"ENCRYPTED PRIVATE KEY"[..], b"Proc-Type: 4,ENCRYPTED"]
        .iter()
        .any(|marker| key_pem.windows(marker.len()).any(|w| w == *marker));
    if encrypted {
        bail!(
            "{key} holds an encrypted private key, which the server cannot use: decrypt it \
             (openssl pkey -in {key} -out PLAIN.pem) and give that file, readable only by \
             the server's user"
        );
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => anyhow::anyhow!(
            "{key} holds no private key (a PEM block '-----BEGIN PRIVATE KEY-----', \
             'RSA PRIVATE KEY' or 'EC PRIVATE KEY')"
        ),
        e => anyhow::anyhow!("{key} is not a valid PEM file: {}", pem_problem(&e)),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if let Some(problem) =
        crate::certificate::problem(&chain, &provider, rustls::pki_types::UnixTime::now())
    {
        tracing::warn!("the certificate in {cert} {problem}: clients will refuse it");
    }
    provider
        .key_provider
        .load_private_key(private_key.clone_key())
        .map_err(|e| {
            anyhow::anyhow!(
                "{key} holds a damaged or unsupported private key ({e}): the server takes RSA \
                 keys of 2048 to 8192 bits, EC keys on the curves P-256 and P-384, and Ed25519 \
                 keys"
            )
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
                "the key in {key} does not belong to the first certificate in {cert} (the \
                 server's own certificate comes first in the file, then the certificates that \
                 signed it)"
            ),
            other => anyhow::anyhow!("the key in {key} and the certificates in {cert}: {other}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What is wrong with a PEM file, in words (the library shows PEM labels as byte lists).
fn pem_problem(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { end_marker } => format!(
            "a block has no end line '-----END {}-----': is the file cut short?",
            String::from_utf8_lossy(end_marker)
        ),
        Error::IllegalSectionStart { line } => format!(
            "a line that should start a block is malformed: '{}'",
            String::from_utf8_lossy(line)
        ),
        Error::Base64Decode(_) => {
            "a block holds something other than base64 text (a header line, or damage)".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn certificates_that_clients_refuse_are_told() {
        let provider = rustls::crypto::ring::default_provider();
        let at = |days: u64| UnixTime::since_unix_epoch(Duration::from_secs(days * 86_400));
        let certificate = |params: &rcgen::CertificateParams| -> CertificateDer<'static> {
            let key = rcgen::KeyPair::generate().unwrap();
            params.clone().self_signed(&key).unwrap().der().clone()
        };
        // Valid from day 10,000 to day 20,000 after 1970.
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(1997, 5, 19);
        params.not_after = rcgen::date_time_ymd(2024, 10, 4);
        let dated = [certificate(&params)];
        let problem = |chain: &[CertificateDer<'_>], day| super::problem(chain, &provider, at(day));
        assert_eq!(problem(&dated, 15_000), None);
        assert_eq!(problem(&dated, 21_000), Some("has expired"));
        assert_eq!(problem(&dated, 9_000), Some("is not valid yet"));
        // Purposes that admit servers, with or without others.
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        for purposes in [vec![ServerAuth], vec![ClientAuth, ServerAuth]] {
            params.extended_key_usages = purposes;
            assert_eq!(problem(&[certificate(&params)], 15_000), None);
        }
        // Only for clients: also when the certificate is marked as a CA (as self-signed ones
        // often are), which the chain check stops at before it reads the purposes.
        params.extended_key_usages = vec![ClientAuth];
        for ca in [
            rcgen::IsCa::NoCa,
            rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
        ] {
            params.is_ca = ca;
            assert!(
                problem(&[certificate(&params)], 15_000)
                    .is_some_and(|p| p.starts_with("is not for servers")),
                "{:?}",
                params.is_ca
            );
        }
    }
}
