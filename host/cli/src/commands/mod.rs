//! One module per command group.

pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod helpers;
pub(crate) mod plugin_admin;
pub(crate) mod plugins;
