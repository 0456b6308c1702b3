//! The directory: users (email, name, manager, groups, time zone), groups (which may nest other
//! groups) and on-call schedules with their shifts.
//!
//! A static source, written in YAML and applied as a whole (`latch directory apply -f people.yaml`):
//! [`parse_directory_yaml`] reads it and reports every problem at once; [`DirectorySpec`] is the
//! stored form, with a [`DirectorySpec::digest`] of its content; [`diff`] says what applying it
//! changes; [`Directory`] answers lookups (groups with nesting, members, managers, who is on call).
//!
//! Email addresses compare case-insensitively everywhere, and are stored lowercased. Group and
//! schedule names compare exactly. A group referred to but not declared exists, empty but for what
//! the references put in it.
//!
//! ```
//! use latch_core::directory::{Directory, parse_directory_yaml};
//!
//! let spec = parse_directory_yaml(
//!     "users: [{ email: Alice@example.com, groups: [sre] }]\n\
//!      groups: [{ name: engineering, groups: [sre] }]\n",
//! )
//! .expect("valid directory");
//! let directory = Directory::new(&spec);
//! assert!(directory.groups_of("alice@example.com").contains("engineering"));
//!
//! let problems = parse_directory_yaml("users: [{ email: bob, team: x }]\n").expect_err("invalid");
//! assert_eq!(
//!     problems,
//!     [r#"users[0].team: unknown field "team""#, r#"users[0].email: "bob" is not an email address"#],
//! );
//! ```

mod diff;
mod parse;
mod resolved;
mod spec;
mod text;

#[cfg(test)]
mod tests;

pub use diff::{DirectoryDiff, diff};
pub use parse::parse_directory_yaml;
pub use resolved::Directory;
pub use spec::{DirectorySpec, GroupEntry, ScheduleEntry, Shift, UserEntry};
