//! Several services behind one listener: routes by path, host and method (rewriting a prefix),
//! a 404 for what no route matches, per-service metrics, admin API and control loops. Real
//! `foresight serve` and `foresight backend` processes.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};

/// A GET with an explicit Host field.
async fn get_host(c: &HttpClient, url: &str, method: &str, host: &str) -> (u16, String, String) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let instance = resp
        .headers()
        .get("x-foresight-instance")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        instance,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_services_route_balance_and_scale_on_their_own() {
    let dir = tempdir("services");
    let (_a, auth) = backend("auth-1", &["--route", "/auth=1ms"]);
    let (_d, data) = backend("data-1", &["--route", "/process=1ms"]);
    let (_e, ext) = backend("ext-1", &["--route", "/external=1ms"]);
    let control = "interval = \"500ms\"\nstep = \"1s\"\npolicy = \"hpa\"\nactuator = \"none\"";
    let p = proxy(
        &dir,
        &format!(
            r#"
[health_check]
enabled = false

[[services]]
name = "auth"
backends = [{{ address = "{auth}" }}]

[[services]]
name = "data"
backends = [{{ address = "{data}" }}]
[services.control]
{control}

[[services]]
name = "ext"
backends = [{{ address = "{ext}" }}]
[services.control]
{control}

[[routes]]
path_prefix = "/v1/auth"
rewrite_prefix = "/auth"
service = "auth"

[[routes]]
host = "*.data.test"
service = "data"

[[routes]]
path_prefix = "/external"
methods = ["GET"]
service = "ext"
"#
        ),
        &[],
    );
    let (proxy_addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let c = client();
    let url = |path: &str| format!("http://{proxy_addr}{path}");

    // Routing: a rewritten prefix, a wildcard host, a method; first match wins.
    let (s, who, _) = get_host(&c, &url("/v1/auth"), "GET", "shop.test").await;
    assert_eq!(
        (s, who.as_str()),
        (200, "auth-1"),
        "/v1/auth is /auth on auth"
    );
    let (s, who, _) = get_host(&c, &url("/process"), "GET", "EU.Data.Test:8080").await;
    assert_eq!((s, who.as_str()), (200, "data-1"));
    let (s, who, _) = get_host(&c, &url("/external"), "GET", "shop.test").await;
    assert_eq!((s, who.as_str()), (200, "ext-1"));
    let (s, _, body) = get_host(&c, &url("/external"), "POST", "shop.test").await;
    assert_eq!(s, 404, "only GET is routed to ext: {body}");
    let (s, _, body) = get_host(&c, &url("/v1/authz"), "GET", "shop.test").await;
    assert_eq!(s, 404, "a prefix matches whole segments: {body}");
    assert!(body.contains("no route"), "{body}");

    // Metrics per service.
    let m = get(&c, &format!("http://{admin}/metrics")).await.body;
    for line in [
        "foresight_client_requests_total{service=\"auth\"} 1",
        "foresight_client_requests_total{service=\"data\"} 1",
        "foresight_client_requests_total{service=\"ext\"} 1",
        "foresight_no_route_total 2",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    assert!(
        m.contains(&format!(
            "foresight_requests_total{{service=\"data\",backend=\"{data}\",code=\"200\"}} 1"
        )),
        "{m}"
    );

    // The admin API per service.
    let services: serde_json::Value =
        serde_json::from_str(&get(&c, &format!("http://{admin}/services")).await.body).unwrap();
    let names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["auth", "data", "ext"]);
    let r = get(&c, &format!("http://{admin}/backends")).await;
    assert_eq!(r.status, 404, "ambiguous with several services: {}", r.body);
    assert!(r.body.contains("/services/NAME/backends"), "{}", r.body);
    let r = get(&c, &format!("http://{admin}/services/nope/backends")).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("auth, data, ext"), "{}", r.body);
    let (_a2, auth2) = backend("auth-2", &["--route", "/auth=1ms"]);
    let r = send(
        &c,
        "POST",
        &format!("http://{admin}/services/auth/backends"),
        &format!(r#"{{"address": "{auth2}", "start_healthy": true}}"#),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let r = send(
        &c,
        "POST",
        &format!("http://{admin}/services/auth/backends/drain?address={auth}&wait=true"),
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    for _ in 0..5 {
        let (s, who, _) = get_host(&c, &url("/v1/auth"), "GET", "shop.test").await;
        assert_eq!((s, who.as_str()), (200, "auth-2"), "auth-1 was drained");
    }
    let data_members: Vec<serde_json::Value> = serde_json::from_str(
        &get(&c, &format!("http://{admin}/services/data/backends"))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(data_members.len(), 1, "the drain touched auth only");

    // A control loop per service, each on its own service's requests.
    let all = control_status(&c, &admin).await;
    let loops = all["services"].as_array().expect("several loops");
    let names: Vec<&str> = loops
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["data", "ext"], "{all}");
    let loop_of = |name: &str| format!("http://{admin}/services/{name}/control");
    // Two intervals on, ext's one request above is out of its window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = std::time::Instant::now();
    let (mut data_rps, mut ext_rps) = (0.0, 0.0);
    while started.elapsed() < Duration::from_secs(10) && data_rps == 0.0 {
        for _ in 0..10 {
            let (s, _, _) = get_host(&c, &url("/process"), "GET", "x.data.test").await;
            assert_eq!(s, 200);
        }
        let st = |body: String| serde_json::from_str::<serde_json::Value>(&body).unwrap();
        data_rps = st(get(&c, &loop_of("data")).await.body)["observed_rps"]
            .as_f64()
            .unwrap();
        ext_rps = st(get(&c, &loop_of("ext")).await.body)["observed_rps"]
            .as_f64()
            .unwrap();
    }
    assert!(data_rps > 0.0, "data's loop sees data's requests");
    assert_eq!(ext_rps, 0.0, "ext's loop does not see data's requests");
    let one: serde_json::Value = serde_json::from_str(
        &get(&c, &format!("http://{admin}/services/ext/control"))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(one["service"], "ext", "{one}");
}

/// The evasions of the second probe (issue #36): a path spelled another way takes the route it
/// spells, and is forwarded in its normal form; encoded slashes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_spelled_another_way_takes_the_route_it_spells() {
    let dir = tempdir("paths");
    let (_a, auth) = backend(
        "auth-1",
        &["--route", "/auth=1ms", "--route", "/auth/login=1ms"],
    );
    let (_w, web) = backend("web-1", &["--route", "/process=1ms"]);
    let p = proxy(
        &dir,
        &format!(
            r#"
[health_check]
enabled = false

[[services]]
name = "auth"
backends = [{{ address = "{auth}" }}]

[[services]]
name = "web"
backends = [{{ address = "{web}" }}]

[[routes]]
path_prefix = "/auth"
service = "auth"

[[routes]]
path_prefix = "/"
service = "web"
"#
        ),
        &[],
    );
    let proxy_addr = p.get("proxy").to_string();
    let c = client();
    let url = |path: &str| format!("http://{proxy_addr}{path}");
    for (path, status, instance) in [
        ("/auth", 200, "auth-1"),
        ("/%61uth", 200, "auth-1"),
        ("/%61%75%74%68?x=1", 200, "auth-1"),
        ("//auth", 200, "auth-1"),
        ("/x/../auth//login", 200, "auth-1"),
        ("/auth/../process", 200, "web-1"),
        ("/./process", 200, "web-1"),
    ] {
        let (s, who, body) = get_host(&c, &url(path), "GET", "shop.test").await;
        assert_eq!((s, who.as_str()), (status, instance), "{path}: {body}");
    }
    for path in ["/auth%2flogin", "/auth%5Clogin", "/a%zz"] {
        let (s, who, body) = get_host(&c, &url(path), "GET", "shop.test").await;
        assert_eq!((s, who.as_str()), (400, ""), "{path}: {body}");
    }
}
