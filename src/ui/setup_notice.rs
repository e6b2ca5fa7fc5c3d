//! The model's set-up, while it is not ready: a local model that
//! `scripts/start.sh` installs in the background ("Setting up the local
//! model… step 2 of 3"), or why its installation failed and what to do.

use leptos::prelude::*;

use super::session::ChatSession;
use crate::protocol::ModelSetup;

/// Shown above the messages until the model is ready.
#[component]
pub fn ModelSetupNotice() -> impl IntoView {
    let session = ChatSession::get();
    move || {
        session.model_setup.get().map(|setup| match setup {
            ModelSetup::Installing {
                step,
                steps,
                label,
                elapsed_secs,
            } => view! {
                <div class="model-setup" data-state="installing" role="status" aria-live="polite">
                    <span class="model-setup-spinner" aria-hidden="true"></span>
                    <span>
                        <strong>"Setting up the local model… "</strong>
                        {installing_text(step, steps, &label, elapsed_secs)}
                        " Messages you send now are answered as soon as it is ready."
                    </span>
                </div>
            }
            .into_any(),
            ModelSetup::Failed { reason } => view! {
                <div class="model-setup" data-state="failed" role="alert">
                    <span>
                        <strong>"The local model could not be set up: "</strong>
                        {reason}
                        ". Tether works with any OpenAI-compatible provider: set "
                        <code>"OPENAI_BASE_URL"</code>", "<code>"OPENAI_API_KEY"</code>" and "
                        <code>"OPENAI_MODEL"</code>", then start it again."
                    </span>
                </div>
            }
            .into_any(),
            ModelSetup::Ready => ().into_any(),
        })
    }
}

/// "step 2 of 3 (Building llama.cpp), 4 min so far."
fn installing_text(step: u32, steps: u32, label: &str, elapsed_secs: u64) -> String {
    let so_far = if elapsed_secs < 60 {
        format!("{elapsed_secs} s")
    } else {
        format!("{} min", elapsed_secs / 60)
    };
    if steps == 0 {
        format!("{label}, {so_far} so far.")
    } else {
        format!("step {step} of {steps} ({label}), {so_far} so far.")
    }
}

#[cfg(test)]
mod tests {
    use super::installing_text;

    #[test]
    fn says_the_step_and_the_time_so_far() {
        assert_eq!(
            installing_text(2, 3, "Building llama.cpp", 250),
            "step 2 of 3 (Building llama.cpp), 4 min so far."
        );
        assert_eq!(
            installing_text(1, 3, "Downloading", 12),
            "step 1 of 3 (Downloading), 12 s so far."
        );
        assert_eq!(
            installing_text(0, 0, "unreadable status", 3),
            "unreadable status, 3 s so far."
        );
    }
}
