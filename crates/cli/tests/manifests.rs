//! The Kubernetes manifests in `deploy/kubernetes/`, in the three ways they are applied
//! together: the single proxy with its loop (`deploy/kubernetes/*.yaml`), the split
//! deployment (proxies and elected controllers, `split/`), and KEDA mode (`keda/` with the
//! split proxies).
//!
//! Every object parses into its k8s-openapi type (KEDA's `ScaledObject` into ours below) and
//! serializes back to exactly what the file says, so a misspelt or unknown field fails. Every
//! pod running `foresight` is read as it would run: its arguments, and the configuration its
//! ConfigMap mounts where `--config` points, which must pass the program's own validation.
//! From that the test derives what the pod does with the API (discovery, reading or scaling a
//! Deployment, a Lease) and checks that the Roles bound to its service account grant exactly
//! that (`foresight_kube::needed`). Ports, Services, probes and the ScaledObject's scaler
//! address must point where the programs listen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use foresight_control::{ActuatorKind, ControlConfig, MetricsSource};
use foresight_proxy::config::{Discovery, KubePort, Overrides, ProxyConfig, RawConfig};

/// KEDA's `ScaledObject` (`keda.sh/v1alpha1`), the fields of its published CRD that a
/// manifest here may use; anything else fails the round trip.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScaledObject {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ScaledObjectSpec,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScaledObjectSpec {
    scale_target_ref: ScaleTargetRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    polling_interval: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cooldown_period: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_replica_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_replica_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<Fallback>,
    triggers: Vec<Trigger>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScaleTargetRef {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Fallback {
    failure_threshold: i32,
    replicas: i32,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Trigger {
    #[serde(rename = "type")]
    kind: String,
    metadata: BTreeMap<String, String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

fn yaml_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The ways the files are applied together, as docs/kubernetes.md says.
fn variants() -> Vec<(&'static str, Vec<PathBuf>)> {
    let base = [root().join("00-namespace.yaml"), root().join("app.yaml")];
    let mut split = base.to_vec();
    split.extend(yaml_in(&root().join("split")));
    let mut keda = base.to_vec();
    keda.push(root().join("split/proxies.yaml"));
    keda.extend(yaml_in(&root().join("keda")));
    vec![
        ("single", yaml_in(&root())),
        ("split", split),
        ("keda", keda),
    ]
}

/// Every document of `files`, with the file it is in.
fn documents(files: &[PathBuf]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f.strip_prefix(root()).unwrap().display().to_string();
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

/// The objects of one kind in `docs`.
fn all<T: DeserializeOwned + Serialize>(docs: &[(String, Value)], kind: &str) -> Vec<T> {
    docs.iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(f, d)| typed(f, d))
        .collect()
}

fn name(m: &ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

#[test]
fn every_manifest_is_a_valid_object_with_no_unknown_field() {
    let mut files: Vec<PathBuf> = variants().into_iter().flat_map(|(_, f)| f).collect();
    files.sort();
    files.dedup();
    // Every file is in one of the documented combinations.
    let mut on_disk = yaml_in(&root());
    on_disk.extend(yaml_in(&root().join("split")));
    on_disk.extend(yaml_in(&root().join("keda")));
    on_disk.sort();
    assert_eq!(files, on_disk);
    let mut kinds = BTreeSet::new();
    for (file, doc) in documents(&files) {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Namespace" => drop(typed::<Namespace>(&file, &doc)),
            "Deployment" => drop(typed::<Deployment>(&file, &doc)),
            "Service" => drop(typed::<Service>(&file, &doc)),
            "ConfigMap" => drop(typed::<ConfigMap>(&file, &doc)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(&file, &doc)),
            "Role" => drop(typed::<Role>(&file, &doc)),
            "RoleBinding" => drop(typed::<RoleBinding>(&file, &doc)),
            "ScaledObject" => drop(typed::<ScaledObject>(&file, &doc)),
            other => panic!("{file}: kind {other:?} is not checked here; add it"),
        }
        kinds.insert(kind);
    }
    for k in [
        "Deployment",
        "Service",
        "ConfigMap",
        "Role",
        "RoleBinding",
        "ScaledObject",
    ] {
        assert!(kinds.contains(k), "no {k} in {kinds:?}");
    }

    // The typo check works: a misspelt field fails, in k8s-openapi's types and in ours.
    let docs = documents(&files);
    let (file, mut doc) = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Deployment")
        .cloned()
        .unwrap();
    doc["spec"]["replica"] = doc["spec"]["replicas"].take();
    let caught = std::panic::catch_unwind(|| typed::<Deployment>(&file, &doc));
    assert!(caught.is_err(), "a misspelt field passed");
    let (file, mut doc) = docs
        .iter()
        .find(|(_, d)| d["kind"] == "ScaledObject")
        .cloned()
        .unwrap();
    doc["spec"]["maxReplicas"] = doc["spec"]["maxReplicaCount"].take();
    let caught = std::panic::catch_unwind(|| typed::<ScaledObject>(&file, &doc));
    assert!(caught.is_err(), "a misspelt ScaledObject field passed");
}

/// A pod running `foresight`, read as it would run.
struct Pod {
    deployment: String,
    replicas: i32,
    container: Container,
    account: String,
    args: Vec<String>,
    config: ProxyConfig,
    controls: Vec<(String, ControlConfig)>,
}

impl Pod {
    fn subcommand(&self) -> &str {
        &self.args[0]
    }
    fn flag(&self, name: &str) -> Option<&str> {
        let i = self.args.iter().position(|a| a == name)?;
        self.args.get(i + 1).map(String::as_str)
    }
    fn env(&self, name: &str) -> Option<&k8s_openapi::api::core::v1::EnvVar> {
        self.container.env.iter().flatten().find(|e| e.name == name)
    }
    fn ports(&self) -> Vec<(Option<String>, i32)> {
        self.container
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.container_port))
            .collect()
    }
    /// What it does with the Kubernetes API: discovery, reading a Deployment, scaling one,
    /// a Lease.
    fn uses(&self) -> (bool, bool, bool, bool) {
        let discovery = self.subcommand() == "serve"
            && self
                .config
                .services
                .iter()
                .any(|s| matches!(s.discovery, Some(Discovery::Kubernetes(_))));
        let kube = |c: &ControlConfig| matches!(c.actuator, ActuatorKind::Kubernetes { .. });
        let reads = self.controls.iter().any(|(_, c)| kube(c));
        let scales = self.controls.iter().any(|(_, c)| kube(c) && !c.dry_run);
        let elects = self.flag("--lease").is_some();
        (discovery, reads, scales, elects)
    }
}

/// The pods of a variant's Deployments that run `foresight serve` or `foresight controller`.
fn pods(docs: &[(String, Value)]) -> Vec<Pod> {
    let maps: Vec<ConfigMap> = all(docs, "ConfigMap");
    let mut out = Vec::new();
    for d in all::<Deployment>(docs, "Deployment") {
        let spec = d.spec.unwrap();
        let pod = spec.template.spec.unwrap();
        let Some(container) = pod
            .containers
            .iter()
            .find(|c| {
                c.image
                    .as_deref()
                    .is_some_and(|i| i.starts_with("foresight"))
            })
            .cloned()
        else {
            continue;
        };
        let deployment = name(&d.metadata);
        assert_eq!(
            pod.security_context.and_then(|s| s.run_as_non_root),
            Some(true),
            "{deployment}: runs as non-root"
        );
        let args = container.args.clone().unwrap_or_default();
        if !["serve", "controller"].contains(&args[0].as_str()) {
            // The example application (`foresight backend`) uses no API.
            assert!(container.args.is_some() && pod.service_account_name.is_none());
            continue;
        }
        let config_path = {
            let i = args.iter().position(|a| a == "--config").unwrap();
            PathBuf::from(&args[i + 1])
        };
        // The ConfigMap mounted where --config points.
        let mount = container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| config_path.starts_with(&m.mount_path))
            .unwrap_or_else(|| panic!("{deployment}: nothing mounted at {config_path:?}"));
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap();
        let map_name = volume.config_map.as_ref().unwrap().name.clone();
        let map = maps
            .iter()
            .find(|m| name(&m.metadata) == map_name)
            .unwrap_or_else(|| panic!("{deployment}: no ConfigMap {map_name}"));
        let key = config_path
            .strip_prefix(&mount.mount_path)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let text = map.data.as_ref().unwrap()[&key].clone();
        let origin = format!("ConfigMap {map_name} {key}");
        let mut raw = RawConfig::from_toml(&text, &origin).unwrap_or_else(|e| panic!("{e}"));
        // The token comes from a Secret in the pod's environment, as the program reads it.
        let token = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "FORESIGHT_ADMIN_TOKEN")
            .map(|e| {
                let from = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref());
                assert!(from.is_some(), "{deployment}: the token from a Secret");
                "t".repeat(64)
            });
        raw.apply(Overrides {
            admin_token: token,
            ..Overrides::default()
        });
        let config = raw.validate().unwrap_or_else(|e| panic!("{origin}: {e}"));
        let controls = config
            .services
            .iter()
            .filter_map(|s| {
                ControlConfig::from_raw(s.control.as_ref())
                    .unwrap_or_else(|e| panic!("{origin}: [control]: {e}"))
                    .map(|c| (s.name.clone(), c))
            })
            .collect();
        out.push(Pod {
            deployment,
            replicas: spec.replicas.unwrap_or(1),
            container,
            account: pod.service_account_name.unwrap_or_default(),
            args,
            config,
            controls,
        });
    }
    out
}

/// (group, resource, verb) of a list of rules.
type Grant = (String, String, String);

fn granted(role: &Role) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    assert_ne!(v, "*", "no wildcard verbs");
                    out.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn each_pod_is_granted_exactly_what_it_uses() {
    for (variant, files) in variants() {
        let docs = documents(&files);
        let roles: Vec<Role> = all(&docs, "Role");
        let bindings: Vec<RoleBinding> = all(&docs, "RoleBinding");
        let pods = pods(&docs);
        assert!(!pods.is_empty(), "{variant}: no foresight pod");
        let mut bound_roles = BTreeSet::new();
        for pod in &pods {
            let mut have = BTreeSet::new();
            for b in &bindings {
                let to_pod = b.subjects.iter().flatten().any(|s| {
                    s.kind == "ServiceAccount"
                        && s.name == pod.account
                        && s.namespace.as_deref() == b.metadata.namespace.as_deref()
                });
                if !to_pod {
                    continue;
                }
                assert_eq!(b.role_ref.kind, "Role", "{variant}: namespaced roles only");
                let role = roles
                    .iter()
                    .find(|r| name(&r.metadata) == b.role_ref.name)
                    .unwrap_or_else(|| panic!("{variant}: no Role {}", b.role_ref.name));
                bound_roles.insert(b.role_ref.name.clone());
                have.extend(granted(role));
            }
            let (discovery, reads, scales, elects) = pod.uses();
            let want: BTreeSet<Grant> = foresight_kube::needed(discovery, reads, scales, elects)
                .iter()
                .flat_map(|a| {
                    a.verbs
                        .iter()
                        .map(|v| (a.group.to_string(), a.resource.to_string(), v.to_string()))
                })
                .collect();
            assert_eq!(
                have, want,
                "{variant}: {} (service account {:?}) is granted the left and uses the right",
                pod.deployment, pod.account
            );
        }
        for r in &roles {
            assert!(
                bound_roles.contains(&name(&r.metadata)),
                "{variant}: Role {} is bound to no foresight pod",
                name(&r.metadata)
            );
        }
    }
}

/// The Service in `docs` named `svc` that sends `port` to a pod, and the target port.
fn service_port(
    docs: &[(String, Value)],
    svc: &str,
    port: i32,
) -> Option<(
    Service,
    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
)> {
    let s = all::<Service>(docs, "Service")
        .into_iter()
        .find(|s| name(&s.metadata) == svc)?;
    let p = s
        .spec
        .as_ref()?
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == port)?
        .target_port
        .clone()?;
    Some((s, p))
}

fn targets(pod: &Pod, svc: &Service) -> bool {
    let labels = pod_labels(pod);
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    // Deployments here label their pods `app.kubernetes.io/name: <deployment>`.
    BTreeMap::from([("app.kubernetes.io/name".to_string(), pod.deployment.clone())])
}

fn port_named(
    pod: &Pod,
    target: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match target {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            pod.ports()
                .into_iter()
                .find(|(n, _)| n.as_deref() == Some(s))
                .unwrap_or_else(|| panic!("{}: no port named {s}", pod.deployment))
                .1
        }
    }
}

#[test]
fn the_pods_run_their_configuration_where_services_and_probes_point() {
    for (variant, files) in variants() {
        let docs = documents(&files);
        let pods = pods(&docs);
        for pod in &pods {
            let what = format!("{variant}: {}", pod.deployment);
            let ports: Vec<i32> = pod.ports().into_iter().map(|(_, p)| p).collect();
            match pod.subcommand() {
                "serve" => {
                    assert!(ports.contains(&(pod.config.listen.port() as i32)), "{what}");
                    if !pod.controls.is_empty() {
                        assert_eq!(pod.replicas, 1, "{what}: a proxy with a loop runs alone");
                    }
                    // Discovery names a Service of the variant with that port.
                    for s in &pod.config.services {
                        let Some(Discovery::Kubernetes(k)) = &s.discovery else {
                            continue;
                        };
                        let svc = all::<Service>(&docs, "Service")
                            .into_iter()
                            .find(|x| name(&x.metadata) == k.service)
                            .unwrap_or_else(|| panic!("{what}: no Service {}", k.service));
                        let names: Vec<Option<String>> = svc
                            .spec
                            .unwrap()
                            .ports
                            .unwrap()
                            .into_iter()
                            .map(|p| p.name)
                            .collect();
                        assert!(
                            matches!(&k.port, KubePort::Named(n) if names.contains(&Some(n.clone()))),
                            "{what}: {:?} not in {names:?}",
                            k.port
                        );
                    }
                }
                "controller" => {
                    assert!(!pod.controls.is_empty(), "{what}: nothing to control");
                    for (service, c) in &pod.controls {
                        assert!(
                            !matches!(c.actuator, ActuatorKind::Process { .. }),
                            "{what}: {service}"
                        );
                        assert!(
                            !c.policy.reads_utilisation(),
                            "{what}: {service}: the controller sees no utilisation"
                        );
                        let consumes = c.kafka.as_ref().is_some_and(|k| k.consume.is_some());
                        assert!(
                            matches!(c.metrics, MetricsSource::Prometheus { .. }) || consumes,
                            "{what}: {service} must read every proxy's rate"
                        );
                    }
                    if pod.flag("--lease").is_some() {
                        assert!(pod.replicas >= 2, "{what}: an election of one");
                        let named = pod.env("POD_NAME").and_then(|e| {
                            e.value_from
                                .as_ref()?
                                .field_ref
                                .as_ref()
                                .map(|f| f.field_path.clone())
                        });
                        assert_eq!(
                            named.as_deref(),
                            Some("metadata.name"),
                            "{what}: each replica's identity is its pod's name"
                        );
                    } else {
                        let writes = pod.uses().2;
                        assert!(
                            !writes || pod.replicas == 1,
                            "{what}: replicas that scale without an election fight"
                        );
                    }
                    if let Some(a) = pod.flag("--admin") {
                        let a: std::net::SocketAddr = a.parse().unwrap();
                        assert!(
                            a.ip().is_loopback() || pod.env("FORESIGHT_ADMIN_TOKEN").is_some(),
                            "{what}: admin beyond loopback needs a token"
                        );
                        if !a.ip().is_loopback() {
                            assert!(ports.contains(&(a.port() as i32)), "{what}");
                        }
                    }
                    if let Some(k) = pod.flag("--keda") {
                        let k: std::net::SocketAddr = k.parse().unwrap();
                        assert!(ports.contains(&(k.port() as i32)), "{what}");
                    }
                }
                other => panic!("{what}: runs {other:?}"),
            }
            // Probes point at ports the pod opens.
            for probe in [
                &pod.container.readiness_probe,
                &pod.container.liveness_probe,
            ]
            .into_iter()
            .flatten()
            {
                let port = probe
                    .http_get
                    .as_ref()
                    .map(|h| h.port.clone())
                    .or_else(|| probe.tcp_socket.as_ref().map(|t| t.port.clone()))
                    .unwrap_or_else(|| panic!("{what}: an HTTP or TCP probe"));
                let port = port_named(pod, &port);
                assert!(ports.contains(&port), "{what}: probe on {port}");
                if probe.http_get.is_some() {
                    // The admin API: it must listen beyond loopback there.
                    let admin = pod
                        .flag("--admin")
                        .map(|a| a.parse::<std::net::SocketAddr>().unwrap())
                        .unwrap_or(pod.config.admin);
                    assert_eq!(admin.port() as i32, port, "{what}");
                    assert!(
                        !admin.ip().is_loopback(),
                        "{what}: the kubelet cannot reach loopback"
                    );
                }
            }
        }

        // KEDA's trigger reaches a controller serving the scaler, for a service it controls.
        for so in all::<ScaledObject>(&docs, "ScaledObject") {
            let target = &so.spec.scale_target_ref.name;
            assert!(
                all::<Deployment>(&docs, "Deployment")
                    .iter()
                    .any(|d| &name(&d.metadata) == target),
                "{variant}: no Deployment {target}"
            );
            for t in &so.spec.triggers {
                assert!(["external", "external-push"].contains(&t.kind.as_str()));
                let address = &t.metadata["scalerAddress"];
                let (host, port) = address.rsplit_once(':').unwrap();
                let port: i32 = port.parse().unwrap();
                let ns = so.metadata.namespace.clone().unwrap();
                let svc = host
                    .strip_suffix(&format!(".{ns}.svc"))
                    .or_else(|| host.strip_suffix(&format!(".{ns}.svc.cluster.local")))
                    .unwrap_or(host);
                let (svc, target_port) = service_port(&docs, svc, port)
                    .unwrap_or_else(|| panic!("{variant}: no Service port for {address}"));
                let scaler = pods
                    .iter()
                    .find(|p| targets(p, &svc))
                    .unwrap_or_else(|| panic!("{variant}: Service {address} selects no pod"));
                let keda: std::net::SocketAddr = scaler
                    .flag("--keda")
                    .unwrap_or_else(|| panic!("{variant}: {} serves no scaler", scaler.deployment))
                    .parse()
                    .unwrap();
                assert_eq!(port_named(scaler, &target_port), keda.port() as i32);
                let services: Vec<String> =
                    scaler.controls.iter().map(|(s, _)| s.clone()).collect();
                let query = foresight_keda::Query::from_metadata(
                    &t.metadata.clone().into_iter().collect(),
                    &services,
                )
                .unwrap_or_else(|e| panic!("{variant}: trigger metadata: {e}"));
                assert!(services.contains(&query.service));
            }
        }
    }
}
