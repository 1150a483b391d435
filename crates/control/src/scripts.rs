//! `dialer.v1.ScriptService`: validate, store and list dialogue scripts.

use std::path::{Path, PathBuf};

use script::{LoadOptions, Script, ScriptErrors};
use tonic::{Request, Response, Status};

use crate::campaigns::valid_script_name;
use crate::convert::diagnostic_to_pb;
use crate::pb::script_service_server::ScriptService;
use crate::{Ctx, invalid, pb, unary};

/// Largest script text accepted.
const MAX_SCRIPT_BYTES: usize = 1024 * 1024;

pub(crate) struct Scripts(pub(crate) Ctx);

fn options(skip_prompt_files: bool) -> LoadOptions {
    if skip_prompt_files {
        LoadOptions::without_prompt_files()
    } else {
        LoadOptions::default()
    }
}

fn name_or_default(name: &str) -> Result<String, Status> {
    let name = name.trim();
    let name = name.strip_suffix(".toml").unwrap_or(name);
    if name.is_empty() {
        return Ok("script".to_string());
    }
    if !valid_script_name(name) {
        return Err(invalid("name", "[a-z0-9_-]+, at most 64 characters"));
    }
    Ok(name.to_string())
}

/// Validates `text` as `<dir>/<name>.toml` on a blocking thread.
async fn validate(
    dir: &Path,
    name: &str,
    text: String,
    skip_prompt_files: bool,
) -> Result<(PathBuf, Result<Script, ScriptErrors>), Status> {
    if text.len() > MAX_SCRIPT_BYTES {
        return Err(invalid(
            "text",
            format!("larger than {MAX_SCRIPT_BYTES} bytes"),
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    let p = path.clone();
    let result =
        tokio::task::spawn_blocking(move || Script::parse(&text, &p, &options(skip_prompt_files)))
            .await
            .map_err(|e| Status::internal(format!("script loader: {e}")))?;
    Ok((path, result))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[tonic::async_trait]
impl ScriptService for Scripts {
    async fn validate_script(
        &self,
        request: Request<pb::ValidateScriptRequest>,
    ) -> Result<Response<pb::ValidateScriptResponse>, Status> {
        let req = request.into_inner();
        unary(&self.0, async {
            let name = name_or_default(&req.name)?;
            let (_, result) = validate(
                &self.0.ctx.scripts_dir,
                &name,
                req.text,
                req.skip_prompt_files,
            )
            .await?;
            Ok(match result {
                Ok(s) => pb::ValidateScriptResponse {
                    valid: true,
                    errors: Vec::new(),
                    warnings: s.warnings().iter().map(diagnostic_to_pb).collect(),
                    script_name: s.name().to_string(),
                    version_id: s.version_id().to_string(),
                },
                Err(e) => pb::ValidateScriptResponse {
                    valid: false,
                    errors: e.errors.iter().map(diagnostic_to_pb).collect(),
                    warnings: e.warnings.iter().map(diagnostic_to_pb).collect(),
                    script_name: String::new(),
                    version_id: String::new(),
                },
            })
        })
        .await
    }

    async fn put_script(
        &self,
        request: Request<pb::PutScriptRequest>,
    ) -> Result<Response<pb::PutScriptResponse>, Status> {
        let req = request.into_inner();
        unary(&self.0, async {
            let name = req.name.trim();
            if name.is_empty() {
                return Err(invalid("name", "required: [a-z0-9_-]+"));
            }
            let name = name_or_default(name)?;
            let text = req.text;
            let (path, result) = validate(
                &self.0.ctx.scripts_dir,
                &name,
                text.clone(),
                req.skip_prompt_files,
            )
            .await?;
            let script = result.map_err(|e| invalid("text", e))?;
            let p = path.clone();
            tokio::task::spawn_blocking(move || write_atomically(&p, text.as_bytes()))
                .await
                .map_err(|e| Status::internal(format!("script writer: {e}")))?
                .map_err(|e| Status::internal(format!("cannot write the script: {e}")))?;
            tracing::info!(script = %name, version = script.version_id(), "script stored");
            Ok(pb::PutScriptResponse {
                path: path.display().to_string(),
                version_id: script.version_id().to_string(),
                warnings: script.warnings().iter().map(diagnostic_to_pb).collect(),
            })
        })
        .await
    }

    async fn list_scripts(
        &self,
        _request: Request<pb::ListScriptsRequest>,
    ) -> Result<Response<pb::ListScriptsResponse>, Status> {
        let dir = self.0.ctx.scripts_dir.clone();
        unary(&self.0, async move {
            tokio::task::spawn_blocking(move || list(&dir))
                .await
                .map_err(|e| Status::internal(format!("script lister: {e}")))?
        })
        .await
    }
}

fn list(dir: &Path) -> Result<pb::ListScriptsResponse, Status> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(pb::ListScriptsResponse::default());
        }
        Err(e) => {
            return Err(Status::internal(format!(
                "cannot read the scripts directory: {e}"
            )));
        }
    };
    let mut scripts = Vec::new();
    // Bounded: a scripts directory is small; stop at 10,000 entries.
    for entry in entries.take(10_000).flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") || !path.is_file() {
            continue;
        }
        let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = entry.metadata().ok();
        let modified_ms = meta
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let (version_id, error) = match Script::load(&path) {
            Ok(s) => (s.version_id().to_string(), String::new()),
            Err(e) => (
                String::new(),
                e.errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
        };
        scripts.push(pb::ScriptInfo {
            name,
            path: path.display().to_string(),
            version_id,
            size: meta.map_or(0, |m| m.len()),
            modified_ms,
            error,
        });
    }
    scripts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pb::ListScriptsResponse { scripts })
}
