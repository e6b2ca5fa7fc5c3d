//! A browser-like HTTP client of one user, for the JSON endpoints: the
//! identity cookie and an allowed `Origin` on every request.

use serde_json::Value;

use super::{TestServer, STEP};

/// A browser-like client of one user: its cookie and the server's origin.
pub struct Browser {
    pub base: String,
    pub origin: String,
    pub cookie: String,
    pub http: reqwest::Client,
}

impl Browser {
    pub async fn new(server: &TestServer) -> Self {
        Self {
            base: format!("http://{}", server.addr),
            origin: server.origin(),
            cookie: server.cookie().await,
            http: reqwest::Client::builder()
                .timeout(STEP)
                .build()
                .expect("client"),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("origin", &self.origin)
            .header("cookie", &self.cookie)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET")
    }

    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    pub async fn upload(
        &self,
        method: reqwest::Method,
        path: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        self.request(method, path)
            .body(bytes)
            .send()
            .await
            .expect("upload")
    }
}

/// The `error` frame of a refusal: its code and message.
pub async fn refusal(response: reqwest::Response, status: u16) -> (String, String) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error frame");
    assert_eq!(body["type"], "error");
    (
        body["code"].as_str().expect("code").to_owned(),
        body["message"].as_str().expect("message").to_owned(),
    )
}
