//! The request path to HTTP/2 instances (`protocol = "h2c"` or `"h2"`): one stream per
//! request on the instance's multiplexed connection, trailers and gRPC statuses carried.

use super::*;

impl Forwarder {
    /// Forwards one client request to an HTTP/2 instance (`protocol = "h2c"` or `"h2"`): a stream on the
    /// instance's multiplexed connection, so every request is balanced on its own however
    /// many a client sends on one connection (gRPC). Bodies and trailers stream both ways.
    /// A refused connect is tried on another instance, body and all; so is a call to a method
    /// marked safe (`retries.grpc_methods`) that an instance answers with a status of
    /// `retries.on_grpc_status` alone (trailers-only), its body read ahead to be sent again
    /// (up to [`crate::replay::MAX_REPLAY`]). Answers the proxy makes itself to a gRPC
    /// client are gRPC errors ([`crate::grpc::error`]).
    pub async fn handle_h2(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Peer,
    ) -> Response<ResponseBody> {
        let (mut parts, body) = req.into_parts();
        let grpc = crate::grpc::is_call(&parts.headers);
        let own = |status: StatusCode, msg: &'static str| {
            if grpc {
                crate::grpc::error(status, msg)
            } else {
                reply(status, msg)
            }
        };
        let info = match self.admit(&mut parts, &peer) {
            Ok(info) => info,
            Err(why) if grpc => {
                let r = self.refuse(why);
                return crate::grpc::error(r.status(), "refused by the proxy's admission\n");
            }
            Err(why) => return self.refuse(why),
        };
        // A call that may be retried on its status is read ahead, to be sent again.
        let replayable = grpc
            && !self.retry.on_grpc_status.is_empty()
            && self.retry.attempts > 0
            && crate::grpc::method_matches(&self.retry.grpc_methods, parts.uri.path());
        let mut body = if body.is_end_stream() {
            None
        } else if replayable {
            match crate::replay::Replay::read_ahead(body, crate::replay::MAX_REPLAY).await {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::debug!(error = %e, "client request body failed");
                    return own(
                        StatusCode::BAD_REQUEST,
                        "request body error
",
                    );
                }
            }
        } else {
            Some(crate::replay::Replay::streamed(body))
        };
        // What a retry on a gRPC status sends: nothing for a call without a body; a call whose
        // body could not be read whole ahead is not retried.
        let bodiless = body.is_none();
        let again = body.as_ref().and_then(|b| b.again());
        // A gRPC client's own deadline bounds the request's, when it is the shorter.
        let stated = crate::grpc::timeout(&parts.headers).filter(|d| *d < self.request_timeout);
        let budget = stated.unwrap_or(self.request_timeout);
        let arrived = Instant::now();
        let mut tried: Vec<Arc<Backend>> = Vec::new();
        let mut attempt = 0;
        loop {
            let Some(flight) = self.choose(&info, &tried).await else {
                return own(StatusCode::SERVICE_UNAVAILABLE, "no healthy instance\n");
            };
            let backend = flight.backend.clone();
            let left = budget.saturating_sub(arrived.elapsed());
            let sent = backend
                .upstream
                .send_h2(&parts, &mut body, left, backend.load.in_flight())
                .await;
            match sent {
                Ok(resp) => {
                    let at = Instant::now();
                    backend.load.observe(
                        at.saturating_duration_since(flight.started),
                        self.pool.clock().at(at),
                    );
                    let status = resp.status();
                    let grpc_status = crate::grpc::trailers_only_status(resp.headers());
                    self.pool
                        .record_outcome(&backend, !status.is_server_error());
                    backend.metrics.count(status.as_u16());
                    if replayable
                        && grpc_status.is_some_and(|s| self.retry.on_grpc_status.contains(&s))
                        && (bodiless || again.is_some())
                        && attempt < self.retry.attempts
                        && self.withdraw(at)
                    {
                        if let Some(s) = resp.headers().get("grpc-status") {
                            backend.metrics.grpc_status(s.as_bytes());
                        }
                        drop((resp, flight));
                        body = again.as_ref().and_then(|b| b.again());
                        attempt += 1;
                        self.pool.metrics.retries.inc();
                        tried.push(backend);
                        continue;
                    }
                    if status == StatusCode::SERVICE_UNAVAILABLE {
                        self.pool.metrics.refused.inc();
                    }
                    let (mut rparts, inner) = resp.into_parts();
                    strip_hop_by_hop(&mut rparts.headers);
                    if let Some(s) = rparts.headers.get("grpc-status") {
                        // A trailers-only answer: the status is in the head.
                        backend.metrics.grpc_status(s.as_bytes());
                    }
                    let mut tracked = crate::body::Tracked2 {
                        inner: Some(inner),
                        flight: Some(flight),
                    };
                    if tracked.inner.as_ref().is_some_and(|b| b.is_end_stream()) {
                        tracked.finish();
                    }
                    return Response::from_parts(rparts, ResponseBody::Upstream2(tracked));
                }
                Err(e) => {
                    let connect = e.is_connect();
                    let timeout = e.is_timeout();
                    // Not processed (a refused stream, a graceful GOAWAY): sent again when the
                    // body can be, whatever the method.
                    let refused = e.is_refused() && (bodiless || again.is_some());
                    self.pool.record_outcome(&backend, false);
                    self.count_error(
                        &backend,
                        if connect {
                            "connect"
                        } else if timeout {
                            "timeout"
                        } else {
                            "protocol"
                        },
                    );
                    drop(flight);
                    if (connect || refused)
                        && attempt < self.retry.attempts
                        && self.withdraw(Instant::now())
                    {
                        if refused {
                            body = again.as_ref().and_then(|b| b.again());
                        }
                        attempt += 1;
                        self.pool.metrics.retries.inc();
                        tried.push(backend);
                        continue;
                    }
                    tracing::debug!(backend = %backend.address, error = %e, "upstream error (HTTP/2)");
                    return if timeout {
                        backend.metrics.count(504);
                        if grpc && stated.is_some() {
                            crate::grpc::deadline_exceeded()
                        } else {
                            own(StatusCode::GATEWAY_TIMEOUT, "upstream timeout\n")
                        }
                    } else {
                        backend.metrics.count(502);
                        own(StatusCode::BAD_GATEWAY, "upstream error\n")
                    };
                }
            }
        }
    }
}
