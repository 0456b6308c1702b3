//! First start: an empty database gets an admin token, written to `<data-dir>/admin.token`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::auth::{self, TokenRequest};
use crate::store::Store;

/// The user the first admin token acts as.
pub const FIRST_ADMIN: &str = "admin@latch.local";

/// Creates the first admin token if the database has no token at all. Returns the file it was
/// written to, or `None` when tokens already existed.
pub async fn first_admin_token(
    store: &dyn Store,
    data_dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    let issued = auth::issue(
        TokenRequest {
            user: FIRST_ADMIN.to_string(),
            admin: true,
            description: "first admin token, created at first start".to_string(),
            ttl: None,
            created_by: "latch-server".to_string(),
        },
        chrono::Utc::now(),
    );
    let path = data_dir.join("admin.token");
    // Write the file before the token exists, then move it into place once the token is stored:
    // a crash in between leaves either no token or a token whose file is already there.
    let pending = data_dir.join("admin.token.pending");
    write_private(&pending, &issued.secret)?;
    let created = match store.create_first_admin_token(&issued.record).await {
        Ok(created) => created,
        Err(err) => {
            let _ = std::fs::remove_file(&pending);
            return Err(err).context("creating the first admin token");
        }
    };
    if !created {
        std::fs::remove_file(&pending)
            .with_context(|| format!("removing {}", pending.display()))?;
        return Ok(None);
    }
    std::fs::rename(&pending, &path)
        .with_context(|| format!("moving the admin token to {}", path.display()))?;
    Ok(Some(path))
}

/// Writes `secret` to a new file readable by its owner only.
fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // `mode` applies only when the file is created; a leftover file keeps its mode, so set it again.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    Ok(())
}
