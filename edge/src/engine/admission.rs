//! What one response may add to the cache besides its body: caps on surrogate keys, on the
//! width of its Vary and on the variants of one URL.
//!
//! Each of these is memory the weigher counts (so `--memory-cache` holds either way) and work
//! every hit or purge repeats: an object with 12 000 tags is matched tag by tag, a Vary of
//! 10 000 names is recomputed on every request. A response over a cap is still served, to the
//! client that asked, but not stored, and Cache-Status says which cap it met. Fastly and
//! Cloudflare bound surrogate keys the same way (a few KiB of keys per object).

use crate::policy::VarySpec;
use crate::storage::VaryHead;

/// The caps (`cache.max_tags`, `cache.max_tags_bytes`, `cache.max_vary_fields`,
/// `cache.max_variants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCaps {
    /// Most surrogate keys per object.
    pub max_tags: usize,
    /// Most bytes of surrogate keys per object (their lengths summed).
    pub max_tags_bytes: usize,
    /// Most field names in one response's Vary.
    pub max_vary_fields: usize,
    /// Most variants stored for one URL.
    pub max_variants: u32,
}

impl Default for StoreCaps {
    fn default() -> Self {
        StoreCaps {
            max_tags: 1000,
            max_tags_bytes: 16 * 1024,
            max_vary_fields: 16,
            max_variants: 100,
        }
    }
}

/// The cap a response met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverCap {
    /// More surrogate keys than `max_tags`.
    Tags,
    /// Surrogate keys longer, together, than `max_tags_bytes`.
    TagBytes,
    /// A Vary naming more fields than `max_vary_fields`.
    VaryFields,
    /// The URL already has `max_variants` variants stored.
    Variants,
}

impl OverCap {
    /// The Cache-Status `detail=` of a response not stored for this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            OverCap::Tags => "too-many-tags",
            OverCap::TagBytes => "tags-too-long",
            OverCap::VaryFields => "vary-too-wide",
            OverCap::Variants => "too-many-variants",
        }
    }
}

/// The variants a URL's head holds once this response is stored: one more than `current`
/// when it is a new variant of the same Vary and epoch, else a fresh count.
pub fn variants_after(
    current: Option<&VaryHead>,
    vary: &VarySpec,
    epoch: u64,
    new_variant: bool,
) -> u32 {
    match current {
        Some(h) if h.vary == *vary && h.epoch == epoch => {
            h.variants.saturating_add(u32::from(new_variant))
        }
        _ => 1,
    }
}

/// Whether a response with these tags and Vary may be stored, given what the URL's head holds
/// (`current`) and whether it would add a variant.
pub fn admit(
    caps: &StoreCaps,
    tags: &[String],
    vary: &VarySpec,
    current: Option<&VaryHead>,
    epoch: u64,
    new_variant: bool,
) -> Result<(), OverCap> {
    if tags.len() > caps.max_tags {
        return Err(OverCap::Tags);
    }
    if tags.iter().map(String::len).sum::<usize>() > caps.max_tags_bytes {
        return Err(OverCap::TagBytes);
    }
    if let VarySpec::Fields(fields) = vary {
        if fields.len() > caps.max_vary_fields {
            return Err(OverCap::VaryFields);
        }
        if new_variant && variants_after(current, vary, epoch, true) > caps.max_variants {
            return Err(OverCap::Variants);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> StoreCaps {
        StoreCaps {
            max_tags: 3,
            max_tags_bytes: 10,
            max_vary_fields: 2,
            max_variants: 2,
        }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn fields(n: usize) -> VarySpec {
        VarySpec::Fields((0..n).map(|i| format!("f{i}")).collect())
    }

    fn head(vary: VarySpec, epoch: u64, variants: u32) -> VaryHead {
        VaryHead {
            vary,
            epoch,
            variants,
        }
    }

    #[test]
    fn tags_are_capped_by_count_and_by_total_length() {
        let c = caps();
        assert_eq!(
            admit(&c, &tags(&["a", "b", "c"]), &VarySpec::None, None, 0, true),
            Ok(())
        );
        assert_eq!(
            admit(
                &c,
                &tags(&["a", "b", "c", "d"]),
                &VarySpec::None,
                None,
                0,
                true
            ),
            Err(OverCap::Tags)
        );
        assert_eq!(
            admit(&c, &tags(&["0123456789"]), &VarySpec::None, None, 0, true),
            Ok(())
        );
        assert_eq!(
            admit(
                &c,
                &tags(&["0123456789", "x"]),
                &VarySpec::None,
                None,
                0,
                true
            ),
            Err(OverCap::TagBytes)
        );
    }

    #[test]
    fn vary_width_is_capped() {
        let c = caps();
        assert_eq!(admit(&c, &[], &fields(2), None, 1, true), Ok(()));
        assert_eq!(
            admit(&c, &[], &fields(3), None, 1, true),
            Err(OverCap::VaryFields)
        );
        // Without Vary (or with `*`, never stored anyway) there is nothing to count.
        assert_eq!(admit(&c, &[], &VarySpec::Star, None, 1, true), Ok(()));
    }

    #[test]
    fn new_variants_stop_at_the_cap_refreshes_do_not() {
        let c = caps();
        let v = fields(1);
        let one = head(v.clone(), 7, 1);
        let full = head(v.clone(), 7, 2);
        assert_eq!(admit(&c, &[], &v, Some(&one), 7, true), Ok(()));
        assert_eq!(
            admit(&c, &[], &v, Some(&full), 7, true),
            Err(OverCap::Variants)
        );
        // Refreshing a variant already stored adds none.
        assert_eq!(admit(&c, &[], &v, Some(&full), 7, false), Ok(()));
        // A head of another epoch or Vary is replaced: its count does not carry over.
        assert_eq!(admit(&c, &[], &v, Some(&full), 8, true), Ok(()));
        assert_eq!(
            admit(&c, &[], &v, Some(&head(fields(2), 7, 2)), 7, true),
            Ok(())
        );
    }

    #[test]
    fn counts_follow_the_head() {
        let v = fields(1);
        assert_eq!(variants_after(None, &v, 3, true), 1);
        assert_eq!(variants_after(Some(&head(v.clone(), 3, 4)), &v, 3, true), 5);
        assert_eq!(
            variants_after(Some(&head(v.clone(), 3, 4)), &v, 3, false),
            4
        );
        assert_eq!(variants_after(Some(&head(v.clone(), 2, 4)), &v, 3, true), 1);
        assert_eq!(
            variants_after(Some(&head(v.clone(), 3, u32::MAX)), &v, 3, true),
            u32::MAX
        );
    }
}
