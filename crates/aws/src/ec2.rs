//! The three EC2 calls Foresight needs — `DescribeInstances` (private addresses, tags),
//! `CreateTags` and `DeleteTags` — over EC2's Query API, signed with AWS's own `aws-sigv4` and
//! sent on the SDK's HTTP connector (rustls on ring, as the proxy).
//!
//! Why not `aws-sdk-ec2`: it added 5 min 11 s to a build here (measured in the notes of issue
//! #20), which the CI budget cannot take, for three calls whose request is a form and whose
//! answer is a few XML elements. Credentials, region and endpoint still come from the SDK's
//! standard configuration ([`crate::sdk_config`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_xml::decode::{try_data, Document, ScopedDecoder};

use crate::credentials::Creds;

/// EC2's Query API version.
const VERSION: &str = "2016-11-15";
/// The longest one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Instances per `DescribeInstances` call (AWS allows 1000 ids; smaller answers are safer).
const BATCH: usize = 100;
/// Attempts per call.
const ATTEMPTS: u32 = 3;
/// The largest answer read.
const MAX_ANSWER: usize = 16 << 20;

/// One instance as `DescribeInstances` tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ec2Instance {
    /// `i-…`.
    pub id: String,
    /// Its private IPv4 address, if it has one yet.
    pub private_ip: Option<IpAddr>,
    /// `pending`, `running`, `shutting-down`, …
    pub state: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// A signed EC2 Query API client.
pub struct Ec2 {
    connector: Connector,
    creds: Creds,
    region: Option<String>,
    endpoint: Option<String>,
}

impl Ec2 {
    /// On `config`'s credentials, region and endpoint.
    pub fn new(config: &SdkConfig) -> Ec2 {
        let connector = Connector::builder()
            .connector_settings(
                HttpConnectorSettings::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .read_timeout(Duration::from_secs(5))
                    .build(),
            )
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build();
        Ec2 {
            connector,
            creds: Creds::of(config),
            region: config.region().map(|r| r.to_string()),
            endpoint: config.endpoint_url().map(str::to_string),
        }
    }

    /// Whether there are credentials valid now (see [`Creds`]).
    pub(crate) async fn credentials(&self) -> Result<(), String> {
        self.creds.get(SystemTime::now()).await.map(drop)
    }

    /// The instances `ids` (unknown ones are left out).
    pub async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Ec2Instance>, String> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(BATCH) {
            let mut params = vec![("Action".to_string(), "DescribeInstances".to_string())];
            for (i, id) in batch.iter().enumerate() {
                params.push((format!("InstanceId.{}", i + 1), id.clone()));
            }
            let xml = self.call(&params).await?;
            out.extend(parse_instances(&xml)?);
        }
        Ok(out)
    }

    /// Sets tag `key` to `value` on `ids`.
    pub async fn create_tags(&self, ids: &[String], key: &str, value: &str) -> Result<(), String> {
        let mut params = vec![
            ("Action".to_string(), "CreateTags".to_string()),
            ("Tag.1.Key".to_string(), key.to_string()),
            ("Tag.1.Value".to_string(), value.to_string()),
        ];
        for (i, id) in ids.iter().enumerate() {
            params.push((format!("ResourceId.{}", i + 1), id.clone()));
        }
        self.call(&params).await.map(drop)
    }

    /// Removes tag `key` from `ids`.
    pub async fn delete_tags(&self, ids: &[String], key: &str) -> Result<(), String> {
        let mut params = vec![
            ("Action".to_string(), "DeleteTags".to_string()),
            ("Tag.1.Key".to_string(), key.to_string()),
        ];
        for (i, id) in ids.iter().enumerate() {
            params.push((format!("ResourceId.{}", i + 1), id.clone()));
        }
        self.call(&params).await.map(drop)
    }

    /// The endpoint: the configured one, else EC2's in the region.
    fn url(&self) -> Result<(String, String), String> {
        let region = self.region.clone().ok_or(
            "no AWS region configured (set AWS_REGION or a profile's region, or run on EC2)",
        )?;
        let url = match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string() + "/",
            None => format!("https://ec2.{region}.amazonaws.com/"),
        };
        Ok((url, region))
    }

    /// POSTs the form `params` (plus the version), signed; the answer's body. Throttling,
    /// server errors and failed connections are tried again, [`ATTEMPTS`] times in all, 0.25 s
    /// then 0.5 s apart.
    async fn call(&self, params: &[(String, String)]) -> Result<String, String> {
        let mut attempt = 1;
        loop {
            match self.once(params).await {
                Ok(body) => return Ok(body),
                Err((message, retry)) if retry && attempt < ATTEMPTS => {
                    tracing::debug!(%message, attempt, "EC2 call tried again");
                    tokio::time::sleep(Duration::from_millis(250 << (attempt - 1))).await;
                    attempt += 1;
                }
                Err((message, _)) => return Err(message),
            }
        }
    }

    /// One attempt of [`Ec2::call`]; on failure, why and whether to try again.
    async fn once(&self, params: &[(String, String)]) -> Result<String, (String, bool)> {
        let fatal = |m: String| (m, false);
        let (url, region) = self.url().map_err(fatal)?;
        let action = params.first().map_or("", |(_, v)| v.as_str()).to_string();
        let fail = |m: String| format!("EC2 {action} at {url}: {m}");
        let credentials = self.creds.get(SystemTime::now()).await.map_err(fatal)?;
        let body = form(params);
        let mut request = http::Request::post(&url)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.clone())
            .map_err(|e| (fail(e.to_string()), false))?;
        let identity: Identity = credentials.into();
        let signing = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| (fail(e.to_string()), false))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            request
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| (fail(e.to_string()), false))?;
        let (instructions, _) = sign(signable, &signing)
            .map_err(|e| (fail(e.to_string()), false))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let request = request.map(SdkBody::from);
        let request = aws_smithy_runtime_api::http::Request::try_from(request)
            .map_err(|e| (fail(e.to_string()), false))?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, async {
            let response = self.connector.call(request).await.map_err(|e| {
                use std::error::Error;
                let mut m = e.to_string();
                let mut source = e.source();
                while let Some(s) = source {
                    m = format!("{m}: {s}");
                    source = s.source();
                }
                m
            })?;
            let status = response.status().as_u16();
            // Read at most MAX_ANSWER bytes: a hostile or broken endpoint cannot fill memory.
            let mut body = ByteStream::new(response.into_body());
            let mut bytes = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                if bytes.len() + chunk.len() > MAX_ANSWER {
                    return Ok((status, None));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok::<_, String>((status, Some(bytes)))
        })
        .await
        .map_err(|_| (fail(format!("no answer within {CALL_TIMEOUT:?}")), true))?
        .map_err(|m| (fail(m), true))?;
        let (status, Some(bytes)) = answer else {
            return Err((
                fail(format!("answer larger than {MAX_ANSWER} bytes")),
                false,
            ));
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !(200..300).contains(&status) {
            let message = error_message(&text);
            let retry = status >= 500
                || status == 429
                || message.starts_with("RequestLimitExceeded")
                || message.starts_with("Throttling");
            return Err((fail(format!("HTTP {status}: {message}")), retry));
        }
        Ok(text)
    }
}

/// `params` and the API version, as a form.
fn form(params: &[(String, String)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    form.append_pair("Version", VERSION);
    form.finish()
}

/// `Code: Message` of an EC2 error answer, or its start.
fn error_message(xml: &str) -> String {
    let mut doc = Document::new(xml);
    let mut code = None;
    let mut message = None;
    if let Ok(mut root) = doc.root_element() {
        find_error(&mut root, &mut code, &mut message);
    }
    match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => xml.chars().take(200).collect(),
    }
}

fn find_error(el: &mut ScopedDecoder, code: &mut Option<String>, message: &mut Option<String>) {
    while let Some(mut tag) = el.next_tag() {
        if tag.start_el().matches("Code") {
            *code = try_data(&mut tag).ok().map(|s| s.to_string());
        } else if tag.start_el().matches("Message") {
            *message = try_data(&mut tag).ok().map(|s| s.to_string());
        } else {
            find_error(&mut tag, code, message);
        }
    }
}

/// The instances of a `DescribeInstancesResponse`.
pub(crate) fn parse_instances(xml: &str) -> Result<Vec<Ec2Instance>, String> {
    let bad = |e: aws_smithy_xml::decode::XmlDecodeError| format!("EC2 DescribeInstances: {e}");
    let mut doc = Document::new(xml);
    let mut root = doc.root_element().map_err(bad)?;
    let mut out = Vec::new();
    while let Some(mut tag) = root.next_tag() {
        if !tag.start_el().matches("reservationSet") {
            continue;
        }
        while let Some(mut reservation) = tag.next_tag() {
            while let Some(mut field) = reservation.next_tag() {
                if !field.start_el().matches("instancesSet") {
                    continue;
                }
                while let Some(mut item) = field.next_tag() {
                    out.push(parse_instance(&mut item).map_err(bad)?);
                }
            }
        }
    }
    Ok(out)
}

fn parse_instance(
    item: &mut ScopedDecoder,
) -> Result<Ec2Instance, aws_smithy_xml::decode::XmlDecodeError> {
    let mut i = Ec2Instance::default();
    while let Some(mut field) = item.next_tag() {
        let name = field.start_el().local().to_string();
        match name.as_str() {
            "instanceId" => i.id = try_data(&mut field)?.to_string(),
            "privateIpAddress" => i.private_ip = try_data(&mut field)?.trim().parse().ok(),
            "instanceState" => {
                while let Some(mut s) = field.next_tag() {
                    if s.start_el().matches("name") {
                        i.state = try_data(&mut s)?.to_string();
                    }
                }
            }
            "tagSet" => {
                while let Some(mut t) = field.next_tag() {
                    let (mut key, mut value) = (String::new(), String::new());
                    while let Some(mut kv) = t.next_tag() {
                        if kv.start_el().matches("key") {
                            key = try_data(&mut kv)?.to_string();
                        } else if kv.start_el().matches("value") {
                            value = try_data(&mut kv)?.to_string();
                        }
                    }
                    i.tags.insert(key, value);
                }
            }
            _ => {}
        }
    }
    if i.id.is_empty() {
        return Err(aws_smithy_xml::decode::XmlDecodeError::custom(
            "an instance without instanceId",
        ));
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The shape of EC2's answer, abridged from its API reference, with nested `item`s and
    /// `privateIpAddress` also inside the network interfaces.
    const ANSWER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <groupSet/>
      <instancesSet>
        <item>
          <instanceId>i-1234567890abcdef0</instanceId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateIpAddress>10.0.0.12</privateIpAddress>
          <networkInterfaceSet><item><privateIpAddress>10.0.0.99</privateIpAddress></item></networkInterfaceSet>
          <tagSet>
            <item><key>foresight:draining-since</key><value>1764835200</value></item>
            <item><key>Name</key><value>web &amp; api</value></item>
          </tagSet>
        </item>
        <item>
          <instanceId>i-0000000000000000b</instanceId>
          <instanceState><code>0</code><name>pending</name></instanceState>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>"#;

    #[test]
    fn instances_are_read_with_their_address_state_and_tags() {
        let got = parse_instances(ANSWER).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, "i-1234567890abcdef0");
        assert_eq!(got[0].private_ip, Some("10.0.0.12".parse().unwrap()));
        assert_eq!(got[0].state, "running");
        assert_eq!(got[0].tags["foresight:draining-since"], "1764835200");
        assert_eq!(got[0].tags["Name"], "web & api");
        assert_eq!(got[1].private_ip, None);
        assert_eq!(got[1].state, "pending");
    }

    /// An endpoint that answers each request with the next of `answers` (status, body); the
    /// number of requests it got.
    async fn endpoint(answers: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // The whole request: head and the form (Content-Length).
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if got.len() >= end + 4 + len {
                            assert!(text.contains("authorization: aws4-hmac-sha256"));
                            assert!(text.contains("/ec2/aws4_request"));
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        (url, seen)
    }

    fn client(url: &str) -> Ec2 {
        use aws_credential_types::provider::SharedCredentialsProvider;
        let config = SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(url)
            .credentials_provider(SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKID", "secret", None, None, "test"),
            ))
            .build();
        Ec2::new(&config)
    }

    #[tokio::test]
    async fn throttling_is_tried_again_and_refusals_are_not() {
        let throttled = "<Response><Errors><Error><Code>RequestLimitExceeded</Code>\
                         <Message>Request limit exceeded.</Message></Error></Errors></Response>";
        let (url, seen) = endpoint(vec![(503, throttled), (503, throttled), (200, ANSWER)]).await;
        let got = client(&url)
            .describe_instances(&["i-1234567890abcdef0".into()])
            .await
            .unwrap();
        assert_eq!((got.len(), seen.load(Ordering::SeqCst)), (2, 3));

        let refused = "<Response><Errors><Error><Code>UnauthorizedOperation</Code>\
                       <Message>You are not authorized to perform this operation.</Message>\
                       </Error></Errors></Response>";
        let (url, seen) = endpoint(vec![(403, refused), (200, ANSWER)]).await;
        let e = client(&url)
            .create_tags(&["i-1".into()], "k", "v")
            .await
            .unwrap_err();
        assert_eq!(seen.load(Ordering::SeqCst), 1, "not tried again");
        assert!(
            e.contains("EC2 CreateTags") && e.contains("HTTP 403: UnauthorizedOperation"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused_without_reading_it_all() {
        let huge: &'static str = Box::leak("x".repeat(MAX_ANSWER + 1).into_boxed_str());
        let (url, _) = endpoint(vec![(200, huge)]).await;
        let e = client(&url)
            .describe_instances(&["i-1".into()])
            .await
            .unwrap_err();
        assert!(e.contains("answer larger than"), "{e}");
    }

    #[test]
    fn errors_are_read_as_code_and_message() {
        let xml = "<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able \
                   to validate the provided access credentials</Message></Error></Errors>\
                   <RequestID>x</RequestID></Response>";
        assert_eq!(
            error_message(xml),
            "AuthFailure: AWS was not able to validate the provided access credentials"
        );
        assert_eq!(error_message("not xml"), "not xml");
        assert!(
            parse_instances("<x><reservationSet><item><instancesSet><item><instanceId>").is_err()
        );
    }
}
