//! RFC 8941 Dictionaries (the syntax of `CDN-Cache-Control`), against the `sfv` crate.

use sfv::{BareItem, Dictionary, ListEntry, Parser, Version};
use tiercel_edge::policy::sf::{self, Member};

/// Properties: our parser accepts exactly what `sfv` (RFC 8941 mode) accepts, and finds the
/// same keys in the same order with the same integer, boolean, string and token values.
pub fn check(data: &[u8]) {
    let ours = sf::parse_dictionary(data);
    let theirs = Parser::new(data)
        .with_version(Version::Rfc8941)
        .parse::<Dictionary>();
    let (ours, theirs) = match (ours, theirs) {
        (Ok(o), Ok(t)) => (o, t),
        (Err(_), Err(_)) => return,
        (o, t) => panic!(
            "disagree on {:?}: ours {:?}, sfv {:?}",
            String::from_utf8_lossy(data),
            o.is_ok(),
            t.map(|_| ())
        ),
    };
    let their_keys: Vec<&str> = theirs.keys().map(|k| k.as_str()).collect();
    let our_keys: Vec<&str> = ours.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(our_keys, their_keys);
    for ((_, ours), (_, theirs)) in ours.iter().zip(theirs.iter()) {
        match (ours, theirs) {
            (Member::Item(o), ListEntry::Item(t)) => same_item(o, &t.bare_item),
            (Member::InnerList(o), ListEntry::InnerList(t)) => {
                assert_eq!(o.len(), t.items.len());
                for (o, t) in o.iter().zip(&t.items) {
                    same_item(o, &t.bare_item);
                }
            }
            (o, t) => panic!("member kinds differ: {o:?} vs {t:?}"),
        }
    }
}

fn same_item(ours: &sf::BareItem, theirs: &BareItem) {
    match (ours, theirs) {
        (sf::BareItem::Integer(o), BareItem::Integer(t)) => assert_eq!(*o, i64::from(*t)),
        (sf::BareItem::Boolean(o), BareItem::Boolean(t)) => assert_eq!(o, t),
        (sf::BareItem::String(o), BareItem::String(t)) => assert_eq!(o.as_str(), t.as_str()),
        (sf::BareItem::Token(o), BareItem::Token(t)) => assert_eq!(o.as_str(), t.as_str()),
        (sf::BareItem::Decimal(_), BareItem::Decimal(_)) => {}
        (sf::BareItem::ByteSequence, BareItem::ByteSequence(_)) => {}
        (o, t) => panic!("item types differ: {o:?} vs {t:?}"),
    }
}
