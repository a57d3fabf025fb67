//! `foresight top --admin URL`: the control loops of a running `serve` or `controller` as a
//! table refreshed in the terminal (load, plan, instances, the last decision), for people
//! who live in a shell. It reads `GET /control`, the JSON the dashboard reads; [`render`] is
//! the pure part.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::{failure, usage_error};

/// The longest answer read from the admin listener.
const MAX_BODY: usize = 8 << 20;

#[derive(Args)]
pub struct TopArgs {
    /// The admin listener, e.g. http://127.0.0.1:9090 (a bare host:port means http://).
    #[arg(long)]
    admin: String,
    /// Time between refreshes (100ms to 1h).
    #[arg(long, default_value = "2s", value_parser = interval)]
    interval: Duration,
    /// Print the table once and exit (for scripts), instead of refreshing it.
    #[arg(long)]
    once: bool,
}

fn interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!("`{s}`: between 100ms and 1h"));
    }
    Ok(d)
}

pub fn run(a: TopArgs) -> ExitCode {
    let base = if a.admin.contains("://") {
        a.admin.trim_end_matches('/').to_string()
    } else {
        format!("http://{}", a.admin.trim_end_matches('/'))
    };
    let uri: http::Uri = match format!("{base}/control").parse() {
        Ok(u) if base.starts_with("http://") => u,
        Ok(_) => return usage_error(format!("--admin {}: an http:// URL", a.admin)),
        Err(e) => return usage_error(format!("--admin {}: {e}", a.admin)),
    };
    // The admin guard's token, if the listener has one (the variable `serve` reads).
    let token = std::env::var("FORESIGHT_ADMIN_TOKEN").ok();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failure(e),
    };
    rt.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        loop {
            let table = match fetch(&client, &uri, token.as_deref()).await {
                Ok(v) => render(&v, width()),
                Err(e) if a.once => return failure(format!("{uri}: {e:#}")),
                Err(e) => format!("{uri}: {e:#}\n"),
            };
            if a.once {
                print!("{table}");
                return ExitCode::SUCCESS;
            }
            // Clear the screen, cursor home, then the table (what `top` and `watch` do).
            print!(
                "\x1b[2J\x1b[H{uri}  every {}\n\n{table}",
                humantime::format_duration(a.interval)
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
            tokio::select! {
                _ = tokio::time::sleep(a.interval) => {}
                _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            }
        }
    })
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

async fn fetch(client: &HttpClient, uri: &http::Uri, token: Option<&str>) -> anyhow::Result<Value> {
    let mut req = http::Request::get(uri.clone());
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        client.request(req.body(Empty::new())?),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer within 5 s"))??;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
        .to_bytes();
    match status.as_u16() {
        200 => Ok(serde_json::from_slice(&body)?),
        401 => anyhow::bail!("401: set FORESIGHT_ADMIN_TOKEN to the admin token"),
        404 => anyhow::bail!("404: no control loop runs there (no [control] section)"),
        s => anyhow::bail!("HTTP {s}: {}", String::from_utf8_lossy(&body).trim()),
    }
}

/// The terminal's width; lines are not cut when stdout is not a terminal (a pipe, a file).
fn width() -> usize {
    console::Term::stdout()
        .size_checked()
        .map_or(usize::MAX, |(_, cols)| usize::from(cols).max(60))
}

/// The table for a `GET /control` answer (one service's status, or `{"services": [...]}`),
/// each line at most `width` characters.
pub fn render(v: &Value, width: usize) -> String {
    let services: Vec<&Value> = match v.get("services").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![v],
    };
    let header = format!(
        "{:<12} {:<26} {:>9} {:>10} {:<11} {:>7} {:>15} {:<24} LAST DECISION",
        "SERVICE", "POLICY", "LOAD", "PLAN", "UNIT", "QUANT", "READY+START/WANT", "FORECASTER"
    );
    let mut out = clip(&header, width) + "\n";
    for s in services {
        let str_of = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("—").to_string();
        let num = |k: &str| s.get(k).and_then(Value::as_f64);
        let int = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
        let planned = num("planned_rps").map_or("—".into(), |r| format!("{r:.1}"));
        let quantile = num("planned_quantile").map_or("—".into(), |q| format!("{q:.2}"));
        let trusted = if s.get("trusted").and_then(Value::as_bool) == Some(false)
            && num("planned_rps").is_some()
        {
            " (distrusted)"
        } else {
            ""
        };
        let uptime = num("uptime_s").unwrap_or(0.0);
        let last = s
            .get("decisions")
            .and_then(Value::as_array)
            .and_then(|d| d.last())
            .map_or("none yet".to_string(), |d| {
                let at = d.get("at_s").and_then(Value::as_f64).unwrap_or(uptime);
                format!(
                    "{} ago {}→{}: {}",
                    ago(uptime - at),
                    d.get("from").and_then(Value::as_u64).unwrap_or(0),
                    d.get("to").and_then(Value::as_u64).unwrap_or(0),
                    d.get("reason").and_then(Value::as_str).unwrap_or("")
                )
            });
        let line = format!(
            "{:<12} {:<26} {:>9.1} {:>10} {:<11} {:>7} {:>15} {:<24} {last}",
            clip(&str_of("service"), 12),
            clip(&str_of("policy"), 26),
            num("observed_rps").unwrap_or(0.0),
            planned,
            clip(
                s.get("load_unit")
                    .and_then(Value::as_str)
                    .unwrap_or("req/s"),
                11
            ),
            quantile,
            format!("{}+{}/{}", int("ready"), int("starting"), int("desired")),
            clip(&format!("{}{trusted}", str_of("forecaster")), 24),
        );
        out.push_str(&clip(&line, width));
        out.push('\n');
    }
    out
}

fn ago(s: f64) -> String {
    let s = s.max(0.0);
    if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7200.0 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{:.1}h", s / 3600.0)
    }
}

/// At most `n` characters, the cut marked with `…`.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_row_per_service_with_the_last_decision() {
        let one = serde_json::json!({
            "service": "checkout", "policy": "hybrid-lstm", "uptime_s": 600.0,
            "observed_rps": 41.26, "planned_rps": 80.0, "load_unit": "connections", "planned_quantile": 0.95,
            "trusted": false, "ready": 3, "starting": 1, "desired": 4,
            "forecaster": "lstm",
            "decisions": [
                {"at_s": 10.0, "from": 2, "to": 3, "reason": "older"},
                {"at_s": 570.0, "from": 3, "to": 4, "reason": "forecast 80 req/s at the lead"}
            ]
        });
        let t = render(&one, 200);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2, "{t}");
        assert!(lines[0].starts_with("SERVICE"));
        for part in [
            "checkout",
            "hybrid-lstm",
            "41.3",
            "80.0",
            "0.95",
            "3+1/4",
            "lstm (distrusted)",
            "30s ago 3→4: forecast 80 req/s at the lead",
        ] {
            assert!(lines[1].contains(part), "{part}: {}", lines[1]);
        }
        // Several services; missing fields show as dashes; lines fit the width.
        let two = serde_json::json!({"services": [one, {"service": "auth", "policy": "hpa"}]});
        let t = render(&two, 80);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[2].starts_with("auth") && lines[2].contains('—'),
            "{}",
            lines[2]
        );
        assert!(lines.iter().skip(1).all(|l| l.chars().count() <= 80), "{t}");
        assert!(lines[2].contains("none yet") || lines[2].ends_with('…'));
    }

    #[test]
    fn ages_and_clips() {
        assert_eq!(ago(5.2), "5s");
        assert_eq!(ago(600.0), "10m");
        assert_eq!(ago(9000.0), "2.5h");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
