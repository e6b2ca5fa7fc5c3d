//! One conformance suite for every [`Store`]: each behaviour in
//! `store_conformance/behaviour.rs` runs against a real SQLite file
//! (`sqlite::…`) and against a real PostgreSQL (`postgres::…`, a fresh
//! database per test on the server of `common::postgres`), with the same
//! test body. A store that passes here can stand in for the other.
//! `store_conformance/postgres_only.rs` holds what only Postgres has
//! (migrating instances, the database's clock, its faults); what only the
//! SQLite store has (its writer thread, fault injection on files) is tested
//! beside it in `src/server/store/sqlite/`.

mod common;

#[path = "store_conformance/behaviour.rs"]
mod behaviour;
#[path = "store_conformance/postgres_only.rs"]
mod postgres_only;

use std::sync::Arc;

use tether::server::{
    config::{DatabaseUrl, LimitsConfig},
    store::{self, Store},
};

/// A store under test, on a database of its own.
pub struct Subject {
    pub store: Arc<dyn Store>,
    url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
}

impl Subject {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = DatabaseUrl::Sqlite {
            path: dir.path().join("t.db"),
        };
        Self {
            store: open(&url).await,
            url,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Self {
        let url: DatabaseUrl = common::postgres::fresh_database()
            .await
            .parse()
            .expect("a postgres:// URL");
        Self {
            store: open(&url).await,
            url,
            _dir: None,
        }
    }

    /// Another store on the same database, as a second instance has.
    pub async fn another_instance(&self) -> Arc<dyn Store> {
        open(&self.url).await
    }
}

/// The store `url` names, as the server opens it.
pub async fn open(url: &DatabaseUrl) -> Arc<dyn Store> {
    store::open(url, &LimitsConfig::defaults())
        .await
        .unwrap_or_else(|e| panic!("{url} opens: {e}"))
        .store
}

/// One test per backend and behaviour: `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($($behaviour:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    crate::behaviour::$behaviour(crate::Subject::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    crate::behaviour::$behaviour(crate::Subject::postgres().await).await;
                }
            )+
        }
    };
}

conformance! {
    same_client_msg_id_is_stored_once,
    concurrent_duplicates_from_two_instances_store_one_message,
    a_send_to_another_users_conversation_is_not_found,
    a_refused_send_stores_nothing,
    messages_are_listed_oldest_first,
    conversations_are_listed_most_recently_active_first_at_most_200,
    search_finds_titles_and_message_text_of_the_user_only,
    a_send_returns_the_newest_history_with_text_oldest_first,
    renaming_and_deleting_take_the_owner,
    deleting_a_conversation_deletes_its_messages_and_keys,
    a_regenerate_key_is_recorded_once,
    checkpoints_keep_partial_text_and_never_overwrite_a_finished_reply,
    a_finished_reply_keeps_its_usage_and_touches_its_conversation,
    a_reopened_reply_keeps_its_text_and_takes_checkpoints_again,
    interrupted_assistant_messages_are_recovered_as_errors,
    one_unfinished_reply_per_conversation_and_only_its_run_writes_it,
    two_instances_starting_replies_at_once_get_one_busy,
    orphans_are_the_replies_of_silent_instances_and_are_recovered_once,
    writes_of_a_recovered_run_are_fenced,
    the_first_shared_setting_wins,
    two_instances_proposing_a_shared_setting_at_once_agree,
    ping_answers,
    pages_before_a_cursor_walk_back_to_the_start_without_gaps,
    a_cursor_of_another_conversation_is_no_cursor,
}
