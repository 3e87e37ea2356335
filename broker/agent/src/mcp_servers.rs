//! `[mcp.servers]`: which profile's token an MCP client gets for a server,
//! by the server's URL, for `authplug mcp-headers` without `--profile`.
//!
//! ```toml
//! [mcp.servers]
//! "https://mcp.example.com/" = "work"      # every server under it
//! "https://tools.example.com/mcp" = "ci"   # that server (and paths under it)
//! ```
//!
//! A key is a URL prefix that matches only whole path segments (`/mcp`
//! matches `/mcp` and `/mcp/x`, not `/mcpx`); the longest match wins.
//! Scheme and host are compared as URLs compare them (case-insensitively).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[mcp]`: for `authplug mcp-headers`.
pub struct McpConfig {
    #[serde(default)]
    /// Server URL prefix to profile name.
    pub servers: BTreeMap<String, String>,
}

impl McpConfig {
    /// The profile for the server at `server_url`, if a prefix matches.
    pub fn profile_for(&self, server_url: &str) -> Option<&str> {
        let server = url::Url::parse(server_url).ok()?;
        self.servers
            .iter()
            .filter_map(|(prefix, profile)| {
                let prefix_url = url::Url::parse(prefix).ok()?;
                covers(&prefix_url, &server).then_some((prefix_url.path().len(), profile))
            })
            .max_by_key(|(length, _)| *length)
            .map(|(_, profile)| profile.as_str())
    }
}

impl McpConfig {
    /// A key that is not an http(s) URL (and so matches nothing), if any.
    pub fn unusable_key(&self) -> Option<&str> {
        self.servers
            .keys()
            .find(|key| {
                url::Url::parse(key).map_or(true, |url| !matches!(url.scheme(), "http" | "https"))
            })
            .map(String::as_str)
    }
}

/// Whether `prefix` names `server` or a server under it.
fn covers(prefix: &url::Url, server: &url::Url) -> bool {
    if prefix.scheme() != server.scheme()
        || prefix.host() != server.host()
        || prefix.port_or_known_default() != server.port_or_known_default()
    {
        return false;
    }
    let base = prefix.path().trim_end_matches('/');
    let path = server.path();
    path == base || path.starts_with(&format!("{base}/")) || (base.is_empty() && path == "/")
}

#[cfg(test)]
mod tests {
    use super::McpConfig;

    fn config(entries: &[(&str, &str)]) -> McpConfig {
        McpConfig {
            servers: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_longest_prefix_of_whole_segments_wins() {
        let config = config(&[
            ("https://mcp.example.com/", "work"),
            ("https://mcp.example.com/tools", "tools"),
            ("http://127.0.0.1:8080/mcp", "local"),
        ]);
        let cases = [
            ("https://mcp.example.com/mcp", Some("work")),
            ("https://MCP.example.com:443/tools/mcp", Some("tools")),
            ("https://mcp.example.com/toolsmith", Some("work")),
            ("http://127.0.0.1:8080/mcp", Some("local")),
            ("http://127.0.0.1:8080/mcpx", None),
            ("http://127.0.0.1:8081/mcp", None),
            ("http://mcp.example.com/mcp", None),
            ("not a url", None),
        ];
        for (url, expected) in cases {
            assert_eq!(config.profile_for(url), expected, "{url}");
        }
    }
}
