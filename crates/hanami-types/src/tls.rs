//! What the server and its clients agree on about TLS certificates.

/// Whether a certificate may authenticate a TLS server by its extended key usage: it has
/// none (any use), or it lists `id-kp-serverAuth`. False for DER it cannot read.
pub fn allows_server_auth(certificate: &[u8]) -> bool {
    /// `id-ce-extKeyUsage`, 2.5.29.37.
    const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    /// `id-kp-serverAuth`, 1.3.6.1.5.5.7.3.1.
    const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    let Some((_, certificate, _)) = der::element(certificate, der::SEQUENCE) else {
        return false;
    };
    let Some((_, tbs, _)) = der::element(certificate, der::SEQUENCE) else {
        return false;
    };
    // The extensions are the explicitly tagged [3] field at the end, if present.
    let Some((_, extensions)) = der::elements(tbs).find(|&(tag, _)| tag == der::EXTENSIONS) else {
        return true;
    };
    let Some((_, extensions, _)) = der::element(extensions, der::SEQUENCE) else {
        return false;
    };
    for (tag, extension) in der::elements(extensions) {
        if tag != der::SEQUENCE {
            return false;
        }
        let Some((_, id, mut rest)) = der::element(extension, der::OID) else {
            return false;
        };
        if id != EXT_KEY_USAGE {
            continue;
        }
        if let Some((_, _, after)) = der::element(rest, der::BOOLEAN) {
            rest = after;
        }
        let Some((_, value, _)) = der::element(rest, der::OCTET_STRING) else {
            return false;
        };
        let Some((_, purposes, _)) = der::element(value, der::SEQUENCE) else {
            return false;
        };
        return der::elements(purposes).any(|(tag, id)| tag == der::OID && id == SERVER_AUTH);
    }
    true
}

/// Just enough DER to find a certificate's extensions.
mod der {
    pub const BOOLEAN: u8 = 0x01;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    /// The `[3] EXPLICIT` tag of a certificate's extensions.
    pub const EXTENSIONS: u8 = 0xa3;

    /// The first element of `input` if its tag is `tag`: tag, contents and what follows.
    pub fn element(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
        next(input).filter(|&(found, _, _)| found == tag)
    }

    /// The elements of `input` one after another (tag and contents), until the end or the
    /// first that cannot be read.
    pub fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
        std::iter::from_fn(move || {
            let (tag, contents, rest) = next(input)?;
            input = rest;
            Some((tag, contents))
        })
    }

    /// Reads one element with a definite length.
    fn next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (length, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let (bytes, rest) = rest.split_at(count);
            let length = bytes
                .iter()
                .fold(0usize, |length, &byte| length << 8 | usize::from(byte));
            (length, rest)
        };
        (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
    }
}

#[cfg(test)]
mod tests {
    use super::allows_server_auth;
    use rcgen::ExtendedKeyUsagePurpose as Purpose;

    fn certificate(purposes: Vec<Purpose>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.extended_key_usages = purposes;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn server_authentication_by_extended_key_usage() {
        assert!(allows_server_auth(&certificate(vec![])));
        assert!(allows_server_auth(&certificate(vec![Purpose::ServerAuth])));
        assert!(allows_server_auth(&certificate(vec![
            Purpose::ClientAuth,
            Purpose::ServerAuth
        ])));
        assert!(!allows_server_auth(&certificate(vec![Purpose::ClientAuth])));
        assert!(!allows_server_auth(&certificate(vec![
            Purpose::CodeSigning,
            Purpose::EmailProtection
        ])));
    }

    #[test]
    fn unreadable_der_is_refused() {
        let good = certificate(vec![Purpose::ServerAuth]);
        assert!(!allows_server_auth(&[]));
        assert!(!allows_server_auth(&good[..good.len() / 2]));
        assert!(!allows_server_auth(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]));
    }
}
