//! Tests of configuration parsing and validation.
use super::*;

fn validate(text: &str) -> Result<ProxyConfig, ConfigError> {
    RawConfig::from_toml(text, "test.toml")?.validate()
}

fn key_of(e: ConfigError) -> String {
    match e {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn defaults_are_valid() {
    let c = validate("").unwrap();
    assert_eq!(c.listen.to_string(), defaults::LISTEN);
    assert_eq!(c.balancer.config.algorithm, Algorithm::P2cEwma);
    assert_eq!(c.retries, 1);
    assert!(c.health_check.is_some() && c.outlier.is_some());
}

#[test]
fn full_file_parses() {
    let c = validate(
        r#"
        listen = "127.0.0.1:18080"
        admin = "127.0.0.1:19900"
        workers = 1
        drain_timeout = "5s"
        [balancer]
        algorithm = "consistent-hash"
        hash_on = "header:x-user"
        seed = 9
        [timeouts]
        connect = "200ms"
        [health_check]
        enabled = false
        [outlier]
        consecutive_errors = 2
        [[backends]]
        address = "http://127.0.0.1:9001"
        weight = 3
        [[backends]]
        address = "127.0.0.1:9002"
        "#,
    )
    .unwrap();
    assert_eq!(c.workers, 1);
    assert_eq!(
        c.balancer.hash_on,
        HashOn::Header(http::HeaderName::from_static("x-user"))
    );
    assert_eq!(c.backends[0].weight, 3);
    assert_eq!(c.backends[1].authority.as_str(), "127.0.0.1:9002");
    assert!(c.health_check.is_none());
    assert_eq!(c.outlier.unwrap().consecutive_errors, 2);
}

#[test]
fn each_bad_value_names_its_key() {
    let cases = [
        ("listen = \"nowhere\"", "listen"),
        ("workers = 0", "workers"),
        ("[balancer]\nalgorithm = \"fastest\"", "balancer.algorithm"),
        ("[balancer]\nhash_on = \"cookie\"", "balancer.hash_on"),
        (
            "[balancer]\nslow_start_window = \"0s\"",
            "balancer.slow_start_window",
        ),
        (
            "[balancer]\nslow_start_window = \"30s\"\nslow_start_aggression = 0",
            "balancer.slow_start_aggression",
        ),
        ("[timeouts]\nconnect = \"soon\"", "timeouts.connect"),
        ("[timeouts]\nrequest = \"0s\"", "timeouts.request"),
        ("[health_check]\npath = \"ready\"", "health_check.path"),
        (
            "[health_check]\ninterval = \"1s\"\ntimeout = \"2s\"",
            "health_check.timeout",
        ),
        ("[health_check]\nrise = 0", "health_check.rise"),
        (
            "[outlier]\nmax_ejection_percent = 150",
            "outlier.max_ejection_percent",
        ),
        (
            "[outlier]\nbase_ejection_time = \"10s\"\nmax_ejection_time = \"1s\"",
            "outlier.max_ejection_time",
        ),
        ("[retries]\nattempts = -1", "retries.attempts"),
        (
            "[[backends]]\naddress = \"https://a:1\"",
            "backends[0].address",
        ),
        (
            "[[backends]]\naddress = \"http://a\"",
            "backends[0].address",
        ),
        (
            "[[backends]]\naddress = \"a:1\"\nweight = 0",
            "backends[0].weight",
        ),
        (
            "[[backends]]\naddress = \"a:1\"\n[[backends]]\naddress = \"a:1\"",
            "backends[1].address",
        ),
    ];
    for (text, key) in cases {
        assert_eq!(key_of(validate(text).unwrap_err()), key, "{text}");
    }
}

#[test]
fn unknown_keys_and_types_give_the_line() {
    let e = validate("listen = \"127.0.0.1:1\"\n[balancer]\nalgoritm = \"x\"\n").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("test.toml") && msg.contains("line 3") && msg.contains("algoritm"),
        "{msg}"
    );
    let e = validate("workers = \"two\"").unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn flags_override_the_file() {
    let mut raw = RawConfig::from_toml(
        "listen = \"127.0.0.1:1\"\n[[backends]]\naddress = \"a:1\"",
        "f",
    )
    .unwrap();
    raw.apply(Overrides {
        listen: Some("127.0.0.1:2".into()),
        backends: vec!["b:2".into(), "c:3".into()],
        algorithm: Some("random".into()),
        ..Default::default()
    });
    let c = raw.validate().unwrap();
    assert_eq!(c.listen.port(), 2);
    assert_eq!(c.backends.len(), 2);
    assert_eq!(c.balancer.config.algorithm, Algorithm::Random);
}
