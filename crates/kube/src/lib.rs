//! # foresight-kube
//!
//! Kubernetes, for the `kubernetes` feature of the `foresight` binary: the actuator (below),
//! EndpointSlice discovery ([`discovery`]) and leader election with a Lease ([`lease`]).
//!
//! The actuator sets a Deployment's replica count through its `scale` subresource
//! (`autoscaling/v1` Scale) with kube-rs, and reads back ready replicas from the Deployment's
//! status. Writes carry the Scale's `resourceVersion` (optimistic concurrency): when another
//! writer changed the Deployment in between, the API server answers 409 Conflict and the
//! actuator re-reads and retries a bounded number of times.
//!
//! It is its own crate because kube-rs and k8s-openapi are a large build (about 4 minutes on
//! the CI machine); the `foresight` binary includes it with the `kubernetes` feature.
//!
//! No Kubernetes cluster can run on the machines this is built on, so it is tested against a
//! fake API server that follows the API's conventions for Deployments and their scale
//! subresource (see `tests/fake_apiserver.rs`), not against a real cluster.
//!
//! # Layout
//! - `lib.rs`: the RBAC access each use needs (`needed`, `allowed`)
//! - `discovery`: EndpointSlice discovery, a Service's pods as a pool's instances
//! - `lease`: `Elector`, leader election with a `coordination.k8s.io/v1` Lease
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod discovery;
pub mod lease;

/// One rule of the Kubernetes API access this crate needs: `verbs` on `resource` of API
/// `group`. The RBAC Role in `deploy/kubernetes/` grants exactly these (a test checks), and the
/// tests against the fake API server check that every request made is one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// API group (`apps`, `discovery.k8s.io`).
    pub group: &'static str,
    /// Resource, with its subresource (`deployments/scale`).
    pub resource: &'static str,
    /// Verbs, sorted.
    pub verbs: &'static [&'static str],
}

/// What reading a Deployment's state needs: its status (ready and starting replicas). A loop
/// in `dry_run`, such as a controller serving KEDA, needs only this.
pub const READ_ACCESS: Access = Access {
    group: "apps",
    resource: "deployments",
    verbs: &["get"],
};

/// What the actuator adds to [`READ_ACCESS`]: read and update the Deployment's scale.
pub const SCALE_ACCESS: Access = Access {
    group: "apps",
    resource: "deployments/scale",
    verbs: &["get", "update"],
};

/// What EndpointSlice discovery needs: list and watch the slices.
pub const DISCOVERY_ACCESS: Access = Access {
    group: "discovery.k8s.io",
    resource: "endpointslices",
    verbs: &["list", "watch"],
};

/// What leader election needs ([`lease`]): create, read and renew its Lease.
pub const LEASE_ACCESS: Access = Access {
    group: "coordination.k8s.io",
    resource: "leases",
    verbs: &["create", "get", "update"],
};

/// Everything `foresight serve`'s actuator and discovery do: read a Deployment's status, read
/// and update its scale, list and watch EndpointSlices.
pub const API_ACCESS: &[Access] = &[READ_ACCESS, SCALE_ACCESS, DISCOVERY_ACCESS];

/// What a pod running `foresight` needs from what it does with the API: EndpointSlice
/// discovery, a Kubernetes actuator that reads the Deployment (`reads`: in dry run, as for a
/// controller serving KEDA, only that) or also scales it (`scales`), leader election
/// (`elects`). The manifests' Roles are checked against this, so each pod gets exactly what
/// it uses.
pub fn needed(discovery: bool, reads: bool, scales: bool, elects: bool) -> Vec<Access> {
    let mut out = Vec::new();
    if reads || scales {
        out.push(READ_ACCESS);
    }
    if scales {
        out.push(SCALE_ACCESS);
    }
    if discovery {
        out.push(DISCOVERY_ACCESS);
    }
    if elects {
        out.push(LEASE_ACCESS);
    }
    out
}

/// Whether [`API_ACCESS`] or [`LEASE_ACCESS`] allows `verb` on `resource` of `group`.
pub fn allowed(group: &str, resource: &str, verb: &str) -> bool {
    API_ACCESS
        .iter()
        .chain([&LEASE_ACCESS])
        .any(|a| a.group == group && a.resource == resource && a.verbs.contains(&verb))
}

use foresight_actuate::{Actuator, ActuatorError, BoxFuture, PoolState};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::ScaleSpec;
use kube::api::{Api, PostParams};

/// A client at `url` (a plain URL such as `kubectl proxy`'s), or found the usual way
/// (in-cluster service account, `KUBECONFIG`, `~/.kube/config`); and the namespace of its
/// configuration (`default` for a URL).
pub async fn client(url: Option<&str>) -> Result<(kube::Client, String), String> {
    let config = match url {
        Some(u) => kube::Config::new(u.parse().map_err(|e| format!("{u}: not a URL: {e}"))?),
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
    };
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    Ok((client, namespace))
}

/// Sets a Deployment's replicas.
pub struct KubeActuator {
    api: Api<Deployment>,
    namespace: String,
    deployment: String,
    max: usize,
    conflict_retries: u32,
}

impl KubeActuator {
    /// With the cluster found the usual way (`KUBECONFIG`, `~/.kube/config`, or the in-cluster
    /// service account). `namespace` defaults to the configuration's.
    pub async fn infer(
        namespace: Option<&str>,
        deployment: &str,
        max: usize,
    ) -> Result<Self, ActuatorError> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| ActuatorError::Api {
                target: "kubernetes configuration".into(),
                message: e.to_string(),
            })?;
        let namespace = namespace
            .map(str::to_string)
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| ActuatorError::Api {
            target: "kubernetes client".into(),
            message: e.to_string(),
        })?;
        Ok(Self::with_client(client, &namespace, deployment, max))
    }

    /// Against an API server at a plain URL (e.g. `kubectl proxy` on `http://127.0.0.1:8001`).
    pub fn for_url(
        url: &str,
        namespace: &str,
        deployment: &str,
        max: usize,
    ) -> Result<Self, ActuatorError> {
        let bad = |message: String| ActuatorError::Api {
            target: url.to_string(),
            message,
        };
        let uri = url.parse().map_err(|e| bad(format!("not a URL: {e}")))?;
        let client = kube::Client::try_from(kube::Config::new(uri))
            .map_err(|e| bad(format!("cannot build a client: {e}")))?;
        Ok(Self::with_client(client, namespace, deployment, max))
    }

    /// With a client built elsewhere.
    pub fn with_client(
        client: kube::Client,
        namespace: &str,
        deployment: &str,
        max: usize,
    ) -> Self {
        KubeActuator {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            deployment: deployment.to_string(),
            max,
            conflict_retries: 5,
        }
    }

    /// How many 409 Conflicts in a row to retry before giving up (default 5).
    pub fn conflict_retries(mut self, n: u32) -> Self {
        self.conflict_retries = n;
        self
    }

    fn error(&self, e: impl std::fmt::Display) -> ActuatorError {
        ActuatorError::Api {
            target: format!("deployment {}/{}", self.namespace, self.deployment),
            message: e.to_string(),
        }
    }

    async fn set(&self, replicas: usize) -> Result<(), ActuatorError> {
        let want = i32::try_from(replicas).map_err(|_| self.error("replica count too large"))?;
        for attempt in 0..=self.conflict_retries {
            let mut scale = self
                .api
                .get_scale(&self.deployment)
                .await
                .map_err(|e| self.error(e))?;
            if scale.spec.as_ref().and_then(|s| s.replicas) == Some(want) {
                return Ok(());
            }
            // Keep metadata.resourceVersion: the write fails with 409 if anyone wrote since.
            scale.spec = Some(ScaleSpec {
                replicas: Some(want),
            });
            match self
                .api
                .replace_scale(&self.deployment, &PostParams::default(), &scale)
                .await
            {
                Ok(_) => {
                    tracing::info!(deployment = %self.deployment, namespace = %self.namespace, replicas, "scaled");
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {
                    tracing::debug!(attempt, message = %status.message, "scale conflict; re-reading");
                }
                Err(e) => return Err(self.error(e)),
            }
        }
        Err(self.error(format!(
            "gave up after {} conflicts in a row: another writer keeps changing this \
             Deployment (is a HorizontalPodAutoscaler managing it too?)",
            self.conflict_retries + 1
        )))
    }

    async fn read(&self) -> Result<PoolState, ActuatorError> {
        let d = self
            .api
            .get(&self.deployment)
            .await
            .map_err(|e| self.error(e))?;
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.unwrap_or_default();
        let ready = status.ready_replicas.unwrap_or(0);
        let current = status.replicas.unwrap_or(0);
        let count = |n: i32| usize::try_from(n.max(0)).unwrap_or(0);
        Ok(PoolState {
            desired: count(desired),
            ready: Some(count(ready)),
            starting: Some(count(current - ready)),
        })
    }
}

impl Actuator for KubeActuator {
    fn name(&self) -> String {
        format!(
            "kubernetes deployment {}/{}",
            self.namespace, self.deployment
        )
    }

    fn apply(&self, replicas: usize) -> BoxFuture<'_, Result<(), ActuatorError>> {
        Box::pin(async move {
            if replicas > self.max {
                self.set(self.max).await?;
                return Err(ActuatorError::AboveMax {
                    asked: replicas,
                    max: self.max,
                });
            }
            self.set(replicas).await
        })
    }

    fn state(&self) -> BoxFuture<'_, Result<PoolState, ActuatorError>> {
        Box::pin(self.read())
    }
}
