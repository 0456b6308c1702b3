//! The connector's own key and certificate: new keys and CSRs (at enrollment and renewal), when
//! to renew, and whether a certificate belongs to a key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, KeyPair};
use x509_parser::pem::parse_x509_pem;

use crate::error::Error;

/// A fresh ECDSA P-256 key and a PKCS#10 request for it, PEM. The control plane fills in the
/// subject and names; the request only proves possession of the key.
pub(crate) fn new_key_and_csr() -> Result<(KeyPair, String), Error> {
    let key = KeyPair::generate().map_err(|err| Error::Tls(format!("cannot make a key: {err}")))?;
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|err| Error::Tls(format!("cannot make a certificate request: {err}")))?;
    Ok((key, csr))
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// Half-way through the lifetime: early enough that a few failed attempts still leave time.
    pub(crate) fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_before + lifetime / 2
    }
}

/// The first certificate in `pem` (the leaf).
fn with_leaf<T>(
    pem: &str,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> T,
) -> Result<T, Error> {
    let (_, pem) = parse_x509_pem(pem.as_bytes())
        .map_err(|err| Error::Tls(format!("not a PEM certificate: {err}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|err| Error::Tls(format!("not an X.509 certificate: {err}")))?;
    Ok(f(&cert))
}

pub(crate) fn validity(cert_pem: &str) -> Result<Validity, Error> {
    with_leaf(cert_pem, |cert| {
        let validity = cert.validity();
        let at =
            |seconds: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        Validity {
            not_before: at(validity.not_before.timestamp()),
            not_after: at(validity.not_after.timestamp()),
        }
    })
}

/// Whether the leaf certificate in `cert_pem` certifies `key`'s public key.
pub(crate) fn certifies(cert_pem: &str, key: &KeyPair) -> Result<bool, Error> {
    with_leaf(cert_pem, |cert| {
        cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_half_way_and_certificates_match_their_key() {
        let (key, csr) = new_key_and_csr().expect("key");
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let mut params = CertificateParams::new(vec!["connector".to_string()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 11);
        let cert = params.self_signed(&key).expect("cert");
        let validity = validity(&cert.pem()).expect("validity");
        let day = Duration::from_secs(86_400);
        assert_eq!(
            validity
                .renew_at()
                .duration_since(validity.not_before)
                .expect("after"),
            5 * day
        );
        assert!(certifies(&cert.pem(), &key).expect("parse"));
        let other = KeyPair::generate().expect("key");
        assert!(!certifies(&cert.pem(), &other).expect("parse"));
        assert!(validity_err("not a cert"));
    }

    fn validity_err(text: &str) -> bool {
        validity(text).is_err()
    }
}
