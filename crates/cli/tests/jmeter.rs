//! Real Apache JMeter 5.5 (non-GUI) and `foresight loadgen` send the same requests to a real
//! backend; `foresight report --jtl` reads both JTL files into the same counts (by label and
//! status), and `loadgen`'s own summary agrees with the report of its JTL.
//!
//! JMeter is laid out by `bench/jmeter/install.sh` (in `target/jmeter`, or at
//! `FORESIGHT_JMETER_JAR`); with `CI` set its absence is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const ROUTES: [&str; 3] = ["/a", "/b", "/missing"];
const THREADS: usize = 3;
const LOOPS: usize = 20;

fn jmeter_jar() -> Option<PathBuf> {
    let jar = std::env::var_os("FORESIGHT_JMETER_JAR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/jmeter/bin/ApacheJMeter.jar"),
        PathBuf::from,
    );
    if jar.is_file() {
        return Some(jar);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} not found, and CI is set (.ci/run lays JMeter out with bench/jmeter/install.sh)",
        jar.display()
    );
    eprintln!(
        "skipping: {} not found (bench/jmeter/install.sh)",
        jar.display()
    );
    None
}

/// One thread group of THREADS threads, LOOPS loops over the routes, nothing between samples.
fn plan(port: u16) -> String {
    let sampler = |path: &str| {
        format!(
            r#"<HTTPSamplerProxy guiclass="HttpTestSampleGui" testclass="HTTPSamplerProxy" testname="{path}" enabled="true">
  <elementProp name="HTTPsampler.Arguments" elementType="Arguments"><collectionProp name="Arguments.arguments"/></elementProp>
  <stringProp name="HTTPSampler.domain">127.0.0.1</stringProp>
  <stringProp name="HTTPSampler.port">{port}</stringProp>
  <stringProp name="HTTPSampler.protocol">http</stringProp>
  <stringProp name="HTTPSampler.path">{path}</stringProp>
  <stringProp name="HTTPSampler.method">GET</stringProp>
  <boolProp name="HTTPSampler.use_keepalive">true</boolProp>
  <stringProp name="HTTPSampler.implementation">HttpClient4</stringProp>
  <stringProp name="HTTPSampler.connect_timeout">2000</stringProp>
  <stringProp name="HTTPSampler.response_timeout">10000</stringProp>
</HTTPSamplerProxy>
<hashTree/>"#
        )
    };
    let samplers: String = ROUTES.iter().map(|p| sampler(p)).collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<jmeterTestPlan version="1.2" properties="5.0" jmeter="5.5">
<hashTree>
<TestPlan guiclass="TestPlanGui" testclass="TestPlan" testname="report test" enabled="true">
  <elementProp name="TestPlan.user_defined_variables" elementType="Arguments"><collectionProp name="Arguments.arguments"/></elementProp>
</TestPlan>
<hashTree>
<ThreadGroup guiclass="ThreadGroupGui" testclass="ThreadGroup" testname="fixed" enabled="true">
  <stringProp name="ThreadGroup.on_sample_error">continue</stringProp>
  <elementProp name="ThreadGroup.main_controller" elementType="LoopController" guiclass="LoopControlPanel" testclass="LoopController" enabled="true">
    <boolProp name="LoopController.continue_forever">false</boolProp>
    <stringProp name="LoopController.loops">{LOOPS}</stringProp>
  </elementProp>
  <stringProp name="ThreadGroup.num_threads">{THREADS}</stringProp>
  <stringProp name="ThreadGroup.ramp_time">0</stringProp>
  <boolProp name="ThreadGroup.scheduler">false</boolProp>
</ThreadGroup>
<hashTree>
{samplers}
</hashTree>
</hashTree>
</hashTree>
</jmeterTestPlan>
"#
    )
}

fn report(jtl: &Path, json: &Path) -> serde_json::Value {
    let o = run(&[
        "report",
        "--jtl",
        jtl.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// What must agree: samples, responses, errors, statuses, and requests per label.
fn counts(v: &serde_json::Value) -> serde_json::Value {
    let routes: serde_json::Map<String, serde_json::Value> = ROUTES
        .iter()
        .map(|r| (r.to_string(), v["routes"][*r]["requests"].clone()))
        .collect();
    serde_json::json!({
        "samples": v["samples"],
        "responses": v["responses"],
        "errors": v["errors"],
        "statuses": v["statuses"],
        "routes": routes,
    })
}

#[test]
fn jmeter_and_loadgen_jtl_files_report_the_same_counts() {
    let Some(jar) = jmeter_jar() else { return };
    let (_b, addr) = backend("jtl", &["--route", "/a=1ms", "--route", "/b=2ms"]);
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let dir = tempdir("jmeter-report");
    let jmx = dir.join("plan.jmx");
    std::fs::write(&jmx, plan(port)).unwrap();
    let (jmeter_jtl, loadgen_jtl) = (dir.join("jmeter.jtl"), dir.join("loadgen.jtl"));
    let jmeter_home = jar.parent().unwrap().parent().unwrap();
    let o = Command::new("java")
        .current_dir(jmeter_home)
        .arg("-jar")
        .arg(&jar)
        .args(["-n", "-t"])
        .arg(&jmx)
        .arg("-l")
        .arg(&jmeter_jtl)
        .arg("-j")
        .arg(dir.join("jmeter.log"))
        .arg("-Jjmeter.save.saveservice.output_format=csv")
        .output()
        .expect("java runs");
    assert!(
        o.status.success(),
        "jmeter: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // The same 180 requests from loadgen: 60 per route, in rotation.
    let n = THREADS * LOOPS * ROUTES.len();
    let loadgen_json = dir.join("loadgen.json");
    let mut args = vec![
        "loadgen".to_string(),
        "--target".into(),
        addr.clone(),
        "--rate".into(),
        "60".into(),
        "--duration".into(),
        format!("{}s", n / 60),
        "--jtl".into(),
        loadgen_jtl.to_str().unwrap().into(),
        "--json".into(),
        loadgen_json.to_str().unwrap().into(),
        "--quiet".into(),
    ];
    for r in ROUTES {
        args.extend(["--route".to_string(), r.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run_for(&args, Duration::from_secs(60));
    assert!(o.status.success(), "{}", text(&o));

    let from_jmeter = report(&jmeter_jtl, &dir.join("jmeter.json"));
    let from_loadgen = report(&loadgen_jtl, &dir.join("loadgen-report.json"));
    let expected = serde_json::json!({
        "samples": n,
        "responses": n,
        "errors": 0,
        "statuses": {"200": 2 * n / 3, "404": n / 3},
        "routes": {"/a": n / 3, "/b": n / 3, "/missing": n / 3},
    });
    assert_eq!(
        counts(&from_jmeter),
        expected,
        "JMeter's JTL: {from_jmeter}"
    );
    assert_eq!(
        counts(&from_loadgen),
        expected,
        "loadgen's JTL: {from_loadgen}"
    );
    // JMeter's thread group is the report's group; its 404s are JMeter's failures.
    assert_eq!(from_jmeter["groups"]["fixed"]["requests"], n);
    assert_eq!(from_jmeter["failed"], n / 3);
    // loadgen's own summary and the report of its JTL agree.
    let own: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&loadgen_json).unwrap()).unwrap();
    assert_eq!(own["requests"], from_loadgen["samples"]);
    assert_eq!(own["statuses"], from_loadgen["statuses"]);
    assert_eq!(own["failures"], from_loadgen["failures"]);

    // Plots from JMeter's file.
    let plots = dir.join("plots");
    let o = run(&[
        "report",
        "--jtl",
        jmeter_jtl.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("/missing") && out.contains("404=60"), "{out}");
    for (f, shows) in [
        ("latency-cdf.svg", "/missing"),
        ("timeline.svg", "samples per second"),
    ] {
        let svg = std::fs::read_to_string(plots.join(f)).unwrap();
        assert!(svg.contains("<svg") && svg.contains(shows), "{f}");
    }
}

#[test]
fn a_bad_jtl_file_is_a_usage_error_naming_the_line() {
    let dir = tempdir("jtl-bad");
    let f = dir.join("bad.jtl");
    std::fs::write(
        &f,
        "timeStamp,elapsed,label,responseCode,success\n1,2,/a,200,true\n1,-3,/a,200,true\n",
    )
    .unwrap();
    let o = run(&["report", "--jtl", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        text(&o).contains("bad.jtl: line 3, column `elapsed`: `-3`"),
        "{}",
        text(&o)
    );
    let o = run(&["report", "--jtl", dir.join("absent.jtl").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("--jtl"), "{}", text(&o));
}
