//! The scaler called as KEDA calls it: a tonic client of `externalscaler.proto` over real
//! HTTP/2 on a loopback port.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foresight_keda::pb::external_scaler_client::ExternalScalerClient;
use foresight_keda::pb::{GetMetricsRequest, IsActiveResponse, ScaledObjectRef};
use foresight_keda::{Reading, Readings, Scaler, Unavailable};
use tonic::Code;

#[derive(Default)]
struct Loops(Mutex<Vec<(String, Result<Reading, Unavailable>)>>);

impl Loops {
    fn set(&self, service: &str, r: Result<Reading, Unavailable>) {
        let mut all = self.0.lock().unwrap();
        match all.iter_mut().find(|(s, _)| s == service) {
            Some(slot) => slot.1 = r,
            None => all.push((service.to_string(), r)),
        }
    }
}

impl Readings for Loops {
    fn services(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }
    fn reading(&self, service: &str) -> Result<Reading, Unavailable> {
        let all = self.0.lock().unwrap();
        match all.iter().find(|(s, _)| s == service) {
            Some((_, r)) => r.clone(),
            None => Err(Unavailable::Unknown),
        }
    }
}

fn reading(planned: f64, desired: usize) -> Result<Reading, Unavailable> {
    Ok(Reading {
        planned: Some(planned),
        trusted: true,
        observed: 12.0,
        desired,
        per_replica: 56.0,
    })
}

async fn start(
    loops: Arc<Loops>,
    max_streams: usize,
) -> ExternalScalerClient<tonic::transport::Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scaler = Scaler::new(loops, Duration::from_millis(50)).with_max_streams(max_streams);
    tokio::spawn(foresight_keda::serve(
        listener,
        scaler,
        None,
        std::future::pending(),
    ));
    ExternalScalerClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn object(pairs: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: "web".into(),
        namespace: "shop".into(),
        scaler_metadata: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    }
}

#[tokio::test]
async fn spec_and_metrics_give_the_hpa_the_predictive_count() {
    let loops = Arc::new(Loops::default());
    loops.set("web", reading(600.0, 9));
    loops.set("api", reading(30.0, 1));
    let mut c = start(loops.clone(), 8).await;
    // KEDA passes the trigger's whole metadata, its own keys included.
    let web = object(&[("service", "web"), ("scalerAddress", "foresight:9090")]);

    let spec = c.get_metric_spec(web.clone()).await.unwrap().into_inner();
    let [s] = &spec.metric_specs[..] else {
        panic!("{spec:?}")
    };
    assert_eq!(s.metric_name, "foresight-web-planned-rps");
    assert_eq!(s.target_size_float, 56.0);
    assert_eq!(s.target_size, 56);

    let get = |o: &ScaledObjectRef, name: &str| GetMetricsRequest {
        scaled_object_ref: Some(o.clone()),
        metric_name: name.into(),
    };
    let m = c
        .get_metrics(get(&web, &s.metric_name))
        .await
        .unwrap()
        .into_inner();
    let [v] = &m.metric_values[..] else {
        panic!("{m:?}")
    };
    assert_eq!(v.metric_name, s.metric_name);
    assert_eq!(v.metric_value_float, 600.0);
    assert_eq!(v.metric_value, 600);
    // The HPA's AverageValue arithmetic: ceil(600 / 56) = 11 = ceil(load / (capacity × target)).
    assert_eq!((v.metric_value_float / s.target_size_float).ceil(), 11.0);

    // The forecast distrusted: the observed rate is the load.
    loops.set(
        "web",
        Ok(Reading {
            trusted: false,
            ..reading(600.0, 9).unwrap()
        }),
    );
    let m = c.get_metrics(get(&web, "")).await.unwrap().into_inner();
    assert_eq!(m.metric_values[0].metric_value_float, 12.0);

    // `metric: replicas` is the loop's whole decision over a target of 1.
    let replicas = object(&[("service", "web"), ("metric", "replicas")]);
    let spec = c
        .get_metric_spec(replicas.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(spec.metric_specs[0].metric_name, "foresight-web-replicas");
    assert_eq!(spec.metric_specs[0].target_size_float, 1.0);
    let m = c
        .get_metrics(get(&replicas, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.metric_values[0].metric_value_float, 9.0);

    assert!(c.is_active(web.clone()).await.unwrap().into_inner().result);
    loops.set("web", reading(0.0, 0));
    assert!(!c.is_active(web).await.unwrap().into_inner().result);
}

#[tokio::test]
async fn bad_triggers_and_unready_loops_get_clear_status_codes() {
    let loops = Arc::new(Loops::default());
    loops.set("web", reading(600.0, 9));
    loops.set(
        "api",
        Err(Unavailable::Pending("no measurement yet".into())),
    );
    let mut c = start(loops, 8).await;

    let e = c.is_active(object(&[])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("missing") && e.message().contains("web, api"),
        "{e:?}"
    );

    let e = c
        .get_metric_spec(object(&[("service", "db")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("\"db\""), "{e:?}");

    let e = c
        .get_metric_spec(object(&[("service", "web"), ("metric", "cpu")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // A loop that has not measured yet: KEDA keeps the current count rather than acting on 0.
    let e = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(object(&[("service", "api")])),
            metric_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("no measurement yet"), "{e:?}");

    // A request without the object at all.
    let e = c
        .get_metrics(GetMetricsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

async fn next(s: &mut tonic::Streaming<IsActiveResponse>) -> IsActiveResponse {
    tokio::time::timeout(Duration::from_secs(5), s.message())
        .await
        .expect("a message within 5 s")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn stream_is_active_sends_at_once_and_on_every_change() {
    let loops = Arc::new(Loops::default());
    loops.set("web", reading(600.0, 9));
    let mut c = start(loops.clone(), 2).await;
    let web = object(&[("service", "web")]);
    let mut stream = c.stream_is_active(web.clone()).await.unwrap().into_inner();
    assert!(next(&mut stream).await.result);
    loops.set("web", reading(0.0, 0));
    assert!(!next(&mut stream).await.result);
    loops.set("web", reading(5.0, 1));
    assert!(next(&mut stream).await.result);
    // No change, no message.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.message())
            .await
            .is_err()
    );

    // Streams are bounded: a third is refused while two are open.
    let _second = c.stream_is_active(web.clone()).await.unwrap().into_inner();
    let e = c.stream_is_active(web.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    // A closed stream frees its place.
    drop(stream);
    let mut again = None;
    for _ in 0..50 {
        match c.stream_is_active(web.clone()).await {
            Ok(s) => {
                again = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(again.is_some(), "the closed stream's place was not freed");
}

/// A test CA and what it signs: (PEM chain, PEM key).
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn sign(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

#[tokio::test]
async fn over_mutual_tls_only_clients_with_a_certificate_get_answers() {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

    let ca = Ca::new();
    let (cert, key) = ca.sign("localhost");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let loops = Arc::new(Loops::default());
    loops.set("web", reading(600.0, 9));
    tokio::spawn(foresight_keda::serve(
        listener,
        Scaler::new(loops, Duration::from_millis(50)),
        Some(foresight_keda::Tls {
            cert: cert.into_bytes(),
            key: key.into_bytes(),
            client_ca: Some(ca.cert.pem().into_bytes()),
        }),
        std::future::pending(),
    ));
    let channel = |identity: Option<Identity>| {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.cert.pem()))
            .domain_name("localhost");
        if let Some(i) = identity {
            tls = tls.identity(i);
        }
        Channel::from_shared(format!("https://127.0.0.1:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
    };
    let ask = |ch: Channel| async move {
        let mut c = ExternalScalerClient::new(ch);
        c.is_active(object(&[("service", "web")])).await
    };

    // KEDA with tlsClientCert/tlsClientKey signed by the CA: answered.
    let (client_cert, client_key) = ca.sign("keda");
    let ch = channel(Some(Identity::from_pem(client_cert, client_key)))
        .connect()
        .await
        .unwrap();
    assert!(ask(ch).await.unwrap().into_inner().result);

    // Without a client certificate, or in plain text: no answer.
    let refused = match channel(None).connect().await {
        Err(_) => true,
        Ok(ch) => ask(ch).await.is_err(),
    };
    assert!(refused, "a client without a certificate was answered");
    let plain = match Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
    {
        Err(_) => true,
        Ok(ch) => ask(ch).await.is_err(),
    };
    assert!(plain, "a plain-text client was answered");
}
