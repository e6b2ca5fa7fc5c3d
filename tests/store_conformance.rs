//! One conformance suite for every [`Store`]: each behaviour in
//! `store_conformance/behaviour.rs` (and `companions.rs`, `branches.rs`,
//! `accounts.rs` beside it) runs against a real SQLite file
//! (`sqlite::…`) and against a real PostgreSQL (`postgres::…`, a fresh
//! database per test on the server of `common::postgres`), with the same
//! test body. A store that passes here can stand in for the other.
//! `store_conformance/postgres_only.rs` holds what only Postgres has
//! (migrating instances, the database's clock, its faults); what only the
//! SQLite store has (its writer thread, fault injection on files) is tested
//! beside it in `src/server/store/sqlite/`.

mod common;

#[path = "store_conformance/accounts.rs"]
mod accounts;
#[path = "store_conformance/behaviour.rs"]
mod behaviour;
#[path = "store_conformance/branches.rs"]
mod branches;
#[path = "store_conformance/companions.rs"]
mod companions;
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
    ($($module:ident :: $behaviour:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    crate::$module::$behaviour(crate::Subject::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    crate::$module::$behaviour(crate::Subject::postgres().await).await;
                }
            )+
        }
    };
}

conformance! {
    behaviour::same_client_msg_id_is_stored_once,
    behaviour::concurrent_duplicates_from_two_instances_store_one_message,
    behaviour::a_send_to_another_users_conversation_is_not_found,
    behaviour::a_refused_send_stores_nothing,
    behaviour::messages_are_listed_oldest_first,
    behaviour::conversations_are_listed_most_recently_active_first_at_most_200,
    behaviour::search_finds_titles_and_message_text_of_the_user_only,
    behaviour::a_send_returns_the_newest_history_with_text_oldest_first,
    behaviour::renaming_and_deleting_take_the_owner,
    behaviour::deleting_a_conversation_deletes_its_messages_and_keys,
    behaviour::a_regenerate_key_is_recorded_once,
    behaviour::checkpoints_keep_partial_text_and_never_overwrite_a_finished_reply,
    behaviour::a_finished_reply_keeps_its_usage_and_touches_its_conversation,
    behaviour::a_reopened_reply_keeps_its_text_and_takes_checkpoints_again,
    behaviour::interrupted_assistant_messages_are_recovered_as_errors,
    behaviour::one_unfinished_reply_per_conversation_and_only_its_run_writes_it,
    behaviour::two_instances_starting_replies_at_once_get_one_busy,
    behaviour::orphans_are_the_replies_of_silent_instances_and_are_recovered_once,
    behaviour::writes_of_a_recovered_run_are_fenced,
    behaviour::the_first_shared_setting_wins,
    behaviour::two_instances_proposing_a_shared_setting_at_once_agree,
    behaviour::ping_answers,
    behaviour::pages_before_a_cursor_walk_back_to_the_start_without_gaps,
    behaviour::a_cursor_of_another_conversation_is_no_cursor,
    companions::companions_belong_to_their_owner_newest_change_first,
    companions::a_user_keeps_at_most_the_limit_of_companions,
    companions::a_picture_is_stored_replaced_and_removed_with_its_companion,
    companions::a_new_conversation_starts_with_its_greeting,
    branches::a_regenerated_reply_keeps_the_one_it_replaces,
    branches::an_edit_branches_and_the_earlier_branch_stays_whole,
    branches::a_choice_inside_a_branch_is_remembered,
    branches::an_edited_reply_is_an_alternative_stored_once,
    branches::choosing_what_does_not_exist_changes_nothing,
    branches::a_tree_imported_reads_back_the_same,
    branches::deleting_a_branch_point_takes_what_follows_and_keeps_a_choice,
    accounts::the_first_account_is_the_admin_and_usernames_are_unique,
    accounts::an_invite_signs_up_one_account_before_it_expires,
    accounts::sessions_are_found_by_token_rotated_and_signed_out,
    accounts::a_new_password_signs_out_the_other_sessions,
    accounts::status_and_quotas_are_set_per_account,
    accounts::an_account_claims_what_its_guest_made_once,
    accounts::deleting_a_user_deletes_everything_of_theirs,
    accounts::usage_adds_up_per_user_and_day,
    accounts::two_instances_signing_up_at_once_make_one_admin_and_spend_an_invite_once,
    accounts::passkeys_belong_to_their_account_and_go_with_it,
}
