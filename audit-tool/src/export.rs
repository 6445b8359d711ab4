//! Decoded entries as JSON Lines or CSV, for reading and for other tools.
//!
//! One record per entry: `index`, `time` (RFC 3339, UTC), `action`,
//! `outcome`, `actor`, `device`, `target`, `client_ip`, `details`.
//! `client_ip` is the client's address where the relay gave the auditor the
//! salt and address that open the leaf's commitment (checked on download),
//! else the leaf's own value (a commitment, or an older relay's address). In JSON an
//! absent value is `null` and `details` an object; in CSV an absent value is
//! an empty cell and `details` is `name=value` pairs separated by spaces
//! (values never contain spaces).

use std::collections::BTreeMap;
use std::io::Write;

use conclave_audit::{ClientIpOpening, Event, rfc3339};
use serde::Serialize;

/// The output format of `export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

#[derive(Serialize)]
struct Record<'a> {
    index: u64,
    time: String,
    action: &'a str,
    outcome: &'a str,
    actor: Option<&'a str>,
    device: Option<&'a str>,
    target: Option<&'a str>,
    client_ip: Option<&'a str>,
    details: &'a BTreeMap<String, String>,
}

impl<'a> Record<'a> {
    fn of(index: u64, event: &'a Event, address: Option<&'a ClientIpOpening>) -> Self {
        Self {
            index,
            time: rfc3339(event.time),
            action: &event.action,
            outcome: &event.outcome,
            actor: event.actor.as_deref(),
            device: event.device.as_deref(),
            target: event.target.as_deref(),
            client_ip: address
                .map(|a| a.ip.as_str())
                .or(event.client_ip.as_deref()),
            details: &event.details,
        }
    }
}

const CSV_HEADER: [&str; 9] = [
    "index",
    "time",
    "action",
    "outcome",
    "actor",
    "device",
    "target",
    "client_ip",
    "details",
];

/// Writes `entries` (index, event) to `out` in `format`, with the client
/// addresses that open their commitments; returns how many.
pub fn write_entries<'a>(
    format: Format,
    entries: impl IntoIterator<Item = (u64, &'a Event)>,
    addresses: &'a BTreeMap<u64, ClientIpOpening>,
    out: impl Write,
) -> std::io::Result<u64> {
    let mut count = 0;
    match format {
        Format::Jsonl => {
            let mut out = out;
            for (index, event) in entries {
                serde_json::to_writer(&mut out, &Record::of(index, event, addresses.get(&index)))?;
                out.write_all(b"\n")?;
                count += 1;
            }
            out.flush()?;
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(CSV_HEADER)?;
            for (index, event) in entries {
                let record = Record::of(index, event, addresses.get(&index));
                let details: Vec<String> = record
                    .details
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                writer.write_record([
                    index.to_string().as_str(),
                    &record.time,
                    record.action,
                    record.outcome,
                    record.actor.unwrap_or_default(),
                    record.device.unwrap_or_default(),
                    record.target.unwrap_or_default(),
                    record.client_ip.unwrap_or_default(),
                    &details.join(" "),
                ])?;
                count += 1;
            }
            writer.flush()?;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn events() -> Vec<Event> {
        vec![
            Event::new(0, 1_795_529_682, "device_added")
                .actor("alice")
                .device("ab12")
                .detail("public_key", "00ff"),
            Event::new(1, 1_795_529_690, "login")
                .actor("bob")
                .failure("bad_password")
                .client_ip("192.0.2.1"),
        ]
    }

    #[test]
    fn jsonl_has_one_object_per_entry() {
        let events = events();
        let mut out = Vec::new();
        let n = write_entries(
            Format::Jsonl,
            (0..).zip(&events),
            &BTreeMap::new(),
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 2);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["time"], "2026-11-24T14:14:42Z");
        assert_eq!(lines[0]["details"]["public_key"], "00ff");
        assert_eq!(lines[0]["client_ip"], serde_json::Value::Null);
        assert_eq!(lines[1]["outcome"], "failure:bad_password");
        assert_eq!(lines[1]["index"], 1);
    }

    #[test]
    fn csv_has_a_header_and_empty_cells_for_absent_values() {
        let events = events();
        let mut out = Vec::new();
        write_entries(Format::Csv, (0..).zip(&events), &BTreeMap::new(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("index,time,action,outcome,actor,device,target,client_ip,details")
        );
        assert_eq!(
            lines.next(),
            Some("0,2026-11-24T14:14:42Z,device_added,success,alice,ab12,,,public_key=00ff")
        );
        assert_eq!(
            lines.next(),
            Some("1,2026-11-24T14:14:50Z,login,failure:bad_password,bob,,,192.0.2.1,")
        );
    }
}
