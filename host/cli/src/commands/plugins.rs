//! `qlam plugins …`: list and inspect libraries; install and remove are in `plugin_admin`.

use std::fmt::Write as _;

use qlam_host::config::Config;
use qlam_host::plugins::hashes::PluginHashes;
use qlam_host::plugins::LibraryOutcome;
use qlam_host::{AuthClient, Error};
use serde_json::{json, Value};

use crate::args::PluginsCommand;
use crate::exit::Exit;

use super::plugin_admin;
use crate::app::Ctx;
use crate::render::{print_json, print_table};

pub(crate) fn plugins(ctx: &Ctx, cmd: &PluginsCommand) -> Result<Exit, Error> {
    match cmd {
        PluginsCommand::List => {
            let client = match ctx.client(false) {
                Ok(c) => c,
                Err(e)
                    if e.kind() == qlam_host::ErrorKind::Config
                        || e.kind() == qlam_host::ErrorKind::Usage =>
                {
                    // Listing plugins must work while the configuration is broken.
                    eprintln!(
                        "warning: {}; listing plugins without the context's plugin_dirs",
                        e.message()
                    );
                    let mut b = AuthClient::builder()
                        .config(Config::default())
                        .load_plugins_on_one_cpu();
                    for d in &ctx.cli.plugin_dirs {
                        b = b.plugin_dir(d);
                    }
                    b.build()?
                }
                Err(e) => return Err(e),
            };
            let registry = client.registry();
            // What a command would find: a library the index vouched for is checked against
            // the trust rules again (a chmod since does not change the file's stamp).
            let libraries = registry.libraries_checked();
            let pins = &client.config().trusted_plugins;
            let mut hashes = PluginHashes::open(PluginHashes::default_path());
            let mut pin_of = |path: &std::path::Path| {
                let sha = hashes.sha256(path);
                let pinned = sha.as_ref().is_some_and(|h| {
                    pins.iter()
                        .any(|(p, want)| p == path && want.eq_ignore_ascii_case(h))
                });
                (sha, pinned)
            };
            if ctx.json() {
                let libraries: Vec<Value> = libraries
                    .iter()
                    .map(|l| library_json(l, pin_of(&l.path)))
                    .collect();
                print_json(&json!({
                    "api_version": qlam_host::api::API_VERSION,
                    "search_path": client.search_path().iter().map(|d| json!({
                        "path": d.path, "source": d.source.as_str(), "exists": d.path.is_dir()
                    })).collect::<Vec<_>>(),
                    "libraries": libraries,
                    "duplicates": registry.duplicates().iter().map(|d| json!({
                        "provider_type": d.name, "kept": d.kept.to_string(), "ignored": d.ignored.to_string()
                    })).collect::<Vec<_>>(),
                    "problems": registry.problems(),
                }));
            } else {
                // Each block of notes in one write: a line per library, each written piece
                // by piece to the unbuffered stderr, was a thousand writes for 100 libraries.
                let mut notes = format!(
                    "qlam-plugin-api {} (loads {})\n",
                    qlam_host::api::API_VERSION,
                    qlam_host::api::ffi::compatible_range()
                );
                for d in client.search_path() {
                    let note = if d.path.is_dir() { "" } else { " (missing)" };
                    let _ = writeln!(
                        notes,
                        "searched {} ({}){note}",
                        d.path.display(),
                        d.source.as_str()
                    );
                }
                eprint!("{notes}");
                let rows: Vec<[String; 6]> = libraries
                    .iter()
                    .map(|l| {
                        let (sha, pinned) = pin_of(&l.path);
                        let sha = sha.map_or_else(|| "-".to_owned(), |h| h[..12].to_owned());
                        let pinned = if pinned { "yes" } else { "no" }.to_owned();
                        let path = l.path.display().to_string();
                        match &l.outcome {
                            LibraryOutcome::Loaded {
                                api_version,
                                provider_types,
                                errors,
                            } => {
                                let mut types = provider_types.join(", ");
                                if !errors.is_empty() {
                                    types.push_str(&format!(
                                        " ({} failed: {})",
                                        errors.len(),
                                        errors.join("; ")
                                    ));
                                }
                                [
                                    "loaded".into(),
                                    path,
                                    api_version.clone(),
                                    sha,
                                    pinned,
                                    types,
                                ]
                            }
                            LibraryOutcome::Refused(e) => [
                                library_status(e).into(),
                                path,
                                e.api_version.clone().unwrap_or_else(|| "-".into()),
                                sha,
                                pinned,
                                e.summary.clone(),
                            ],
                        }
                    })
                    .collect();
                if rows.is_empty() {
                    eprintln!("no plugin libraries found");
                } else {
                    print_table(
                        &[
                            "STATUS",
                            "PATH",
                            "API",
                            "SHA256",
                            "PINNED",
                            "PROVIDER TYPES / REASON",
                        ],
                        &rows,
                    );
                }
                let mut notes = String::new();
                for d in registry.duplicates() {
                    let _ = writeln!(
                        notes,
                        "note: provider type `{}` from {} is ignored; {} provides it first",
                        d.name, d.ignored, d.kept
                    );
                }
                for line in registry.diagnostics() {
                    let _ = writeln!(notes, "warning: {}", line.message);
                }
                eprint!("{notes}");
                if ctx.cli.verbose > 0 {
                    ctx.warn_problems(registry);
                }
            }
            hashes.save();
            Ok(Exit::Ok)
        }
        PluginsCommand::Install { file, pin, isolate } => {
            plugin_admin::install(ctx, file, *pin, *isolate)
        }
        PluginsCommand::Remove { name } => plugin_admin::remove(ctx, name),
        PluginsCommand::Inspect { file } => {
            // Under the configuration's trust rules: a file they refuse (its pin, its
            // permissions) is reported, never loaded.
            let mut registry = ctx.client(true)?.new_registry();
            registry.load_file(file);
            let lib = &registry.libraries()[0];
            let size = std::fs::metadata(&lib.path).map(|m| m.len()).ok();
            let sha256 = PluginHashes::open(None).sha256(&lib.path);
            match &lib.outcome {
                LibraryOutcome::Loaded {
                    api_version,
                    errors,
                    ..
                } => {
                    let types: Vec<Value> = registry
                        .types()
                        .map(|t| json!({"name": t.name, "description": t.description, "capabilities": t.capabilities.names()}))
                        .collect();
                    if ctx.json() {
                        print_json(&json!({
                            "path": lib.path, "size": size, "sha256": sha256, "status": "loaded", "api_version": api_version,
                            "host_api_version": qlam_host::api::API_VERSION, "provider_types": types, "errors": errors,
                        }));
                    } else {
                        print_file_lines(&lib.path, size, sha256.as_deref());
                        outln!("status:       loaded");
                        outln!(
                            "plugin api:   {api_version} (this qlam: {})",
                            qlam_host::api::API_VERSION
                        );
                        for t in registry.types() {
                            outln!(
                                "provider:     {} — {} [{}]",
                                t.name,
                                t.description,
                                t.capabilities.names().join(", ")
                            );
                        }
                        for e in errors {
                            outln!("failed:       {e}");
                        }
                    }
                    Ok(if errors.is_empty() {
                        Exit::Ok
                    } else {
                        Exit::Plugin
                    })
                }
                LibraryOutcome::Refused(e) => {
                    if ctx.json() {
                        print_json(&json!({
                            "path": lib.path, "size": size, "sha256": sha256, "status": library_status(e), "api_version": e.api_version,
                            "host_api_version": qlam_host::api::API_VERSION,
                            "error": e.summary, "error_kind": format!("{:?}", e.kind), "detail": e.detail,
                        }));
                    } else {
                        print_file_lines(&lib.path, size, sha256.as_deref());
                        outln!("status:       {}", library_status(e));
                        outln!(
                            "plugin api:   {} (this qlam: {})",
                            e.api_version.as_deref().unwrap_or("unknown"),
                            qlam_host::api::API_VERSION
                        );
                        outln!("reason:       {}", e.summary);
                        if !e.detail.is_empty() {
                            outln!("detail:\n{}", e.detail);
                        }
                    }
                    Ok(Exit::Plugin)
                }
            }
        }
    }
}

/// `loaded`, `refused` (by the trust policy: ownership, permissions, links, pins) or
/// `failed` (the file is not a usable plugin).
pub(crate) fn library_status(e: &qlam_host::api::ffi::LoadError) -> &'static str {
    if e.kind == qlam_host::api::ffi::LoadErrorKind::Untrusted {
        "refused"
    } else {
        "failed"
    }
}

/// One library for `plugins list --output json`; `pin` is its SHA-256 and whether it is pinned.
pub(crate) fn library_json(
    l: &qlam_host::plugins::LibraryReport,
    pin: (Option<String>, bool),
) -> Value {
    let (sha256, pinned) = pin;
    match &l.outcome {
        LibraryOutcome::Loaded {
            api_version,
            provider_types,
            errors,
        } => json!({
            "path": l.path, "status": "loaded", "api_version": api_version,
            "provider_types": provider_types, "errors": errors,
            "sha256": sha256, "pinned": pinned,
        }),
        LibraryOutcome::Refused(e) => json!({
            "path": l.path, "status": library_status(e), "api_version": e.api_version,
            "error": e.summary, "error_kind": format!("{:?}", e.kind),
            "sha256": sha256, "pinned": pinned,
        }),
    }
}

/// The lines of `plugins inspect` that say which file it is, loaded or not.
fn print_file_lines(path: &std::path::Path, size: Option<u64>, sha256: Option<&str>) {
    outln!("path:         {}", path.display());
    if let Some(s) = size {
        outln!("size:         {s} bytes");
    }
    if let Some(h) = sha256 {
        outln!("sha256:       {h}");
    }
}
