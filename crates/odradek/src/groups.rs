//! `odradek groups describe`: a consumer group's per-partition lag, as
//! `kafka-consumer-groups.sh --describe` prints it (or as JSON).

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use odradek_client::admin::{group_lag, rows_to_json, GroupLag, LagRow};

pub struct Describe {
    pub bootstrap_server: String,
    pub group: String,
    pub json: bool,
    pub timeout_ms: u64,
}

impl Describe {
    pub fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let lag = runtime.block_on(group_lag(
            &self.bootstrap_server,
            &self.group,
            Duration::from_millis(self.timeout_ms),
        ))?;
        // Notes go to stderr, so stdout holds only the table or the JSON.
        for note in notes(&lag) {
            eprintln!("{note}");
        }
        let out = if self.json {
            let mut json = rows_to_json(&lag.rows);
            json.push('\n');
            json
        } else {
            render_table(&lag.rows)
        };
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
        {
            // `| head` closing the pipe early is not an error.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// What Kafka's tool says about the group's state, then the warnings.
fn notes(lag: &GroupLag) -> Vec<String> {
    let mut notes = Vec::new();
    let group = &lag.group;
    match lag.state.as_deref() {
        Some("Empty") => notes.push(format!("Consumer group '{group}' has no active members.")),
        _ if lag.is_rebalancing() => {
            notes.push(format!("Warning: Consumer group '{group}' is rebalancing."))
        }
        _ => {}
    }
    if lag.rows.is_empty() {
        notes.push(format!(
            "Consumer group '{group}' has no committed offsets and no assigned partitions."
        ));
    }
    notes.extend(lag.warnings.iter().map(|w| format!("warning: {w}")));
    notes
}

const HEADERS: [&str; 9] = [
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
];

/// Kafka's columns, left-aligned, each as wide as its widest cell; "-"
/// for unknown values. Nothing at all for no rows (as Kafka's tool).
pub fn render_table(rows: &[LagRow]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let owner = r.owner.as_ref();
            let text = |f: fn(&odradek_client::admin::PartitionOwner) -> &str| {
                owner.map_or_else(|| "-".to_owned(), |o| f(o).to_owned())
            };
            [
                r.group.clone(),
                r.topic.clone(),
                r.partition.to_string(),
                opt(r.current_offset),
                opt(r.log_end_offset),
                opt(r.lag),
                text(|o| &o.consumer_id),
                text(|o| &o.host),
                text(|o| &o.client_id),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[&str]| {
        let last = cols.len() - 1;
        for (i, c) in cols.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                // `{:<w$}` pads by characters, as the widths are counted.
                let _ = write!(out, "{c:<w$} ", w = widths[i]);
            }
        }
        out.push('\n');
    };
    line(&HEADERS);
    for row in &cells {
        let cols: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cols);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use odradek_client::admin::PartitionOwner;

    fn row(partition: i32, current: Option<i64>, end: Option<i64>, owned: bool) -> LagRow {
        LagRow {
            group: "orders".into(),
            topic: "payments".into(),
            partition,
            current_offset: current,
            log_end_offset: end,
            lag: current.zip(end).map(|(c, e)| e - c),
            owner: owned.then(|| PartitionOwner {
                consumer_id: "rdkafka-3f2a".into(),
                host: "/127.0.0.1".into(),
                client_id: "billing".into(),
            }),
        }
    }

    #[test]
    fn table_has_kafka_columns_and_dashes_for_unknowns() {
        let table = render_table(&[
            row(0, Some(4), Some(10), true),
            row(1, None, Some(7), true),
            row(12, Some(3), None, false),
        ]);
        assert_eq!(
            table,
            "\
GROUP  TOPIC    PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID  HOST       CLIENT-ID
orders payments 0         4              10             6   rdkafka-3f2a /127.0.0.1 billing
orders payments 1         -              7              -   rdkafka-3f2a /127.0.0.1 billing
orders payments 12        3              -              -   -            -          -
"
        );
        assert_eq!(render_table(&[]), "");
    }

    #[test]
    fn notes_follow_kafka_for_empty_and_rebalancing_groups() {
        let lag = |state: &str, rows: Vec<LagRow>| GroupLag {
            group: "orders".into(),
            coordinator: 1,
            state: Some(state.into()),
            rows,
            warnings: vec!["the log-end offset of payments-3 is unknown".into()],
        };
        assert_eq!(
            notes(&lag("Empty", vec![row(0, Some(1), Some(1), false)])),
            [
                "Consumer group 'orders' has no active members.",
                "warning: the log-end offset of payments-3 is unknown"
            ]
        );
        assert_eq!(
            notes(&lag("PreparingRebalance", vec![]))[..2],
            [
                "Warning: Consumer group 'orders' is rebalancing.",
                "Consumer group 'orders' has no committed offsets and no assigned partitions."
            ]
        );
        assert_eq!(
            notes(&lag("Stable", vec![row(0, None, None, true)])).len(),
            1
        );
    }
}
