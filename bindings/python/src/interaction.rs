//! A Python object as the host's way of talking to the user: for programs with their own
//! UI (a GUI, a notebook, a web app), instead of the terminal.
//!
//! The object's methods (see `qlam.Interaction`): `show_verification(provider, uri, code,
//! complete_uri)`, `open_url(provider, url) -> bool`, `prompt_text(provider, prompt) -> str`,
//! `prompt_secret(provider, prompt) -> str`, `progress(provider, message, done)`. A missing
//! `open_url` means no browser was opened, a missing `progress` that progress is not shown;
//! an exception is the user declining (an interaction error for the provider).

use pyo3::prelude::*;
use qlam_host::api::{Error as ProviderError, Interaction, InteractionReply, Secret};
use qlam_host::UserInteraction;

pub(crate) struct PyInteraction {
    pub object: Py<PyAny>,
}

impl UserInteraction for PyInteraction {
    fn interact(
        &self,
        provider: &str,
        request: &Interaction,
    ) -> Result<InteractionReply, ProviderError> {
        Python::attach(|py| {
            let obj = self.object.bind(py);
            let has = |name: &str| obj.hasattr(name).unwrap_or(false);
            let answer = match request {
                Interaction::ShowVerification {
                    verification_uri,
                    user_code,
                    verification_uri_complete,
                } => obj
                    .call_method1(
                        "show_verification",
                        (
                            provider,
                            verification_uri,
                            user_code,
                            verification_uri_complete,
                        ),
                    )
                    .map(|_| InteractionReply::Done),
                Interaction::OpenUrl { url } if has("open_url") => obj
                    .call_method1("open_url", (provider, url))
                    .and_then(|r| r.is_truthy())
                    .map(|opened| InteractionReply::Opened { opened }),
                Interaction::OpenUrl { .. } => Ok(InteractionReply::Opened { opened: false }),
                Interaction::PromptText { prompt } => obj
                    .call_method1("prompt_text", (provider, prompt))
                    .and_then(|r| r.extract::<String>())
                    .map(|text| InteractionReply::Text {
                        text: Secret::new(text),
                    }),
                Interaction::PromptSecret { prompt } => obj
                    .call_method1("prompt_secret", (provider, prompt))
                    .and_then(|r| r.extract::<String>())
                    .map(|text| InteractionReply::Text {
                        text: Secret::new(text),
                    }),
                Interaction::Progress { message, done } if has("progress") => obj
                    .call_method1("progress", (provider, message, *done))
                    .map(|_| InteractionReply::Done),
                Interaction::Progress { .. } => Ok(InteractionReply::Done),
                _ => {
                    return Err(ProviderError::interaction(
                        "this program's interaction object cannot do what the provider asked",
                    ))
                }
            };
            // The exception's text is the program's own (its UI's "cancelled"), not a secret.
            answer.map_err(|e| {
                ProviderError::interaction(format!("the program's interaction failed: {e}"))
            })
        })
    }

    fn is_interactive(&self) -> bool {
        true
    }
}
