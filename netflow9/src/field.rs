//! The field type registry: an open newtype over the 16-bit type number.
//!
//! RFC 3954 §8 defines types 1–79 and later Cisco and IANA (IPFIX, RFC 7012)
//! numbers are used by v9 exporters too. A number not listed here is still a
//! valid [`FieldType`]: unknown is data, never an error.

use core::fmt;

/// How the bytes of a field are read by [`crate::Record::get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A big-endian unsigned integer of 1–8 bytes.
    Unsigned,
    /// An IPv4 address (4 bytes).
    Ipv4,
    /// An IPv6 address (16 bytes).
    Ipv6,
    /// A MAC address (6 bytes).
    Mac,
    /// Text or opaque bytes.
    Bytes,
}

/// A NetFlow v9 field type (the "Field Type" of a Template's field specifier).
///
/// ```
/// use netflow9::FieldType;
/// assert_eq!(FieldType::IPV4_SRC_ADDR, FieldType(8));
/// assert_eq!(FieldType(8).name(), Some("IPV4_SRC_ADDR"));
/// assert_eq!(FieldType(40_123).name(), None); // unknown, still valid
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FieldType(pub u16);

macro_rules! registry {
    ($(($num:literal, $name:ident, $kind:ident)),* $(,)?) => {
        impl FieldType {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($num), ").")]
                pub const $name: FieldType = FieldType($num);
            )*
        }
        /// Sorted by number, for binary search.
        static TABLE: &[(u16, &str, ValueKind)] = &[
            $(($num, stringify!($name), ValueKind::$kind)),*
        ];
    };
}

registry! {
    (1, IN_BYTES, Unsigned),
    (2, IN_PKTS, Unsigned),
    (3, FLOWS, Unsigned),
    (4, PROTOCOL, Unsigned),
    (5, SRC_TOS, Unsigned),
    (6, TCP_FLAGS, Unsigned),
    (7, L4_SRC_PORT, Unsigned),
    (8, IPV4_SRC_ADDR, Ipv4),
    (9, SRC_MASK, Unsigned),
    (10, INPUT_SNMP, Unsigned),
    (11, L4_DST_PORT, Unsigned),
    (12, IPV4_DST_ADDR, Ipv4),
    (13, DST_MASK, Unsigned),
    (14, OUTPUT_SNMP, Unsigned),
    (15, IPV4_NEXT_HOP, Ipv4),
    (16, SRC_AS, Unsigned),
    (17, DST_AS, Unsigned),
    (18, BGP_IPV4_NEXT_HOP, Ipv4),
    (19, MUL_DST_PKTS, Unsigned),
    (20, MUL_DST_BYTES, Unsigned),
    (21, LAST_SWITCHED, Unsigned),
    (22, FIRST_SWITCHED, Unsigned),
    (23, OUT_BYTES, Unsigned),
    (24, OUT_PKTS, Unsigned),
    (25, MIN_PKT_LNGTH, Unsigned),
    (26, MAX_PKT_LNGTH, Unsigned),
    (27, IPV6_SRC_ADDR, Ipv6),
    (28, IPV6_DST_ADDR, Ipv6),
    (29, IPV6_SRC_MASK, Unsigned),
    (30, IPV6_DST_MASK, Unsigned),
    (31, IPV6_FLOW_LABEL, Unsigned),
    (32, ICMP_TYPE, Unsigned),
    (33, MUL_IGMP_TYPE, Unsigned),
    (34, SAMPLING_INTERVAL, Unsigned),
    (35, SAMPLING_ALGORITHM, Unsigned),
    (36, FLOW_ACTIVE_TIMEOUT, Unsigned),
    (37, FLOW_INACTIVE_TIMEOUT, Unsigned),
    (38, ENGINE_TYPE, Unsigned),
    (39, ENGINE_ID, Unsigned),
    (40, TOTAL_BYTES_EXP, Unsigned),
    (41, TOTAL_PKTS_EXP, Unsigned),
    (42, TOTAL_FLOWS_EXP, Unsigned),
    (44, IPV4_SRC_PREFIX, Ipv4),
    (45, IPV4_DST_PREFIX, Ipv4),
    (46, MPLS_TOP_LABEL_TYPE, Unsigned),
    (47, MPLS_TOP_LABEL_IP_ADDR, Ipv4),
    (48, FLOW_SAMPLER_ID, Unsigned),
    (49, FLOW_SAMPLER_MODE, Unsigned),
    (50, FLOW_SAMPLER_RANDOM_INTERVAL, Unsigned),
    (52, MIN_TTL, Unsigned),
    (53, MAX_TTL, Unsigned),
    (54, IPV4_IDENT, Unsigned),
    (55, DST_TOS, Unsigned),
    (56, IN_SRC_MAC, Mac),
    (57, OUT_DST_MAC, Mac),
    (58, SRC_VLAN, Unsigned),
    (59, DST_VLAN, Unsigned),
    (60, IP_PROTOCOL_VERSION, Unsigned),
    (61, DIRECTION, Unsigned),
    (62, IPV6_NEXT_HOP, Ipv6),
    (63, BGP_IPV6_NEXT_HOP, Ipv6),
    (64, IPV6_OPTION_HEADERS, Unsigned),
    (70, MPLS_LABEL_1, Unsigned),
    (71, MPLS_LABEL_2, Unsigned),
    (72, MPLS_LABEL_3, Unsigned),
    (73, MPLS_LABEL_4, Unsigned),
    (74, MPLS_LABEL_5, Unsigned),
    (75, MPLS_LABEL_6, Unsigned),
    (76, MPLS_LABEL_7, Unsigned),
    (77, MPLS_LABEL_8, Unsigned),
    (78, MPLS_LABEL_9, Unsigned),
    (79, MPLS_LABEL_10, Unsigned),
    (80, IN_DST_MAC, Mac),
    (81, OUT_SRC_MAC, Mac),
    (82, IF_NAME, Bytes),
    (83, IF_DESC, Bytes),
    (84, SAMPLER_NAME, Bytes),
    (85, IN_PERMANENT_BYTES, Unsigned),
    (86, IN_PERMANENT_PKTS, Unsigned),
    (88, FRAGMENT_OFFSET, Unsigned),
    (89, FORWARDING_STATUS, Unsigned),
    (90, MPLS_PAL_RD, Unsigned),
    (91, MPLS_PREFIX_LEN, Unsigned),
    (92, SRC_TRAFFIC_INDEX, Unsigned),
    (93, DST_TRAFFIC_INDEX, Unsigned),
    (94, APPLICATION_DESCRIPTION, Bytes),
    (95, APPLICATION_TAG, Bytes),
    (96, APPLICATION_NAME, Bytes),
    (98, POST_IP_DIFF_SERV_CODE_POINT, Unsigned),
    (99, REPLICATION_FACTOR, Unsigned),
    (102, LAYER2_PACKET_SECTION_OFFSET, Unsigned),
    (103, LAYER2_PACKET_SECTION_SIZE, Unsigned),
    (104, LAYER2_PACKET_SECTION_DATA, Bytes),
    (128, BGP_NEXT_ADJACENT_AS, Unsigned),
    (129, BGP_PREV_ADJACENT_AS, Unsigned),
    (130, EXPORTER_IPV4_ADDRESS, Ipv4),
    (131, EXPORTER_IPV6_ADDRESS, Ipv6),
    (136, FLOW_END_REASON, Unsigned),
    (139, ICMP_TYPE_CODE_IPV6, Unsigned),
    (148, FLOW_ID, Unsigned),
    (150, FLOW_START_SECONDS, Unsigned),
    (151, FLOW_END_SECONDS, Unsigned),
    (152, FLOW_START_MILLISECONDS, Unsigned),
    (153, FLOW_END_MILLISECONDS, Unsigned),
    (154, FLOW_START_MICROSECONDS, Unsigned),
    (155, FLOW_END_MICROSECONDS, Unsigned),
    (160, SYSTEM_INIT_TIME_MILLISECONDS, Unsigned),
    (176, ICMP_TYPE_IPV4, Unsigned),
    (177, ICMP_CODE_IPV4, Unsigned),
    (178, ICMP_TYPE_IPV6, Unsigned),
    (179, ICMP_CODE_IPV6, Unsigned),
    (225, POST_NAT_SOURCE_IPV4_ADDRESS, Ipv4),
    (226, POST_NAT_DESTINATION_IPV4_ADDRESS, Ipv4),
    (227, POST_NAPT_SOURCE_TRANSPORT_PORT, Unsigned),
    (228, POST_NAPT_DESTINATION_TRANSPORT_PORT, Unsigned),
    (230, NAT_EVENT, Unsigned),
    (231, INITIATOR_OCTETS, Unsigned),
    (232, RESPONDER_OCTETS, Unsigned),
    (233, FIREWALL_EVENT, Unsigned),
    (234, INGRESS_VRF_ID, Unsigned),
    (235, EGRESS_VRF_ID, Unsigned),
    (236, VRF_NAME, Bytes),
    (281, POST_NAT_SOURCE_IPV6_ADDRESS, Ipv6),
    (282, POST_NAT_DESTINATION_IPV6_ADDRESS, Ipv6),
    (298, INITIATOR_PACKETS, Unsigned),
    (299, RESPONDER_PACKETS, Unsigned),
    (302, SELECTOR_ID, Unsigned),
    (304, SELECTOR_ALGORITHM, Unsigned),
    (305, SAMPLING_PACKET_INTERVAL, Unsigned),
    (306, SAMPLING_PACKET_SPACE, Unsigned),
    (323, OBSERVATION_TIME_MILLISECONDS, Unsigned),
    (351, LAYER2_SEGMENT_ID, Unsigned),
    (365, STA_MAC_ADDRESS, Mac),
    (366, STA_IPV4_ADDRESS, Ipv4),
    (367, WTP_MAC_ADDRESS, Mac),
    (33000, NF_F_INGRESS_ACL_ID, Bytes),
    (33001, NF_F_EGRESS_ACL_ID, Bytes),
    (33002, NF_F_FW_EXT_EVENT, Unsigned),
    (40000, NF_F_USERNAME, Bytes),
    (40001, NF_F_XLATE_SRC_ADDR_IPV4, Ipv4),
    (40002, NF_F_XLATE_DST_ADDR_IPV4, Ipv4),
    (40003, NF_F_XLATE_SRC_PORT, Unsigned),
    (40004, NF_F_XLATE_DST_PORT, Unsigned),
    (40005, NF_F_FW_EVENT, Unsigned),
}

impl FieldType {
    fn entry(self) -> Option<&'static (u16, &'static str, ValueKind)> {
        TABLE
            .binary_search_by_key(&self.0, |e| e.0)
            .ok()
            .and_then(|i| TABLE.get(i))
    }

    /// The registry name, or `None` for a number this crate does not know.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        self.entry().map(|e| e.1)
    }

    /// How a field of this type and `len` bytes is read.
    ///
    /// Known types use their registered kind when the length fits it (exporters
    /// sometimes shorten counters, never addresses); anything else of 1–8 bytes
    /// is an unsigned integer, and longer fields are bytes.
    ///
    /// ```
    /// use netflow9::{FieldType, ValueKind};
    /// assert_eq!(FieldType::IPV4_SRC_ADDR.kind(4), ValueKind::Ipv4);
    /// assert_eq!(FieldType::IN_BYTES.kind(8), ValueKind::Unsigned);
    /// assert_eq!(FieldType(60_000).kind(2), ValueKind::Unsigned);
    /// assert_eq!(FieldType(60_000).kind(32), ValueKind::Bytes);
    /// ```
    #[must_use]
    pub fn kind(self, len: usize) -> ValueKind {
        let registered = self.entry().map(|e| e.2);
        match (registered, len) {
            (Some(ValueKind::Ipv4), 4) => ValueKind::Ipv4,
            (Some(ValueKind::Ipv6), 16) => ValueKind::Ipv6,
            (Some(ValueKind::Mac), 6) => ValueKind::Mac,
            (Some(ValueKind::Bytes), _) => ValueKind::Bytes,
            (_, 1..=8) => ValueKind::Unsigned,
            _ => ValueKind::Bytes,
        }
    }

    /// Every field type this crate names, in numeric order.
    pub fn known() -> impl Iterator<Item = (FieldType, &'static str)> {
        TABLE.iter().map(|e| (FieldType(e.0), e.1))
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "field_{}", self.0),
        }
    }
}

/// Scope field types of an Options Template (RFC 3954 §6.1).
///
/// ```
/// use netflow9::ScopeType;
/// assert_eq!(ScopeType::INTERFACE.name(), Some("Interface"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScopeType(pub u16);

impl ScopeType {
    /// System (1).
    pub const SYSTEM: ScopeType = ScopeType(1);
    /// Interface (2).
    pub const INTERFACE: ScopeType = ScopeType(2);
    /// Line Card (3).
    pub const LINE_CARD: ScopeType = ScopeType(3);
    /// Cache (4).
    pub const CACHE: ScopeType = ScopeType(4);
    /// Template (5).
    pub const TEMPLATE: ScopeType = ScopeType(5);

    /// The RFC name, or `None`.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        match self.0 {
            1 => Some("System"),
            2 => Some("Interface"),
            3 => Some("Line Card"),
            4 => Some("Cache"),
            5 => Some("Template"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in TABLE.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn required_registry_entries() {
        for n in [
            148, 176, 177, 178, 179, 225, 226, 227, 228, 231, 232, 233, 298, 299, 323, 33000,
            33001, 33002, 34, 35, 48, 49, 50, 302, 304, 305, 306,
        ] {
            assert!(FieldType(n).name().is_some(), "missing {n}");
        }
    }

    #[test]
    fn kinds_fall_back_by_length() {
        assert_eq!(FieldType::IPV4_SRC_ADDR.kind(16), ValueKind::Bytes);
        assert_eq!(FieldType::IN_SRC_MAC.kind(6), ValueKind::Mac);
        assert_eq!(FieldType::IF_NAME.kind(4), ValueKind::Bytes);
        assert_eq!(FieldType::IN_BYTES.kind(0), ValueKind::Bytes);
    }
}
