//! The first page of the conversation list, for the first render: the
//! server renders it into the sidebar (a reload paints the list at once,
//! before the WASM has loaded and its socket has asked for it) and hydration
//! reads the same data back from the page. Once the socket's
//! `conversations` answer arrives, the session's live list replaces it.

use leptos::prelude::*;

use crate::protocol::ConversationSummary;

/// The newest conversations of the page's user (the first
/// [`LIST_PAGE`](super::sidebar::LIST_PAGE) of what `list_conversations`
/// answers without a search); empty for a new visitor or after hydration.
pub fn first_page_resource() -> Resource<Vec<ConversationSummary>> {
    #[cfg(feature = "ssr")]
    let loader = {
        let state = use_context::<crate::server::state::AppState>();
        let parts = use_context::<http::request::Parts>();
        move |()| {
            let state = state.clone();
            let parts = parts.clone();
            async move {
                let load = async {
                    let (state, parts) = (state?, parts?);
                    let user = state.page_user(&parts).await?;
                    match state.chat.conversations(&user, None).await.ok()? {
                        crate::protocol::ServerFrame::Conversations { mut items, .. } => {
                            items.truncate(super::sidebar::LIST_PAGE);
                            Some(items)
                        }
                        _ => None,
                    }
                };
                load.await.unwrap_or_default()
            }
        }
    };
    #[cfg(not(feature = "ssr"))]
    let loader = |()| async { Vec::new() };
    Resource::new(|| (), loader)
}
