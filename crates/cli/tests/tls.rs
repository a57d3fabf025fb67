//! TLS termination: HTTP/1.1 and HTTP/2 (by ALPN) over TLS to a real proxy, the certificate
//! chosen by SNI, certificate files that cannot be used refused at start (exit 64) with the
//! entry and the file named, a renewed certificate served after a reload while open
//! connections go on, and a hostile client's half-open handshakes, old versions and odd SNI
//! bounded. Certificates are made at test time (rcgen).

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// A self-signed certificate for `name`: (PEM chain, PEM key, DER).
fn certificate(name: &str) -> (String, String, CertificateDer<'static>) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (
        c.cert.pem(),
        c.key_pair.serialize_pem(),
        c.cert.der().clone(),
    )
}

fn write(dir: &Path, file: &str, text: &str) -> String {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A TLS connection to `proxy` for `sni` offering `alpn`, trusting `roots`.
async fn handshake(
    proxy: &str,
    roots: &[CertificateDer<'static>],
    sni: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    try_handshake(proxy, roots, sni, alpn)
        .await
        .expect("handshake")
}

/// [`handshake`], its error kept (an IP address as `sni` sends no SNI at all).
async fn try_handshake(
    proxy: &str,
    roots: &[CertificateDer<'static>],
    sni: &str,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
}

/// An HTTP/2 connection over TLS to `proxy` for `sni`, and the server's leaf.
async fn h2_connection(
    proxy: &str,
    roots: &[CertificateDer<'static>],
    sni: &str,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    CertificateDer<'static>,
) {
    let tls = handshake(proxy, roots, sni, b"h2").await;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    (s, leaf)
}

/// Connects with `sni` and `alpn`, sends `GET /t`; (status, protocol, the server's leaf).
async fn call(
    proxy: &str,
    roots: &[CertificateDer<'static>],
    sni: &str,
    alpn: &[u8],
) -> (u16, http::Version, CertificateDer<'static>) {
    let tls = handshake(proxy, roots, sni, alpn).await;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let req = hyper::Request::get(format!("https://{sni}/t"))
        .header("host", sni)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = if h2 {
        let (mut s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        s.send_request(req).await.unwrap()
    } else {
        let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        s.send_request(req).await.unwrap()
    };
    let (status, version) = (resp.status().as_u16(), resp.version());
    let _ = resp.into_body().collect().await.unwrap();
    (status, version, leaf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_and_h2_over_tls_with_the_certificate_chosen_by_sni() {
    let dir = tempdir("tls");
    let (a_pem, a_key, a_der) = certificate("a.test");
    let (b_pem, b_key, b_der) = certificate("b.test");
    let (_b, backend_addr) = backend("one", &["--route", "/t=1ms"]);
    let p = proxy(
        &dir,
        &format!(
            "backends = [{{ address = \"{backend_addr}\" }}]\n[tls]\ncertificates = [\n  {{ cert = \"{}\", key = \"{}\" }},\n  {{ cert = \"{}\", key = \"{}\" }},\n]\n",
            write(&dir, "a.pem", &a_pem),
            write(&dir, "a.key", &a_key),
            write(&dir, "b.pem", &b_pem),
            write(&dir, "b.key", &b_key),
        ),
        &[],
    );
    let addr = p.get("proxy").to_string();
    let roots = [a_der.clone(), b_der.clone()];
    let (status, version, leaf) = call(&addr, &roots, "b.test", b"http/1.1").await;
    assert_eq!((status, version), (200, http::Version::HTTP_11));
    assert_eq!(leaf, b_der, "SNI b.test gets b's certificate");
    let (status, version, leaf) = call(&addr, &roots, "a.test", b"h2").await;
    assert_eq!((status, version), (200, http::Version::HTTP_2), "ALPN h2");
    assert_eq!(leaf, a_der);
    // Plain HTTP on the TLS port is not served.
    let plain = send(&client(), "GET", &format!("http://{addr}/t"), "").await;
    assert!(plain.is_err() || plain.unwrap().status != 200);
}

#[test]
fn certificate_files_that_cannot_be_used_are_refused_at_start() {
    let dir = tempdir("tls-bad");
    let (a_pem, a_key, _) = certificate("a.test");
    let (_, b_key, _) = certificate("b.test");
    let a_pem = write(&dir, "a.pem", &a_pem);
    let a_key = write(&dir, "a.key", &a_key);
    let b_key = write(&dir, "b.key", &b_key);
    let junk = write(&dir, "junk.pem", "not a certificate\n");
    for (cert, key, named) in [
        (
            "/nonexistent/site.pem".to_string(),
            a_key.clone(),
            "tls.certificates[0].cert",
        ),
        (junk.clone(), a_key.clone(), "tls.certificates[0].cert"),
        (a_pem.clone(), junk.clone(), "tls.certificates[0].key"),
        (a_pem.clone(), b_key.clone(), "tls.certificates[0].key"),
    ] {
        let cfg = dir.join("bad.toml");
        std::fs::write(
            &cfg,
            format!("[tls]\ncertificates = [{{ cert = \"{cert}\", key = \"{key}\" }}]\n"),
        )
        .unwrap();
        let o = run(&["serve", "--config", cfg.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(64), "{cert} {key}: {}", text(&o));
        assert!(text(&o).contains(named), "{named}: {}", text(&o));
    }
}

/// A renewed certificate (new files at the same paths) is served to new handshakes after
/// `POST /reload`; a connection opened before goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_renewed_certificate_and_keeps_open_connections() {
    let dir = tempdir("tls-reload");
    let (old_pem, old_key, old_der) = certificate("a.test");
    let (_b, backend_addr) = backend("one", &["--route", "/t=1ms"]);
    let (cert, key) = (
        write(&dir, "a.pem", &old_pem),
        write(&dir, "a.key", &old_key),
    );
    let p = proxy(
        &dir,
        &format!(
            "backends = [{{ address = \"{backend_addr}\" }}]\n[tls]\ncertificates = [{{ cert = \"{cert}\", key = \"{key}\" }}]\n"
        ),
        &[],
    );
    let (addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let (new_pem, new_key, new_der) = certificate("a.test");
    let roots = [old_der.clone(), new_der.clone()];
    let get_t = || {
        hyper::Request::get("https://a.test/t")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let (mut open, leaf) = h2_connection(&addr, &roots, "a.test").await;
    assert_eq!(leaf, old_der);
    assert_eq!(open.send_request(get_t()).await.unwrap().status(), 200);

    write(&dir, "a.key", &new_key);
    write(&dir, "a.pem", &new_pem);
    let r = send(&client(), "POST", &format!("http://{admin}/reload"), "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("\"certificates_reloaded\":true"),
        "{}",
        r.body
    );

    let (_, _, leaf) = call(&addr, &roots, "a.test", b"http/1.1").await;
    assert_eq!(
        leaf, new_der,
        "a new handshake gets the renewed certificate"
    );
    let resp = open
        .send_request(get_t())
        .await
        .expect("the open connection goes on");
    assert_eq!(resp.status(), 200);

    // A key that does not match its certificate is refused, naming the entry; the renewed
    // certificate stays.
    write(&dir, "a.key", &old_key);
    let r = send(&client(), "POST", &format!("http://{admin}/reload"), "")
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("tls.certificates[0].key"), "{}", r.body);
    let (_, _, leaf) = call(&addr, &roots, "a.test", b"h2").await;
    assert_eq!(leaf, new_der);
}

/// A TLS 1.0 ClientHello by hand (rustls clients cannot offer it): legacy version 3.1, one
/// cipher suite (TLS_RSA_WITH_AES_128_CBC_SHA), no extensions, so no `supported_versions`.
fn tls10_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x01];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x02, 0x00, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend(hs);
    rec
}

/// A hostile TLS client (issue #36 item 4): 500 half-open handshakes hold neither memory nor the
/// admin API and are closed after `timeouts.client_header`; no SNI and an unknown SNI get the
/// first certificate (NGINX's default server); TLS 1.0 and 1.1 are refused with a fatal
/// alert; a good client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_handshakes_old_versions_and_odd_sni_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempdir("tls-hostile");
    let (a_pem, a_key, a_der) = certificate("a.test");
    let (_b, backend_addr) = backend("one", &["--route", "/t=1ms"]);
    let p = proxy(
        &dir,
        &format!(
            "backends = [{{ address = \"{backend_addr}\" }}]\n[timeouts]\nclient_header = \"1s\"\n\
             [tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\n",
            write(&dir, "a.pem", &a_pem),
            write(&dir, "a.key", &a_key),
        ),
        &[],
    );
    let (addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let roots = [a_der.clone()];
    let before = rss_mb(p.pid());

    // 500 handshakes that stop after 15 bytes of a ClientHello that claims 512.
    let mut half = Vec::new();
    for _ in 0..500 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0,
        ])
        .await
        .unwrap();
        half.push(s);
    }
    let started = std::time::Instant::now();
    let r = get(&client(), &format!("http://{admin}/healthz")).await;
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "admin API: {:?}",
        started.elapsed()
    );
    let (status, _, _) = call(&addr, &roots, "a.test", b"http/1.1").await;
    assert_eq!(status, 200, "a good client is served beside them");
    let grown = rss_mb(p.pid()) - before;
    eprintln!("500 half-open handshakes: RSS {before:.1} MB, grew {grown:.1} MB");
    assert!(grown < 32.0, "RSS grew {grown:.1} MB");
    // Each is closed once the header timeout (1 s) has passed.
    for s in &mut half {
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "still open: {r:?}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(6));

    // No SNI (an IP address as the name) and an unknown one: the first certificate, which the
    // client then finds not valid for the name it wanted.
    let ip = addr.split(':').next().unwrap();
    for name in ["c.test", ip] {
        let e = try_handshake(&addr, &roots, name, b"http/1.1")
            .await
            .err()
            .map(|e| format!("{e:?}"))
            .unwrap_or_default();
        assert!(
            e.contains("NotValidForName") && e.contains(r#"presented: ["DnsName(\"a.test\")"]"#),
            "{name}: {e}"
        );
    }

    // TLS 1.0 and 1.1: a fatal alert (rustls answers this hello's only suite, RSA key
    // exchange, with handshake_failure, 40; protocol_version is 70), never a ServerHello.
    for version in [0x01u8, 0x02] {
        let mut hello = tls10_client_hello();
        hello[2] = version;
        hello[10] = version;
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(&hello).await.unwrap();
        let mut got = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(3), s.read_to_end(&mut got)).await;
        assert!(
            got.len() >= 7 && got[0] == 0x15 && got[5] == 2 && [40, 70].contains(&got[6]),
            "TLS 1.{}: {got:02x?}",
            version - 1
        );
    }
    let (status, _, _) = call(&addr, &roots, "a.test", b"h2").await;
    assert_eq!(status, 200);
}
