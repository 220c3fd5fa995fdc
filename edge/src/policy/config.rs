//! Tunables of the cache policy, read once from node configuration.

use std::time::Duration;

use http::HeaderName;

/// The `CDN-Cache-Control` targeted field (RFC 9213 §3).
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// The `Surrogate-Control` field (Edge Architecture 1.0 §2.2). Tiercel honours it like a
/// targeted field and never forwards it.
pub const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// Tunables, from node config. `Default` gives the values documented on each field.
#[derive(Clone, Debug)]
pub struct PolicyConfig {
    /// Targeted fields in precedence order (RFC 9213 §2.1). The first one present with a valid,
    /// non-empty value governs, and Cache-Control and Expires are then ignored.
    /// Default: `cdn-cache-control`, `surrogate-control`.
    pub targeted_fields: Vec<HeaderName>,
    /// RFC 9111 §4.2.2 heuristic: the fraction of (Date − Last-Modified) a response without
    /// explicit freshness stays fresh. Default 0.1 (the "typical setting" the RFC names).
    pub heuristic_fraction: f64,
    /// Cap on heuristic freshness, so a file untouched for ten years is not served for a year
    /// without a check. Default 24 h.
    pub heuristic_max: Duration,
    /// Store responses that carry Set-Cookie (nginx and Varnish refuse by default, since one
    /// user's cookie would be served to everyone). Default false. A Set-Cookie named by
    /// `private="set-cookie"` or `no-cache="set-cookie"` is stripped instead and does not prevent
    /// storing.
    pub store_set_cookie: bool,
    /// Honour the request directives with which a client asks for revalidation of a stored
    /// response: `no-cache` (and `Pragma: no-cache`), `max-age` and `min-fresh`. RFC 9111 says
    /// the client "prefers" these; an operator facing reload storms may turn them off, and then a
    /// fresh stored response is served whatever the client asked. Default true.
    pub honor_request_no_cache: bool,
    /// A service's `ttl.default`: the freshness of a response that states none and may be
    /// cached heuristically, instead of the Last-Modified heuristic. Default none.
    pub default_ttl: Option<Duration>,
    /// A service's `ttl.max`: no response is fresh here for longer. Default none.
    pub max_ttl: Option<Duration>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            targeted_fields: vec![CDN_CACHE_CONTROL, SURROGATE_CONTROL],
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(24 * 3600),
            store_set_cookie: false,
            honor_request_no_cache: true,
            default_ttl: None,
            max_ttl: None,
        }
    }
}

/// Why a [`PolicyConfig`] was rejected; each variant names the offending key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyConfigError {
    /// `heuristic_fraction` must be a finite number in 0..=1.
    #[error("heuristic_fraction must be a finite number between 0 and 1, got {0}")]
    HeuristicFraction(f64),
    /// A targeted field must not be one of the fields it overrides.
    #[error("targeted_fields must not contain {0} (it is the field a targeted field overrides)")]
    TargetedField(HeaderName),
}

impl PolicyConfig {
    /// Checks the values once at load time, so the request path never meets a NaN fraction.
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        if !self.heuristic_fraction.is_finite() || !(0.0..=1.0).contains(&self.heuristic_fraction) {
            return Err(PolicyConfigError::HeuristicFraction(
                self.heuristic_fraction,
            ));
        }
        for f in &self.targeted_fields {
            if f == http::header::CACHE_CONTROL
                || f == http::header::EXPIRES
                || f == http::header::PRAGMA
            {
                return Err(PolicyConfigError::TargetedField(f.clone()));
            }
        }
        Ok(())
    }

    /// Whether `name` is one of the targeted fields this cache consumes. The engine strips
    /// these when serving to clients (and keeps them in storage and when serving a downstream
    /// Tiercel tier that consumes them too).
    pub fn is_targeted_field(&self, name: &HeaderName) -> bool {
        self.targeted_fields.iter().any(|f| f == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = PolicyConfig::default();
        assert_eq!(
            c.targeted_fields,
            vec![CDN_CACHE_CONTROL, SURROGATE_CONTROL]
        );
        assert_eq!(c.heuristic_fraction, 0.1);
        assert_eq!(c.heuristic_max, Duration::from_secs(86_400));
        assert!(!c.store_set_cookie);
        assert!(c.honor_request_no_cache);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn validate_table() {
        let cases: Vec<(PolicyConfig, Result<(), PolicyConfigError>)> = vec![
            (
                PolicyConfig {
                    heuristic_fraction: f64::NAN,
                    ..Default::default()
                },
                Err(PolicyConfigError::HeuristicFraction(f64::NAN)),
            ),
            (
                PolicyConfig {
                    heuristic_fraction: -0.1,
                    ..Default::default()
                },
                Err(PolicyConfigError::HeuristicFraction(-0.1)),
            ),
            (
                PolicyConfig {
                    heuristic_fraction: 1.5,
                    ..Default::default()
                },
                Err(PolicyConfigError::HeuristicFraction(1.5)),
            ),
            (
                PolicyConfig {
                    heuristic_fraction: 0.0,
                    ..Default::default()
                },
                Ok(()),
            ),
            (
                PolicyConfig {
                    targeted_fields: vec![http::header::CACHE_CONTROL],
                    ..Default::default()
                },
                Err(PolicyConfigError::TargetedField(
                    http::header::CACHE_CONTROL,
                )),
            ),
        ];
        for (cfg, want) in cases {
            let got = cfg.validate();
            // NaN != NaN: compare the rendered error instead.
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "cfg {cfg:?}");
        }
    }

    #[test]
    fn targeted_field_membership() {
        let c = PolicyConfig::default();
        assert!(c.is_targeted_field(&CDN_CACHE_CONTROL));
        assert!(c.is_targeted_field(&SURROGATE_CONTROL));
        assert!(!c.is_targeted_field(&http::header::CACHE_CONTROL));
    }
}
