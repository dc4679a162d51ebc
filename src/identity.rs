//! The node's identity: a YAML file whose `address` names this node as the
//! updater of every model it pushes. The address is kept exactly as it is
//! written, so `0x00ff` stays `0x00ff` instead of becoming the number 255.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// Where the legacy client looked for the identity file.
pub const DEFAULT_IDENTITY_PATH: &str = "/tmp/identity.yaml";

/// The node's address and any other fields of its identity file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub address: String,
    /// Every other top-level field, as text.
    pub labels: BTreeMap<String, String>,
}

/// Why the identity file could not be used. Its message names the file.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity file {path}: cannot read it: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("identity file {path}: not valid YAML: {reason}")]
    NotYaml { path: PathBuf, reason: String },

    #[error("identity file {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

impl Identity {
    /// Reads and checks the identity file at `path`.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let text = std::fs::read_to_string(path).map_err(|source| IdentityError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Yaml(reason) => IdentityError::NotYaml {
                path: path.to_owned(),
                reason,
            },
            ParseError::Invalid(problem) => IdentityError::Invalid {
                path: path.to_owned(),
                problem,
            },
        })
    }

    /// Parses the text of an identity file.
    fn parse(text: &str) -> Result<Self, ParseError> {
        // Plain scalars come back as the text that was written when the
        // target type is a string, which is what keeps addresses intact.
        let fields: BTreeMap<String, Value> = match serde_yaml_ng::from_str(text) {
            Ok(Value::Null) => BTreeMap::new(),
            Ok(value) => serde_yaml_ng::from_value(value).map_err(|_| {
                ParseError::Invalid(
                    "expected a mapping of fields, such as `address: node-1`".into(),
                )
            })?,
            Err(e) => return Err(ParseError::Yaml(e.to_string())),
        };
        let raw: BTreeMap<String, RawScalar> = serde_yaml_ng::from_str(text).unwrap_or_default();

        let address = match raw.get("address") {
            Some(RawScalar::Text(a)) if !a.trim().is_empty() => a.clone(),
            Some(RawScalar::Text(_)) => {
                return Err(ParseError::Invalid("`address` is empty".into()))
            }
            Some(RawScalar::Other) => {
                return Err(ParseError::Invalid(
                    "`address` must be a single value, not a list or mapping".into(),
                ))
            }
            None => {
                return Err(ParseError::Invalid(
                    "the required field `address` is missing".into(),
                ))
            }
        };

        let labels = fields
            .keys()
            .filter(|name| name.as_str() != "address")
            .map(|name| {
                let text = match raw.get(name) {
                    Some(RawScalar::Text(t)) => t.clone(),
                    _ => serde_yaml_ng::to_string(&fields[name])
                        .unwrap_or_default()
                        .trim_end()
                        .to_string(),
                };
                (name.clone(), text)
            })
            .collect();
        Ok(Identity { address, labels })
    }
}

enum ParseError {
    Yaml(String),
    Invalid(String),
}

/// A field read as the text it was written with, or a note that it is a
/// list or mapping.
enum RawScalar {
    Text(String),
    Other,
}

impl<'de> serde::Deserialize<'de> for RawScalar {
    /// Asks for a string, which makes the YAML reader hand over a plain
    /// scalar's text as written instead of resolving it to a number.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(RawScalarVisitor)
    }
}

struct RawScalarVisitor;

impl<'de> serde::de::Visitor<'de> for RawScalarVisitor {
    type Value = RawScalar;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawScalar, E> {
        Ok(RawScalar::Text(v.to_string()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<RawScalar, E> {
        Ok(RawScalar::Text(String::new()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawScalar, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(RawScalar::Other)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawScalar, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(RawScalar::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_required() {
        assert!(matches!(
            Identity::parse("name: a\n"),
            Err(ParseError::Invalid(_))
        ));
    }
}
