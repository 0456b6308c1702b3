//! An SDK interceptor for the tests against moto: it notes every request the provider sends
//! (service, operation, when) and can answer some of them with the service's throttling error
//! in place of moto's answer, which moto never sends by itself.
//!
//! The service is read from the request's SigV4 credential scope (`.../us-east-1/iam/...`), the
//! operation from `X-Amz-Target` (JSON protocols) or the `Action` of the form body (IAM, STS).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sts::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_sts::config::{ConfigBag, Intercept, RuntimeComponents, SharedInterceptor};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One request as it left the SDK.
#[derive(Debug, Clone)]
pub(in crate::providers::aws) struct Call {
    pub service: String,
    pub operation: String,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    /// Service → throttle its first request and every n-th after it.
    throttle_every: BTreeMap<String, usize>,
    /// Service → requests sent so far (throttled or not).
    answered: BTreeMap<String, usize>,
    throttled: Vec<Call>,
}

/// The log; clone it to keep a handle after giving [`CallLog::interceptor`] to a provider.
#[derive(Debug, Clone, Default)]
pub(in crate::providers::aws) struct CallLog {
    state: Arc<Mutex<State>>,
}

impl CallLog {
    /// An interceptor that writes to this log.
    pub(in crate::providers::aws) fn interceptor(&self) -> SharedInterceptor {
        SharedInterceptor::new(Recorder(self.clone()))
    }

    /// Answers the first request to `service` (a SigV4 signing name: `organizations`,
    /// `tagging`, `iam`, ...) and every `every`-th after it with that service's throttling
    /// error: with 2, the first attempt of every call that is retried at once.
    pub(in crate::providers::aws) fn throttle_every(&self, service: &str, every: usize) {
        self.lock()
            .throttle_every
            .insert(service.to_string(), every.max(1));
    }

    /// The requests answered with throttling.
    pub(in crate::providers::aws) fn throttled(&self) -> Vec<Call> {
        self.lock().throttled.clone()
    }

    /// Requests per service.
    pub(in crate::providers::aws) fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in &self.lock().calls {
            *counts.entry(call.service.clone()).or_default() += 1;
        }
        counts
    }

    /// Requests per operation of `service`.
    pub(in crate::providers::aws) fn operations(&self, service: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in self.lock().calls.iter().filter(|c| c.service == service) {
            *counts.entry(call.operation.clone()).or_default() += 1;
        }
        counts
    }

    /// When each request to `service` left, in order.
    pub(in crate::providers::aws) fn times(&self, service: &str) -> Vec<Instant> {
        let mut times: Vec<Instant> = self
            .lock()
            .calls
            .iter()
            .filter(|c| c.service == service)
            .map(|c| c.at)
            .collect();
        times.sort();
        times
    }

    pub(in crate::providers::aws) fn clear(&self) {
        let mut state = self.lock();
        state.calls.clear();
        state.throttled.clear();
        state.answered.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The most requests among `times` (sorted) that fall within any `window`: a sliding window,
/// starting at each request.
pub(in crate::providers::aws) fn most_within(times: &[Instant], window: Duration) -> usize {
    let mut most = 0;
    let mut end = 0;
    for (start, first) in times.iter().enumerate() {
        while end < times.len() && times[end] - *first < window {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

#[derive(Debug)]
struct Recorder(CallLog);

/// The service of an attempt to answer with throttling, from the transmit hook (which still
/// sees the request) to the deserialization hook (which no longer does).
#[derive(Debug, Clone)]
struct ThrottleThis(Option<&'static str>);

impl Storable for ThrottleThis {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "latch-test-call-log"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let call = Call {
            service: service_of(request.headers().get("authorization")),
            operation: operation_of(
                request.headers().get("x-amz-target"),
                request.body().bytes(),
            ),
            at: Instant::now(),
        };
        let mut state = self.0.lock();
        let answered = state.answered.entry(call.service.clone()).or_default();
        *answered += 1;
        let answered = *answered;
        let throttle = state
            .throttle_every
            .get(&call.service)
            .is_some_and(|every| (answered - 1).is_multiple_of(*every));
        cfg.interceptor_state().store_put(ThrottleThis(
            throttle.then(|| throttling_code(&call.service)),
        ));
        if throttle {
            state.throttled.push(call.clone());
        }
        state.calls.push(call);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(ThrottleThis(Some(code))) = cfg.load::<ThrottleThis>().cloned() else {
            return Ok(());
        };
        let body = if code == "Throttling" {
            // The query protocol (IAM, STS): an XML error document.
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
             <Message>Rate exceeded</Message></Error><RequestId>test</RequestId></ErrorResponse>"
                .to_string()
        } else {
            format!(r#"{{"__type":"{code}","message":"Rate exceeded"}}"#)
        };
        let response = context.response_mut();
        *response.status_mut() = 400u16.try_into()?;
        response.headers_mut().remove("content-length");
        response.headers_mut().remove("content-encoding");
        response.headers_mut().insert("x-amzn-errortype", code);
        *response.body_mut() = SdkBody::from(body);
        Ok(())
    }
}

/// The error code a service throttles with.
fn throttling_code(service: &str) -> &'static str {
    match service {
        "iam" | "sts" => "Throttling",
        "organizations" => "TooManyRequestsException",
        "tagging" => "ThrottledException",
        _ => "ThrottlingException",
    }
}

/// The signing name in `Credential=KEY/DATE/REGION/SERVICE/aws4_request`.
fn service_of(authorization: Option<&str>) -> String {
    authorization
        .and_then(|value| value.split("Credential=").nth(1))
        .and_then(|scope| scope.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string()
}

/// `Prefix.Operation` from `X-Amz-Target`, else `Action=Operation` from a form body.
fn operation_of(target: Option<&str>, body: Option<&[u8]>) -> String {
    if let Some(target) = target {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    body.map(String::from_utf8_lossy)
        .and_then(|body| {
            body.split('&')
                .find_map(|pair| pair.strip_prefix("Action=").map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_by_their_scope_and_target() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/organizations/aws4_request, SignedHeaders=host, Signature=0";
        assert_eq!(service_of(Some(auth)), "organizations");
        assert_eq!(service_of(None), "unknown");
        assert_eq!(
            operation_of(Some("AWSOrganizationsV20161128.ListRoots"), None),
            "ListRoots"
        );
        assert_eq!(
            operation_of(None, Some(b"Action=ListRoleTags&Version=2010-05-08")),
            "ListRoleTags"
        );
    }

    #[test]
    fn the_busiest_window_is_found() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let times = [
            at(0),
            at(100),
            at(900),
            at(950),
            at(1000),
            at(1050),
            at(3000),
        ];
        assert_eq!(most_within(&times, Duration::from_secs(1)), 5);
        assert_eq!(most_within(&times, Duration::from_millis(100)), 2);
        assert_eq!(most_within(&[], Duration::from_secs(1)), 0);
    }
}
