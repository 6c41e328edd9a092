//! Static files (e.g. the demo web app) from [`ServerConfig::static_dir`](crate::ServerConfig).
//!
//! Rule: a `GET`/`HEAD` request that the HTTP handler answers with 404 is looked up here;
//! `/` and directories map to their `index.html`. Paths with `.`/`..` segments, backslashes
//! or NUL bytes are refused, so nothing outside the directory is reachable (symbolic links
//! inside it are followed: the operator owns that directory).

use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Files larger than this are not served (the whole file is read into memory).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Loads the file for URL path `url_path`, with its content type; `None` if there is none.
pub(crate) async fn load(dir: &Path, url_path: &str) -> Option<(&'static str, Bytes)> {
    let mut file = resolve(dir, url_path)?;
    let mut meta = tokio::fs::metadata(&file).await.ok()?;
    if meta.is_dir() {
        file.push("index.html");
        meta = tokio::fs::metadata(&file).await.ok()?;
    }
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let data = tokio::fs::read(&file).await.ok()?;
    Some((content_type(&file), Bytes::from(data)))
}

/// Maps a URL path to a path under `dir`, refusing anything that could climb out of it.
fn resolve(dir: &Path, url_path: &str) -> Option<PathBuf> {
    let mut out = dir.to_path_buf();
    for segment in crate::request::path_segments(url_path) {
        let unsafe_segment = segment == "."
            || segment == ".."
            || segment.contains(['\\', '\0', '/'])
            || Path::new(&segment).is_absolute();
        if unsafe_segment {
            return None;
        }
        out.push(segment);
    }
    Some(out)
}

fn content_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_escapes() {
        let dir = Path::new("/srv/app");
        assert_eq!(resolve(dir, "/"), Some(PathBuf::from("/srv/app")));
        assert_eq!(
            resolve(dir, "/js/app.js"),
            Some(PathBuf::from("/srv/app/js/app.js"))
        );
        assert_eq!(resolve(dir, "/../etc/passwd"), None);
        assert_eq!(resolve(dir, "/js/%2e%2e/%2e%2e/etc/passwd"), None);
        assert_eq!(resolve(dir, "/a%2F..%2F..%2Fetc"), None);
        assert_eq!(resolve(dir, "/a%5C..%5Cb"), None);
        assert_eq!(resolve(dir, "/a%00b"), None);
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("A.JS")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("blob")), "application/octet-stream");
    }
}
