//! The HTTP client for readiness checks and seed requests.

use std::time::Duration;

use preview_core::async_trait;
use preview_core::effects::HttpClient;
use preview_core::resolve::HttpCall;
use preview_core::{Error, Result};

/// reqwest with a 30 s timeout; header values that hold secrets are marked sensitive.
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
    client: Option<reqwest::Client>,
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
            .build()
            .ok();
        Self { client }
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
        let mut req = client.request(method, &call.url);
        for (k, v) in &call.headers {
            let mut hv = reqwest::header::HeaderValue::from_str(v.expose()).map_err(|_| {
                Error::config(format!(
                    "header {k} of {:?} has characters HTTP cannot carry",
                    call.name
                ))
            })?;
            hv.set_sensitive(v.is_secret());
            req = req.header(k.as_str(), hv);
        }
        if let Some(body) = &call.body {
            req = req.body(body.clone());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| preview_core::http::transport_error("http", e))?;
        Ok(resp.status().as_u16())
    }
}
