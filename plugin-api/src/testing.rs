//! Helpers for unit-testing a provider without a host: in-memory services with scripted
//! answers to prompts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::{
    Error, HostServices, Interaction, InteractionReply, LogLevel, Result, Secret, ServicesBackend,
};

/// In-memory host services: a secret map, a queue of answers for prompts, and a record of
/// every interaction and log line.
#[derive(Default)]
pub struct MemoryServices {
    secrets: Mutex<BTreeMap<String, String>>,
    answers: Mutex<VecDeque<String>>,
    interactions: Mutex<Vec<Interaction>>,
    logs: Mutex<Vec<(LogLevel, String)>>,
    interactive: bool,
}

impl MemoryServices {
    /// Services that answer prompts from `answers`, in order; with no answers they are
    /// non-interactive.
    pub fn new(answers: &[&str]) -> Arc<MemoryServices> {
        Arc::new(MemoryServices {
            answers: Mutex::new(answers.iter().map(|s| s.to_string()).collect()),
            interactive: !answers.is_empty(),
            ..Default::default()
        })
    }

    /// A [`HostServices`] over these services.
    pub fn handle(self: &Arc<Self>) -> HostServices {
        HostServices::new(self.clone())
    }

    /// The stored secrets (for assertions).
    pub fn secrets(&self) -> BTreeMap<String, String> {
        self.secrets.lock().unwrap().clone()
    }

    /// Every interaction so far.
    pub fn interactions(&self) -> Vec<Interaction> {
        self.interactions.lock().unwrap().clone()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.logs.lock().unwrap().clone()
    }
}

impl ServicesBackend for MemoryServices {
    fn secret_load(&self, key: &str) -> Result<Option<Secret<String>>> {
        Ok(self
            .secrets
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .map(Secret::new))
    }

    fn secret_store(&self, key: &str, value: &Secret<String>) -> Result<()> {
        self.secrets
            .lock()
            .unwrap()
            .insert(key.to_owned(), value.expose().clone());
        Ok(())
    }

    fn secret_delete(&self, key: &str) -> Result<()> {
        self.secrets.lock().unwrap().remove(key);
        Ok(())
    }

    fn interact(&self, request: &Interaction) -> Result<InteractionReply> {
        self.interactions.lock().unwrap().push(request.clone());
        match request {
            Interaction::PromptText { prompt } | Interaction::PromptSecret { prompt } => {
                match self.answers.lock().unwrap().pop_front() {
                    Some(a) => Ok(InteractionReply::Text {
                        text: Secret::new(a),
                    }),
                    None => Err(Error::interaction(format!(
                        "no answer for prompt `{prompt}`"
                    ))),
                }
            }
            Interaction::OpenUrl { .. } => Ok(InteractionReply::Opened { opened: false }),
            _ => Ok(InteractionReply::Done),
        }
    }

    fn is_interactive(&self) -> bool {
        self.interactive
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_owned()));
    }
}
