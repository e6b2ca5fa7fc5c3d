//! The account corner of the top bar: the signed-in name (a link to the
//! settings page, where devices and the password are) and, for an admin,
//! the admin page; for a guest, "Sign in". Those pages are served by the
//! server (`server::accounts::pages`), so the links leave the app's router.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Who the page was rendered for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBadge {
    /// `None`: a guest.
    pub username: Option<String>,
    pub admin: bool,
}

/// The badge of the page's request, rendered on the server and read back
/// by hydration (the client-only build shows none).
fn badge_resource() -> Resource<Option<AccountBadge>> {
    #[cfg(feature = "ssr")]
    let loader = {
        let parts = use_context::<http::request::Parts>();
        move |()| {
            let parts = parts.clone();
            async move {
                let parts = parts?;
                let identity = parts
                    .extensions
                    .get::<crate::server::accounts::Identity>()
                    .cloned();
                Some(match identity.as_ref().and_then(|i| i.account()) {
                    Some((username, role)) => AccountBadge {
                        username: Some(username.to_owned()),
                        admin: role == crate::server::store::AccountRole::Admin,
                    },
                    None => AccountBadge::default(),
                })
            }
        }
    };
    #[cfg(not(feature = "ssr"))]
    let loader = |()| async { None };
    Resource::new(|| (), loader)
}

/// The name and links, or "Sign in".
#[component]
pub fn AccountLinks() -> impl IntoView {
    let badge = badge_resource();
    view! {
        <Suspense>
            {move || badge.get().flatten().map(|badge| match badge.username {
                Some(name) => view! {
                    {badge.admin.then(|| view! {
                        <a class="ghost small account-admin" href="/admin" rel="external">"Admin"</a>
                    })}
                    <a class="ghost small account-link" href="/settings" rel="external"
                        title="Settings: devices and password">{name}</a>
                }.into_any(),
                None => view! {
                    <a class="ghost small account-link" href="/signin" rel="external">"Sign in"</a>
                }.into_any(),
            })}
        </Suspense>
    }
}
