//! Tests of configuration parsing and validation.
use super::*;
use foresight_balance::Algorithm;

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
    assert_eq!(c.services[0].balancer.config.algorithm, Algorithm::P2cEwma);
    assert_eq!(c.services[0].retries.attempts, 1);
    assert_eq!(c.services[0].retries.budget_ratio, 0.2);
    assert!(c.services[0].health_check.is_some() && c.services[0].outlier.is_some());
    assert_eq!(c.paths, crate::path::PathPolicy::default());
    let c =
        validate("[paths]\nnormalize = false\nmerge_slashes = false\nescaped_slashes = \"keep\"")
            .unwrap();
    assert!(!c.paths.normalize && !c.paths.merge_slashes);
    assert_eq!(c.paths.escaped_slashes, crate::path::EscapedSlashes::Keep);
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
        c.services[0].balancer.hash_on,
        HashOn::Header(http::HeaderName::from_static("x-user"))
    );
    assert_eq!(c.services[0].backends[0].weight, 3);
    assert_eq!(
        c.services[0].backends[1].authority.as_str(),
        "127.0.0.1:9002"
    );
    assert!(c.services[0].health_check.is_none());
    assert_eq!(c.services[0].outlier.unwrap().consecutive_errors, 2);
}

#[test]
fn each_bad_value_names_its_key() {
    let cases = [
        ("listen = \"nowhere\"", "listen"),
        (
            "[paths]\nescaped_slashes = \"decode\"",
            "paths.escaped_slashes",
        ),
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
        ("[retries]\non_status = [200]", "retries.on_status"),
        (
            "[retries]\nper_try_timeout = \"0s\"",
            "retries.per_try_timeout",
        ),
        ("[retries]\nbudget_ratio = -1.0", "retries.budget_ratio"),
        (
            "[retries]\nbudget_window = \"500ms\"",
            "retries.budget_window",
        ),
        (
            "[[backends]]\naddress = \"ftp://a:1\"",
            "backends[0].address",
        ),
        (
            "[upstream_tls]\nca = \"/nonexistent/ca.pem\"",
            "upstream_tls.ca",
        ),
        ("[upstream_tls]\ncert = \"c.pem\"", "upstream_tls.key"),
        (
            "[upstream_tls]\nserver_name = \"a b\"",
            "upstream_tls.server_name",
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
    assert_eq!(c.services[0].backends.len(), 2);
    assert_eq!(c.services[0].balancer.config.algorithm, Algorithm::Random);
}

#[test]
fn one_instance_has_one_key_however_it_is_written() {
    let key = |a: &str| parse_backend("b", a, None).unwrap().key;
    let loopback = key("http://127.0.0.1:9003");
    for same in [
        "127.0.0.1:9003",
        "localhost:9003",
        "http://LocalHost:9003/",
        "http://[::1]:9003",
        "http://[::ffff:127.0.0.1]:9003",
        "http://api.localhost:9003",
    ] {
        assert_eq!(key(same), loopback, "{same}");
    }
    assert_ne!(key("localhost:9004"), loopback, "another port");
    // Two processes can listen on 127.0.0.2:9003 and 127.0.0.3:9003 (DNS discovery's tests do).
    assert_ne!(key("http://127.0.0.2:9003"), loopback);
    assert_ne!(key("http://127.0.0.2:9003"), key("http://127.0.0.3:9003"));
    assert_eq!(key("http://[::ffff:10.0.0.5]:80"), key("10.0.0.5:80"));
    assert_eq!(key("Svc.Example:80"), key("http://svc.example.:80"));
    assert_ne!(
        key("a.example:80"),
        key("b.example:80"),
        "names are not resolved"
    );

    let e = validate(
        "[[backends]]\naddress = \"127.0.0.1:1\"\n[[backends]]\naddress = \"localhost:1\"",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("same instance as 127.0.0.1:1"),
        "{e}"
    );
    assert_eq!(key_of(e), "backends[1].address");
}

#[test]
fn the_admin_token_comes_from_the_environment_or_a_file_and_is_never_shown() {
    assert_eq!(validate("").unwrap().admin_token, None);
    assert_eq!(
        key_of(validate("admin = \"0.0.0.0:9900\"").unwrap_err()),
        "admin"
    );
    let mut raw = RawConfig::from_toml("admin = \"0.0.0.0:9900\"", "f").unwrap();
    raw.apply(Overrides {
        admin_token: Some("0123456789abcdef0123".into()),
        ..Default::default()
    });
    let c = raw.validate().unwrap();
    let token = c.admin_token.unwrap();
    assert!(token.matches(b"0123456789abcdef0123"));
    assert!(!token.matches(b"0123456789abcdef012"));
    assert!(!format!("{token:?}").contains("0123"));

    let mut raw = RawConfig::from_toml("", "f").unwrap();
    raw.apply(Overrides {
        admin_token: Some("short".into()),
        ..Default::default()
    });
    let e = raw.validate().unwrap_err();
    assert!(!e.to_string().contains("short"), "{e}");
    assert_eq!(key_of(e), "FORESIGHT_ADMIN_TOKEN");
    let e = validate("admin_token_file = \"/nonexistent/token\"").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/token"), "{e}");
    // An endless file is not read to its end.
    let e = validate("admin_token_file = \"/dev/zero\"").unwrap_err();
    assert!(e.to_string().contains("longer than 4096 bytes"), "{e}");
}

#[test]
fn client_limits_are_bounded() {
    let c = validate("").unwrap();
    assert_eq!(c.limits.max_request_head, 64 * 1024);
    assert_eq!(c.timeouts.client_header, Duration::from_secs(10));
    for (text, key) in [
        ("[limits]\nmax_connections = 0", "limits.max_connections"),
        (
            "[limits]\nmax_request_head = 100",
            "limits.max_request_head",
        ),
        (
            "[limits]\nmax_request_head = 99999999",
            "limits.max_request_head",
        ),
        (
            "[timeouts]\nclient_header = \"0s\"",
            "timeouts.client_header",
        ),
    ] {
        assert_eq!(key_of(validate(text).unwrap_err()), key, "{text}");
    }
}

const TWO_SERVICES: &str = r#"
    [balancer]
    algorithm = "random"
    [health_check]
    interval = "2s"
    [[services]]
    name = "auth"
    backends = [{ address = "http://127.0.0.1:9001" }]
    balancer = { seed = 7 }
    [[services]]
    name = "data"
    backends = [{ address = "http://127.0.0.1:9002" }]
    balancer = { algorithm = "round-robin" }
    health_check = { timeout = "1s" }
    [services.control]
    policy = "hpa"
    [[routes]]
    path_prefix = "/auth"
    strip_prefix = true
    service = "auth"
    [[routes]]
    host = "*.example.com"
    methods = ["GET", "POST"]
    headers = [{ name = "x-tenant" }]
    service = "data"
    [[routes]]
    service = "data"
"#;

#[test]
fn services_inherit_the_top_level_key_by_key() {
    let c = validate(TWO_SERVICES).unwrap();
    let (auth, data) = (&c.services[0], &c.services[1]);
    assert_eq!((auth.name.as_str(), data.name.as_str()), ("auth", "data"));
    assert_eq!(auth.balancer.config.algorithm, Algorithm::Random);
    assert_eq!(auth.balancer.config.seed, 7);
    assert_eq!(data.balancer.config.algorithm, Algorithm::RoundRobin);
    let hc = data.health_check.as_ref().unwrap();
    assert_eq!(
        (hc.interval, hc.timeout),
        (Duration::from_secs(2), Duration::from_secs(1))
    );
    assert!(auth.control.is_none() && data.control.is_some());
    assert_eq!(c.routes.routes().len(), 3);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn the_single_pool_form_is_one_default_service() {
    let c = validate("backends = [{ address = \"127.0.0.1:9001\" }]\n[control]\n").unwrap();
    assert_eq!(c.services.len(), 1);
    assert_eq!(c.services[0].name, DEFAULT_SERVICE);
    assert!(c.services[0].control.is_some());
    assert!(c.routes.routes()[0].matches_everything());
}

#[test]
fn service_and_route_mistakes_name_their_key() {
    let with = |extra: &str| validate(&format!("{TWO_SERVICES}\n{extra}"));
    for (text, key) in [
        ("[[routes]]\nservice = \"nope\"", "routes[3].service"),
        (
            "[[services]]\nname = \"auth\"\n[[routes]]\nservice = \"auth\"",
            "services[2].name",
        ),
        ("[[services]]\nname = \"Bad_Name\"", "services[2].name"),
        (
            "[[services]]\nname = \"x\"\ntimeouts = { client_idle = \"1s\" }",
            "services[2].timeouts.client_idle",
        ),
        (
            "[[services]]\nname = \"x\"\nbalancer = { algorithm = \"nope\" }",
            "services[2].balancer.algorithm",
        ),
        (
            "[[routes]]\nhost = \"a.com:80\"\nservice = \"auth\"",
            "routes[3].host",
        ),
        (
            "[[routes]]\npath_prefix = \"auth\"\nservice = \"auth\"",
            "routes[3].path_prefix",
        ),
        (
            "[[routes]]\npath = \"/a\"\nstrip_prefix = true\nservice = \"auth\"",
            "routes[3].strip_prefix",
        ),
        (
            "[[routes]]\nmethods = [\"get\"]\nservice = \"auth\"",
            "routes[3].methods[0]",
        ),
        (
            "[[routes]]\nheaders = [{ name = \"bad header\" }]\nservice = \"auth\"",
            "routes[3].headers[0].name",
        ),
    ] {
        assert_eq!(key_of(with(text).unwrap_err()), key, "{text}");
    }
    let top = |extra: &str| validate(&format!("{extra}\n{TWO_SERVICES}"));
    assert_eq!(
        key_of(top("backends = [{ address = \"127.0.0.1:1\" }]").unwrap_err()),
        "backends"
    );
    assert_eq!(
        key_of(top("[outlier]\nconsecutive_errors = 0").unwrap_err()),
        "outlier.consecutive_errors",
        "a top-level mistake is named by its own key"
    );
    let no_routes = "[[services]]\nname = \"a\"\n[[services]]\nname = \"b\"";
    assert_eq!(key_of(validate(no_routes).unwrap_err()), "routes");
    let routes_alone = "[[routes]]\nservice = \"default\"";
    assert_eq!(key_of(validate(routes_alone).unwrap_err()), "routes");
}

#[test]
fn unreachable_routes_and_unrouted_services_are_warned_about() {
    let c = validate(
        r#"
        [[services]]
        name = "a"
        [[services]]
        name = "b"
        [[services]]
        name = "c"
        [[routes]]
        path_prefix = "/"
        service = "a"
        [[routes]]
        path_prefix = "/b"
        service = "b"
        "#,
    )
    .unwrap();
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].starts_with("routes[1] is never used: routes[0]"));
    assert!(c.warnings[1].contains("services[2] (c) gets no requests"));
}

#[test]
fn discovery_is_validated_with_its_key_path() {
    let err = |toml: &str| validate(toml).unwrap_err().to_string();
    let ok = validate(
        "[discovery]\ntype = \"dns\"\nname = \"api.internal\"\nport = 9001\nnameserver = \"127.0.0.1:8600\"",
    )
    .unwrap();
    let Some(Discovery::Dns(d)) = &ok.services[0].discovery else {
        panic!("no discovery");
    };
    assert_eq!(
        (d.port, d.interval, d.weight),
        (9001, Duration::from_secs(5), 1)
    );
    assert_eq!(d.nameserver, Some("127.0.0.1:8600".parse().unwrap()));
    let ok = validate(
        "[[services]]\nname = \"a\"\ndiscovery = { type = \"kubernetes\", name = \"api\", namespace = \"shop\", port = \"http\", url = \"http://127.0.0.1:8001\" }\n[[services]]\nname = \"b\"\ndiscovery = { type = \"kubernetes\", name = \"web\" }\n[[services]]\nname = \"c\"\ndiscovery = { type = \"kubernetes\", name = \"web\", port = 8080, scheme = \"https\" }\n[[routes]]\npath_prefix = \"/\"\nservice = \"a\"",
    )
    .unwrap();
    let kube = |i: usize| match &ok.services[i].discovery {
        Some(Discovery::Kubernetes(k)) => k.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        kube(0),
        KubernetesDiscovery {
            service: "api".into(),
            namespace: Some("shop".into()),
            port: KubePort::Named("http".into()),
            url: Some("http://127.0.0.1:8001".into()),
            tls: false,
            weight: 1,
        }
    );
    assert_eq!((kube(1).port, kube(1).namespace), (KubePort::Only, None));
    assert_eq!((kube(2).port, kube(2).tls), (KubePort::Number(8080), true));
    let ok = validate(
        "[discovery]\ntype = \"aws-asg\"\ngroup = \"web-asg\"\nport = 8080\naws_endpoint = \"http://127.0.0.1:5000\"",
    )
    .unwrap();
    assert_eq!(
        ok.services[0].discovery,
        Some(Discovery::AwsAsg(AwsAsgDiscovery {
            group: "web-asg".into(),
            port: 8080,
            interval: Duration::from_secs(10),
            endpoint: Some("http://127.0.0.1:5000".into()),
            tls: false,
            weight: 1,
        }))
    );
    for (toml, key) in [
        ("[discovery]\nname = \"a\"\nport = 1", "discovery.type"),
        ("[discovery]\ntype = \"consul\"", "discovery.type"),
        ("[discovery]\ntype = \"kubernetes\"", "discovery.name"),
        ("[discovery]\ntype = \"kubernetes\"\nname = \"Api\"", "discovery.name"),
        ("[discovery]\ntype = \"kubernetes\"\nname = \"api\"\nnamespace = \"a_b\"", "discovery.namespace"),
        ("[discovery]\ntype = \"kubernetes\"\nname = \"api\"\nport = \"HTTP\"", "discovery.port"),
        ("[discovery]\ntype = \"kubernetes\"\nname = \"api\"\nurl = \"127.0.0.1:8001\"", "discovery.url"),
        ("[discovery]\ntype = \"kubernetes\"\nname = \"api\"\ninterval = \"5s\"", "discovery.interval"),
        ("[discovery]\ntype = \"dns\"\nname = \"a\"\nport = 1\nnamespace = \"x\"", "discovery.namespace"),
        ("[discovery]\ntype = \"dns\"\nport = 1", "discovery.name"),
        ("[discovery]\ntype = \"dns\"\nname = \"a b\"\nport = 1", "discovery.name"),
        ("[discovery]\ntype = \"dns\"\nname = \"a\"", "discovery.port"),
        ("[discovery]\ntype = \"dns\"\nname = \"a\"\nport = 70000", "discovery.port"),
        ("[discovery]\ntype = \"dns\"\nname = \"a\"\nport = 1\ninterval = \"10ms\"", "discovery.interval"),
        ("[discovery]\ntype = \"dns\"\nname = \"a\"\nport = 1\nnameserver = \"x\"", "discovery.nameserver"),
        ("[discovery]\ntype = \"dns\"\nname = \"a\"\nport = 1\nscheme = \"ftp\"", "discovery.scheme"),
        ("[discovery]\ntype = \"dns\"\nname = \"a\"\nport = 1\ngroup = \"web\"", "discovery.group"),
        ("[discovery]\ntype = \"aws-asg\"\nport = 80", "discovery.group"),
        ("[discovery]\ntype = \"aws-asg\"\ngroup = \"web\"", "discovery.port"),
        ("[discovery]\ntype = \"aws-asg\"\ngroup = \"\"\nport = 80", "discovery.group"),
        ("[discovery]\ntype = \"aws-asg\"\ngroup = \"web\"\nport = 80\nname = \"x\"", "discovery.name"),
        ("[discovery]\ntype = \"aws-asg\"\ngroup = \"web\"\nport = 80\ninterval = \"2h\"", "discovery.interval"),
        ("[discovery]\ntype = \"aws-asg\"\ngroup = \"web\"\nport = 80\naws_endpoint = \"localhost:5000\"", "discovery.aws_endpoint"),
        (
            "backends = [{ address = \"127.0.0.1:1\" }]\n[discovery]\ntype = \"dns\"\nname = \"a\"\nport = 1",
            "no backends together with discovery",
        ),
        (
            "[discovery]\ntype = \"dns\"\nname = \"a\"\nport = 1\n[[services]]\nname = \"x\"",
            "no top-level [discovery]",
        ),
        (
            "[[services]]\nname = \"x\"\ndiscovery = { type = \"dns\", name = \"a\", port = 0 }",
            "services[0].discovery.port",
        ),
    ] {
        let e = err(toml);
        assert!(e.contains(key), "{toml}: {e}");
    }
}

#[test]
fn the_upstream_protocol_is_inherited_and_checked() {
    let c = validate("").unwrap();
    assert_eq!(c.services[0].protocol, UpstreamProtocol::Http1);
    let c = validate("protocol = \"h2c\"").unwrap();
    assert_eq!(c.services[0].protocol, UpstreamProtocol::H2c);
    let c = validate(
        "protocol = \"h2c\"\n[[services]]\nname = \"a\"\n[[services]]\nname = \"b\"\nprotocol = \"http1\"\n\
         [[routes]]\npath_prefix = \"/b\"\nservice = \"b\"\n[[routes]]\nservice = \"a\"",
    )
    .unwrap();
    assert_eq!(c.services[0].protocol, UpstreamProtocol::H2c);
    assert_eq!(c.services[1].protocol, UpstreamProtocol::Http1);
    // h2 is over TLS: every instance `https://`; h2c is in the clear.
    let c = validate(
        "[[services]]\nname = \"a\"\nprotocol = \"h2\"\nbackends = [{ address = \"https://10.0.0.1:443\" }]",
    )
    .unwrap();
    assert_eq!(c.services[0].protocol, UpstreamProtocol::H2);
    let e = validate(
        "[[services]]\nname = \"a\"\nprotocol = \"h2\"\nbackends = [{ address = \"10.0.0.1:80\" }]",
    )
    .unwrap_err();
    assert_eq!(key_of(e), "services[0].backends[0].address");
    let e = validate(
        "[[services]]\nname = \"a\"\nprotocol = \"h2c\"\nbackends = [{ address = \"https://10.0.0.1:443\" }]",
    )
    .unwrap_err();
    assert_eq!(key_of(e), "services[0].backends[0].address");
    let e = validate("[[services]]\nname = \"a\"\nprotocol = \"h3\"").unwrap_err();
    assert_eq!(key_of(e), "services[0].protocol");
    assert_eq!(
        key_of(validate("protocol = \"grpc\"").unwrap_err()),
        "protocol"
    );
    // A protocol change builds a new pool on reload.
    let a = validate("protocol = \"h2c\"").unwrap();
    let b = validate("").unwrap();
    assert_ne!(a.services[0], b.services[0]);
}

#[test]
fn grpc_health_checks_need_h2c_and_name_their_keys() {
    let c = validate(
        "protocol = \"h2c\"\n[health_check]\ntype = \"grpc\"\ngrpc_service = \"auth.v1.Auth\"",
    )
    .unwrap();
    let h = c.services[0].health_check.as_ref().unwrap();
    assert_eq!(h.grpc.as_deref(), Some("auth.v1.Auth"));
    let c = validate("protocol = \"h2c\"\n[health_check]\ntype = \"grpc\"").unwrap();
    assert_eq!(
        c.services[0].health_check.as_ref().unwrap().grpc.as_deref(),
        Some(""),
        "the whole server"
    );
    assert_eq!(
        validate("").unwrap().services[0]
            .health_check
            .as_ref()
            .unwrap()
            .grpc,
        None
    );
    for (text, key) in [
        ("[health_check]\ntype = \"grpc\"", "health_check.type"),
        (
            "protocol = \"h2c\"\n[health_check]\ntype = \"tcp\"",
            "health_check.type",
        ),
        (
            "protocol = \"h2c\"\n[health_check]\ngrpc_service = \"x\"",
            "health_check.grpc_service",
        ),
        (
            "[[services]]\nname = \"a\"\nhealth_check = { type = \"grpc\" }",
            "services[0].health_check.type",
        ),
    ] {
        assert_eq!(key_of(validate(text).unwrap_err()), key, "{text}");
    }
    let long = format!(
        "protocol = \"h2c\"\n[health_check]\ntype = \"grpc\"\ngrpc_service = \"{}\"",
        "s".repeat(2000)
    );
    assert_eq!(
        key_of(validate(&long).unwrap_err()),
        "health_check.grpc_service"
    );
}

#[test]
fn grpc_retries_name_their_statuses_and_methods() {
    let c = validate(
        "protocol = \"h2c\"\n[retries]\non_grpc_status = [\"unavailable\", \"RESOURCE_EXHAUSTED\"]\n\
         grpc_methods = [\"/auth.v1.Auth/Check\", \"/cache.v1.Cache/*\"]",
    )
    .unwrap();
    let r = &c.services[0].retries;
    assert_eq!(r.on_grpc_status, vec![14, 8]);
    assert_eq!(r.grpc_methods.len(), 2);
    for (toml, key) in [
        (
            "protocol = \"h2c\"\n[retries]\non_grpc_status = [\"busy\"]\ngrpc_methods = [\"*\"]",
            "retries.on_grpc_status",
        ),
        (
            "protocol = \"h2c\"\n[retries]\non_grpc_status = [\"unavailable\"]",
            "retries.grpc_methods",
        ),
        (
            "protocol = \"h2c\"\n[retries]\non_grpc_status = [\"unavailable\"]\ngrpc_methods = [\"Check\"]",
            "retries.grpc_methods",
        ),
        (
            "[retries]\non_grpc_status = [\"unavailable\"]\ngrpc_methods = [\"*\"]",
            "retries.on_grpc_status",
        ),
    ] {
        let e = validate(toml).unwrap_err();
        assert!(key_of(e).ends_with(key), "{toml}");
    }
}
