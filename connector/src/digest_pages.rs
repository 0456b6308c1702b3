//! Digest pages (protocol 2): a sync sends each page of resources as ids and digests first and
//! keeps the page until the control plane answers with `ResourcesWanted`; then it sends in full
//! only the resources the control plane asked for. In a resync where little changed, nearly
//! every resource costs an id and a digest on the wire instead of all its fields.
//!
//! A sync holds at most [`WINDOW`] pages waiting for their answer, so memory stays bounded, and
//! the control plane probes one batch while the provider produces the next. A held resource is
//! kept encoded, one buffer instead of a string per field and tag: it is small, and freeing the
//! page costs one free per resource.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latch_proto::v1 as pb;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::provider::ProviderError;

/// Most digest pages a sync keeps waiting for their answer.
pub(crate) const WINDOW: usize = 16;

/// While answers want most of what they are asked about (a first sync, or a big change), pages
/// go in full, with their digests: asking first would only add a round trip and a second probe.
/// Every this many pages one still goes as digests, to notice when that stops.
pub(crate) const IN_FULL_RUN: u64 = 8;

/// How long a sync waits for an answer before it gives up (and fails, to be retried): the
/// control plane answers every digest page, so only a broken peer takes this long.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// The digest sent for a resource: SHA-256 of its protobuf encoding without the digest. The
/// encoding is the same for the same resource: tags are a `BTreeMap`, so they are encoded in key
/// order. (Should a later encoder differ, every resource is fetched in full once.)
pub(crate) fn resource_digest(encoded: &[u8]) -> String {
    hex::encode(Sha256::digest(encoded))
}

/// What the digest is taken of: the resource's encoding, its own digest left out.
fn encode_without_digest(resource: &mut pb::SyncedResource) -> Vec<u8> {
    resource.digest.clear();
    resource.encode_to_vec()
}

/// Where the stream delivers `ResourcesWanted`: to the sync it names, while that sync runs.
#[derive(Clone, Default)]
pub(crate) struct AnswerRoutes {
    routes: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<pb::ResourcesWanted>>>>,
}

impl AnswerRoutes {
    /// Routes the answers for `sync_id` to the returned receiver until it is dropped.
    pub(crate) fn open(&self, sync_id: &str) -> Answers {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.lock().insert(sync_id.to_string(), sender);
        Answers {
            routes: self.clone(),
            sync_id: sync_id.to_string(),
            receiver,
        }
    }

    /// Hands an answer to its sync; an answer for a sync that ended is dropped.
    pub(crate) fn deliver(&self, answer: pb::ResourcesWanted) {
        let route = self.lock().get(&answer.sync_id).cloned();
        match route {
            Some(route) => {
                // Unbounded but bounded in fact: the control plane answers only pages sent,
                // and a sync has at most `WINDOW` of them waiting.
                let _ = route.send(answer);
            }
            None => {
                tracing::debug!(sync_id = %answer.sync_id, "an answer for a sync that ended; dropped")
            }
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<pb::ResourcesWanted>>>
    {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The answers of one sync; dropping it closes the route.
pub(crate) struct Answers {
    routes: AnswerRoutes,
    sync_id: String,
    receiver: mpsc::UnboundedReceiver<pb::ResourcesWanted>,
}

impl Drop for Answers {
    fn drop(&mut self) {
        self.routes.lock().remove(&self.sync_id);
    }
}

/// The digest pages of one sync that wait for their answer.
pub(crate) struct DigestPages {
    answers: Answers,
    /// By page number: each resource's id and encoding (without its digest).
    held: BTreeMap<u64, Vec<(String, Vec<u8>)>>,
    last_page: u64,
    /// Whether the last answer wanted more than half of the resources it answered for.
    mostly_wanted: bool,
    /// Pages sent in full since the last digest page.
    in_full_run: u64,
}

impl DigestPages {
    pub(crate) fn new(answers: Answers) -> DigestPages {
        DigestPages {
            answers,
            held: BTreeMap::new(),
            last_page: 0,
            mostly_wanted: false,
            in_full_run: 0,
        }
    }

    /// Keeps `resources` and returns the digest page's number and entries to send.
    pub(crate) fn hold(
        &mut self,
        resources: Vec<pb::SyncedResource>,
    ) -> (u64, Vec<pb::ResourceDigest>) {
        let mut held = Vec::with_capacity(resources.len());
        let digests = resources
            .into_iter()
            .map(|mut resource| {
                let encoded = encode_without_digest(&mut resource);
                let digest = resource_digest(&encoded);
                held.push((resource.id.clone(), encoded));
                pb::ResourceDigest {
                    id: resource.id,
                    digest,
                }
            })
            .collect();
        self.last_page += 1;
        self.held.insert(self.last_page, held);
        (self.last_page, digests)
    }

    /// Whether the next page goes in full (see [`IN_FULL_RUN`]) rather than as digests.
    pub(crate) fn next_in_full(&mut self) -> bool {
        if self.mostly_wanted && self.in_full_run < IN_FULL_RUN {
            self.in_full_run += 1;
            true
        } else {
            self.in_full_run = 0;
            false
        }
    }

    /// Gives resources sent in full their digests, so that the next sync finds them unchanged.
    pub(crate) fn give_digests(resources: &mut [pb::SyncedResource]) {
        for resource in resources {
            resource.digest = resource_digest(&encode_without_digest(resource));
        }
    }

    /// Whether another page may be held before an answer comes.
    pub(crate) fn has_room(&self) -> bool {
        self.held.len() < WINDOW
    }

    /// Whether pages wait for their answer.
    pub(crate) fn waiting(&self) -> bool {
        !self.held.is_empty()
    }

    /// Waits for the next answer and returns the resources it asks for, in page order; the
    /// pages it answers are let go. A closed stream or a silent control plane is a retryable
    /// error.
    pub(crate) async fn next_answer(&mut self) -> Result<Vec<pb::SyncedResource>, ProviderError> {
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.answers.receiver.recv())
            .await
            .map_err(|_| {
                ProviderError::transient(format!(
                    "the control plane did not answer digest pages within {}",
                    humantime::format_duration(ANSWER_TIMEOUT)
                ))
            })?
            .ok_or_else(|| ProviderError::transient("the stream to the control plane closed"))?;
        self.take(answer)
    }

    /// An answer that has already come, without waiting: as [`Self::next_answer`].
    pub(crate) fn ready_answer(
        &mut self,
    ) -> Result<Option<Vec<pb::SyncedResource>>, ProviderError> {
        match self.answers.receiver.try_recv() {
            Ok(answer) => self.take(answer).map(Some),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(ProviderError::transient(
                "the stream to the control plane closed",
            )),
        }
    }

    /// Lets the answered pages go and returns what the answer asks for.
    fn take(
        &mut self,
        answer: pb::ResourcesWanted,
    ) -> Result<Vec<pb::SyncedResource>, ProviderError> {
        let wanted: HashSet<&str> = answer.ids.iter().map(String::as_str).collect();
        let mut send = Vec::new();
        let mut answered = 0;
        for number in &answer.digest_pages {
            let Some(page) = self.held.remove(number) else {
                tracing::debug!(
                    page = number,
                    "an answer for a digest page not held; ignored"
                );
                continue;
            };
            answered += page.len();
            for (id, encoded) in page {
                if !wanted.contains(id.as_str()) {
                    continue;
                }
                // Encoded by this process a moment ago: it decodes.
                let mut resource = pb::SyncedResource::decode(encoded.as_slice())
                    .map_err(|err| ProviderError::invalid(format!("resource {id:?}: {err}")))?;
                resource.digest = resource_digest(&encoded);
                send.push(resource);
            }
        }
        if answered > 0 {
            self.mostly_wanted = 2 * send.len() > answered;
        }
        Ok(send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thing(id: &str, env: &str) -> pb::SyncedResource {
        pb::SyncedResource {
            id: id.into(),
            r#type: "fake.thing".into(),
            name: id.into(),
            tags: BTreeMap::from([("env".into(), env.into())]),
            ..Default::default()
        }
    }

    #[test]
    fn the_digest_follows_every_field() {
        let digest_of = |resource: &pb::SyncedResource| resource_digest(&resource.encode_to_vec());
        let base = thing("a", "prod");
        let digest = digest_of(&base);
        assert_eq!(digest.len(), 64);
        assert_eq!(digest_of(&thing("a", "prod")), digest, "the same resource");
        let mut tags_in_another_order = base.clone();
        tags_in_another_order.tags = BTreeMap::from([("z".into(), "1".into())]);
        tags_in_another_order
            .tags
            .insert("env".into(), "prod".into());
        let mut tags_in_order = base.clone();
        tags_in_order.tags.insert("z".into(), "1".into());
        assert_eq!(digest_of(&tags_in_another_order), digest_of(&tags_in_order));
        let variants = [
            thing("b", "prod"),
            thing("a", "dev"),
            pb::SyncedResource {
                parent: "root".into(),
                ..base.clone()
            },
            pb::SyncedResource {
                owners: vec!["a@example.com".into()],
                ..base.clone()
            },
            pb::SyncedResource {
                r#type: "fake.thin".into(),
                ..base.clone()
            },
            pb::SyncedResource {
                tags: BTreeMap::from([("envp".into(), "rod".into())]),
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(digest_of(&variant), digest, "{variant:?}");
        }
    }

    #[tokio::test]
    async fn an_answer_releases_its_pages_and_yields_only_what_it_asks_for() {
        let routes = AnswerRoutes::default();
        let mut pages = DigestPages::new(routes.open("s1"));
        let (first, digests) = pages.hold(vec![thing("a", "prod"), thing("b", "prod")]);
        assert_eq!(first, 1);
        assert_eq!(digests[1].id, "b");
        assert_eq!(
            digests[1].digest,
            resource_digest(&thing("b", "prod").encode_to_vec())
        );
        let (second, _) = pages.hold(vec![thing("c", "dev")]);
        assert_eq!(second, 2);
        routes.deliver(pb::ResourcesWanted {
            sync_id: "s1".into(),
            digest_pages: vec![1],
            ids: vec!["b".into(), "c".into()],
        });
        let send = pages.next_answer().await.expect("answer");
        // `c` was asked for, but its page was not answered yet.
        assert_eq!(
            send.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(send[0].digest, digests[1].digest, "sent with its digest");
        assert_eq!(
            pb::SyncedResource {
                digest: String::new(),
                ..send[0].clone()
            },
            thing("b", "prod"),
            "and as it was given"
        );
        assert!(pages.waiting());
        routes.deliver(pb::ResourcesWanted {
            sync_id: "s1".into(),
            digest_pages: vec![2],
            ids: Vec::new(),
        });
        assert!(pages.next_answer().await.expect("answer").is_empty());
        assert!(!pages.waiting());
    }

    #[tokio::test]
    async fn pages_go_in_full_while_answers_want_most_of_them() {
        let routes = AnswerRoutes::default();
        let mut pages = DigestPages::new(routes.open("s1"));
        assert!(!pages.next_in_full(), "digests first");
        let (number, _) = pages.hold(vec![
            thing("a", "prod"),
            thing("b", "prod"),
            thing("c", "prod"),
        ]);
        assert!(
            pages.ready_answer().expect("open").is_none(),
            "nothing came yet"
        );
        let answer = |ids: &[&str]| pb::ResourcesWanted {
            sync_id: "s1".into(),
            digest_pages: vec![number],
            ids: ids.iter().map(|id| id.to_string()).collect(),
        };
        routes.deliver(answer(&["a", "b"]));
        assert_eq!(pages.ready_answer().expect("open").expect("came").len(), 2);
        // Two of three were wanted: the next pages go in full, with a digest page now and then.
        let modes: Vec<bool> = (0..IN_FULL_RUN + 2).map(|_| pages.next_in_full()).collect();
        let mut expected = vec![true; IN_FULL_RUN as usize];
        expected.extend([false, true]);
        assert_eq!(modes, expected);
        let (number, _) = pages.hold(vec![thing("a", "prod"), thing("b", "prod")]);
        routes.deliver(pb::ResourcesWanted {
            digest_pages: vec![number],
            ..answer(&["a"])
        });
        pages.next_answer().await.expect("answer");
        // Half is not most: digests again.
        assert!(!pages.next_in_full());

        let mut full = vec![thing("a", "prod")];
        DigestPages::give_digests(&mut full);
        assert_eq!(
            full[0].digest,
            resource_digest(&thing("a", "prod").encode_to_vec()),
            "the digest a digest page would carry"
        );
    }

    #[tokio::test]
    async fn answers_for_an_ended_sync_are_dropped_and_a_closed_route_is_retryable() {
        let routes = AnswerRoutes::default();
        let pages = DigestPages::new(routes.open("s1"));
        drop(pages);
        // No route any more: nothing to deliver to, and nothing breaks.
        routes.deliver(pb::ResourcesWanted {
            sync_id: "s1".into(),
            ..Default::default()
        });
        assert!(routes.lock().is_empty());

        let mut pages = DigestPages::new(routes.open("s2"));
        pages.hold(vec![thing("a", "prod")]);
        // The stream ends: its routes go with it.
        routes.lock().clear();
        let err = pages.next_answer().await.expect_err("closed");
        assert!(err.is_retryable());
    }
}
