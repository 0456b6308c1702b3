//! The static inventory: resources written by hand in YAML, for what no connector syncs yet.
//!
//! ```yaml
//! resources:
//!   - { id: "111111111111", integration: aws-prod, type: aws.account, name: prod, parent: ou-prod, tags: { env: prod }, owners: [bob@example.com] }
//! ```
//! Parents must be resources of the same document; ancestors are worked out from them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// One resource as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    pub id: String,
    pub integration: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub owners: Vec<String>,
}

/// A resource with its ancestors resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryResource {
    pub entry: ResourceEntry,
    /// Ancestor ids, parent first.
    pub ancestors: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    resources: Vec<ResourceEntry>,
}

/// Parses and checks an inventory document; every problem is reported, each naming the field
/// (`resources[i].field`) and the value.
pub fn parse_inventory_yaml(text: &str) -> Result<Vec<InventoryResource>, Vec<String>> {
    let document: Document = serde_yaml_ng::from_str(text).map_err(|err| vec![err.to_string()])?;
    let entries = document.resources;
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        for (field, value) in [
            ("id", &entry.id),
            ("integration", &entry.integration),
            ("type", &entry.resource_type),
        ] {
            if value.trim().is_empty() {
                problems.push(format!("resources[{i}].{field}: must not be empty"));
            }
        }
        if !entry.id.is_empty() && !seen.insert(entry.id.as_str()) {
            problems.push(format!(
                "resources[{i}].id: {:?} appears more than once",
                entry.id
            ));
        }
        for (k, owner) in entry.owners.iter().enumerate() {
            if !owner.contains('@') {
                problems.push(format!(
                    "resources[{i}].owners[{k}]: {owner:?} is not an email address"
                ));
            }
        }
    }
    let parents: BTreeMap<&str, Option<&str>> = entries
        .iter()
        .map(|e| (e.id.as_str(), e.parent.as_deref()))
        .collect();
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let mut ancestors: Vec<String> = Vec::new();
        let mut next = entry.parent.as_deref();
        while let Some(parent) = next {
            if parent == entry.id || ancestors.iter().any(|a| a == parent) {
                problems.push(format!(
                    "resources[{i}].parent: {:?} leads back to {:?} (a cycle)",
                    entry.parent.as_deref().unwrap_or_default(),
                    entry.id
                ));
                break;
            }
            let Some(grand) = parents.get(parent) else {
                problems.push(format!(
                    "resources[{i}].parent: no resource with id {parent:?} in this document"
                ));
                break;
            };
            ancestors.push(parent.to_owned());
            next = *grand;
        }
        out.push(InventoryResource {
            entry: entry.clone(),
            ancestors,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_follow_parents() {
        let parsed = parse_inventory_yaml(
            "resources:\n  - { id: root, integration: aws, type: aws.organization }\n  - { id: ou, integration: aws, type: aws.ou, parent: root }\n  - { id: acct, integration: aws, type: aws.account, parent: ou, tags: { env: prod } }\n",
        )
        .expect("valid");
        assert_eq!(
            parsed[2].ancestors,
            vec!["ou".to_owned(), "root".to_owned()]
        );
        assert_eq!(
            parsed[2].entry.tags.get("env").map(String::as_str),
            Some("prod")
        );
        assert!(parsed[0].ancestors.is_empty());
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        let problems = parse_inventory_yaml(
            "resources:\n  - { id: a, integration: '', type: t, parent: nowhere }\n  - { id: a, integration: x, type: t, owners: [bob] }\n  - { id: b, integration: x, type: t, parent: c }\n  - { id: c, integration: x, type: t, parent: b }\n",
        )
        .expect_err("invalid");
        let text = problems.join("\n");
        assert!(
            text.contains("resources[0].integration: must not be empty"),
            "{text}"
        );
        assert!(
            text.contains("resources[0].parent: no resource with id \"nowhere\""),
            "{text}"
        );
        assert!(
            text.contains("resources[1].id: \"a\" appears more than once"),
            "{text}"
        );
        assert!(
            text.contains("resources[1].owners[0]: \"bob\" is not an email address"),
            "{text}"
        );
        assert!(text.contains("resources[2].parent"), "{text}");
        assert!(text.contains("a cycle"), "{text}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let problems = parse_inventory_yaml(
            "resources:\n  - { id: a, integration: x, type: t, colour: red }\n",
        )
        .expect_err("unknown field");
        assert!(problems[0].contains("colour"), "{problems:?}");
    }
}
