//! The Leptos root: the HTML shell (server-rendered) and the `App` component
//! that the WASM bundle hydrates.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes},
    ParamSegment, SsrMode, StaticSegment,
};

use crate::ui::{chat::ChatPage, session::ChatSession, theme::THEME_BOOT};

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <script inner_html=THEME_BOOT></script>
                // The stylesheet where the build's files are (under their
                // version when the site is embedded: server::assets).
                <link rel="stylesheet" id="leptos" href=format!("/{}/{}.css", options.site_pkg_dir, options.output_name)/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let session = ChatSession::provide();
    session.connect();
    view! {
        <Title text="Tether"/>
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                // `/` and `/c/:id` share one parent, so switching conversations
                // never remounts the page (it reads the id from the path).
                // Rendered whole (`Async`): a conversation's history is in the
                // HTML itself, readable before (or without) the WASM.
                <ParentRoute path=StaticSegment("") view=ChatPage ssr=SsrMode::Async>
                    <Route path=StaticSegment("") view=|| ()/>
                    <Route path=(StaticSegment("c"), ParamSegment("id")) view=|| ()/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
