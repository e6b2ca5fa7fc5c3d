//! The companion and import endpoints from the page (feature `browser`): JSON in and
//! out, card files and pictures sent as they are (the `File` is the
//! request body; its bytes never pass through WASM memory). A refusal comes
//! back as the server's sentence, for the page to show.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{File, Headers, HtmlInputElement, Request, RequestInit, Response};

use crate::protocol::{CompanionDraft, CompanionInfo, ConversationSummary};

/// What the page shows when a request could not be made at all.
const OFFLINE: &str = "the server cannot be reached; try again in a moment";

/// `GET /api/companions`: presets, then the user's own.
pub async fn companions() -> Option<Vec<CompanionInfo>> {
    #[derive(serde::Deserialize)]
    struct List {
        items: Vec<CompanionInfo>,
    }
    let body = request("GET", "/api/companions", Body::None).await.ok()?;
    serde_json::from_str::<List>(&body).ok().map(|l| l.items)
}

/// Makes (`id` `None`) or changes a companion.
pub async fn save(id: Option<String>, draft: &CompanionDraft) -> Result<CompanionInfo, String> {
    let json = serde_json::to_string(draft).map_err(|e| e.to_string())?;
    let (method, url) = match id {
        Some(id) => ("PUT", format!("/api/companions/{id}")),
        None => ("POST", "/api/companions".to_owned()),
    };
    parse(request(method, &url, Body::Json(&json)).await?)
}

pub async fn delete(id: &str) -> Result<(), String> {
    request("DELETE", &format!("/api/companions/{id}"), Body::None)
        .await
        .map(drop)
}

/// Imports the card file chosen in the `<input type=file>` of `event`.
pub async fn import(event: &leptos::ev::Event) -> Result<CompanionInfo, String> {
    let file = chosen_file(event).ok_or("choose a card file (PNG or JSON)")?;
    parse(request("POST", "/api/companions/import", Body::File(&file)).await?)
}

/// Imports the conversation export chosen in the `<input type=file>` of
/// `event` as a new conversation.
pub async fn import_conversation(event: &leptos::ev::Event) -> Result<ConversationSummary, String> {
    let file = chosen_file(event).ok_or("choose a conversation export (JSON)")?;
    let body = request("POST", "/api/conversations/import", Body::File(&file)).await?;
    serde_json::from_str(&body).map_err(|e| format!("unexpected answer: {e}"))
}

/// Sets the picture chosen in the `<input type=file>` of `event`.
pub async fn set_avatar(id: &str, event: &leptos::ev::Event) -> Result<CompanionInfo, String> {
    let file = chosen_file(event).ok_or("choose a picture")?;
    let url = format!("/api/companions/{id}/avatar");
    parse(request("PUT", &url, Body::File(&file)).await?)
}

pub async fn remove_avatar(id: &str) -> Result<CompanionInfo, String> {
    let url = format!("/api/companions/{id}/avatar");
    parse(request("DELETE", &url, Body::None).await?)
}

fn chosen_file(event: &leptos::ev::Event) -> Option<File> {
    let input: HtmlInputElement = event.target()?.dyn_into().ok()?;
    let file = input.files()?.get(0);
    // The same file may be chosen again later: the input forgets it.
    input.set_value("");
    file
}

fn parse(body: String) -> Result<CompanionInfo, String> {
    serde_json::from_str(&body).map_err(|e| format!("unexpected answer: {e}"))
}

enum Body<'a> {
    None,
    Json(&'a str),
    File(&'a File),
}

/// A same-origin request (the identity cookie and `Origin` go along); the
/// body of a success, or the `message` of the `error` frame of a refusal.
async fn request(method: &str, url: &str, body: Body<'_>) -> Result<String, String> {
    let response = send(method, url, body)
        .await
        .map_err(|_| OFFLINE.to_owned())?;
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    if response.ok() {
        return Ok(text);
    }
    let reason = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("the server answered {}", response.status()));
    Err(reason)
}

async fn send(method: &str, url: &str, body: Body<'_>) -> Result<Response, JsValue> {
    let init = RequestInit::new();
    init.set_method(method);
    match body {
        Body::None => {}
        Body::Json(json) => {
            let headers = Headers::new()?;
            headers.set("content-type", "application/json")?;
            init.set_headers(&headers);
            init.set_body(&JsValue::from_str(json));
        }
        Body::File(file) => init.set_body(file),
    }
    let request = Request::new_with_str_and_init(url, &init)?;
    let window = web_sys::window().ok_or(JsValue::NULL)?;
    JsFuture::from(window.fetch_with_request(&request))
        .await?
        .dyn_into()
}
