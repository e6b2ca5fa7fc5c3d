//! The history of the conversation in the URL, for the first render of
//! `/c/:id`: the server renders it into the page (a reload or a new tab shows
//! the text at once, before the WASM has loaded, even without JavaScript) and
//! hydration reads the same data back from the page. From then on the
//! socket's `snapshot` and events keep the view current, so in the browser the
//! loader has nothing to do.

use leptos::prelude::*;

use crate::protocol::ServerFrame;

/// The stored messages of the conversation named by `route_id`, as a
/// `snapshot` frame; `None` for a new chat, someone else's conversation, or
/// after hydration.
pub fn history_resource(route_id: Signal<Option<String>>) -> Resource<Option<ServerFrame>> {
    #[cfg(feature = "ssr")]
    let loader = {
        let state = use_context::<crate::server::state::AppState>();
        let parts = use_context::<http::request::Parts>();
        move |id: Option<String>| {
            let state = state.clone();
            let parts = parts.clone();
            async move {
                let id = super::sidebar::conversation_from_param(id)?;
                let (state, parts) = (state?, parts?);
                let user = state.page_user(&parts).await?;
                state.chat.history(&user, &id).await.ok()
            }
        }
    };
    #[cfg(not(feature = "ssr"))]
    let loader = |_: Option<String>| async { None };
    Resource::new(move || route_id.get(), loader)
}
