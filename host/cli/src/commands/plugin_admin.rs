//! `qlam plugins install` and `qlam plugins remove`: what they print. The work (a checked
//! copy, renamed into place; pins and `isolated_plugins`) is the library's
//! (`AuthClient::install_plugin`, `AuthClient::remove_plugin`).

use std::path::Path;

use qlam_host::plugins::{InstallOptions, Origin};
use qlam_host::Error;
use serde_json::json;

use crate::app::Ctx;
use crate::exit::Exit;
use crate::render::print_json;

pub(super) fn install(ctx: &Ctx, file: &Path, pin: bool, isolate: bool) -> Result<Exit, Error> {
    let client = ctx.client(true)?;
    let done = client.install_plugin(file, &InstallOptions { pin, isolate })?;
    if ctx.json() {
        print_json(&json!({
            "path": done.path, "source": done.source, "sha256": done.sha256,
            "provider_types": done.provider_types, "api_version": done.api_version,
            "replaced": done.replaced, "pinned": pin, "isolated": isolate,
        }));
        return Ok(Exit::Ok);
    }
    eprintln!(
        "Installed {} (provider types: {})",
        done.path.display(),
        done.provider_types.join(", ")
    );
    eprintln!("sha256 {}", done.sha256);
    if done.replaced {
        eprintln!(
            "Replaced the previous file; qlam processes already running keep the old one until they exit"
        );
    }
    // The client's registry is loaded only now, so it sees the new file.
    for line in shadowing(&client, &done.path) {
        eprintln!("note: {line}");
    }
    // Set whenever a pin or an isolation entry was written.
    if let Some(config_file) = &done.config_file {
        if let Some(updated) = done.pin_updated {
            let verb = if updated { "Updated" } else { "Recorded" };
            eprintln!("{verb} its pin in {}", config_file.display());
        }
        if done.isolated {
            eprintln!(
                "Its providers run in a process of their own (isolated_plugins in {})",
                config_file.display()
            );
        }
    }
    Ok(Exit::Ok)
}

pub(super) fn remove(ctx: &Ctx, name: &str) -> Result<Exit, Error> {
    let done = ctx.client(true)?.remove_plugin(name)?;
    if ctx.json() {
        print_json(
            &json!({"path": done.path, "provider_types": done.provider_types, "unpinned": done.unpinned}),
        );
        return Ok(Exit::Ok);
    }
    if done.provider_types.is_empty() {
        eprintln!("Removed {}", done.path.display());
    } else {
        eprintln!(
            "Removed {} (provider types: {})",
            done.path.display(),
            done.provider_types.join(", ")
        );
    }
    if done.unpinned {
        eprintln!("Removed its pin from trusted_plugins");
    }
    Ok(Exit::Ok)
}

/// Provider types of `dest` that another library on the search path also provides, and which
/// one wins (the search path order decides).
fn shadowing(client: &qlam_host::AuthClient, dest: &Path) -> Vec<String> {
    client
        .registry()
        .duplicates()
        .iter()
        .filter_map(|d| {
            let lib = |o: &Origin| matches!(o, Origin::Library(p) if p == dest);
            if lib(&d.kept) {
                Some(format!(
                    "provider type `{}` is also in {}, which is now ignored",
                    d.name, d.ignored
                ))
            } else if lib(&d.ignored) {
                Some(format!(
                    "provider type `{}` is also in {}, which comes first in the search path: the installed one is ignored",
                    d.name, d.kept
                ))
            } else {
                None
            }
        })
        .collect()
}
