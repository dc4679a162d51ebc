//! Where each piece of a model lives in Redis.
//!
//! ```text
//! modelsync:{NS:KEY}:manifest           hash: version, manifest (the commit point)
//! modelsync:NS:KEY:chunk:BLOB:INDEX     string: one stored chunk of one push
//! modelsync:namespace:NS                hash: how the namespace is stored
//! modelsync:commits:NS                  pub/sub channel: "VERSION\nKEY\nUPDATER"
//! ```
//!
//! NS and KEY are escaped so that `%`, `{`, `}`, `:`, `*`, `?`, `[`, `]` and
//! `\` never appear in them raw: `:` then separates fields unambiguously,
//! only the manifest carries a `{...}` hash tag (so on Redis Cluster it sits
//! in one slot while chunks spread over every shard), and a namespace is a
//! safe SCAN pattern. BLOB is random for each push, so chunks of different
//! pushes never share a key and a chunk, once written, never changes.

const PREFIX: &str = "modelsync";

/// The key of a model's manifest.
pub fn manifest(namespace: &str, key: &str) -> String {
    format!(
        "{PREFIX}:{{{}:{}}}:manifest",
        escape(namespace),
        escape(key)
    )
}

/// The key of one chunk of one push.
pub fn chunk(namespace: &str, key: &str, blob: &str, index: u64) -> String {
    format!(
        "{PREFIX}:{}:{}:chunk:{blob}:{index}",
        escape(namespace),
        escape(key)
    )
}

/// The key that records how a namespace is stored.
pub fn namespace(namespace: &str) -> String {
    format!("{PREFIX}:namespace:{}", escape(namespace))
}

/// The channel on which every commit in a namespace is announced.
pub fn commits_channel(namespace: &str) -> String {
    format!("{PREFIX}:commits:{}", escape(namespace))
}

/// A pattern that matches the commit channel of every namespace.
pub const COMMITS_PATTERN: &str = "modelsync:commits:*";

/// Recovers the namespace from a commit channel's name.
pub fn namespace_of_channel(channel: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(channel).ok()?;
    unescape(text.strip_prefix(&format!("{PREFIX}:commits:"))?)
}

/// A SCAN pattern that matches the manifest of every model in a namespace.
pub fn manifest_pattern(namespace: &str) -> String {
    format!("{PREFIX}:{{{}:*}}:manifest", escape(namespace))
}

/// Recovers the model key from a manifest key of `namespace`.
pub fn key_of_manifest(namespace: &str, manifest_key: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(manifest_key).ok()?;
    let head = format!("{PREFIX}:{{{}:", escape(namespace));
    let escaped = text.strip_prefix(&head)?.strip_suffix("}:manifest")?;
    unescape(escaped)
}

/// Percent-escapes the characters that carry meaning in keys or patterns.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' | '{' | '}' | ':' | '*' | '?' | '[' | ']' | '\\' => {
                out.push_str(&format!("%{:02X}", c as u32));
            }
            _ => out.push(c),
        }
    }
    out
}

fn unescape(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = escaped.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped_and_recovered() {
        let key = "a:{b}*%c";
        let name = manifest("ns:1", key);
        assert_eq!(name, "modelsync:{ns%3A1:a%3A%7Bb%7D%2A%25c}:manifest");
        assert_eq!(
            key_of_manifest("ns:1", name.as_bytes()).as_deref(),
            Some(key)
        );
    }

    #[test]
    fn chunk_keys_carry_no_hash_tag() {
        let name = chunk("{ns}", "{k}", "abc", 3);
        assert!(!name.contains('{') && !name.contains('}'), "{name}");
    }

    #[test]
    fn the_namespace_is_recovered_from_its_commit_channel() {
        let channel = commits_channel("a:b*");
        assert_eq!(
            namespace_of_channel(channel.as_bytes()).as_deref(),
            Some("a:b*")
        );
        assert_eq!(namespace_of_channel(b"modelsync:other:x"), None);
    }

    #[test]
    fn a_manifest_of_another_namespace_is_not_recovered() {
        let name = manifest("ns2", "k");
        assert_eq!(key_of_manifest("ns", name.as_bytes()), None);
    }
}
