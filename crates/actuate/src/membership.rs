//! How the proxy learns that an instance joined or must leave.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::{ActuatorError, BoxFuture};

/// The proxy's view of the instances, as an actuator changes it.
pub trait Membership: Send + Sync {
    /// Puts a ready instance (`http://host:port`) into rotation.
    fn add(&self, address: &str) -> BoxFuture<'_, Result<(), ActuatorError>>;
    /// Takes an instance out of rotation and returns once its in-flight requests have
    /// finished and it is removed.
    fn drain(&self, address: &str) -> BoxFuture<'_, Result<(), ActuatorError>>;
    /// Removes an instance at once (it died).
    fn remove(&self, address: &str) -> BoxFuture<'_, Result<(), ActuatorError>>;
}

fn api(target: &str, message: impl ToString) -> ActuatorError {
    ActuatorError::Api {
        target: target.to_string(),
        message: message.to_string(),
    }
}

/// In-process: the proxy's own pool (the control loop runs inside `foresight serve`).
pub struct PoolMembership {
    /// The proxy's pool.
    pub pool: Arc<foresight_proxy::Pool>,
    /// Longest wait for in-flight requests while draining.
    pub drain_timeout: Duration,
}

impl Membership for PoolMembership {
    fn add(&self, address: &str) -> BoxFuture<'_, Result<(), ActuatorError>> {
        let r = foresight_proxy::config::parse_backend("backend", address, None)
            .map_err(|e| api("proxy pool", e))
            .and_then(|spec| {
                self.pool
                    .add(spec, true)
                    .map(|_| ())
                    .map_err(|e| api("proxy pool", e))
            });
        Box::pin(async move { r })
    }

    fn drain(&self, address: &str) -> BoxFuture<'_, Result<(), ActuatorError>> {
        let address = address.to_string();
        Box::pin(async move {
            self.pool
                .drain(&address, self.drain_timeout)
                .await
                .map(|_| ())
                .map_err(|e| api("proxy pool", e))
        })
    }

    fn remove(&self, address: &str) -> BoxFuture<'_, Result<(), ActuatorError>> {
        let r = self.pool.remove(address).map_err(|e| api("proxy pool", e));
        Box::pin(async move { r })
    }
}

/// Over the proxy's admin API (`POST /backends`, `POST /backends/drain?wait=true`,
/// `DELETE /backends`), for a proxy in another process.
pub struct AdminApi {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl AdminApi {
    /// `base` is the admin listener, e.g. `http://127.0.0.1:9900`.
    pub fn new(base: impl Into<String>) -> Self {
        AdminApi {
            base: base.into().trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    async fn call(&self, method: &str, path: &str, body: String) -> Result<(), ActuatorError> {
        let url = format!("{}{}", self.base, path);
        let req = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| api(&url, e))?;
        let resp = self.client.request(req).await.map_err(|e| api(&url, e))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| api(&url, e))?
            .to_bytes();
        if status.is_success() {
            Ok(())
        } else {
            Err(api(
                &format!("{method} {url}"),
                format!("{status}: {}", String::from_utf8_lossy(&bytes).trim()),
            ))
        }
    }
}

/// Percent-encodes a query value (addresses hold `:` and `/`), as
/// `application/x-www-form-urlencoded`.
fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

impl Membership for AdminApi {
    fn add(&self, address: &str) -> BoxFuture<'_, Result<(), ActuatorError>> {
        let body = serde_json::json!({ "address": address, "start_healthy": true }).to_string();
        Box::pin(async move { self.call("POST", "/backends", body).await })
    }

    fn drain(&self, address: &str) -> BoxFuture<'_, Result<(), ActuatorError>> {
        let path = format!("/backends/drain?wait=true&address={}", encode(address));
        Box::pin(async move { self.call("POST", &path, String::new()).await })
    }

    fn remove(&self, address: &str) -> BoxFuture<'_, Result<(), ActuatorError>> {
        let path = format!("/backends?address={}", encode(address));
        Box::pin(async move { self.call("DELETE", &path, String::new()).await })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            super::encode("http://127.0.0.1:9001"),
            "http%3A%2F%2F127.0.0.1%3A9001"
        );
    }
}
