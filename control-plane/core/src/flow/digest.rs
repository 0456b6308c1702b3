//! The digest of a flow's content, which tells whether applying a flow changes it.

use sha2::{Digest as _, Sha256};

use super::model::FlowSpec;

impl FlowSpec {
    /// The flow's canonical JSON: the serde form, with fields in declaration order and tags in key
    /// order, so that equal content always gives the same bytes. This is also the stored form.
    pub fn canonical_json(&self) -> String {
        // Serializing cannot fail: every map key is a string and no serializer here returns an error.
        serde_json::to_string(self).expect("a FlowSpec always serializes to JSON")
    }

    /// SHA-256 of [`FlowSpec::canonical_json`], in lowercase hex. Equal content has an equal digest;
    /// any change of content (even of the description) changes it.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }
}
