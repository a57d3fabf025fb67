//! The Kubernetes manifests in `deploy/kubernetes/`: every object parses into its k8s-openapi
//! type and serializes back to exactly what the file says (a misspelt or unknown field is lost
//! on the way and fails), the RBAC Role grants exactly what the code uses
//! (`foresight_kube::API_ACCESS`), the ConfigMap's `foresight.toml` passes `foresight serve`'s
//! own validation, and the pods run as non-root with the ports the configuration listens on.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// Every document of every manifest, with the file it is in.
fn documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("deploy/kubernetes exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"));
        for d in docs.into_iter().filter(|d| !d.is_null()) {
            out.push((name.clone(), d));
        }
    }
    out
}

/// The first place where `a` and `b` differ, as a path.
fn difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (p, q) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if let Some(d) = difference(p, q, &format!("{at}.{k}")) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| difference(p, q, &format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{at}: the file says {a}, the type keeps {b}")),
    }
}

/// `doc` as a `T`, checked to lose nothing on the way.
fn typed<T: DeserializeOwned + Serialize>(file: &str, doc: &Value) -> T {
    let what = format!("{file}: {} {}", doc["kind"], doc["metadata"]["name"]);
    let t: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&t).unwrap();
    if let Some(d) = difference(doc, &back, "") {
        panic!("{what}: a field is unknown or misspelt: {d}");
    }
    t
}

#[test]
fn every_manifest_is_a_valid_object_with_no_unknown_field() {
    let mut kinds = Vec::new();
    for (file, doc) in documents() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Namespace" => drop(typed::<Namespace>(&file, &doc)),
            "Deployment" => drop(typed::<Deployment>(&file, &doc)),
            "Service" => drop(typed::<Service>(&file, &doc)),
            "ConfigMap" => drop(typed::<ConfigMap>(&file, &doc)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(&file, &doc)),
            "Role" => drop(typed::<Role>(&file, &doc)),
            "RoleBinding" => drop(typed::<RoleBinding>(&file, &doc)),
            other => panic!("{file}: kind {other:?} is not checked here; add it"),
        }
        kinds.push(kind);
    }
    for k in ["Deployment", "Service", "ConfigMap", "Role", "RoleBinding"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in {kinds:?}");
    }

    // The typo check works: a misspelt field fails.
    let (file, mut doc) = documents()
        .into_iter()
        .find(|(_, d)| d["kind"] == "Deployment")
        .unwrap();
    doc["spec"]["replica"] = doc["spec"]["replicas"].take();
    let caught = std::panic::catch_unwind(|| typed::<Deployment>(&file, &doc));
    assert!(caught.is_err(), "a misspelt field passed");
}

#[test]
fn the_role_grants_exactly_what_the_code_uses() {
    let roles: Vec<Role> = documents()
        .iter()
        .filter(|(_, d)| d["kind"] == "Role")
        .map(|(f, d)| typed(f, d))
        .collect();
    assert_eq!(roles.len(), 1);
    let mut granted: Vec<(String, String, String)> = Vec::new();
    for rule in roles[0].rules.iter().flatten() {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    assert_ne!(v, "*", "no wildcard verbs");
                    granted.push((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    granted.sort();
    let mut used: Vec<(String, String, String)> = foresight_kube::API_ACCESS
        .iter()
        .flat_map(|a| {
            a.verbs
                .iter()
                .map(|v| (a.group.to_string(), a.resource.to_string(), v.to_string()))
        })
        .collect();
    used.sort();
    assert_eq!(granted, used);

    // The binding gives it to the service account the proxy runs as.
    let docs = documents();
    let binding: RoleBinding = docs
        .iter()
        .find(|(_, d)| d["kind"] == "RoleBinding")
        .map(|(f, d)| typed(f, d))
        .unwrap();
    let proxy: Deployment = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Deployment" && d["metadata"]["name"] == "foresight")
        .map(|(f, d)| typed(f, d))
        .unwrap();
    let account = proxy
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .service_account_name;
    assert_eq!(
        binding.role_ref.name,
        roles[0].metadata.name.clone().unwrap()
    );
    let subjects = binding.subjects.unwrap_or_default();
    assert!(
        subjects
            .iter()
            .any(|s| s.kind == "ServiceAccount" && Some(&s.name) == account.as_ref()),
        "{subjects:?} vs {account:?}"
    );
}

#[test]
fn the_configmap_config_passes_serves_validation_and_matches_the_pods() {
    let docs = documents();
    let cm: ConfigMap = docs
        .iter()
        .find(|(_, d)| d["kind"] == "ConfigMap")
        .map(|(f, d)| typed(f, d))
        .unwrap();
    let text = cm.data.unwrap()["foresight.toml"].clone();
    let raw = foresight_proxy::config::RawConfig::from_toml(&text, "ConfigMap foresight")
        .unwrap_or_else(|e| panic!("{e}"));
    let config = raw.validate().unwrap_or_else(|e| panic!("{e}"));
    let service = &config.services[0];
    assert!(
        matches!(
            service.discovery,
            Some(foresight_proxy::config::Discovery::Kubernetes(_))
        ),
        "{:?}",
        service.discovery
    );
    let control = foresight_control::ControlConfig::from_table(service.control.as_ref())
        .unwrap_or_else(|e| panic!("[control]: {e}"))
        .expect("a control loop");
    assert!(matches!(
        control.actuator,
        foresight_control::ActuatorKind::Kubernetes { .. }
    ));

    // The proxy's container listens where the configuration says, as non-root, one replica.
    let proxy: Deployment = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Deployment" && d["metadata"]["name"] == "foresight")
        .map(|(f, d)| typed(f, d))
        .unwrap();
    let spec = proxy.spec.unwrap();
    assert_eq!(spec.replicas, Some(1), "one replica runs one control loop");
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let port = pod.containers[0].ports.as_ref().unwrap()[0].container_port;
    assert_eq!(config.listen.port() as i32, port);
    // And the Service the discovery names exists with the named port.
    let Some(foresight_proxy::config::Discovery::Kubernetes(k)) = &service.discovery else {
        unreachable!()
    };
    let svc: Service = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Service" && d["metadata"]["name"] == k.service.as_str())
        .map(|(f, d)| typed(f, d))
        .unwrap_or_else(|| panic!("no Service {}", k.service));
    let names: Vec<Option<String>> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(
        matches!(&k.port, foresight_proxy::config::KubePort::Named(n) if names.contains(&Some(n.clone()))),
        "{:?} not in {names:?}",
        k.port
    );
}
