//! Changes to the configuration file that keep its comments, order and formatting
//! (`toml_edit`), written atomically: the current context, and the plugin pins and isolated
//! plugins that installing and removing plugins change.

use std::path::Path;

use super::Config;
use crate::error::{Error, Result};
use crate::fsutil;

/// Sets `current_context` in the file, keeping its comments, order and formatting.
pub fn set_current_context(path: &Path, name: &str) -> Result<()> {
    let config = Config::load(path)?;
    if config.context(name).is_none() {
        return Err(Error::usage(format!(
            "no context `{name}` in `{}`; `qlam context list` shows the defined ones",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(format!("cannot read config file `{}`", path.display())).with_source(e)
    })?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        Error::config(format!("`{}`", path.display())).with_source(e)
    })?;
    let mut value = toml_edit::Value::from(name);
    if let Some(old) = doc.get("current_context").and_then(|i| i.as_value()) {
        // Keep a trailing comment and spacing around the old value.
        *value.decor_mut() = old.decor().clone();
    }
    doc["current_context"] = toml_edit::Item::Value(value);
    fsutil::write_atomic(path, doc.to_string().as_bytes(), None).map_err(|e| {
        Error::config(format!("cannot write config file `{}`", path.display())).with_source(e)
    })
}

/// Reads `path` as an editable document; a missing file is an empty one.
fn edit_document(path: &Path) -> Result<toml_edit::DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(
                Error::config(format!("cannot read config file `{}`", path.display()))
                    .with_source(e),
            )
        }
    };
    if !text.is_empty() {
        // Refuse to edit a file that does not parse as a qlam configuration.
        Config::parse(&text, path)?;
    }
    text.parse().map_err(|e: toml_edit::TomlError| {
        Error::config(format!("`{}`", path.display())).with_source(e)
    })
}

fn save_document(path: &Path, doc: &toml_edit::DocumentMut) -> Result<()> {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        fsutil::write_atomic(path, doc.to_string().as_bytes(), None)
    };
    write().map_err(|e| {
        Error::config(format!("cannot write config file `{}`", path.display())).with_source(e)
    })
}

/// The `trusted_plugins` entries of a document that name `plugin`, as (array index) — both
/// spellings: an array of inline tables, or `[[trusted_plugins]]` tables.
fn pin_entries(doc: &toml_edit::DocumentMut, config: &Path, plugin: &Path) -> Vec<usize> {
    let base = config.parent().unwrap_or(Path::new("/"));
    let names = |p: Option<&str>| p.is_some_and(|p| base.join(p) == plugin);
    match doc.get("trusted_plugins") {
        Some(toml_edit::Item::Value(toml_edit::Value::Array(a))) => a
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                names(
                    v.as_inline_table()
                        .and_then(|t| t.get("path"))
                        .and_then(|p| p.as_str()),
                )
            })
            .map(|(i, _)| i)
            .collect(),
        Some(toml_edit::Item::ArrayOfTables(a)) => a
            .iter()
            .enumerate()
            .filter(|(_, t)| names(t.get("path").and_then(|p| p.as_str())))
            .map(|(i, _)| i)
            .collect(),
        _ => Vec::new(),
    }
}

/// Pins `plugin` (an absolute path) to `sha256` in `trusted_plugins` of the file at `path`
/// (created if missing), replacing any pin of the same file and keeping everything else as
/// it was. Answers whether an earlier pin was replaced.
pub(crate) fn set_plugin_pin(path: &Path, plugin: &Path, sha256: &str) -> Result<bool> {
    let mut doc = edit_document(path)?;
    let existing = pin_entries(&doc, path, plugin);
    let plugin_str = plugin.to_str().ok_or_else(|| {
        Error::config(format!(
            "cannot pin `{}`: the path is not valid UTF-8",
            plugin.display()
        ))
    })?;
    drop_pins(&mut doc, &existing);
    match doc.get_mut("trusted_plugins") {
        Some(toml_edit::Item::ArrayOfTables(a)) => {
            let mut t = toml_edit::Table::new();
            t["path"] = toml_edit::value(plugin_str);
            t["sha256"] = toml_edit::value(sha256);
            a.push(t);
        }
        Some(toml_edit::Item::Value(toml_edit::Value::Array(a))) => {
            let mut t = toml_edit::InlineTable::new();
            t.insert("path", plugin_str.into());
            t.insert("sha256", sha256.into());
            a.push(t);
            a.fmt();
        }
        Some(_) => {
            return Err(Error::config(format!(
                "`trusted_plugins` in `{}` is not a list; fix it by hand",
                path.display()
            )))
        }
        None => {
            let mut t = toml_edit::InlineTable::new();
            t.insert("path", plugin_str.into());
            t.insert("sha256", sha256.into());
            let mut a = toml_edit::Array::new();
            a.push(t);
            doc.insert("trusted_plugins", toml_edit::value(a));
        }
    }
    save_document(path, &doc)?;
    Ok(!existing.is_empty())
}

/// Adds `plugin` to `isolated_plugins` in the file at `path` (its providers then run in a
/// process of their own), keeping comments and formatting; answers whether it was new.
pub(crate) fn add_isolated_plugin(path: &Path, plugin: &Path) -> Result<bool> {
    let mut doc = edit_document(path)?;
    let plugin_str = plugin.to_str().ok_or_else(|| {
        Error::config(format!(
            "cannot list `{}` in isolated_plugins: the path is not valid UTF-8",
            plugin.display()
        ))
    })?;
    let list = doc
        .entry("isolated_plugins")
        .or_insert_with(|| toml_edit::value(toml_edit::Array::new()));
    let Some(a) = list.as_array_mut() else {
        return Err(Error::config(format!(
            "`isolated_plugins` in `{}` is not a list of paths; fix it by hand",
            path.display()
        )));
    };
    if a.iter().any(|v| v.as_str() == Some(plugin_str)) {
        return Ok(false);
    }
    a.push(plugin_str);
    save_document(path, &doc)?;
    Ok(true)
}

/// Removes `plugin` from `isolated_plugins` in the file at `path`; answers whether it was
/// there.
pub(crate) fn remove_isolated_plugin(path: &Path, plugin: &Path) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let mut doc = edit_document(path)?;
    let Some(a) = doc
        .get_mut("isolated_plugins")
        .and_then(|i| i.as_array_mut())
    else {
        return Ok(false);
    };
    let before = a.len();
    a.retain(|v| v.as_str().map(Path::new) != Some(plugin));
    if a.len() == before {
        return Ok(false);
    }
    save_document(path, &doc)?;
    Ok(true)
}

/// Removes every pin of `plugin` from the file at `path`; answers whether there was one.
pub(crate) fn remove_plugin_pin(path: &Path, plugin: &Path) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let mut doc = edit_document(path)?;
    let existing = pin_entries(&doc, path, plugin);
    if existing.is_empty() {
        return Ok(false);
    }
    drop_pins(&mut doc, &existing);
    save_document(path, &doc)?;
    Ok(true)
}

/// Removes the `trusted_plugins` entries at `indexes` (ascending, from [`pin_entries`]).
fn drop_pins(doc: &mut toml_edit::DocumentMut, indexes: &[usize]) {
    match doc.get_mut("trusted_plugins") {
        Some(toml_edit::Item::ArrayOfTables(a)) => {
            for &i in indexes.iter().rev() {
                a.remove(i);
            }
        }
        Some(toml_edit::Item::Value(toml_edit::Value::Array(a))) => {
            for &i in indexes.iter().rev() {
                a.remove(i);
            }
        }
        _ => {}
    }
}
