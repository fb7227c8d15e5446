//! `https://` addresses: certificates are verified unless `--insecure` / `HANAMI_INSECURE`
//! is given or the certificate is trusted with `--ca-cert` / `HANAMI_CA_CERT`; uploads then
//! go over `wss://`.

mod common;

use common::{Server, ctl_env, path_str, pattern_mnist};

#[test]
fn https_with_a_self_signed_certificate() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let cert_path = path_str(&cert_path);
    let server = Server::start_with(&["--tls-cert", &cert_path, "--tls-key", &path_str(&key_path)]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let env = [
        ("HANAMI_ADDRESS", server.url.as_str()),
        ("HANAMI_USER", "asdf"),
        ("HANAMI_PW", "asdfasdf"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut all = env.to_vec();
        all.extend_from_slice(extra);
        all
    };

    // Verified by default: the unknown issuer is refused, with a hint.
    let run = ctl_env(&env, &["host", "list"]).fails();
    assert!(
        run.stderr.starts_with("error: cannot reach https://")
            && run.stderr.contains("self-signed")
            && run.stderr.contains("--insecure"),
        "{}",
        run.stderr
    );
    // The cause in words, not as the TLS library's code only.
    assert!(
        run.stderr.contains(
            ": the server's certificate was refused: no certificate that this client trusts \
             signed it (UnknownIssuer)\n"
        ),
        "{}",
        run.stderr
    );

    // The wrong scheme either way is named.
    let plain = server.url.replace("https://", "http://");
    let run = ctl_env(
        &[
            ("HANAMI_ADDRESS", &plain),
            ("HANAMI_USER", "asdf"),
            ("HANAMI_PW", "asdfasdf"),
        ],
        &["host", "list"],
    )
    .fails();
    assert!(
        run.stderr.contains("use an https:// address"),
        "{}",
        run.stderr
    );
    let plain_server = Server::start();
    let tls_to_plain = plain_server.url.replace("http://", "https://");
    let run = ctl_env(
        &[
            ("HANAMI_ADDRESS", &tls_to_plain),
            ("HANAMI_USER", "asdf"),
            ("HANAMI_PW", "asdfasdf"),
        ],
        &["host", "list"],
    )
    .fails();
    assert!(
        run.stderr.contains("use an http:// address"),
        "{}",
        run.stderr
    );

    // The opt-ins.
    let (_, rows) = ctl_env(&env, &["--insecure", "host", "list"]).ok().list();
    assert_eq!(rows.len(), 1);
    ctl_env(&with(&[("HANAMI_INSECURE", "1")]), &["host", "list"]).ok();
    ctl_env(&with(&[("HANAMI_INSECURE", "true")]), &["host", "list"]).ok();
    ctl_env(&with(&[("HANAMI_INSECURE", "0")]), &["host", "list"]).fails();
    ctl_env(&env, &["host", "list", "--ca-cert", &cert_path]).ok();
    let mut trusted = env.to_vec();
    trusted.push(("HANAMI_CA_CERT", &cert_path));
    ctl_env(&trusted, &["project", "list", "-j"]).ok().json();

    // A CA file that did not sign the server's certificate is named as the cause.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let other_path = path_str(&server.write("other.pem", other.cert.pem()));
    let run = ctl_env(&env, &["--ca-cert", &other_path, "host", "list"]).fails();
    assert!(
        run.stderr.contains("did not sign the server's certificate"),
        "{}",
        run.stderr
    );

    // Set but empty variables count as unset; an invalid one is named.
    ctl_env(
        &with(&[("HANAMI_CA_CERT", "")]),
        &["--insecure", "host", "list"],
    )
    .ok();
    ctl_env(
        &with(&[("HANAMI_INSECURE", ""), ("HANAMI_ANSWER_TIMEOUT", "")]),
        &["--ca-cert", &cert_path, "host", "list"],
    )
    .ok();
    let run = ctl_env(&with(&[("HANAMI_INSECURE", "maybe")]), &["host", "list"]).fails();
    assert!(
        run.stderr
            .contains("note: the value comes from the variable HANAMI_INSECURE")
            && run.stderr.contains(
                "invalid value 'maybe' for '--insecure': expected one of 1/0, true/false, \
                 yes/no, on/off"
            ),
        "{}",
        run.stderr
    );
    let run = ctl_env(
        &with(&[("HANAMI_ANSWER_TIMEOUT", "abc")]),
        &["--answer-timeout", "0", "host", "list"],
    )
    .fails();
    assert!(
        run.stderr.contains("invalid value '0'") && !run.stderr.contains("note:"),
        "{}",
        run.stderr
    );
    // A typed flag wins over an invalid variable, wherever it stands.
    ctl_env(
        &with(&[
            ("HANAMI_ANSWER_TIMEOUT", "abc"),
            ("HANAMI_INSECURE", "maybe"),
        ]),
        &["host", "list", "--answer-timeout", "5", "--insecure"],
    )
    .ok();

    // A malformed CA file is reported, not ignored.
    let bad = server.write("bad.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    let run = ctl_env(&env, &["--ca-cert", &path_str(&bad), "host", "list"]).fails();
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);

    // Uploads use wss:// with the same settings.
    let (images, labels) = pattern_mnist(server.dir.path(), "tls", 50);
    let created = ctl_env(
        &with(&[("HANAMI_INSECURE", "yes")]),
        &[
            "dataset",
            "create",
            "mnist",
            "-i",
            &images,
            "-l",
            &labels,
            "tls_dataset",
        ],
    )
    .ok();
    assert_eq!(created.field("NUMBER OF ROWS"), "50");
    let csv = server.write("tls.csv", "a,b\n1,2\n3,4\n");
    let json = ctl_env(
        &trusted,
        &[
            "dataset",
            "create",
            "csv",
            "-j",
            "-i",
            &path_str(&csv),
            "tls_csv",
        ],
    )
    .ok()
    .json();
    assert_eq!(json["number_of_rows"], 2);
}

#[test]
fn a_certificate_for_another_name_is_explained() {
    let cert = rcgen::generate_simple_self_signed(vec!["example.invalid".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let cert_path = path_str(&cert_path);
    let server = Server::start_with(&["--tls-cert", &cert_path, "--tls-key", &path_str(&key_path)]);
    let env = [
        ("HANAMI_ADDRESS", server.url.as_str()),
        ("HANAMI_USER", "asdf"),
        ("HANAMI_PW", "asdfasdf"),
        ("HANAMI_CA_CERT", cert_path.as_str()),
    ];
    let run = ctl_env(&env, &["host", "list"]).fails();
    assert!(run.stderr.contains("subjectAltName"), "{}", run.stderr);
}
