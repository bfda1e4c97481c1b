//! The HTTP client for readiness checks and seed requests.

use std::time::Duration;

use preview_core::async_trait;
use preview_core::effects::HttpClient;
use preview_core::http::{Answer, Client, Provider};
use preview_core::render::HttpCall;
use preview_core::{Error, Result, RetryConfig};

/// reqwest with a 30 s timeout; header values that hold secrets are marked sensitive.
///
/// Redirects are followed only within the same origin (scheme, host and port), at most 10: a
/// request may carry a secret header that is meant for its origin alone (a seed's
/// `Authorization`, an app's protection bypass), and reqwest strips only the standard credential
/// headers on a cross-origin hop. A cross-origin redirect is answered as it is (its 3xx status):
/// a protected preview redirecting to a login page is not "ready".
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
    client: Option<Client>,
    /// Test builds only: origins sent elsewhere (`PREVIEW_TEST_HTTP_ORIGINS`).
    #[cfg(feature = "testing")]
    origins: Vec<(String, String)>,
}

/// Readiness checks and seed requests for the shared sender: every status is an answer (the
/// caller judges it), so this table is never asked.
const APP: Provider = Provider {
    name: "http",
    request_id_header: "",
    errors: status_error,
};

fn status_error(a: &Answer, what: &str) -> Error {
    Error::failed(what, format!("HTTP {}", a.status().as_u16()))
}

/// At most this many redirects are followed.
const MAX_REDIRECTS: usize = 10;

fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from = attempt.previous().last().map(reqwest::Url::origin);
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if from.as_ref() == Some(&attempt.url().origin()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

impl Default for ReqwestHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl ReqwestHttp {
    /// A client (building it cannot fail with the features we use; if it ever does, every request
    /// reports why).
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .user_agent(concat!("preview/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .redirect(same_origin_redirects())
            .build()
            .ok()
            // Sent once: the pipeline polls readiness and decides about seeds.
            .map(|http| Client::from_reqwest(APP, http, RetryConfig::none()));
        Self {
            client,
            #[cfg(feature = "testing")]
            origins: Vec::new(),
        }
    }

    /// Test builds only (feature `testing`, never in an install): requests to each `from` origin
    /// go to `to` instead, as a resolver and a TLS terminator in front of a local stand-in would
    /// (`PREVIEW_TEST_HTTP_ORIGINS="https://app.example=http://127.0.0.1:PORT,…"`). Which headers
    /// a request carries is decided before, on the URL the configuration gave.
    #[cfg(feature = "testing")]
    pub fn with_test_origins(mut self, spec: &str) -> Self {
        self.origins = spec
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(from, to)| {
                (
                    from.trim().trim_end_matches('/').to_string(),
                    to.trim().trim_end_matches('/').to_string(),
                )
            })
            .collect();
        self
    }

    fn target(&self, url: &str) -> String {
        #[cfg(feature = "testing")]
        for (from, to) in &self.origins {
            if let Some(rest) = url.strip_prefix(from.as_str()) {
                if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                    return format!("{to}{rest}");
                }
            }
        }
        url.to_string()
    }
}

#[async_trait]
impl HttpClient for ReqwestHttp {
    async fn send(&self, call: &HttpCall) -> Result<u16> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| Error::failed("http", "the HTTP client could not be initialised"))?;
        let method = reqwest::Method::from_bytes(call.method.as_bytes())
            .map_err(|_| Error::config(format!("invalid HTTP method {:?}", call.method)))?;
        let url = reqwest::Url::parse(&self.target(&call.url))
            .map_err(|_| Error::config(format!("the URL of {:?} is not a valid URL", call.name)))?;
        let mut req = client.request(method, url).answers_all();
        for (k, v) in &call.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                Error::config(format!(
                    "{k:?} of {:?} is not an HTTP header name",
                    call.name
                ))
            })?;
            let mut hv = reqwest::header::HeaderValue::from_str(v.expose()).map_err(|_| {
                Error::config(format!(
                    "header {k} of {:?} has characters HTTP cannot carry",
                    call.name
                ))
            })?;
            hv.set_sensitive(v.is_secret());
            req = req.header(name, hv);
        }
        if let Some(body) = &call.body {
            req = req.body(body.clone());
        }
        Ok(req.send_retry().await?.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use preview_core::Value;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn get(url: String, secret: &str) -> HttpCall {
        HttpCall {
            name: "readiness".into(),
            method: "GET".into(),
            url,
            headers: vec![(
                "x-vercel-protection-bypass".into(),
                Value::Secret(secret.to_string().into()),
            )],
            body: None,
            expect_status: vec![200],
        }
    }

    #[tokio::test]
    async fn redirects_are_followed_within_the_origin_only() {
        let app = MockServer::start().await;
        let elsewhere = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/old"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", "/ready"))
            .mount(&app)
            .await;
        Mock::given(method("GET"))
            .and(path("/ready"))
            .and(header("x-vercel-protection-bypass", "SENTINEL-bypass"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&app)
            .await;
        Mock::given(method("GET"))
            .and(path("/login"))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("location", format!("{}/login", elsewhere.uri())),
            )
            .mount(&app)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&elsewhere)
            .await;
        let http = ReqwestHttp::new();
        let same = http
            .send(&get(format!("{}/old", app.uri()), "SENTINEL-bypass"))
            .await
            .expect("sent");
        assert_eq!(same, 200, "a same-origin redirect is followed, header kept");
        let cross = http
            .send(&get(format!("{}/login", app.uri()), "SENTINEL-bypass"))
            .await
            .expect("sent");
        assert_eq!(cross, 302, "a cross-origin redirect is answered as it is");
        let leaked = elsewhere.received_requests().await.expect("recording");
        assert!(leaked.is_empty(), "the other origin was asked: {leaked:?}");
    }
}
