//! TLS to instances: `https://` addresses verified against a CA bundle under a configured
//! name (sent as SNI), health checks over TLS, a client certificate for an instance that
//! requires one, and HTTP/2 over TLS (`protocol = "h2"`) to gRPC instances. The instance is a real HTTPS server (rustls + hyper) with certificates made
//! at test time by a test CA (rcgen); the proxy is a real `foresight serve`.

mod common;

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A test CA, and certificates it signs: (PEM chain, PEM key).
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn sign(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// An HTTPS instance with `chain`/`key`, requiring a client certificate signed by
/// `client_ca` if given; it answers every request with `sni=NAME client_cert=BOOL`.
async fn https_instance(chain: &str, key: &str, client_ca: Option<&str>) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let cfg = Arc::new(builder.with_single_cert(certs, key).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, session) = tls.get_ref();
                let answer = format!(
                    "sni={} client_cert={}",
                    session.server_name().unwrap_or("-"),
                    session.peer_certificates().is_some()
                );
                let svc = hyper::service::service_fn(move |_req| {
                    let body = answer.clone();
                    async move {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    format!("https://{addr}")
}

/// A gRPC instance over TLS with `chain`/`key`, agreeing by ALPN to `alpn` only: the standard
/// health service (tonic-health) over HTTP/2, its service `who` SERVING.
async fn grpc_tls_instance(chain: &str, key: &str, alpn: &[u8]) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("who", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _reporter = reporter;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, health) = (acceptor.clone(), health.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let mut health = health.clone();
                    async move { tonic::codegen::Service::call(&mut health, req).await }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    format!("https://{addr}")
}

fn write(dir: &Path, file: &str, text: &str) -> String {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_instances_verified_by_a_ca_under_a_name_with_health_checks() {
    let dir = tempdir("upstream-tls");
    let ca = Ca::new();
    let ca_file = write(&dir, "ca.pem", &ca.cert.pem());
    let (chain, key) = ca.sign("api.internal");
    let instance = https_instance(&chain, &key, None).await;
    let http = client();

    // Verified against the CA, under the configured name; health checks go over TLS too
    // (the instance only becomes eligible once they pass).
    let p = proxy(
        &dir,
        &format!(
            "backends = [{{ address = \"{instance}\" }}]\n[health_check]\ninterval = \"200ms\"\n\
             timeout = \"150ms\"\n[upstream_tls]\nca = \"{ca_file}\"\nserver_name = \"api.internal\"\n"
        ),
        &[],
    );
    let url = format!("http://{}/t", p.get("proxy"));
    let r = get(&http, &url).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "sni=api.internal client_cert=false");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let b = &backends(&http, p.get("admin")).await[0];
    assert_eq!(b["healthy"], true, "health checks pass over TLS: {b}");
    drop(p);

    // Without the name, the certificate (for api.internal) does not cover 127.0.0.1.
    let p = proxy(
        &dir,
        &format!(
            "backends = [{{ address = \"{instance}\" }}]\n[health_check]\nenabled = false\n\
             [upstream_tls]\nca = \"{ca_file}\"\n"
        ),
        &[],
    );
    let r = get(&http, &format!("http://{}/t", p.get("proxy"))).await;
    assert_eq!(r.status, 502, "{}", r.body);
    drop(p);

    // Nor is it trusted without the CA (the system's roots do not have the test CA).
    let p = proxy(
        &dir,
        &format!(
            "backends = [{{ address = \"{instance}\" }}]\n[health_check]\nenabled = false\n\
             [upstream_tls]\nserver_name = \"api.internal\"\n"
        ),
        &[],
    );
    let r = get(&http, &format!("http://{}/t", p.get("proxy"))).await;
    assert_eq!(r.status, 502, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_for_an_instance_that_requires_one() {
    let dir = tempdir("upstream-mtls");
    let ca = Ca::new();
    let ca_pem = ca.cert.pem();
    let ca_file = write(&dir, "ca.pem", &ca_pem);
    let (chain, key) = ca.sign("api.internal");
    let instance = https_instance(&chain, &key, Some(&ca_pem)).await;
    let (client_chain, client_key) = ca.sign("proxy.internal");
    let (cert_file, key_file) = (
        write(&dir, "client.pem", &client_chain),
        write(&dir, "client.key", &client_key),
    );
    let http = client();
    let section = |identity: &str| {
        format!(
            "backends = [{{ address = \"{instance}\" }}]\n[health_check]\nenabled = false\n\
             [upstream_tls]\nca = \"{ca_file}\"\nserver_name = \"api.internal\"\n{identity}"
        )
    };

    let p = proxy(&dir, &section(""), &[]);
    let r = get(&http, &format!("http://{}/t", p.get("proxy"))).await;
    assert_eq!(
        r.status, 502,
        "refused without a client certificate: {}",
        r.body
    );
    drop(p);

    let p = proxy(
        &dir,
        &section(&format!("cert = \"{cert_file}\"\nkey = \"{key_file}\"\n")),
        &[],
    );
    let r = get(&http, &format!("http://{}/t", p.get("proxy"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "sni=api.internal client_cert=true");

    // A key that is not the certificate's: refused at start, naming the key.
    let o = run(&[
        "serve",
        "--config",
        &write(
            &dir,
            "bad.toml",
            &section(&format!(
                "cert = \"{cert_file}\"\nkey = \"{}\"\n",
                write(&dir, "other.key", &ca.sign("x").1)
            )),
        ),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("upstream_tls.key"), "{}", text(&o));
}

/// `protocol = "h2"`: HTTP/2 over TLS to instances, verified by `[upstream_tls]` and agreed by
/// ALPN. gRPC calls from an h2c client pass to the instance that speaks h2 over TLS, its gRPC
/// health checks pass over the same connection; an instance that will only agree to HTTP/1.1
/// is never healthy and gets no call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_h2_with_tls_to_instances() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let dir = tempdir("upstream-h2");
    let ca = Ca::new();
    let ca_file = write(&dir, "ca.pem", &ca.cert.pem());
    let (chain, key) = ca.sign("grpc.internal");
    let h2 = grpc_tls_instance(&chain, &key, b"h2").await;
    let h1_only = grpc_tls_instance(&chain, &key, b"http/1.1").await;
    let p = proxy(
        &dir,
        &format!(
            "[upstream_tls]\nca = \"{ca_file}\"\nserver_name = \"grpc.internal\"\n\n\
             [health_check]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n\n\
             [[services]]\nname = \"grpc\"\nprotocol = \"h2\"\n\
             health_check = {{ type = \"grpc\", grpc_service = \"who\" }}\n\
             balancer = {{ algorithm = \"round-robin\" }}\n\
             backends = [{{ address = \"{h2}\" }}, {{ address = \"{h1_only}\" }}]\n"
        ),
        &[],
    );
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();
    let healthy = || {
        let (http, admin) = (http.clone(), admin.clone());
        async move { healthy_members(&http, &admin, "grpc").await }
    };
    eventually(
        std::time::Duration::from_secs(10),
        "the h2 instance healthy",
        || {
            let (healthy, h2) = (healthy(), h2.clone());
            async move { healthy.await == vec![h2] }
        },
    )
    .await;
    // A few more checks: the HTTP/1.1-only instance stays out.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(healthy().await, vec![h2.clone()]);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{url}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = HealthClient::new(channel);
    for _ in 0..20 {
        let r = c
            .check(HealthCheckRequest {
                service: "who".into(),
            })
            .await
            .expect("a call over h2 with TLS");
        assert_eq!(
            r.into_inner().status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    }
    let e = c
        .check(HealthCheckRequest {
            service: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    // Every call went to the h2 instance.
    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    let to = |addr: &str| -> f64 {
        m.lines()
            .filter(|l| {
                l.starts_with("foresight_requests_total{")
                    && l.contains(&format!("backend=\"{addr}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!((to(&h2), to(&h1_only)), (21.0, 0.0), "{m}");
}
