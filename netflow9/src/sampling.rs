//! Packet sampling learned from options data records.
//!
//! Exporters announce their samplers in options records: SAMPLING_INTERVAL
//! (34) / SAMPLING_ALGORITHM (35) for the whole observation domain, or
//! FLOW_SAMPLER_ID (48) with FLOW_SAMPLER_MODE (49) and
//! FLOW_SAMPLER_RANDOM_INTERVAL (50), or the IPFIX selectorId (302) with
//! selectorAlgorithm (304) and samplingPacketInterval/Space (305/306).
//! A flow names its sampler with 48 or 302, or carries 34 itself.

use crate::field::FieldType;
use crate::layout::{role, FlowLayout};
use crate::template::Template;

/// Samplers remembered per (exporter, Source ID).
pub const SAMPLERS_PER_DOMAIN: usize = 8;

/// One sampler: its id (0 for the domain-wide one), interval and algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Sampler {
    /// FLOW_SAMPLER_ID / selectorId; 0 when the options record had none.
    pub id: u64,
    /// One packet in `interval` is sampled (≥ 1).
    pub interval: u32,
    /// SAMPLING_ALGORITHM / FLOW_SAMPLER_MODE / selectorAlgorithm (0 = unknown).
    pub algorithm: u8,
}

/// The samplers of one observation domain (fixed capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Samplers {
    entries: [Sampler; SAMPLERS_PER_DOMAIN],
    len: u8,
    next: u8,
}

impl Samplers {
    /// The interval for a flow naming sampler `id` (or none): that sampler,
    /// else the domain-wide one (id 0), else the only one there is.
    #[must_use]
    pub fn interval(&self, id: Option<u64>) -> Option<u32> {
        let all = self.iter();
        if let Some(id) = id {
            if let Some(s) = self.iter().find(|s| s.id == id) {
                return Some(s.interval);
            }
        }
        if let Some(s) = self.iter().find(|s| s.id == 0) {
            return Some(s.interval);
        }
        let mut it = all;
        match (it.next(), it.next()) {
            (Some(s), None) => Some(s.interval),
            _ => None,
        }
    }

    /// Known samplers.
    pub fn iter(&self) -> impl Iterator<Item = &Sampler> + '_ {
        self.entries.iter().take(usize::from(self.len))
    }

    /// Adds or updates a sampler; when full, replaces the oldest added.
    pub fn learn(&mut self, s: Sampler) {
        let len = usize::from(self.len);
        if let Some(e) = self.entries.iter_mut().take(len).find(|e| e.id == s.id) {
            *e = s;
            return;
        }
        if len < SAMPLERS_PER_DOMAIN {
            if let Some(e) = self.entries.get_mut(len) {
                *e = s;
                self.len += 1;
            }
            return;
        }
        let i = usize::from(self.next) % SAMPLERS_PER_DOMAIN;
        if let Some(e) = self.entries.get_mut(i) {
            *e = s;
        }
        self.next = ((i + 1) % SAMPLERS_PER_DOMAIN) as u8;
    }
}

fn positive(v: u64) -> Option<u32> {
    u32::try_from(v).ok().filter(|&v| v > 0)
}

fn packet_interval(interval: Option<u64>, space: Option<u64>) -> Option<u32> {
    let i = interval.filter(|&i| i > 0)?;
    // RFC 5476: samplingPacketInterval packets are selected out of every
    // interval + space packets.
    positive(i.saturating_add(space.unwrap_or(0)) / i)
}

/// A sampling interval carried by the data record itself.
pub(crate) fn interval_in(l: &FlowLayout, rec: &[u8]) -> Option<u32> {
    l.get(role::SAMPLING_INTERVAL, rec)
        .and_then(positive)
        .or_else(|| l.get(role::RANDOM_INTERVAL, rec).and_then(positive))
        .or_else(|| {
            packet_interval(
                l.get(role::SAMPLING_PKT_INTERVAL, rec),
                l.get(role::SAMPLING_PKT_SPACE, rec),
            )
        })
}

/// The sampler an options data record describes, if any.
pub(crate) fn from_options(t: &Template, rec: &[u8]) -> Option<Sampler> {
    let (mut id, mut interval, mut algorithm) = (None, None, None);
    let (mut pkt_interval, mut pkt_space) = (None, None);
    for (i, slot, v) in t.walk(rec) {
        if i < t.scope_count() || v.is_empty() || v.len() > 8 {
            continue;
        }
        let x = crate::wire::read_uint(v);
        match FieldType(slot.field_type) {
            FieldType::SAMPLING_INTERVAL | FieldType::FLOW_SAMPLER_RANDOM_INTERVAL => {
                interval = interval.or(positive(x));
            }
            FieldType::SAMPLING_ALGORITHM
            | FieldType::FLOW_SAMPLER_MODE
            | FieldType::SELECTOR_ALGORITHM => algorithm = Some(x as u8),
            FieldType::FLOW_SAMPLER_ID | FieldType::SELECTOR_ID => id = Some(x),
            FieldType::SAMPLING_PACKET_INTERVAL => pkt_interval = Some(x),
            FieldType::SAMPLING_PACKET_SPACE => pkt_space = Some(x),
            _ => {}
        }
    }
    let interval = interval.or_else(|| packet_interval(pkt_interval, pkt_space))?;
    Some(Sampler {
        id: id.unwrap_or(0),
        interval,
        algorithm: algorithm.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldSpecifier;

    #[test]
    fn lookup_rules() {
        let mut s = Samplers::default();
        assert_eq!(s.interval(None), None);
        s.learn(Sampler {
            id: 1,
            interval: 2000,
            algorithm: 2,
        });
        assert_eq!(s.interval(Some(7)), Some(2000), "only one sampler");
        s.learn(Sampler {
            id: 2,
            interval: 4000,
            algorithm: 2,
        });
        assert_eq!(s.interval(Some(2)), Some(4000));
        assert_eq!(s.interval(Some(7)), None);
        s.learn(Sampler {
            id: 0,
            interval: 10,
            algorithm: 1,
        });
        assert_eq!(s.interval(Some(7)), Some(10));
        for id in 10..30 {
            s.learn(Sampler {
                id,
                interval: 5,
                algorithm: 0,
            });
        }
        assert_eq!(s.iter().count(), SAMPLERS_PER_DOMAIN);
    }

    /// Regression: an 8-byte samplingPacketInterval near `u64::MAX` plus any
    /// samplingPacketSpace overflowed (a panic in debug builds, a wrong
    /// interval in release). Found by a property test of `Flow` building.
    #[test]
    fn packet_interval_does_not_overflow() {
        assert_eq!(packet_interval(Some(u64::MAX), Some(1)), Some(1));
        assert_eq!(packet_interval(Some(1), Some(u64::MAX)), None, "> u32::MAX");
        assert_eq!(packet_interval(Some(1), Some(99)), Some(100));
        assert_eq!(packet_interval(Some(0), Some(99)), None);
    }

    #[test]
    fn learns_from_options_records() {
        let t = Template::new_options(
            256,
            &[FieldSpecifier::new(FieldType(1), 4)],
            &[
                FieldSpecifier::new(FieldType::FLOW_SAMPLER_ID, 1),
                FieldSpecifier::new(FieldType::SAMPLING_PACKET_INTERVAL, 4),
                FieldSpecifier::new(FieldType::SAMPLING_PACKET_SPACE, 4),
            ],
        )
        .unwrap();
        let rec = [0, 0, 0, 1, 3, 0, 0, 0, 1, 0, 0, 0, 99];
        assert_eq!(
            from_options(&t, &rec),
            Some(Sampler {
                id: 3,
                interval: 100,
                algorithm: 0
            })
        );
    }
}
