//! The request path for a request to switch protocols (a WebSocket handshake): relayed on a
//! connection of its own, a 101 answered by a tunnel that holds the request in flight.

use super::*;

impl Forwarder {
    /// Forwards a client's request to switch protocols (see [`crate::tunnel`]); the
    /// dispatcher sends such requests here rather than to [`Forwarder::handle`].
    pub async fn handle_switch(
        self: Arc<Self>,
        req: Request<Incoming>,
        up: crate::tunnel::Upgrade,
        peer: Peer,
    ) -> Response<ResponseBody> {
        let (mut parts, _) = req.into_parts();
        match self.admit(&mut parts, &peer) {
            Ok(info) => self.switch(parts, up, info).await,
            Err(why) => self.refuse(why),
        }
    }

    /// A request to switch protocols (a WebSocket handshake), sent to an instance on a
    /// connection of its own. A 101 is relayed and the tunnel runs in a task of its own,
    /// holding the request in flight; any other answer is relayed as a response. A refused
    /// connection is tried on another instance, as for any bodiless request.
    async fn switch(
        self: Arc<Self>,
        mut parts: http::request::Parts,
        up: crate::tunnel::Upgrade,
        info: RequestInfo,
    ) -> Response<ResponseBody> {
        crate::tunnel::restore(&mut parts.headers, up.protocol.clone());
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut tried: Vec<Arc<Backend>> = Vec::new();
        let mut attempt = 0;
        loop {
            let Some(flight) = self.choose(&info, &tried).await else {
                return reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy instance\n");
            };
            let backend = flight.backend.clone();
            let deadline = (self.pool.deadlines).deadline(flight.started, self.request_timeout);
            let conn = match backend.upstream.connect().await {
                Ok(c) => c,
                Err(e) => {
                    self.pool.record_outcome(&backend, false);
                    self.count_error(&backend, "connect");
                    drop(flight);
                    if attempt < self.retry.attempts && self.withdraw(Instant::now()) {
                        attempt += 1;
                        self.pool.metrics.retries.inc();
                        tried.push(backend);
                        continue;
                    }
                    tracing::debug!(backend = %backend.address, error = %e, "upstream connect error");
                    backend.metrics.count(502);
                    return reply(StatusCode::BAD_GATEWAY, "upstream connect error\n");
                }
            };
            let out = crate::h1::Outgoing {
                method: &parts.method,
                target,
                headers: &parts.headers,
                default_host: backend.authority.as_str(),
            };
            let answered = conn.switch(out, deadline).await;
            let at = Instant::now();
            let status = match &answered {
                Ok(crate::h1::Switched::Yes(..)) => 101,
                Ok(crate::h1::Switched::No(r)) => r.status().as_u16(),
                Err(crate::h1::H1Error::Timeout) => 504,
                Err(_) => 502,
            };
            backend.metrics.count(status);
            self.pool.record_outcome(&backend, status < 500);
            match answered {
                Ok(crate::h1::Switched::Yes(head, io, early)) => {
                    backend.load.observe(
                        at.saturating_duration_since(flight.started),
                        self.pool.clock().at(at),
                    );
                    let (mut rparts, ()) = head.into_parts();
                    let protocol = rparts.headers.get(http::header::UPGRADE).cloned();
                    strip_hop_by_hop(&mut rparts.headers);
                    crate::tunnel::restore(&mut rparts.headers, protocol.unwrap_or(up.protocol));
                    tokio::spawn(crate::tunnel::run(
                        up.on,
                        io,
                        early,
                        flight,
                        backend,
                        self.tunnel_idle,
                    ));
                    return Response::from_parts(
                        rparts,
                        ResponseBody::Full(Full::new(Bytes::new())),
                    );
                }
                Ok(crate::h1::Switched::No(resp)) => {
                    return relay(resp, flight, backend);
                }
                Err(e) => {
                    let timeout = matches!(e, crate::h1::H1Error::Timeout);
                    self.count_error(&backend, if timeout { "timeout" } else { "protocol" });
                    tracing::debug!(backend = %backend.address, error = %e, "switching protocols failed");
                    return if timeout {
                        reply(StatusCode::GATEWAY_TIMEOUT, "upstream timeout\n")
                    } else {
                        reply(StatusCode::BAD_GATEWAY, "upstream error\n")
                    };
                }
            }
        }
    }
}
