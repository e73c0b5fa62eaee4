//! The read-only traffic queries: summary, series, top, flows, matrix.
//!
//! Each handler turns query parameters into a `flowstore` query and the
//! answer into JSON (or CSV for flows). Groups appear twice: `"group"` is
//! the structured key (a number, address, or object), `"name"` its
//! human-readable text (`tcp`, `udp/53`, `10.0.0.1 → 10.0.0.2`).

use flowstore::{Agg, Cursor, Dimension, FlowsQuery, Group, Network, Order, SeriesQuery, TopQuery};
use serde::Serialize;
use serde_json::json;

use super::params::Query;
use super::respond::{ApiError, Response};
use super::AppState;
use crate::output;

/// Most series a chart gets besides "other".
const MAX_SERIES: usize = 100;
/// Most rows of a top list.
const MAX_TOP: usize = 1000;
/// Most flows per page (the store's own limit).
const MAX_FLOWS: usize = 10_000;

/// The stored named networks.
fn networks(state: &AppState) -> Result<Vec<Network>, ApiError> {
    Ok(state.store.networks()?)
}

/// `GET /api/v1/summary?from&to&filter&raw`.
///
/// # Errors
/// Bad parameters (400); store errors.
pub(crate) fn summary(state: &AppState, q: &Query) -> Result<Response, ApiError> {
    let (range, filter, raw) = (q.range()?, q.filter()?, q.flag("raw")?);
    let s = state.store.summary_raw(range, &filter, raw)?;
    Ok(Response::json(200, &s))
}

/// A group with its display name.
#[derive(Serialize)]
struct Named<'a, T: Serialize> {
    name: String,
    group: &'a Group,
    #[serde(flatten)]
    data: T,
}

impl<'a, T: Serialize> Named<'a, T> {
    fn new(group: &'a Group, data: T) -> Self {
        Named {
            name: group.to_string(),
            group,
            data,
        }
    }
}

/// `GET /api/v1/series?from&to&step&by&metric&filter&top&raw`.
///
/// # Errors
/// Bad parameters (400); store errors.
pub(crate) fn series(state: &AppState, q: &Query) -> Result<Response, ApiError> {
    let range = q.range()?;
    let query = SeriesQuery {
        range,
        step_secs: q.step_secs(range)?,
        by: q.group_by(Dimension::Protocol, || networks(state))?,
        metric: q.metric()?,
        filter: q.filter()?,
        top: q.count("top", 10, MAX_SERIES)?,
        raw: q.flag("raw")?,
    };
    let s = state.store.series(&query)?;
    #[derive(Serialize)]
    struct Values<'a> {
        values: &'a [f64],
    }
    let lines: Vec<_> = s
        .series
        .iter()
        .map(|l| Named::new(&l.group, Values { values: &l.values }))
        .collect();
    Ok(Response::json(
        200,
        &json!({
            "timestamps": s.timestamps,
            "step": query.step_secs,
            "metric": query.metric,
            "series": lines,
            "other": s.other,
            "tier": s.tier,
            "truncated": s.truncated,
        }),
    ))
}

/// `GET /api/v1/top?by&metric&from&to&filter&limit&raw`.
///
/// # Errors
/// Bad parameters (400); store errors.
pub(crate) fn top(state: &AppState, q: &Query) -> Result<Response, ApiError> {
    let query = TopQuery {
        range: q.range()?,
        by: q.group_by(Dimension::SrcAddr, || networks(state))?,
        metric: q.metric()?,
        n: q.count("limit", 10, MAX_TOP)?,
        filter: q.filter()?,
        raw: q.flag("raw")?,
    };
    let t = state.store.top(&query)?;
    let rows: Vec<_> = t.rows.iter().map(|r| Named::new(&r.group, r.agg)).collect();
    Ok(Response::json(
        200,
        &json!({
            "metric": query.metric,
            "rows": rows,
            "other": t.other,
            "tier": t.tier,
            "exact": t.exact,
        }),
    ))
}

/// `GET /api/v1/flows?from&to&filter&order&limit&cursor&format`.
///
/// # Errors
/// Bad parameters (400); store errors.
pub(crate) fn flows(state: &AppState, q: &Query) -> Result<Response, ApiError> {
    let order = match q.get("order").unwrap_or("time_desc") {
        "time_desc" | "desc" => Order::TimeDesc,
        "time_asc" | "asc" => Order::TimeAsc,
        other => {
            return Err(ApiError::param(
                "order",
                format!("{other:?}: expected time_desc or time_asc"),
            ))
        }
    };
    let cursor = match q.get("cursor") {
        None | Some("") => None,
        Some(c) => Some(c.parse::<Cursor>().map_err(|_| {
            ApiError::param("cursor", "not a cursor from a previous page's next_cursor")
        })?),
    };
    let csv = match q.get("format").unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => {
            return Err(ApiError::param(
                "format",
                format!("{other:?}: expected json or csv"),
            ))
        }
    };
    let page = state.store.flows(&FlowsQuery {
        range: q.range()?,
        filter: q.filter()?,
        order,
        limit: q.count("limit", 100, MAX_FLOWS)?,
        cursor,
    })?;
    let next = page.next_cursor.map(|c| c.to_string());
    if csv {
        let mut body = Vec::with_capacity(256 + page.flows.len() * 160);
        body.extend_from_slice(output::CSV_HEADER.as_bytes());
        body.push(b'\n');
        for f in &page.flows {
            // Writing to a Vec cannot fail.
            let _ = output::write_csv(&mut body, f);
        }
        let mut r = Response::new(200, "text/csv; charset=utf-8", body);
        if let Some(c) = next {
            r = r.with_header("X-Next-Cursor", c);
        }
        return Ok(r);
    }
    let rows: Vec<output::FlowRow> = page.flows.iter().map(output::FlowRow::from).collect();
    Ok(Response::json(
        200,
        &json!({"flows": rows, "next_cursor": next}),
    ))
}

/// `GET /api/v1/matrix?from&to&metric&filter&raw`: traffic between the
/// stored named networks, links largest first by `metric`.
///
/// # Errors
/// Bad parameters (400); store errors.
pub(crate) fn matrix(state: &AppState, q: &Query) -> Result<Response, ApiError> {
    let (range, filter, metric, raw) = (q.range()?, q.filter()?, q.metric()?, q.flag("raw")?);
    let mut m = state.store.matrix(range, &networks(state)?, &filter)?;
    let key = |a: &Agg| a.get(metric, raw);
    m.links.sort_by_key(|l| std::cmp::Reverse(key(&l.agg)));
    Ok(Response::json(200, &m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_groups_serialize_flat() {
        let g = Group::Port {
            protocol: 17,
            port: 53,
        };
        let agg = Agg {
            bytes: 10,
            packets: 2,
            flows: 1,
            est_bytes: 10,
            est_packets: 2,
        };
        let v = serde_json::to_value(Named::new(&g, agg)).unwrap();
        assert_eq!(
            v,
            json!({"name": "udp/53", "group": {"protocol": 17, "port": 53},
                   "bytes": 10, "packets": 2, "flows": 1, "est_bytes": 10, "est_packets": 2})
        );
    }
}
