//! Namespace agreement. The first daemon to use a namespace records how it
//! stores it (layout, codec, chunk size, TTL) in Redis; every other daemon
//! compares its own settings with that record when it first uses the
//! namespace, and refuses a mismatch, or adopts the record when configured
//! to. Daemons that disagreed on the layout would otherwise read each
//! other's models as missing or damaged.
//!
//! The codec is recorded but never a mismatch: every manifest names the
//! codec its chunks were written with, so daemons that compress new
//! versions differently still read each other's. This also lets daemons
//! whose default became `auto` share namespaces first recorded with the
//! old default, `zstd:1`.
//!
//! A daemon checks each namespace once per process and remembers the
//! result, so the check costs one round trip per namespace, not per call.

use std::collections::HashMap;
use std::time::Duration;

use super::{keys, Store};
use crate::config::{Layout, NamespaceSettings};
use crate::error::{Error, Result};

/// Records the given fields unless a record exists; answers the record
/// that is in force (empty when this call made it).
const RECORD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HGETALL', KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return {}
";

/// Hashed once; Redis runs it by that hash.
static RECORD_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(RECORD));

impl Store {
    /// The settings a namespace is stored with, as agreed through Redis.
    pub async fn agreed(&self, namespace: &str) -> Result<NamespaceSettings> {
        if let Some(settings) = self.agreed.lock().expect("not poisoned").get(namespace) {
            return Ok(settings.clone());
        }
        let own = self.namespace(namespace);
        let script = &*RECORD_SCRIPT;
        let mut invocation = script.key(keys::namespace(namespace));
        for (field, value) in fields(&own) {
            invocation.arg(field).arg(value);
        }
        let recorded: Vec<String> = self.redis.script(&invocation).await?;

        let settings = if recorded.is_empty() {
            own
        } else {
            let recorded: HashMap<String, String> = recorded
                .chunks(2)
                .filter_map(|pair| Some((pair.first()?.clone(), pair.get(1)?.clone())))
                .collect();
            reconcile(namespace, own, &recorded, self.settings.adopt)?
        };
        let mut agreed = self.agreed.lock().expect("not poisoned");
        agreed.insert(namespace.to_string(), settings.clone());
        Ok(settings)
    }

    /// The record of a namespace in Redis, if any, as field and value.
    pub async fn recorded(&self, namespace: &str) -> Result<Vec<(String, String)>> {
        let cmd = redis::cmd("HGETALL")
            .arg(keys::namespace(namespace))
            .clone();
        let mut fields: Vec<(String, String)> = self.redis.query(&cmd).await?;
        fields.sort();
        Ok(fields)
    }
}

/// The recorded parameters of a namespace, as text.
fn fields(settings: &NamespaceSettings) -> [(&'static str, String); 4] {
    let layout = match settings.layout {
        Layout::Chunked => "chunked",
        Layout::Legacy => "legacy",
    };
    [
        ("layout", layout.to_string()),
        ("codec", settings.codec.to_string()),
        ("chunk_size", settings.chunk_size.to_string()),
        ("ttl", settings.ttl.as_secs().to_string()),
    ]
}

/// Compares this daemon's settings with the record: its own (when they
/// match, codec aside), the record's (when told to adopt), or a
/// FAILED_PRECONDITION that names the parameter and both values.
fn reconcile(
    namespace: &str,
    own: NamespaceSettings,
    recorded: &HashMap<String, String>,
    adopt: bool,
) -> Result<NamespaceSettings> {
    let differs =
        |(field, value): &(&str, String)| recorded.get(*field).is_some_and(|r| r != value);
    let own_fields = fields(&own);
    if adopt {
        if own_fields.iter().any(differs) {
            return adopted(namespace, own, recorded);
        }
        return Ok(own);
    }
    let mismatch = own_fields
        .into_iter()
        .find(|field| field.0 != "codec" && differs(field));
    let Some((field, value)) = mismatch else {
        return Ok(own);
    };
    Err(Error::Mismatch(format!(
        "namespace {namespace:?} is recorded in Redis with {field} {}, but this daemon is configured with {value}: configure the same {field}, or set adopt_namespaces to use what is recorded",
        recorded[field]
    )))
}

/// This daemon's settings with the recorded parameters in their place.
fn adopted(
    namespace: &str,
    own: NamespaceSettings,
    recorded: &HashMap<String, String>,
) -> Result<NamespaceSettings> {
    let unreadable = |field: &str| {
        Error::Mismatch(format!(
            "namespace {namespace:?} has a record in Redis whose {field} this daemon cannot use: {:?}",
            recorded.get(field)
        ))
    };
    let get = |field: &str| recorded.get(field).ok_or_else(|| unreadable(field));
    let layout = match get("layout")?.as_str() {
        "chunked" => Layout::Chunked,
        "legacy" => Layout::Legacy,
        _ => return Err(unreadable("layout")),
    };
    let chunk_size: u64 = get("chunk_size")?
        .parse()
        .map_err(|_| unreadable("chunk_size"))?;
    if !(4096..=super::MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(unreadable("chunk_size"));
    }
    let ttl: u64 = get("ttl")?.parse().map_err(|_| unreadable("ttl"))?;
    Ok(NamespaceSettings {
        layout,
        codec: get("codec")?.parse().map_err(|_| unreadable("codec"))?,
        chunk_size,
        ttl: Duration::from_secs(ttl.max(1)),
        trust_pickle: own.trust_pickle && layout == Layout::Legacy,
    })
}
