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
    if leaves_out_servers(&chain[0]) {
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

/// `id-ce-extKeyUsage` (2.5.29.37), as the contents of its DER object identifier.
const EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
/// The purposes that admit a TLS server: `id-kp-serverAuth` (1.3.6.1.5.5.7.3.1) and
/// `anyExtendedKeyUsage` (2.5.29.37.0).
const SERVER_PURPOSES: [&[u8]; 2] = [
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01],
    &[0x55, 0x1d, 0x25, 0x00],
];

/// Whether the DER certificate has an extended key usage that names neither of the
/// [`SERVER_PURPOSES`] (no such extension: any purpose). A certificate that cannot be read
/// this far counts as not leaving servers out; the chain check reports what it can.
fn leaves_out_servers(der: &[u8]) -> bool {
    extended_key_usage(der).is_some_and(|purposes| {
        !elements(purposes).any(|(tag, oid)| tag == OID && SERVER_PURPOSES.contains(&oid))
    })
}

const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
/// `[3]`, the explicit tag of a certificate's extensions.
const EXTENSIONS: u8 = 0xa3;

/// The contents of the purposes sequence of the certificate's extended key usage, if it has
/// one (RFC 5280: `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { …, [3] SEQUENCE OF
/// Extension } … }`, `Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE,
/// extnValue OCTET STRING }`).
fn extended_key_usage(der: &[u8]) -> Option<&[u8]> {
    let certificate = expect(der, SEQUENCE)?;
    let tbs = expect(certificate, SEQUENCE)?;
    let (_, extensions) = elements(tbs).find(|&(tag, _)| tag == EXTENSIONS)?;
    elements(expect(extensions, SEQUENCE)?).find_map(|(tag, extension)| {
        if tag != SEQUENCE {
            return None;
        }
        let mut fields = elements(extension);
        let (OID, EXTENDED_KEY_USAGE) = fields.next()? else {
            return None;
        };
        let (_, value) = fields.find(|&(tag, _)| tag == OCTET_STRING)?;
        expect(value, SEQUENCE)
    })
}

/// The contents of the first element of `input` if its tag is `tag`.
fn expect(input: &[u8], tag: u8) -> Option<&[u8]> {
    match element(input)? {
        (found, contents, _) if found == tag => Some(contents),
        _ => None,
    }
}

/// The elements `(tag, contents)` of a run of DER elements, up to the first malformed one.
fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, contents, rest) = element(input)?;
        input = rest;
        Some((tag, contents))
    })
}

/// The first DER element of `input`: its tag (one byte: every tag read here is), contents
/// and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let bytes = usize::from(first & 0x7f);
        if bytes == 0 || bytes > 4 || rest.len() < bytes {
            return None;
        }
        let (len, rest) = rest.split_at(bytes);
        (
            len.iter().fold(0usize, |n, &b| n << 8 | usize::from(b)),
            rest,
        )
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
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
        use rcgen::ExtendedKeyUsagePurpose::{Any, ClientAuth, ServerAuth};
        for purposes in [vec![ServerAuth], vec![ClientAuth, ServerAuth], vec![Any]] {
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

    /// Lengths in long form, and input that ends too early.
    #[test]
    fn der_elements_are_read_with_their_lengths() {
        let long = [&[0x04, 0x81, 0x80][..], &[7; 0x80], &[0x05, 0x00]].concat();
        let found: Vec<_> = elements(&long).map(|(tag, c)| (tag, c.len())).collect();
        assert_eq!(found, [(0x04, 0x80), (0x05, 0)]);
        assert_eq!(element(&[0x04, 0x82, 0x01]), None);
        assert_eq!(element(&[0x04, 0x03, 0x01]), None);
        assert_eq!(element(&[0x04, 0x80]), None);
        assert!(!leaves_out_servers(b"not a certificate"));
    }
}
