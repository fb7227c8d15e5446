//! Checks of the server's own certificate at start: what would make clients refuse it.

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
