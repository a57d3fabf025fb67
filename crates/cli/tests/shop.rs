//! The shop example (`examples/shop/`) as written: three services on three pools of real
//! `foresight backend` processes, each scaled by its own loop. A surge on one route scales
//! that service out and leaves the other two alone.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_on_one_route_scales_that_service_only() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/shop/foresight.toml"
    );
    let admin = format!("127.0.0.1:{}", free_port());
    let p = serve_at(std::path::Path::new(example), &admin, &[]);
    let proxy = format!("http://{}", p.get("proxy"));
    let c = client();
    let loop_of = |name: &str| format!("http://{admin}/services/{name}/control");
    let state = |body: String| serde_json::from_str::<serde_json::Value>(&body).unwrap();
    eventually(
        Duration::from_secs(20),
        "each service has its first instance",
        || async {
            let all = state(get(&c, &format!("http://{admin}/control")).await.body);
            all["services"]
                .as_array()
                .is_some_and(|s| s.len() == 3 && s.iter().all(|s| s["ready"] == 1))
        },
    )
    .await;

    // The mix at a low rate, and a surge of 100 req/s on /process (~2.5 data instances' worth).
    let mix = foresight_loadgen::Plan::constant(
        &proxy,
        &["/auth", "/process", "/external"],
        15.0,
        Duration::from_secs(20),
    );
    let surge =
        foresight_loadgen::Plan::constant(&proxy, &["/process"], 100.0, Duration::from_secs(20));
    let mix = tokio::spawn(async move { foresight_loadgen::run(&mix).await });
    let surge = tokio::spawn(async move { foresight_loadgen::run(&surge).await });
    eventually(
        Duration::from_secs(25),
        "data scales out under its surge",
        || async { state(get(&c, &loop_of("data")).await.body)["ready"].as_u64() >= Some(3) },
    )
    .await;
    for name in ["auth", "ext"] {
        let s = state(get(&c, &loop_of(name)).await.body);
        assert_eq!(s["desired"], 1, "{name} is not scaled by data's surge: {s}");
        assert!(s["decisions"].as_array().unwrap().is_empty(), "{s}");
    }
    let (mix, surge) = (mix.await.unwrap().unwrap(), surge.await.unwrap().unwrap());
    assert_eq!(
        mix.failures(),
        0,
        "the other services served the mix throughout"
    );
    assert!(
        surge.failures() * 20 <= surge.sent,
        "at most 5% of the surge failed before data scaled: {} of {}",
        surge.failures(),
        surge.sent
    );
}
