//! Query strings: percent-decoding, and the typed parameters the API shares
//! (time ranges, filters, metrics, groupings, counts).
//!
//! Unknown parameters are ignored; a repeated parameter keeps its last value.
//! Every error names the parameter it is about.

use std::collections::HashMap;

use flowstore::filter::Filter;
use flowstore::{Dimension, GroupBy, Metric, TimeRange};

use super::respond::ApiError;
use super::time::parse_rfc3339;

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in
/// `application/x-www-form-urlencoded` query values). `None` for a broken
/// escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = |at: usize| b.get(at).and_then(|h| (*h as char).to_digit(16));
                let (hi, lo) = (hex(i + 1)?, hex(i + 2)?);
                // Two hex digits make a byte.
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A parsed query string.
#[derive(Debug, Default)]
pub(crate) struct Query {
    params: HashMap<String, String>,
    /// "Now" for relative times, in Unix milliseconds.
    now_ms: u64,
}

/// How long `-1h` and friends are; also used for `step`.
fn duration_secs(s: &str) -> Option<u64> {
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    if num.is_empty() || num.len() > 12 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Parses a time: `now`, `-15m` / `now-15m` (s, m, h, d, w), Unix seconds,
/// or RFC 3339. Unix milliseconds, or what is wrong.
pub(crate) fn parse_time(s: &str, now_ms: u64) -> Result<u64, String> {
    const LATEST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    let rel = s.strip_prefix("now-").or_else(|| s.strip_prefix('-'));
    if let Some(rel) = rel {
        let secs = duration_secs(rel).ok_or_else(|| {
            format!("{s:?}: a relative time is -N followed by s, m, h, d or w, e.g. -15m")
        })?;
        return Ok(now_ms.saturating_sub(secs.saturating_mul(1000)));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u64>() {
            Ok(secs) if secs <= LATEST => Ok(secs * 1000),
            _ => Err(format!("{s:?}: Unix seconds out of range")),
        };
    }
    parse_rfc3339(s)
        .map_err(|e| format!("{s:?}: expected now, -15m, Unix seconds or RFC 3339 ({e})"))
}

impl Query {
    /// Parses the part of a request-target after `?`.
    ///
    /// # Errors
    /// [`ApiError::Param`] naming the first parameter that does not decode.
    pub(crate) fn parse(query: &str, now_ms: u64) -> Result<Query, ApiError> {
        let mut params = HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k, true)
                .ok_or_else(|| ApiError::param("query", "invalid percent-encoding in a name"))?;
            let Some(value) = percent_decode(v, true) else {
                // Name the parameter if it is one of ours.
                let name = KNOWN
                    .iter()
                    .find(|n| **n == key)
                    .copied()
                    .unwrap_or("query");
                return Err(ApiError::param(name, "invalid percent-encoding"));
            };
            params.insert(key, value);
        }
        Ok(Query { params, now_ms })
    }

    /// A parameter's value.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    fn time(&self, name: &'static str, default: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_time(v, self.now_ms).map_err(|e| ApiError::param(name, e)),
        }
    }

    /// `from` (default: the hour before `to`) and `to` (default now).
    ///
    /// # Errors
    /// A bad time, or `from` after `to`.
    pub(crate) fn range(&self) -> Result<TimeRange, ApiError> {
        let to = self.time("to", self.now_ms)?;
        let from = self.time("from", to.saturating_sub(3_600_000))?;
        TimeRange::new(from, to).map_err(|_| ApiError::param("from", "from is after to"))
    }

    /// `filter` (default: everything).
    ///
    /// # Errors
    /// [`ApiError::Filter`] with the column of the problem.
    pub(crate) fn filter(&self) -> Result<Filter, ApiError> {
        match self.get("filter") {
            None => Ok(Filter::all()),
            Some(text) => Filter::parse(text).map_err(ApiError::Filter),
        }
    }

    /// `metric`: bytes (default), packets or flows.
    ///
    /// # Errors
    /// Any other value.
    pub(crate) fn metric(&self) -> Result<Metric, ApiError> {
        match self.get("metric").unwrap_or("bytes") {
            "bytes" => Ok(Metric::Bytes),
            "packets" => Ok(Metric::Packets),
            "flows" => Ok(Metric::Flows),
            other => Err(ApiError::param(
                "metric",
                format!("{other:?}: expected bytes, packets or flows"),
            )),
        }
    }

    /// A boolean flag: absent is false; `1`, `true`, `yes`, `on` or an empty
    /// value (`?raw`) is true; `0`, `false`, `no`, `off` is false.
    ///
    /// # Errors
    /// Any other value.
    pub(crate) fn flag(&self, name: &'static str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some("" | "1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(ApiError::param(
                name,
                format!("{v:?}: expected true or false"),
            )),
        }
    }

    /// A count in `1..=max`, `default` when absent.
    ///
    /// # Errors
    /// Not a number, or out of range.
    pub(crate) fn count(
        &self,
        name: &'static str,
        default: usize,
        max: usize,
    ) -> Result<usize, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(default);
        };
        match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::param(name, format!("{v:?}: expected 1 to {max}"))),
        }
    }

    /// `by`: a dimension name, or `src_network` / `dst_network` (grouped by
    /// the stored named networks, which `networks` loads only when needed).
    ///
    /// # Errors
    /// An unknown name, or the store's error loading networks.
    pub(crate) fn group_by(
        &self,
        default: Dimension,
        networks: impl FnOnce() -> Result<Vec<flowstore::Network>, ApiError>,
    ) -> Result<GroupBy, ApiError> {
        match self.get("by") {
            None => Ok(GroupBy::Dim(default)),
            Some("src_network") => Ok(GroupBy::SrcNetwork(networks()?)),
            Some("dst_network") => Ok(GroupBy::DstNetwork(networks()?)),
            Some(name) => Dimension::from_name(name).map(GroupBy::Dim).ok_or_else(|| {
                let names: Vec<&str> = Dimension::ALL.iter().map(|d| d.name()).collect();
                ApiError::param(
                    "by",
                    format!(
                        "{name:?}: expected one of {}, src_network, dst_network",
                        names.join(", ")
                    ),
                )
            }),
        }
    }

    /// `step` in seconds (`300`, `5m`, `1h`; a positive multiple of 60, at
    /// most [`MAX_STEP_SECS`]), or by default about 300 points over `range`,
    /// rounded up to a minute.
    ///
    /// # Errors
    /// Not a duration, not a multiple of 60 s, or longer than
    /// [`MAX_STEP_SECS`].
    pub(crate) fn step_secs(&self, range: TimeRange) -> Result<u64, ApiError> {
        match self.get("step") {
            Some(v) => match duration_secs(v) {
                Some(s) if s > 0 && s % 60 == 0 && s <= MAX_STEP_SECS => Ok(s),
                _ => Err(ApiError::param(
                    "step",
                    format!(
                        "{v:?}: expected a positive multiple of 60 seconds up to 366d, \
                         e.g. 60, 5m, 1h"
                    ),
                )),
            },
            None => {
                // Clamp an open-ended range to the present so that `to=` far
                // in the future does not make every step enormous.
                let to = range.to_ms.min(self.now_ms.max(range.from_ms));
                let span_secs = (to - range.from_ms).div_ceil(1000);
                Ok((span_secs.div_ceil(300).div_ceil(60).max(1) * 60).min(MAX_STEP_SECS))
            }
        }
    }
}

/// The longest `step`: the store computes in milliseconds, and no chart
/// needs a point per more than a year.
pub(crate) const MAX_STEP_SECS: u64 = 366 * 86_400;

/// Parameter names, to name the right one in a decoding error.
const KNOWN: [&str; 14] = [
    "from", "to", "filter", "raw", "step", "by", "metric", "top", "order", "limit", "cursor",
    "format", "user", "password",
];

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_709_294_400_000;

    fn q(s: &str) -> Query {
        Query::parse(s, NOW).unwrap()
    }

    fn param_of(e: ApiError) -> &'static str {
        match e {
            ApiError::Param { parameter, .. } => parameter,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(
            percent_decode("a%20b+c%2B", true).as_deref(),
            Some("a b c+")
        );
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%e2%86%92", false).as_deref(), Some("→"));
        assert_eq!(percent_decode("%", true), None);
        assert_eq!(percent_decode("%4", true), None);
        assert_eq!(percent_decode("%zz", true), None);
        assert_eq!(percent_decode("%ff", true), None, "not UTF-8");
        assert_eq!(percent_decode("%25zz", true).as_deref(), Some("%zz"));
    }

    #[test]
    fn parses_query_strings() {
        let x = q("filter=src+net+10.0.0.0%2F8&&limit=5&limit=7&flag&x=%26");
        assert_eq!(x.get("filter"), Some("src net 10.0.0.0/8"));
        assert_eq!(x.get("limit"), Some("7"), "last wins");
        assert_eq!(x.get("flag"), Some(""));
        assert_eq!(x.get("x"), Some("&"));
        assert_eq!(x.get("nope"), None);
        let e = Query::parse("from=%zz", NOW).unwrap_err();
        assert_eq!(param_of(e), "from");
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("-1h", NOW), Ok(NOW - 3_600_000));
        assert_eq!(parse_time("now-15m", NOW), Ok(NOW - 900_000));
        assert_eq!(parse_time("-7d", NOW), Ok(NOW - 7 * 86_400_000));
        assert_eq!(parse_time("-30s", NOW), Ok(NOW - 30_000));
        assert_eq!(parse_time("-30", NOW), Ok(NOW - 30_000));
        assert_eq!(parse_time("-99999999999w", 5), Ok(0), "saturates at 1970");
        assert_eq!(parse_time("0", NOW), Ok(0));
        assert_eq!(parse_time("1709294400", NOW), Ok(NOW));
        assert_eq!(parse_time("2024-03-01T12:00:00Z", 0), Ok(NOW));
        for bad in [
            "",
            "-",
            "-1y",
            "-h",
            "yesterday",
            "1e9",
            "99999999999999",
            "-1.5h",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn typed_parameters() {
        let r = q("").range().unwrap();
        assert_eq!((r.from_ms, r.to_ms), (NOW - 3_600_000, NOW));
        let r = q("from=0&to=now").range().unwrap();
        assert_eq!((r.from_ms, r.to_ms), (0, NOW));
        // `to` alone: the hour before it.
        let r = q("to=-2h").range().unwrap();
        assert_eq!(
            (r.from_ms, r.to_ms),
            (NOW - 3 * 3_600_000, NOW - 2 * 3_600_000)
        );
        assert_eq!(param_of(q("from=now&to=-1h").range().unwrap_err()), "from");
        assert_eq!(param_of(q("to=soon").range().unwrap_err()), "to");
        assert!(matches!(
            q("filter=port+x").filter(),
            Err(ApiError::Filter(_))
        ));
        assert!(q("filter=").filter().unwrap().is_all());
        assert_eq!(q("metric=flows").metric().unwrap(), Metric::Flows);
        assert_eq!(param_of(q("metric=bits").metric().unwrap_err()), "metric");
        assert!(q("raw").flag("raw").unwrap());
        assert!(!q("raw=0").flag("raw").unwrap());
        assert_eq!(param_of(q("raw=maybe").flag("raw").unwrap_err()), "raw");
        assert_eq!(q("").count("limit", 100, 10_000).unwrap(), 100);
        assert_eq!(
            q("limit=10000").count("limit", 100, 10_000).unwrap(),
            10_000
        );
        for bad in ["limit=0", "limit=10001", "limit=-1", "limit=ten"] {
            assert_eq!(
                param_of(q(bad).count("limit", 100, 10_000).unwrap_err()),
                "limit"
            );
        }
        let none = || Ok(Vec::new());
        assert_eq!(
            q("by=dst_port")
                .group_by(Dimension::Protocol, none)
                .unwrap(),
            GroupBy::Dim(Dimension::DstPort)
        );
        assert_eq!(
            q("by=src_network")
                .group_by(Dimension::Protocol, none)
                .unwrap(),
            GroupBy::SrcNetwork(Vec::new())
        );
        assert_eq!(
            param_of(
                q("by=colour")
                    .group_by(Dimension::Protocol, none)
                    .unwrap_err()
            ),
            "by"
        );
    }

    #[test]
    fn steps() {
        let hour = TimeRange::new(NOW - 3_600_000, NOW).unwrap();
        assert_eq!(q("").step_secs(hour).unwrap(), 60);
        let week = TimeRange::new(NOW - 7 * 86_400_000, NOW).unwrap();
        assert_eq!(q("").step_secs(week).unwrap(), 2040);
        assert_eq!(q("step=5m").step_secs(hour).unwrap(), 300);
        assert_eq!(q("step=3600").step_secs(hour).unwrap(), 3600);
        assert_eq!(q("step=366d").step_secs(hour).unwrap(), MAX_STEP_SECS);
        for bad in [
            "step=0",
            "step=90",
            "step=1x",
            "step=",
            "step=-60",
            "step=367d",
            "step=99999999999w",
        ] {
            assert_eq!(param_of(q(bad).step_secs(hour).unwrap_err()), "step");
        }
        let all = TimeRange::all();
        assert!(q("").step_secs(all).unwrap() >= 60);
    }
}
