//! The services the host gives each provider: the credential store scoped to (context,
//! provider), user interaction, and logging into `tracing`.

#[cfg(feature = "terminal")]
pub(crate) mod terminal;

use std::sync::Arc;

use qlam_plugin_api::{
    Error as ProviderError, Interaction, InteractionReply, LogLevel, Secret, ServicesBackend,
};

use crate::store::Secrets;

/// How the host talks to the user. The CLI implements it on the terminal; an embedding
/// application implements its own (a GUI, a notebook, a web app).
pub trait UserInteraction: Send + Sync + 'static {
    /// Carries out `request` for the provider named `provider`.
    fn interact(
        &self,
        provider: &str,
        request: &Interaction,
    ) -> Result<InteractionReply, ProviderError>;

    /// Whether anyone can be asked anything.
    fn is_interactive(&self) -> bool;
}

/// Refuses every step that needs a person, with a clear error; progress is logged.
#[derive(Debug, Default, Clone, Copy)]
pub struct NonInteractive;

impl UserInteraction for NonInteractive {
    fn interact(
        &self,
        provider: &str,
        request: &Interaction,
    ) -> Result<InteractionReply, ProviderError> {
        let what = match request {
            Interaction::Progress { message, .. } => {
                tracing::info!(provider, "{message}");
                return Ok(InteractionReply::Done);
            }
            Interaction::ShowVerification { .. } => "show a device code".to_string(),
            Interaction::OpenUrl { .. } => "open a browser".to_string(),
            Interaction::PromptText { prompt } | Interaction::PromptSecret { prompt } => {
                format!("ask for `{prompt}`")
            }
            _ => "ask the user something".to_string(),
        };
        Err(ProviderError::interaction(format!(
            "provider `{provider}` needs to {what}, but this program is not interactive; log in from a terminal with `qlam auth login {provider}`"
        )))
    }

    fn is_interactive(&self) -> bool {
        false
    }
}

/// The backend one provider instance gets.
pub(crate) struct ProviderServices {
    pub context: String,
    pub provider: String,
    pub store: Arc<Secrets>,
    pub interaction: Arc<dyn UserInteraction>,
}

impl ServicesBackend for ProviderServices {
    fn secret_load(&self, key: &str) -> Result<Option<Secret<String>>, ProviderError> {
        self.store
            .load(&self.context, &self.provider, key)
            .map(|v| v.map(Secret::new))
            .map_err(|e| ProviderError::other(e.message()))
    }

    fn secret_store(&self, key: &str, value: &Secret<String>) -> Result<(), ProviderError> {
        tracing::debug!(provider = %self.provider, key, "storing a secret");
        self.store
            .store(&self.context, &self.provider, key, value.expose())
            .map_err(|e| ProviderError::other(e.message()))
    }

    fn secret_delete(&self, key: &str) -> Result<(), ProviderError> {
        tracing::debug!(provider = %self.provider, key, "deleting a secret");
        self.store
            .delete(&self.context, &self.provider, key)
            .map_err(|e| ProviderError::other(e.message()))
    }

    fn interact(&self, request: &Interaction) -> Result<InteractionReply, ProviderError> {
        let request = crate::boundary::validate::interaction(request).map_err(|why| {
            ProviderError::other(format!(
                "provider `{}` asked for an interaction qlam refuses: {why}",
                self.provider
            ))
        })?;
        self.interaction.interact(&self.provider, &request)
    }

    fn is_interactive(&self) -> bool {
        self.interaction.is_interactive()
    }

    fn log(&self, level: LogLevel, message: &str) {
        crate::plugins::log::emit(level, &self.provider, message)
    }
}
